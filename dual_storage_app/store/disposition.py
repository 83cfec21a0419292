"""What every presigned link asks the store to send: nothing a browser would execute.

A presigned GET is served from the public endpoint's origin with the object's stored
``Content-Type``, so a dataset named ``evil.html`` or ``evil.svg`` would run as a page of
that origin (stored XSS). Every link therefore carries two signed overrides:

* ``response-content-disposition``: ``attachment`` with the file name (RFC 6266: an ASCII
  ``filename=`` fallback and the exact name as RFC 5987 ``filename*=UTF-8''...``), unless
  the caller asks for ``inline``;
* ``inline`` is granted only to types a browser displays without running them (images,
  audio, video, PDF, plain text, CSV, JSON), judged from the key's name, and then the
  response type is pinned to that type, so an object stored with another type cannot
  betray the link; any other key is an attachment;
* ``response-content-type``: ``application/octet-stream`` whenever the key's type, or
  the type a caller asks for, is one a browser would execute (HTML, SVG, any XML,
  JavaScript).

Signing still makes no request: the policy reads only the key.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .transfer import DEFAULT_CONTENT_TYPE, guess_content_type

# Types a browser shows as media or text without executing anything in the page's origin.
SAFE_INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/x-wav",
        "audio/webm",
        "audio/flac",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/json",
    }
)
_UNQUOTABLE = frozenset('"\\')  # characters a quoted-string would need to escape
DISPOSITION = "ResponseContentDisposition"
CONTENT_TYPE = "ResponseContentType"


def content_disposition(disposition: str, filename: str) -> str:
    """``attachment; filename="a.csv"`` (RFC 6266), with ``filename*`` for a name that
    is not plain printable ASCII; quotes, backslashes and control characters never
    reach the header."""
    if filename.isascii() and filename.isprintable() and not _UNQUOTABLE & set(filename):
        fallback = filename
    else:
        fallback = "".join(
            char if 32 <= ord(char) < 127 and char not in _UNQUOTABLE else "_" for char in filename
        )
    header = f'{disposition}; filename="{fallback or "download"}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


def is_executable(content_type: str) -> bool:
    """True for a type a browser would run or render as a document of the link's origin
    (HTML, XHTML, SVG and any XML, JavaScript)."""
    kind = content_type.split(";")[0].strip().lower()
    return (
        "html" in kind
        or "javascript" in kind
        or "ecmascript" in kind
        or kind.endswith(("/xml", "+xml"))
        or kind.startswith("multipart/")
    )


def link_parameters(key: str, extra: Mapping[str, Any] | None, *, inline: bool) -> dict[str, Any]:
    """``extra`` with the Response* overrides every link for ``key`` carries.

    ``inline`` (or a caller's own ``inline`` disposition) is granted only when the key's
    type is a safe inline type, and then pins the response type to it. Otherwise the link
    is an attachment (a caller's own ``attachment`` value is kept), and a type a browser
    would execute, guessed from the key or asked for by the caller, becomes
    ``application/octet-stream``."""
    parameters = dict(extra or {})
    filename = posixpath.basename(key) or "download"
    asked = str(parameters.get(DISPOSITION, "")).strip()
    guessed = guess_content_type(key)
    if (inline or asked.lower().startswith("inline")) and guessed in SAFE_INLINE_TYPES:
        parameters[CONTENT_TYPE] = guessed
        parameters[DISPOSITION] = content_disposition("inline", filename)
        return parameters
    if not asked.lower().startswith("attachment"):
        parameters[DISPOSITION] = content_disposition("attachment", filename)
    requested = parameters.get(CONTENT_TYPE)
    if is_executable(guessed) or (requested is not None and is_executable(str(requested))):
        parameters[CONTENT_TYPE] = DEFAULT_CONTENT_TYPE
    return parameters

"""A file's path inside a folder dataset: the one rule for every way a folder arrives.

The browser's folder uploads (:mod:`.uploads.folders`) and the client's
(:mod:`.folder_upload`) both name each file by its path relative to the folder, and both
check it here: NFC (macOS spells names NFD, R2 normalises keys to NFC), ``/``-separated,
valid as an object key (:func:`.keys.validate_key`). A path is refused, never renamed.
"""

from __future__ import annotations

import unicodedata

from .exceptions import InvalidKey
from .keys import validate_key


def folder_path(value: str) -> str:
    """``value`` (a ``/``-separated path inside a folder) NFC-normalised, if it can be
    a file's path in a folder dataset; else :class:`InvalidKey` naming it."""
    path = unicodedata.normalize("NFC", value)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:  # a file name in another encoding (surrogates)
        raise InvalidKey(
            f"Invalid object key {path!r}: it is not Unicode text (a name written in "
            f"another encoding than UTF-8, at character {exc.start}).",
        ) from exc
    return validate_key(path)

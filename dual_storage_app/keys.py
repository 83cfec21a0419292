"""Object key validation: the one place where a key is accepted or refused.

Keys are refused, never silently rewritten: ``../../etc/passwd`` does not become
``etc/passwd`` and ``/abs`` does not become ``abs`` (django-storages' cleaning would).
The rules are the union of what MinIO, R2 and AWS accept, so a key that passes here
means the same object on every provider:

* not empty, at most 1,024 bytes of UTF-8, every ``/``-separated segment at most 255 bytes;
* no leading ``/``, no empty segment (``a//b``, trailing ``/``), no ``.`` or ``..`` segment;
* no backslash (a path separator on some servers, a plain character on others);
* no control characters (NUL included) and no invisible format characters (zero-width
  space, joiners, bidi overrides);
* NFC-normalised Unicode, since R2 normalises keys to NFC and two spellings of one name
  would otherwise alias.
"""

from __future__ import annotations

import unicodedata

from .exceptions import InvalidKey

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
_REFUSED_CATEGORIES = {"Cc": "a control character", "Cf": "an invisible format character"}


def validate_key(key: object, *, store: str | None = None, bucket: str | None = None) -> str:
    """Return ``key`` unchanged if it is a safe object key, else raise :class:`InvalidKey`."""
    problem = _key_problem(key)
    if problem is not None:
        where = f" for the {store} store" if store else ""
        where += f" (bucket {bucket!r})" if bucket else ""
        raise InvalidKey(
            f"Invalid object key {key!r}{where}: {problem}.",
            store=store,
            bucket=bucket,
            key=key if isinstance(key, str) else None,
        )
    assert isinstance(key, str)
    return key


def _key_problem(key: object, *, partial: bool = False) -> str | None:
    """What is wrong with ``key``; with ``partial``, the last segment may be unfinished
    (a listing prefix: ``"a/"``, ``"."`` and ``".."`` start valid keys)."""
    if not isinstance(key, str):
        return f"a key must be a str, not {type(key).__name__}"
    if not key:
        return "the key is empty"
    for char in key:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            return f"it contains {_REFUSED_CATEGORIES[category]} (U+{ord(char):04X})"
    if "\\" in key:
        return "it contains a backslash; use '/' to separate segments"
    if unicodedata.normalize("NFC", key) != key:
        return (
            "it is not NFC-normalised Unicode; normalise it with unicodedata.normalize('NFC', key)"
        )
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"it is {len(key.encode('utf-8'))} bytes long, the limit is {MAX_KEY_BYTES}"
    if key.startswith("/"):
        return "it starts with '/'; keys are relative to the bucket"
    segments = key.split("/")
    if partial:
        last = segments.pop()
        if len(last.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    for segment in segments:
        if segment == "":
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in {".", ".."}:
            return f"it has a {segment!r} segment"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def validate_prefix(prefix: str, *, store: str | None = None, bucket: str | None = None) -> str:
    """A listing prefix: empty, or the start of a valid key (a trailing ``/`` is fine)."""
    if prefix == "":
        return prefix
    problem = _key_problem(prefix, partial=True)
    if problem is not None:
        raise InvalidKey(
            f"Invalid listing prefix {prefix!r}"
            + (f" for the {store} store" if store else "")
            + f": {problem}.",
            store=store,
            bucket=bucket,
            key=prefix,
        )
    return prefix


def segment_problem(value: object) -> str | None:
    """What keeps ``value`` from being used, unchanged, as one key segment (a training
    job id under ``jobs/``), or ``None``. Nothing is cleaned: ``../7`` is not ``7``."""
    if isinstance(value, str) and "/" in value:
        return "it contains '/', which would make it more than one key segment"
    return _key_problem(value)


def validate_segment(
    value: object, *, field: str, store: str | None = None, bucket: str | None = None
) -> str:
    """Return ``value`` if it can be one key segment as it is, else raise
    :class:`InvalidKey` naming ``field``."""
    problem = segment_problem(value)
    if problem is not None:
        raise InvalidKey(
            f"Invalid {field} {value!r}: {problem}. It becomes one segment of the object "
            "key, used as it is, never cleaned into another.",
            store=store,
            bucket=bucket,
        )
    assert isinstance(value, str)
    return value

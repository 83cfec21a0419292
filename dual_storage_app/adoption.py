"""Adopting objects that have no artifact row: which keys get one, and registering one.

The rules behind ``manage.py dualstorage_adopt`` and the adopt job of
:mod:`dual_storage_app.jobs`: folder markers, keys the app refuses and the files of
folder datasets (or of browser uploads in progress) are skipped (and reported); a
schema's published copy (``<framework>.json``) needs no row of its own; a schema key of
a framework that already has a row is left alone (one row per framework). Everything
else is read once to hash it and recorded as the client records its writes.
"""

from __future__ import annotations

from .catalog import is_publication, register, schema_framework
from .exceptions import InvalidKey, ObjectNotFound
from .keys import validate_key
from .kinds import ArtifactKind
from .models import Artifact, ConfigSchema
from .owned_keys import OwnedKeys
from .store import Store

PUBLISHED = "published"
"""The reason given for a schema row's published copy: known, neither adopted nor skipped."""


def known_frameworks(kind: ArtifactKind) -> set[str]:
    """The frameworks that have a schema row (for the schemas kind; empty otherwise)."""
    if kind != "schemas":
        return set()
    return set(ConfigSchema.objects.values_list("framework", flat=True))


def reason_to_skip(
    kind: ArtifactKind, key: str, frameworks: set[str], owned: OwnedKeys | None = None
) -> str | None:
    """Why ``key`` gets no row, or ``None`` when it is adopted (:data:`PUBLISHED`: a
    schema row's publication). ``frameworks``: :func:`known_frameworks`; ``owned``: the
    keys of folder datasets and uploads in progress (:class:`~.owned_keys.OwnedKeys`)."""
    if key.endswith("/"):
        return "a folder marker"
    if owned is not None and key in owned:
        return owned.reason(key)
    try:
        validate_key(key)
    except InvalidKey as exc:
        return f"the key is refused ({exc})"
    if kind == "schemas":
        framework = schema_framework(key)
        if framework in frameworks:
            return (
                PUBLISHED
                if is_publication(kind, key)
                else (f"schema {framework!r} already has a row (an older version?)")
            )
    return None


def adopt_object(kind: ArtifactKind, store: Store, bucket: str, key: str) -> Artifact | None:
    """Read ``bucket/key`` once (size, SHA-256, ETag, type) and record its row; ``None``
    when the object was deleted since it was listed. A schema's framework joins
    ``known_frameworks`` from then on (the caller adds it)."""
    try:
        result = store.hash_object(bucket, key)
    except ObjectNotFound:
        return None
    row, _ = register(kind, result)
    return row

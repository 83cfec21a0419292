"""Promote a checkpoint to a model weight, or copy any artifact to another kind (and so to
another store), with the migration's verification.

The source must have a row: its recorded SHA-256 is what the copy must read back as,
so a source corrupted since it was written is refused rather than promoted. The copy is
server-side when both kinds live on one server (a checkpoint and a weight, both on the
internal store) and streamed otherwise; it never replaces an existing object or row.
The new row is written after the copy is verified; if writing it fails, the copy is
deleted (no object without a row). A target already holding the same bytes (a promotion
interrupted before its row was written) is verified and recorded, not copied again.
"""

from __future__ import annotations

from typing import Any

from ..catalog import register
from ..client import dual_storage
from ..exceptions import ObjectExists, ObjectNotFound
from ..keys import validate_key
from ..kinds import ArtifactKind, spec_for
from ..models import ARTIFACT_MODELS, Artifact
from .copying import CopyOutcome, ObjectRef, copy_verified, source_etag_and_size


def _rows(kind: ArtifactKind) -> Any:
    return ARTIFACT_MODELS[kind]._default_manager


def copy_artifact(
    source_kind: ArtifactKind, source_key: str, target_kind: ArtifactKind, target_key: str
) -> tuple[Artifact, CopyOutcome]:
    """Copy the ``source_kind`` artifact ``source_key`` to ``target_kind`` under
    ``target_key``, verified against the source row's SHA-256; return the new row and
    how the copy was made. ``ObjectNotFound`` when the source has no row or object,
    ``ObjectExists`` when the target key is taken, ``IntegrityError`` when the bytes do
    not match."""
    spec_for(source_kind)
    spec_for(target_kind)
    source_store, source_bucket = dual_storage.locate(source_kind)
    target_store, target_bucket = dual_storage.locate(target_kind)
    validate_key(source_key, store=source_store.name, bucket=source_bucket)
    validate_key(target_key, store=target_store.name, bucket=target_bucket)
    row = _rows(source_kind).filter(file=source_key).first()
    if row is None:
        raise ObjectNotFound(
            f"No {source_kind} row has key {source_key!r}: only a recorded artifact is "
            "copied (its SHA-256 is what the copy is checked against); adopt it first "
            "(manage.py dualstorage_adopt).",
            store=source_store.name,
            bucket=source_bucket,
            key=source_key,
        )
    if _rows(target_kind).filter(file=target_key).exists():
        raise ObjectExists(
            f"A {target_kind} row already has key {target_key!r}; choose another key.",
            store=target_store.name,
            bucket=target_bucket,
            key=target_key,
        )
    source = ObjectRef(source_store, row.bucket or source_bucket, source_key)
    target = ObjectRef(target_store, target_bucket, target_key)
    etag, size = source_etag_and_size(source)
    outcome = copy_verified(
        source, target, source_etag=etag, size=size, expected_sha256=row.sha256 or None
    )
    try:
        created, _ = register(target_kind, outcome.target)
    except BaseException:
        if outcome.method != "found":  # a copy made here; one found (verified) stays
            target_store.delete(target_bucket, target_key)
        raise
    return created, outcome


def promote_checkpoint(checkpoint_key: str, weight_key: str | None = None) -> Artifact:
    """Make checkpoint ``checkpoint_key`` a model weight under ``weight_key`` (default:
    the same key in the weights bucket); return the weight's row."""
    weight, _ = copy_artifact(
        "checkpoints", checkpoint_key, "weights", weight_key or checkpoint_key
    )
    return weight

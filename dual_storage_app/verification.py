"""Checking one artifact row against its store: intact, changed, missing or unreadable.

The one check behind ``manage.py dualstorage_verify`` and the verify job of
:mod:`dual_storage_app.jobs`: the object is re-read and its SHA-256 and size compared with
the row (``quick``: a HEAD, comparing size and ETag).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .exceptions import DualStorageError, ObjectNotFound
from .models import Artifact

Outcome = Literal["intact", "changed", "missing", "unreadable"]
OUTCOMES: tuple[Outcome, ...] = ("intact", "changed", "missing", "unreadable")


@dataclass(frozen=True)
class Verdict:
    """What the check found: the outcome and, unless intact, the problem in words."""

    outcome: Outcome
    problem: str | None = None


INTACT = Verdict("intact")


def check_artifact(row: Artifact, *, quick: bool = False) -> Verdict:
    """Compare ``row`` with its object: re-read it and compare SHA-256 and size, or with
    ``quick`` only HEAD it and compare size and ETag. A misconfiguration
    (``ConfigurationError``) is raised, never classified."""
    try:
        store, bucket = row.location()
        if quick:
            info = store.head(bucket, row.key)
            if info.size != row.size or (row.etag and info.etag != row.etag):
                return Verdict(
                    "changed", f"changed in the store (size {info.size}, ETag {info.etag})"
                )
            return INTACT
        read = store.hash_object(bucket, row.key)
        size, sha256 = read.size, read.sha256
    except ObjectNotFound:
        return Verdict("missing", "missing: no object at its key")
    except DualStorageError as exc:
        return Verdict("unreadable", row.describe_failure(exc))
    if (size, sha256) != (row.size, row.sha256):
        return Verdict("changed", f"changed in the store (size {size}, SHA-256 {sha256[:12]})")
    return INTACT

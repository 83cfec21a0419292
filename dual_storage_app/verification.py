"""Checking one artifact row against its store: intact, changed, missing or unreadable.

The one check behind ``manage.py dualstorage_verify`` and the verify job of
:mod:`dual_storage_app.jobs`: the object is re-read and its SHA-256 and size compared with
the row (``quick``: a HEAD, comparing size and ETag). :func:`check_artifacts` checks many
rows with several objects read at once: each check is at least one round trip, which a
store 100 ms away makes the whole cost (100,000 rows one at a time: hours).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from .exceptions import DualStorageError, ObjectNotFound
from .models import Artifact, Dataset

Outcome = Literal["intact", "changed", "missing", "unreadable", "verifying"]
OUTCOMES: tuple[Outcome, ...] = ("intact", "changed", "missing", "unreadable", "verifying")


@dataclass(frozen=True)
class Verdict:
    """What the check found: the outcome and, unless intact, the problem in words."""

    outcome: Outcome
    problem: str | None = None


_NAMED_FILES = 5  # files named in one problem

INTACT = Verdict("intact")
# A browser upload the server has not read back yet: nothing to compare with, no problem.
VERIFYING = Verdict("verifying")


def check_artifact(row: Artifact, *, quick: bool = False) -> Verdict:
    """Compare ``row`` with its object: re-read it and compare SHA-256 and size, or with
    ``quick`` only HEAD it and compare size and ETag. A misconfiguration
    (``ConfigurationError``) is raised, never classified. A folder dataset is its
    manifest and every file it lists; a browser upload still being read back is
    "verifying"; one found corrupt is "changed"."""
    if isinstance(row, Dataset):
        if row.status == Dataset.Status.VERIFYING:
            return VERIFYING
        if row.status == Dataset.Status.CORRUPT:
            return Verdict("changed", "corrupt: the stored bytes are not the ones uploaded")
        if row.is_folder:
            return _check_folder(row, quick=quick)
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


CHECKS_AT_ONCE = 16
"""Objects :func:`check_artifacts` reads at the same time."""


def _reads_the_database(row: Artifact) -> bool:
    """A folder dataset's check reads its file rows: it runs in the caller's thread
    (and database connection), never in a worker's."""
    return (
        isinstance(row, Dataset)
        and row.is_folder
        and row.status not in (Dataset.Status.VERIFYING, Dataset.Status.CORRUPT)
    )


def check_artifacts(
    rows: Iterable[Artifact], *, quick: bool = False, at_once: int = CHECKS_AT_ONCE
) -> Iterator[tuple[Artifact, Verdict]]:
    """:func:`check_artifact` of every row, yielded in the rows' order, with up to
    ``at_once`` objects read at the same time and at most twice that many rows held
    (memory stays flat however many rows there are). A ``ConfigurationError`` is raised
    at the row it concerns."""
    pending: deque[tuple[Artifact, Future[Verdict] | Verdict]] = deque()

    def oldest() -> tuple[Artifact, Verdict]:
        row, verdict = pending.popleft()
        return row, verdict.result() if isinstance(verdict, Future) else verdict

    with ThreadPoolExecutor(at_once, thread_name_prefix="dual-storage-verify") as pool:
        for row in rows:
            if _reads_the_database(row):
                pending.append((row, check_artifact(row, quick=quick)))
            else:
                pending.append((row, pool.submit(check_artifact, row, quick=quick)))
            while len(pending) > 2 * at_once:
                yield oldest()
        while pending:
            yield oldest()


def _check_folder(row: Dataset, *, quick: bool) -> Verdict:
    """The manifest against the row (SHA-256, or ETag with ``quick``), then every file
    against its ``DatasetFile`` row (re-read, or its size from one listing with
    ``quick``); the problems name the first files."""
    try:
        store, bucket = row.location()
        if quick:
            info = store.head(bucket, row.key)
            if row.etag and info.etag != row.etag:
                return Verdict("changed", f"its manifest changed in the store (ETag {info.etag})")
            listed = {i.key: i.size for i in store.list(bucket, row.folder_prefix)}
        elif hashlib.sha256(store.get_bytes(bucket, row.key)).hexdigest() != row.sha256:
            return Verdict("changed", "its manifest changed in the store")
    except ObjectNotFound:
        return Verdict("missing", "missing: no manifest at its key")
    except DualStorageError as exc:
        return Verdict("unreadable", row.describe_failure(exc))
    missing: list[str] = []
    changed: list[str] = []
    for entry in row.files.order_by("path").iterator():
        key = row.folder_prefix + entry.path
        if quick:
            size = listed.get(key)
            if size is None:
                missing.append(entry.path)
            elif size != entry.size:
                changed.append(entry.path)
            continue
        try:
            read = store.hash_object(bucket, key)
        except ObjectNotFound:
            missing.append(entry.path)
            continue
        except DualStorageError as exc:
            return Verdict("unreadable", f"{entry.path}: {row.describe_failure(exc)}")
        if (read.size, read.sha256) != (entry.size, entry.sha256):
            changed.append(entry.path)
    if missing:
        return Verdict("missing", _files_problem("missing", missing, row.file_count))
    if changed:
        return Verdict("changed", _files_problem("changed", changed, row.file_count))
    return INTACT


def _files_problem(what: str, paths: list[str], total: int) -> str:
    shown = ", ".join(paths[:_NAMED_FILES]) + (", ..." if len(paths) > _NAMED_FILES else "")
    return f"{len(paths)} of its {total} files {what}: {shown}"

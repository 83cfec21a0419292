"""Downloading a folder dataset: its manifest, then every file it lists, in parallel.

Each file is streamed to a temporary file beside its destination, verified against the
manifest's SHA-256 and renamed into place only then (:meth:`.store.Store.download`), so
an interrupted or corrupt download leaves no partial file. A manifest path that would
leave the destination directory is refused before anything is written.

Files of one GET go ``FOLDER_FILES_AT_ONCE`` at a time, then the larger ones, each of
which is ``DOWNLOAD_THREADS`` ranged GETs at once, fewer at a time: the requests in
flight stay within the connection pool (:mod:`.store.clients`).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .exceptions import IntegrityError
from .manifests import ManifestEntry, folder_prefix, read_manifest
from .store import Store, TransferResult
from .store.transfer import DOWNLOAD_PART_SIZE, DOWNLOAD_THREADS, FOLDER_FILES_AT_ONCE

LARGE_FILES_AT_ONCE = max(1, FOLDER_FILES_AT_ONCE // DOWNLOAD_THREADS)


def _destination(root: Path, entry: ManifestEntry) -> Path:
    target = (root / entry.path).resolve()
    if not target.is_relative_to(root):
        raise IntegrityError(f"The manifest's path {entry.path!r} leaves the destination.")
    return target


def download_folder(
    store: Store,
    bucket: str,
    manifest_key: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
) -> TransferResult:
    """Download the folder dataset whose manifest is ``manifest_key`` into the directory
    ``dest``; a result for the whole folder (its size, the manifest's SHA-256, which must
    be ``expected_sha256`` when given: the dataset row's)."""
    data = store.get_bytes(bucket, manifest_key)
    found = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and found != expected_sha256:
        raise IntegrityError(
            f"The manifest {manifest_key!r} has SHA-256 {found}, but {expected_sha256} was "
            "recorded; nothing was written.",
            store=store.name,
            bucket=bucket,
            key=manifest_key,
        )
    entries = read_manifest(data, manifest_key)
    root = Path(dest).resolve()
    targets = [(entry, _destination(root, entry)) for entry in entries]
    root.mkdir(parents=True, exist_ok=True)
    prefix = folder_prefix(manifest_key)

    def fetch(pair: tuple[ManifestEntry, Path]) -> TransferResult:
        entry, target = pair
        return store.download(bucket, prefix + entry.path, target, expected_sha256=entry.sha256)

    results: list[TransferResult] = []
    for at_once, batch in (
        (FOLDER_FILES_AT_ONCE, [t for t in targets if t[0].size <= DOWNLOAD_PART_SIZE]),
        (LARGE_FILES_AT_ONCE, [t for t in targets if t[0].size > DOWNLOAD_PART_SIZE]),
    ):
        if batch:
            with ThreadPoolExecutor(
                min(at_once, len(batch)), thread_name_prefix="dual-storage-folder"
            ) as pool:
                results += pool.map(fetch, batch)
    return TransferResult(
        store=store.name,
        bucket=bucket,
        key=manifest_key,
        size=sum(result.size for result in results),
        sha256=found,
        etag="",
        content_type="application/json",
    )

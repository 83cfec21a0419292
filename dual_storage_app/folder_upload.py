"""Uploading a folder dataset from Python: every file under one prefix, then its manifest.

The mirror of :mod:`.folder_download`, and the same layout as a browser's folder upload
(:mod:`.manifests`): the file ``<path>`` of the folder becomes ``<dataset_key>/<path>``,
and the manifest ``<dataset_key>.manifest.json`` (the dataset's own key) lists every
file's path, size and SHA-256.

* The folder is walked first, and every path is checked with the browser's rule
  (:func:`.folder_paths.folder_path`): an empty folder, a name that cannot be a key, a
  symlink that leads outside the folder (or round in a loop), anything but regular files
  and directories is refused, naming it, before anything is sent.
* A small file (under ``PART_SIZE``) is read once, hashed in the same pass, and sent as
  one ``PutObject`` carrying its SHA-256 (``ChecksumSHA256``: the store refuses bytes
  damaged on the way) with ``If-None-Match: *``. A larger one goes through the store's
  verified file upload (:meth:`.store.Store.upload_file` with ``if_absent``). Either way
  an existing object is never replaced, and a file that is not the one the walk found
  (changed, replaced, gone) is refused.
* ``FOLDER_FILES_AT_ONCE`` small files are in flight at once, holding at most
  ``SMALL_FILES_IN_MEMORY`` bytes between them (memory stays flat whatever the sizes),
  then the large ones, fewer at a time since each already
  sends its parts in parallel: the requests in flight stay within the connection pool.
* The manifest is written last, also ``If-None-Match: *``: until it exists there is no
  dataset. On any failure the files this call stored are deleted (once no file is in
  flight any more), no manifest is written, and the error names the file.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import hashlib
import logging
import os
import posixpath
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from .exceptions import DualStorageError, IntegrityError, InvalidArgument, InvalidKey, ObjectExists
from .folder_paths import folder_path
from .keys import validate_key
from .manifests import MANIFEST_SUFFIX, ManifestEntry, is_manifest, manifest_bytes
from .store import Store, TransferResult
from .store.errors import translated
from .store.integrity import TAG
from .store.transfer import (
    FOLDER_FILES_AT_ONCE,
    PART_SIZE,
    guess_content_type,
    progress_callback,
    transfer_config,
)
from .store.upload import refused_if_taken

logger = logging.getLogger(__name__)

#: Large files uploaded at once: each sends ``max_concurrency`` parts at a time.
LARGE_FILES_AT_ONCE = max(1, FOLDER_FILES_AT_ONCE // transfer_config().max_request_concurrency)
READ_SIZE = 1024 * 1024  # a small file is hashed a MiB at a time as it is read
#: Bytes of small files held in memory at once, across the files in flight: 64 files of
#: 256 KB fit; files near ``PART_SIZE`` go four at a time.
SMALL_FILES_IN_MEMORY = 64 * 1024 * 1024

Identity = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


def _identity(status: os.stat_result) -> Identity:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


@dataclass(frozen=True)
class FolderFile:
    """A regular file found in the folder."""

    path: str  # inside the folder: NFC, '/'-separated (the manifest's path)
    source: Path  # the file to read (a symlink's target)
    size: int
    identity: Identity  # when the walk found it


@dataclass(frozen=True)
class UploadedFolder:
    """A stored folder dataset: the result for its manifest, and the files it lists."""

    result: TransferResult
    files: list[ManifestEntry]


# -- the walk ---------------------------------------------------------------------------


def find_files(folder: Path) -> list[FolderFile]:
    """Every regular file under ``folder``, sorted by path, each path checked; refuses
    (``InvalidArgument``, ``InvalidKey``), naming it, whatever cannot be uploaded."""
    if not folder.is_dir():
        raise InvalidArgument(
            f"Cannot upload {str(folder)!r} as a folder dataset: it is not a directory."
        )
    root = folder.resolve(strict=True)
    found: dict[str, FolderFile] = {}
    names: dict[str, str] = {}  # each path as the folder spells it
    pending: list[tuple[Path, str, frozenset[Path]]] = [(root, "", frozenset({root}))]
    while pending:
        directory, prefix, ancestors = pending.pop()
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            relative = prefix + entry.name
            source = Path(entry.path)
            if entry.is_symlink():
                source = _link_target(folder, root, relative, source)
            status = source.stat()
            if stat.S_ISDIR(status.st_mode):
                if source in ancestors:
                    raise InvalidArgument(
                        f"Cannot upload {str(folder)!r}: the symlink {relative!r} leads back "
                        "to a folder that holds it (a loop)."
                    )
                pending.append((source, relative + "/", ancestors | {source}))
            elif stat.S_ISREG(status.st_mode):
                path = _checked_path(folder, relative)
                if path in names:
                    raise InvalidArgument(
                        f"Cannot upload {str(folder)!r}: {names[path]!r} and {relative!r} "
                        f"are both {path!r} once NFC-normalised."
                    )
                names[path] = relative
                found[path] = FolderFile(path, source, status.st_size, _identity(status))
            else:
                raise InvalidArgument(
                    f"Cannot upload {str(folder)!r}: {relative!r} is neither a regular file "
                    "nor a directory."
                )
    if not found:
        raise InvalidArgument(f"Cannot upload {str(folder)!r}: the folder holds no file.")
    return [found[path] for path in sorted(found)]


def _link_target(folder: Path, root: Path, relative: str, link: Path) -> Path:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise InvalidArgument(
            f"Cannot upload {str(folder)!r}: the symlink {relative!r} leads nowhere ({exc})."
        ) from exc
    if not target.is_relative_to(root):
        raise InvalidArgument(
            f"Cannot upload {str(folder)!r}: the symlink {relative!r} leads outside the "
            f"folder (to {str(target)!r})."
        )
    return target


def _checked_path(folder: Path, relative: str) -> str:
    try:
        return folder_path(relative)
    except InvalidKey as exc:
        raise InvalidKey(
            f"Cannot upload {str(folder)!r}: the file {relative!r} cannot be named in a "
            f"dataset. {exc}"
        ) from exc


# -- one file ---------------------------------------------------------------------------


class _ByteBudget:
    """Lets threads hold at most ``limit`` bytes between them; a claim waits until its
    bytes are free (a claim above ``limit`` takes the whole budget)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._free = limit
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def claim(self, size: int) -> Iterator[None]:
        size = min(size, self._limit)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= size)
            self._free -= size
        try:
            yield
        finally:
            with self._changed:
                self._free += size
                self._changed.notify_all()


def _not_as_found(store: Store, bucket: str, key: str, file: FolderFile) -> IntegrityError:
    return IntegrityError(
        f"{str(file.source)!r} changed, or was replaced or removed, while the folder was "
        "uploaded: it is not the file the folder held when the upload started. Upload a "
        "folder that is not being written to.",
        store=store.name,
        bucket=bucket,
        key=key,
    )


def _still_as_found(file: FolderFile) -> bool:
    try:
        return _identity(os.stat(file.source)) == file.identity
    except OSError:
        return False


def _read_small(store: Store, bucket: str, key: str, file: FolderFile) -> tuple[bytearray, Any]:
    """The bytes of a small file and their SHA-256, read and hashed in one pass."""
    try:
        handle = open(file.source, "rb", buffering=0)  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise _not_as_found(store, bucket, key, file) from exc
    digest = hashlib.sha256()
    body = bytearray(file.size)
    with handle, memoryview(body) as view:
        if _identity(os.fstat(handle.fileno())) != file.identity:
            raise _not_as_found(store, bucket, key, file)
        filled = 0
        while filled < file.size:
            count = handle.readinto(view[filled : filled + READ_SIZE])
            if not count:
                break
            digest.update(view[filled : filled + count])
            filled += count
        whole = filled == file.size and not handle.read(1)
        if not whole or _identity(os.fstat(handle.fileno())) != file.identity:
            raise _not_as_found(store, bucket, key, file)
    if not _still_as_found(file):
        raise _not_as_found(store, bucket, key, file)
    return body, digest


def _put_small(
    store: Store, bucket: str, key: str, file: FolderFile, budget: _ByteBudget
) -> ManifestEntry:
    """One conditional ``PutObject`` carrying the file's SHA-256 (checked by the store,
    and recorded as its tag where the provider has tagging); its bytes are held in
    memory, within ``budget``, from the read until the store has answered."""
    with budget.claim(file.size):
        return _put_held(store, bucket, key, file)


def _put_held(store: Store, bucket: str, key: str, file: FolderFile) -> ManifestEntry:
    body, digest = _read_small(store, bucket, key, file)
    sha256 = digest.hexdigest()
    arguments: dict[str, Any] = {
        "ContentType": guess_content_type(key),
        "ChecksumSHA256": base64.b64encode(digest.digest()).decode("ascii"),
    }
    if store.config.provider.supports_tagging:
        arguments["Tagging"] = urlencode({TAG: sha256})
    config = store.config
    with translated(config, "upload", bucket, key), refused_if_taken(config, bucket, key):
        store.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=cast(bytes, body),  # botocore takes a bytearray as a blob; no copy
            IfNoneMatch="*",
            **arguments,
        )
    callback = progress_callback()
    if callback is not None:
        callback(len(body))
    return ManifestEntry(file.path, len(body), sha256)


def _upload_large(store: Store, bucket: str, key: str, file: FolderFile) -> ManifestEntry:
    """The store's verified multipart upload, never replacing an object; the stored
    object is deleted if the file is not the one the walk found."""
    try:
        result = store.upload_file(bucket, key, file.source, if_absent=True)
    except FileNotFoundError as exc:
        if isinstance(exc, DualStorageError):
            raise
        raise _not_as_found(store, bucket, key, file) from exc
    if result.size != file.size or not _still_as_found(file):
        _delete_quietly(store, bucket, key)
        raise _not_as_found(store, bucket, key, file)
    return ManifestEntry(file.path, result.size, result.sha256)


# -- the folder -------------------------------------------------------------------------


class _Skipped(Exception):
    """A file not sent because another one failed."""


def _send_all(
    store: Store,
    bucket: str,
    dataset_key: str,
    files: list[FolderFile],
    stored: list[str],
) -> list[ManifestEntry]:
    """Send every file (small ones first, then large ones), appending each stored key
    to ``stored``; the manifest's entries, in ``files``' order. The first failure stops
    the rest, and is raised once no file is in flight."""
    lock = threading.Lock()
    failed = threading.Event()
    sent: dict[str, ManifestEntry] = {}

    def send(file: FolderFile, how: Callable[..., ManifestEntry]) -> ManifestEntry:
        if failed.is_set():
            raise _Skipped
        key = f"{dataset_key}/{file.path}"
        try:
            entry = how(store, bucket, key, file)
        except BaseException as exc:
            failed.set()
            if isinstance(exc, DualStorageError):
                raise _naming(exc, file.path, dataset_key) from exc
            raise
        with lock:
            stored.append(key)
        return entry

    budget = _ByteBudget(SMALL_FILES_IN_MEMORY)
    put_small = functools.partial(_put_small, budget=budget)
    for at_once, how, batch in (
        (FOLDER_FILES_AT_ONCE, put_small, [f for f in files if f.size < PART_SIZE]),
        (LARGE_FILES_AT_ONCE, _upload_large, [f for f in files if f.size >= PART_SIZE]),
    ):
        if not batch:
            continue
        with ThreadPoolExecutor(
            min(at_once, len(batch)), thread_name_prefix="dual-storage-folder-upload"
        ) as pool:
            # Each file in a copy of this context: progress reaches reporting_progress().
            futures = [
                pool.submit(contextvars.copy_context().run, send, file, how) for file in batch
            ]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:
                failed.set()
                raise
            finally:
                if failed.is_set():
                    for future in futures:
                        future.cancel()
        # The pool has stopped: each file is stored, failed, skipped or cancelled.
        for future in futures:
            error = None if future.cancelled() else future.exception()
            if error is not None and not isinstance(error, _Skipped):
                raise error
        for file, future in zip(batch, futures, strict=True):
            sent[file.path] = future.result()
    return [sent[file.path] for file in files]


def _naming(exc: DualStorageError, path: str, dataset_key: str) -> DualStorageError:
    """``exc`` (same type and fields) with a message that names the file and says what
    becomes of the upload."""
    return type(exc)(
        f"The folder dataset {dataset_key!r} was not stored: its file {path!r} failed. "
        f"{exc} The files this upload stored are deleted and no manifest is written.",
        store=exc.store,
        bucket=exc.bucket,
        key=exc.key,
        code=exc.code,
        status=exc.status,
    )


def _delete_quietly(store: Store, bucket: str, key: str) -> None:
    try:
        store.delete(bucket, key)
    except Exception as exc:  # best effort: the failure being reported matters more
        logger.warning("Could not delete %s/%s after a failed folder upload: %s", bucket, key, exc)


def _delete_all(store: Store, bucket: str, keys: list[str]) -> None:
    """Delete ``keys`` (what a failed upload stored), in parallel, logging failures."""
    if not keys:
        return
    with ThreadPoolExecutor(
        min(FOLDER_FILES_AT_ONCE, len(keys)), thread_name_prefix="dual-storage-folder-cleanup"
    ) as pool:
        list(pool.map(lambda key: _delete_quietly(store, bucket, key), keys))
    logger.info("Deleted the %d files of a failed folder upload from %s", len(keys), bucket)


def upload_folder(store: Store, bucket: str, folder: Path, dataset_key: str) -> UploadedFolder:
    """Upload every file under ``folder`` to ``<dataset_key>/<path>``, then the manifest
    ``<dataset_key>.manifest.json``; see the module docstring for what is refused and
    what a failure leaves (nothing)."""
    dataset_key = validate_key(dataset_key, store=store.name, bucket=bucket)
    if is_manifest(dataset_key):
        raise InvalidKey(
            f"Invalid dataset key {dataset_key!r}: it ends in {MANIFEST_SUFFIX!r}, the suffix "
            f"of a folder dataset's manifest, which is added to it ({dataset_key!r} + "
            f"{MANIFEST_SUFFIX!r}).",
            store=store.name,
            bucket=bucket,
            key=dataset_key,
        )
    manifest_key = validate_key(dataset_key + MANIFEST_SUFFIX, store=store.name, bucket=bucket)
    files = find_files(Path(folder))
    for file in files:  # the whole key (the prefix included) must be a valid key too
        validate_key(f"{dataset_key}/{file.path}", store=store.name, bucket=bucket)
    if store.exists(bucket, manifest_key):
        raise ObjectExists(
            f"The folder dataset {dataset_key!r} already exists on the {store.name} store "
            f"(bucket {bucket!r} holds its manifest {manifest_key!r}); nothing was uploaded.",
            store=store.name,
            bucket=bucket,
            key=manifest_key,
        )
    stored: list[str] = []
    try:
        entries = _send_all(store, bucket, dataset_key, files, stored)
        manifest = manifest_bytes(posixpath.basename(dataset_key), entries)
        written = store.put_bytes(bucket, manifest_key, manifest)
    except BaseException:
        _delete_all(store, bucket, stored)
        raise
    result = TransferResult(
        store=store.name,
        bucket=bucket,
        key=manifest_key,
        size=sum(entry.size for entry in entries),
        sha256=written.sha256,
        etag=written.etag,
        content_type="application/json",
    )
    return UploadedFolder(result, entries)

"""The server's one read of a completed browser upload.

Until it has run, the ``Dataset`` row is "verifying" with no SHA-256. The read computes
the object's SHA-256 (which is ``sha256sum`` of the user's file when every part arrived
intact) and, at each part boundary, the part's SHA-256, compared with the checksum its
URL was signed for: any difference, or a size that is not the file's, marks the row
"corrupt". The check runs in a thread of the process that completed the upload, under a
lease on the session; a check that never finished (the process died) is run again by
``manage.py dualstorage_cleanup_uploads``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from ..client import dual_storage
from ..exceptions import DualStorageError, ObjectExists
from ..manifests import ManifestEntry, manifest_bytes
from ..models import Dataset, DatasetFile
from ..store import Store
from ..store.integrity import record_sha256
from ..store.multipart import part_ranges
from .limits import upload_limits
from .session import UploadedFile, UploadSession

logger = logging.getLogger(__name__)

FOLDER_READERS = 8  # files of a folder read at once
# In the jobs sub-app, which this package never imports (it works without it): named.
ENQUEUE_TASK = "dual_storage_app.jobs.tasks.enqueue_upload_check"
MIN_LEASE = timedelta(minutes=10)
CLAIM_ATTEMPTS = 5
SLOWEST_READ = 10 * 1024 * 1024  # bytes per second a lease allows for, at the least


def _digest(hasher: Any) -> str:
    return base64.b64encode(hasher.digest()).decode("ascii")


def read_parts(
    store: Store,
    bucket: str,
    key: str,
    etag: str,
    size: int,
    part_size: int,
    checksum_of: Callable[[int], str | None],
) -> tuple[str, int, list[int]]:
    """Read the object once: its SHA-256 (hex), the bytes read, and the numbers of the
    parts whose bytes do not hash to the checksum they were signed for (or never came)."""
    ranges = list(part_ranges(size, part_size))
    whole, part = hashlib.sha256(), hashlib.sha256()
    index, left, read = 0, ranges[0][2], 0
    bad: list[int] = []

    def finish_part() -> None:
        nonlocal index, left, part
        if _digest(part) != checksum_of(ranges[index][0]):
            bad.append(ranges[index][0])
        index, part = index + 1, hashlib.sha256()
        left = ranges[index][2] if index < len(ranges) else 0

    stream = store.open_stream(bucket, key, if_match=etag or None)
    try:
        for chunk in stream:
            whole.update(chunk)
            read += len(chunk)
            view = memoryview(chunk)
            while view and index < len(ranges):
                take = min(left, len(view))
                part.update(view[:take])
                view, left = view[take:], left - take
                if left == 0:
                    finish_part()
    finally:
        stream.close()
    if index < len(ranges) and left == 0:  # an empty file's one empty part
        finish_part()
    bad += [number for number, _, _ in ranges[index:]]  # the object ended early
    return whole.hexdigest(), read, bad


def _claim(session_id: Any, now: datetime, lease: datetime) -> bool:
    """Take the check's lease unless someone holds it. A database busy with the upload's
    own writes (SQLite answers "locked") is asked again, briefly."""
    for attempt in range(CLAIM_ATTEMPTS):
        try:
            return bool(
                UploadSession.objects.filter(pk=session_id)
                .filter(Q(check_lease__isnull=True) | Q(check_lease__lt=now))
                .update(check_lease=lease)
            )
        except OperationalError:
            if attempt == CLAIM_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return False


def check_upload(session_id: Any) -> str | None:
    """Check a completed upload if no one else is: record its SHA-256 and mark its row
    "ready", or "corrupt". The new status, or ``None`` when there was nothing to do (or
    the store could not be read; the lease then lapses and a later run tries again)."""
    session = (
        UploadSession.objects.filter(pk=session_id, state=UploadSession.State.COMPLETED)
        .select_related("dataset")
        .first()
    )
    dataset = session.dataset if session is not None else None
    if session is None or dataset is None or dataset.status != Dataset.Status.VERIFYING:
        return None
    now = timezone.now()
    lease = now + max(MIN_LEASE, timedelta(seconds=session.size / SLOWEST_READ))
    if not _claim(session.pk, now, lease):
        return None
    store, _ = dual_storage.locate("datasets")
    check = _check_folder if session.kind == UploadSession.Kind.FOLDER else _check_file
    try:
        sha256, problems = check(store, session, dataset)
    except DualStorageError as exc:
        logger.error("Could not check the upload of %s: %s", session.key, exc)
        return None
    status = Dataset.Status.CORRUPT if problems else Dataset.Status.READY
    if problems:
        logger.error(
            "The upload of %s/%s is corrupt: %s.",
            session.bucket,
            session.key,
            "; ".join(problems[:20]),
        )
    Dataset.objects.filter(pk=dataset.pk, status=Dataset.Status.VERIFYING).update(
        sha256=sha256, status=status, updated_at=timezone.now()
    )
    return str(status)


def _not_as_sent(path: str, size: int, read: int, bad: list[int]) -> list[str]:
    problems = [f"{path}: {read:,} bytes stored for {size:,} sent"] if read != size else []
    if bad:
        problems.append(f"{path}: parts {bad[:20]} are not the bytes signed for")
    return problems


def _tag(store: Store, bucket: str, key: str, sha256: str) -> None:
    try:
        record_sha256(store.client, store.config, bucket, key, sha256)
    except DualStorageError as exc:  # downloads still check against the row's hash
        logger.warning("Could not tag %s with its SHA-256: %s", key, exc)


def _check_file(store: Store, session: UploadSession, dataset: Dataset) -> tuple[str, list[str]]:
    sha256, read, bad = read_parts(
        store,
        session.bucket,
        session.key,
        dataset.etag,
        session.size,
        session.part_size,
        session.checksum_of,
    )
    problems = _not_as_sent(session.key, session.size, read, bad)
    if not problems:
        _tag(store, session.bucket, session.key, sha256)
    return sha256, problems


def _check_one_file(store: Store, session: UploadSession, upload: UploadedFile) -> list[str]:
    key = f"{session.key}/{upload.path}"
    sha256, read, bad = read_parts(
        store, session.bucket, key, "", upload.size, session.part_size, upload.checksum_of
    )
    upload.sha256 = sha256
    problems = _not_as_sent(upload.path, upload.size, read, bad)
    if not problems and upload.is_multipart:  # a small file's PUT was checked whole
        _tag(store, session.bucket, key, sha256)
    return problems


def _check_folder(store: Store, session: UploadSession, dataset: Dataset) -> tuple[str, list[str]]:
    """Read every file (in parallel), then write the manifest beside them and record
    its files; the dataset's SHA-256 is the manifest's."""
    files = list(session.files.all())
    problems: list[str] = []
    with ThreadPoolExecutor(FOLDER_READERS, thread_name_prefix="dual-storage-check") as pool:
        for found in pool.map(lambda upload: _check_one_file(store, session, upload), files):
            problems += found
    UploadedFile.objects.bulk_update(files, ["sha256"], batch_size=1000)
    manifest = manifest_bytes(
        session.file_name, [ManifestEntry(f.path, f.size, f.sha256) for f in files]
    )
    if problems:
        return hashlib.sha256(manifest).hexdigest(), problems
    try:
        etag = store.put_bytes(session.bucket, dataset.key, manifest).etag
    except ObjectExists:  # a check that died after writing it: it must be this one
        stored = store.get_bytes(session.bucket, dataset.key)
        if stored != manifest:
            return hashlib.sha256(stored).hexdigest(), ["the manifest's key holds other bytes"]
        etag = store.head(session.bucket, dataset.key).etag
    with transaction.atomic():
        Dataset.objects.filter(pk=dataset.pk).update(etag=etag.strip('"'))
        DatasetFile.objects.filter(dataset=dataset).delete()
        DatasetFile.objects.bulk_create(
            [
                DatasetFile(dataset=dataset, path=f.path, size=f.size, sha256=f.sha256)
                for f in files
            ],
            batch_size=1000,
        )
    return hashlib.sha256(manifest).hexdigest(), []


def _check_and_close(session_id: Any) -> None:
    try:
        check_upload(session_id)
    except Exception:  # a thread's failure would otherwise go to stderr only
        logger.exception("The check of upload %s failed", session_id)
    finally:
        connections.close_all()


def check_in_background(session_id: Any) -> None:
    """Run :func:`check_upload` in a daemon thread (called after the commit)."""
    threading.Thread(
        target=_check_and_close, args=(session_id,), name="dual-storage-upload-check", daemon=True
    ).start()


def check_later(session_id: Any) -> Callable[[], None]:
    """The ``on_commit`` callback that starts the check of a just-completed upload: in a
    thread here, or (``CHECK: "task"``) as a task for the jobs' task backend."""
    if upload_limits().check == "task":
        enqueue: Callable[[str], None] = import_string(ENQUEUE_TASK)
        return lambda: enqueue(str(session_id))
    return lambda: check_in_background(session_id)


def check_unfinished() -> dict[str, int]:
    """Run every check that is due and not held (a process died during it, or never
    started it); how many ended in each status."""
    counts: dict[str, int] = {}
    due = UploadSession.objects.filter(
        state=UploadSession.State.COMPLETED, dataset__status=Dataset.Status.VERIFYING
    ).filter(Q(check_lease__isnull=True) | Q(check_lease__lt=timezone.now()))
    for session_id in due.values_list("pk", flat=True):
        status = check_upload(session_id)
        if status is not None:
            counts[status] = counts.get(status, 0) + 1
    return counts

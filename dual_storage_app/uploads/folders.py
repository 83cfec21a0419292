"""Folder uploads: many files under one prefix, becoming one folder ``Dataset``.

A file that fits in one part goes as one presigned ``PutObject`` (``If-None-Match: *``,
bound to its SHA-256); a larger one as a multipart upload of its own, created when its
first part is signed. Completing checks the store's listing (and each large file's
``ListParts``) against the file list the upload started with; the manifest (path, size,
SHA-256 of every file) is written beside the files by the server's read-back
(:mod:`.checking`), which is when the dataset becomes "ready".
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .._consistency import delete_quietly
from ..exceptions import DualStorageError, InvalidKey, ObjectExists, ObjectNotFound
from ..folder_paths import folder_path
from ..kinds import REGISTRY
from ..manifests import MANIFEST_SUFFIX
from ..models import Dataset, safe_segment, unique_key
from ..store import Store, multipart
from ..store.multipart import SignedPart
from ..store.transfer import guess_content_type
from .checking import check_later
from .limits import upload_limits
from .refusals import (
    UploadRefused,
    datasets_location,
    part_checksums,
    refusal,
    require_active,
    text,
    whole_number,
)
from .session import UploadedFile, UploadSession

logger = logging.getLogger(__name__)

MAX_FILES = 100_000


def _clean_path(value: Any, position: int) -> str:
    """A file's path inside the folder (:func:`..folder_paths.folder_path`, the rule the
    client's folder uploads share); refused (naming it) rather than renamed."""
    path = text(value, f"path of file {position}", 1024)
    try:
        return folder_path(path)
    except InvalidKey as exc:
        shown = unicodedata.normalize("NFC", path)
        raise UploadRefused(f"File {position} ({shown!r}) cannot be stored: {exc}") from exc


def _file_list(request: dict[str, Any]) -> list[tuple[str, int]]:
    files = request.get("files")
    if not isinstance(files, list) or not files:
        raise UploadRefused('files must be a non-empty list of {"path": ..., "size": ...}.')
    if len(files) > MAX_FILES:
        raise UploadRefused(f"A folder holds at most {MAX_FILES:,} files, not {len(files):,}.")
    listed: list[tuple[str, int]] = []
    seen: set[str] = set()
    for position, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise UploadRefused(f'File {position} must be {{"path": ..., "size": ...}}.')
        path = _clean_path(entry.get("path"), position)
        size = whole_number(entry.get("size"), f"size of {path!r}")
        if size < 0:
            raise UploadRefused(f"The size of {path!r} cannot be negative.")
        if path in seen:
            raise UploadRefused(f"{path!r} is in the list twice.")
        seen.add(path)
        listed.append((path, size))
    return listed


def start_folder(user: Any, request: dict[str, Any]) -> tuple[UploadSession, bool]:
    """Start a folder upload (``name``, ``files``: ``[{"path", "size"}]``, optional
    ``description``), or resume the user's active one of the same name and file list."""
    limits = upload_limits()
    name = safe_segment(text(request.get("name"), "name", 1024).strip(), "")
    if not name:
        raise UploadRefused("name is required: the folder's name.")
    files = _file_list(request)
    total = sum(size for _, size in files)
    if total > limits.max_bytes:
        raise UploadRefused(
            f"The folder holds {total:,} bytes; this site takes up to {limits.max_bytes:,} "
            "bytes (settings.DUAL_STORAGE_UPLOADS['MAX_BYTES']).",
            status=413,
        )
    description = text(request.get("description", ""), "description", 10_000)
    fingerprint = hashlib.sha256(json.dumps([name, files]).encode()).hexdigest()
    found = UploadSession.objects.filter(
        user=user,
        kind=UploadSession.Kind.FOLDER,
        state=UploadSession.State.ACTIVE,
        fingerprint=fingerprint,
        expires_at__gt=timezone.now(),
    ).first()
    if found is not None:
        return found, True
    datasets_location()  # refuses before anything is recorded if uploads cannot go there
    prefix = unique_key(REGISTRY["datasets"].key_prefix, name)
    part_size = limits.part_size_for(max(size for _, size in files))
    with transaction.atomic():
        session = UploadSession.objects.create(
            user=user,
            kind=UploadSession.Kind.FOLDER,
            file_name=name,
            size=total,
            description=description,
            fingerprint=fingerprint,
            bucket=datasets_location()[1],
            key=prefix,
            part_size=part_size,
            part_count=len(files),
            expires_at=timezone.now() + timedelta(hours=limits.session_hours),
        )
        UploadedFile.objects.bulk_create(
            [
                UploadedFile(
                    session=session,
                    index=index,
                    path=path,
                    size=size,
                    part_count=max(1, -(-size // part_size)),
                )
                for index, (path, size) in enumerate(files)
            ],
            batch_size=1000,
        )
    return session, False


def file_key(session: UploadSession, path: str) -> str:
    return f"{session.key}/{path}"


def _files_by_index(session: UploadSession, indexes: set[int]) -> dict[int, UploadedFile]:
    found = {f.index: f for f in session.files.filter(index__in=indexes)}
    unknown = sorted(indexes - set(found))
    if unknown:
        raise UploadRefused(
            f"File {unknown[0]} does not exist: this folder has files 0 to "
            f"{session.part_count - 1}."
        )
    return found


@dataclass(frozen=True)
class FolderSignature:
    """A signed ``PUT`` of a whole file (``whole``) or of one part of a large one."""

    index: int
    signed: SignedPart
    whole: bool


def sign_folder(
    session: UploadSession, whole: Any, parts: Any
) -> tuple[list[FolderSignature], int]:
    """Presigned URLs for whole small files (``[{"index", "sha256"}]``) and parts of
    large ones (``[{"file", "number", "sha256"}]``), and their lifetime in seconds."""
    require_active(session)
    limits = upload_limits()
    whole_entries = whole if whole is not None else []
    part_entries = parts if parts is not None else []
    if not isinstance(whole_entries, list) or not isinstance(part_entries, list):
        raise UploadRefused("files and parts must be lists.")
    if not whole_entries and not part_entries:
        raise UploadRefused("Name at least one file or part to sign.")
    if len(whole_entries) + len(part_entries) > limits.sign_batch:
        raise UploadRefused(f"At most {limits.sign_batch} files and parts per request.")
    wanted: dict[int, dict[int, Any]] = {}
    for entry in whole_entries:
        if not isinstance(entry, dict):
            raise UploadRefused('Each file must be {"index": i, "sha256": base64}.')
        index = whole_number(entry.get("index"), "index")
        wanted.setdefault(index, {})[0] = entry.get("sha256")
    for entry in part_entries:
        if not isinstance(entry, dict):
            raise UploadRefused('Each part must be {"file": i, "number": n, "sha256": base64}.')
        index = whole_number(entry.get("file"), "file")
        number = whole_number(entry.get("number"), "number")
        if number < 1:
            raise UploadRefused(f"Part numbers start at 1, not {number}.")
        wanted.setdefault(index, {})[number] = entry.get("sha256")
    store, bucket = datasets_location()
    signed: list[FolderSignature] = []
    with transaction.atomic():
        # The session's row lock orders this against a cancel: a cancel that came first
        # is seen here; one that comes later waits, then finds every upload id created.
        require_active(UploadSession.objects.select_for_update().get(pk=session.pk))
        files = _files_by_index(session, set(wanted))
        for index, requested in sorted(wanted.items()):
            upload = UploadedFile.objects.select_for_update().get(pk=files[index].pk)
            signed += _sign_file(store, bucket, session, upload, requested, limits.url_seconds)
    return signed, limits.url_seconds


def _sign_file(
    store: Store,
    bucket: str,
    session: UploadSession,
    upload: UploadedFile,
    requested: dict[int, Any],
    seconds: int,
) -> list[FolderSignature]:
    key = file_key(session, upload.path)
    if (0 in requested) == upload.is_multipart:
        how = "by parts" if upload.is_multipart else "whole"
        raise UploadRefused(f"{upload.path!r} is sent {how}.")
    entries = [{"number": n or 1, "sha256": s} for n, s in requested.items()]
    checksums = part_checksums(upload, entries)
    if upload.is_multipart and not upload.upload_id:
        upload.upload_id = multipart.create(store, bucket, key, guess_content_type(key))
    upload.checksums = {**upload.checksums, **{str(n): s for n, s in checksums.items()}}
    upload.save(update_fields=["upload_id", "checksums"])
    if not upload.is_multipart:
        part = multipart.sign_put(
            store, bucket, key, checksums[1], guess_content_type(key), seconds
        )
        return [FolderSignature(upload.index, part, whole=True)]
    return [
        FolderSignature(
            upload.index,
            multipart.sign_part(store, bucket, key, upload.upload_id, n, s, seconds),
            whole=False,
        )
        for n, s in sorted(checksums.items())
    ]


def stored_folder(session: UploadSession) -> list[dict[str, Any]]:
    """What the store holds of each file: ``done`` for a stored small file, the parts of
    a large one (with the checksums they were signed for)."""
    require_active(session)
    store, bucket = datasets_location()
    present = {info.key: info.size for info in store.list(bucket, session.key + "/")}
    state: list[dict[str, Any]] = []
    for upload in session.files.all():
        key = file_key(session, upload.path)
        if not upload.is_multipart:
            if present.get(key) == upload.size and upload.checksum_of(1):
                state.append({"index": upload.index, "done": True, "sha256": upload.checksum_of(1)})
            continue
        if not upload.upload_id:
            continue
        parts = multipart.stored_parts(store, bucket, key, upload.upload_id)
        state.append(
            {
                "index": upload.index,
                "done": False,
                "parts": [
                    {"number": p.number, "size": p.size, "sha256": upload.checksum_of(p.number)}
                    for p in parts
                ],
            }
        )
    return state


def complete_folder(session: UploadSession, *, user: Any) -> Dataset:
    """Check that every file is stored whole, complete the large ones, and record the
    folder ``Dataset`` as verifying (the read-back writes its manifest)."""
    if session.state == UploadSession.State.COMPLETED and session.dataset is not None:
        return session.dataset
    require_active(session)
    store, bucket = datasets_location()
    present = {info.key: info.size for info in store.list(bucket, session.key + "/")}
    problems: list[str] = []
    finishing: list[tuple[UploadedFile, list[multipart.StoredPart]]] = []
    for upload in session.files.all():
        key = file_key(session, upload.path)
        if not upload.is_multipart:
            if key not in present:
                problems.append(f"{upload.path!r} is missing")
            elif present[key] != upload.size:
                problems.append(f"{upload.path!r} is {present[key]:,} bytes, not {upload.size:,}")
            continue
        try:
            parts = (
                multipart.stored_parts(store, bucket, key, upload.upload_id)
                if upload.upload_id
                else []
            )
        except ObjectNotFound:  # completed by a request that died before the row
            if present.get(key) != upload.size:
                problems.append(f"{upload.path!r}: the store no longer has its upload")
            continue
        found = _large_file_problems(upload, parts)
        problems += [f"{upload.path!r}: {problem}" for problem in found]
        if not found:
            finishing.append((upload, parts))
    if problems:
        raise refusal(problems)
    for upload, parts in finishing:
        key = file_key(session, upload.path)
        checksums = {n: c for n in range(1, upload.part_count + 1) if (c := upload.checksum_of(n))}
        try:
            multipart.complete(store, bucket, key, upload.upload_id, parts, checksums)
        except ObjectExists as exc:
            raise UploadRefused(str(exc), status=409) from exc
    manifest_key = session.key + MANIFEST_SUFFIX
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=session.file_name[:255],
            description=session.description,
            file=manifest_key,
            bucket=bucket,
            size=session.size,
            sha256="",
            content_type="application/json",
            uploaded_by=user,
            status=Dataset.Status.VERIFYING,
            file_count=session.part_count,
        )
        UploadSession.objects.filter(pk=session.pk).update(
            state=UploadSession.State.COMPLETED, dataset=dataset, completed_at=timezone.now()
        )
        transaction.on_commit(check_later(session.pk))
    session.refresh_from_db()
    return dataset


def _large_file_problems(upload: UploadedFile, parts: list[multipart.StoredPart]) -> list[str]:
    by_number = {part.number: part for part in parts}
    problems: list[str] = []
    part_size = upload.session.part_size
    for number, _, size in multipart.part_ranges(upload.size, part_size):
        part = by_number.get(number)
        if part is None:
            problems.append(f"part {number} is missing")
        elif part.size != size:
            problems.append(f"part {number} is {part.size:,} bytes, not {size:,}")
    return problems


def abort_folder(store: Store, session: UploadSession) -> None:
    """Drop what a folder upload stored: the parts of its large files (every multipart
    upload under its prefix, recorded or not) and its small files."""
    prefix = session.key + "/"
    for upload in store.multipart_uploads(session.bucket):
        if not upload.key.startswith(prefix):
            continue
        try:
            store.abort_multipart_upload(upload)
        except DualStorageError as exc:  # completed or gone: its object goes below
            logger.warning("Could not abort the upload of %s: %s", upload.key, exc)
    for info in store.list(session.bucket, prefix):
        delete_quietly(store, session.bucket, info.key)

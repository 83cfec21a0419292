"""Single-file uploads: start or resume a session, sign parts, list what the store
holds, complete into a ``Dataset`` row.

Every decision rests on the server's own records and the store's answers: the bucket and
key are chosen here (always the datasets bucket of the external store), the part list is
the store's ``ListParts``, and each part's checksum is the one bound into the URL we
signed. A refusal is an :class:`~.refusals.UploadRefused` carrying the HTTP status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .._consistency import delete_quietly
from ..exceptions import ObjectExists, ObjectNotFound
from ..kinds import REGISTRY
from ..models import Dataset, safe_segment, unique_key
from ..store import Store, multipart
from ..store.multipart import SignedPart, StoredPart
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
from .session import UploadSession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartState:
    """A part the store holds, with the checksum its URL was signed for."""

    number: int
    size: int
    sha256: str | None


def start(user: Any, request: dict[str, Any]) -> tuple[UploadSession, bool]:
    """Start an upload of the file ``request`` describes (``name``, ``size``, and
    optionally ``last_modified`` and ``description``), or resume the user's active one of
    the same file; the session and whether it was resumed."""
    limits = upload_limits()
    name = text(request.get("name"), "name", 1024).strip()
    if not name:
        raise UploadRefused("name is required: the file's name.")
    size = whole_number(request.get("size"), "size")
    if size < 0:
        raise UploadRefused(f"size cannot be negative ({size}).")
    if size > limits.max_bytes:
        raise UploadRefused(
            f"{name!r} is {size:,} bytes; this site takes files up to {limits.max_bytes:,} "
            f"bytes (settings.DUAL_STORAGE_UPLOADS['MAX_BYTES']).",
            status=413,
        )
    last_modified = whole_number(request.get("last_modified", 0), "last_modified")
    description = text(request.get("description", ""), "description", 10_000)
    file_name = safe_segment(name, "dataset")
    found = (
        UploadSession.objects.filter(
            user=user,
            state=UploadSession.State.ACTIVE,
            file_name=file_name,
            size=size,
            last_modified=last_modified,
            expires_at__gt=timezone.now(),
        )
        .order_by("-created_at")
        .first()
    )
    if found is not None:
        return found, True
    store, bucket = datasets_location()
    key = unique_key(REGISTRY["datasets"].key_prefix, file_name)
    part_size = limits.part_size_for(size)
    upload_id = multipart.create(store, bucket, key, guess_content_type(key))
    try:
        session = UploadSession.objects.create(
            user=user,
            file_name=file_name,
            size=size,
            content_type=guess_content_type(key),
            last_modified=last_modified,
            description=description,
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            part_size=part_size,
            part_count=max(1, -(-size // part_size)),
            expires_at=timezone.now() + timedelta(hours=limits.session_hours),
        )
    except BaseException:
        multipart.abort(store, bucket, key, upload_id)  # no upload without its session
        raise
    return session, False


def find(user: Any, session_id: Any) -> UploadSession:
    """The user's session ``session_id``; another user's is as unknown as a forged id."""
    session = UploadSession.objects.filter(pk=session_id, user=user).first()
    if session is None or user is None or not getattr(user, "pk", None):
        raise UploadRefused("No such upload.", status=404)
    return session


def sign(session: UploadSession, entries: Any) -> tuple[list[SignedPart], int]:
    """Presigned ``PUT`` URLs for a batch of parts, each bound to its SHA-256, and their
    lifetime in seconds; the checksums are recorded on the session."""
    require_active(session)
    limits = upload_limits()
    checksums = part_checksums(session, entries)
    if not checksums:
        raise UploadRefused("parts is empty: name at least one part to sign.")
    if len(checksums) > limits.sign_batch:
        raise UploadRefused(f"At most {limits.sign_batch} parts are signed per request.")
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        locked.checksums = {**locked.checksums, **{str(n): s for n, s in checksums.items()}}
        locked.save(update_fields=["checksums"])
    session.checksums = locked.checksums
    store, _ = datasets_location()
    signed = [
        multipart.sign_part(
            store, session.bucket, session.key, session.upload_id, n, s, limits.url_seconds
        )
        for n, s in sorted(checksums.items())
    ]
    return signed, limits.url_seconds


def stored_parts(session: UploadSession) -> list[PartState]:
    """The parts the store holds, with the checksum each was signed for."""
    require_active(session)
    store, _ = datasets_location()
    listed = multipart.stored_parts(store, session.bucket, session.key, session.upload_id)
    return [PartState(p.number, p.size, session.checksum_of(p.number)) for p in listed]


def _part_problems(session: UploadSession, parts: list[StoredPart]) -> list[str]:
    """What keeps the stored parts from being exactly the file's parts."""
    problems: list[str] = []
    by_number = {part.number: part for part in parts}
    for number, _, size in multipart.part_ranges(session.size, session.part_size):
        part = by_number.pop(number, None)
        if part is None:
            problems.append(f"part {number} is missing")
        elif part.size != size:
            problems.append(f"part {number} is {part.size:,} bytes, not {size:,}")
        elif session.checksum_of(number) is None:
            problems.append(f"part {number} was never signed")
    problems += [f"part {number} is beyond the file's end" for number in sorted(by_number)]
    return problems


def complete(session: UploadSession, claimed: Any, *, user: Any) -> Dataset:
    """Check the store's parts against the file (count, sizes, signed checksums, and the
    browser's own list when it sends one), complete the upload without replacing any
    object, and record the ``Dataset`` row as verifying; its SHA-256 comes from the
    check (:mod:`.checking`) that runs after the commit."""
    if session.state == UploadSession.State.COMPLETED and session.dataset is not None:
        return session.dataset  # a repeated request (the answer was lost)
    require_active(session)
    store, _ = datasets_location()
    try:
        parts = multipart.stored_parts(store, session.bucket, session.key, session.upload_id)
    except ObjectNotFound:  # NoSuchUpload: completed by a request that died before its row?
        etag = _completed_earlier(store, session)
    else:
        etag = _check_and_complete(store, session, parts, claimed)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                name=_dataset_name(session),
                description=session.description,
                file=session.key,
                bucket=session.bucket,
                size=session.size,
                sha256="",
                etag=etag.strip('"'),
                content_type=session.content_type,
                uploaded_by=user,
                status=Dataset.Status.VERIFYING,
            )
            UploadSession.objects.filter(pk=session.pk).update(
                state=UploadSession.State.COMPLETED, dataset=dataset, completed_at=timezone.now()
            )
            transaction.on_commit(check_later(session.pk))
    except BaseException:
        delete_quietly(store, session.bucket, session.key)  # no object without its row
        raise
    session.refresh_from_db()
    return dataset


def _check_and_complete(
    store: Store, session: UploadSession, parts: list[StoredPart], claimed: Any
) -> str:
    """Refuse parts that are not the file's; complete the upload; the object's ETag."""
    problems = _part_problems(session, parts)
    if claimed is not None:
        sent = part_checksums(session, claimed)
        for number, sha256 in sorted(sent.items()):
            if session.checksum_of(number) != sha256:
                problems.append(f"part {number} was signed for other bytes; send it again")
        missing = set(range(1, session.part_count + 1)) - set(sent)
        problems += [f"part {n} is not in the list sent" for n in sorted(missing)]
    if problems:
        raise refusal(problems)
    checksums = {n: c for n in range(1, session.part_count + 1) if (c := session.checksum_of(n))}
    try:
        return multipart.complete(
            store, session.bucket, session.key, session.upload_id, parts, checksums
        )
    except ObjectExists as exc:
        multipart.abort(store, session.bucket, session.key, session.upload_id)
        UploadSession.objects.filter(pk=session.pk).update(state=UploadSession.State.ABORTED)
        raise UploadRefused(f"{exc} The upload was cancelled.", status=409) from exc


def _completed_earlier(store: Store, session: UploadSession) -> str:
    """The ETag of the object an earlier complete made before its process died (the key
    is this session's alone, and the read-back checks every part); refused when the
    store holds no such object (the upload was aborted)."""
    try:
        info = store.head(session.bucket, session.key)
    except ObjectNotFound:
        info = None
    if info is None or info.size != session.size:
        raise UploadRefused(
            "The store no longer has this upload (it was aborted); start it again.", status=409
        )
    return info.etag


def _dataset_name(session: UploadSession) -> str:
    return session.file_name[:255]

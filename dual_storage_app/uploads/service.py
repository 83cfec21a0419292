"""What the upload views do: start or resume a session, sign parts, list what the store
holds, complete into a ``Dataset`` row, abort, and abort the expired.

Every decision rests on the server's own records and the store's answers: the bucket and
key are chosen here (always the datasets bucket of the external store), the part list is
the store's ``ListParts``, and each part's checksum is the one bound into the URL we
signed. A refusal is an :class:`UploadRefused` carrying the HTTP status to answer with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .._consistency import delete_quietly
from ..client import dual_storage
from ..exceptions import DualStorageError, InvalidArgument, ObjectExists
from ..kinds import REGISTRY
from ..models import Dataset, safe_segment, unique_key
from ..store import Store, multipart
from ..store.multipart import SignedPart, StoredPart
from ..store.transfer import guess_content_type
from .checking import check_in_background
from .limits import upload_limits
from .session import UploadSession

logger = logging.getLogger(__name__)

_LISTED_PROBLEMS = 10  # parts named in one refusal


class UploadRefused(Exception):
    """The request cannot be honoured; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PartState:
    """A part the store holds, with the checksum its URL was signed for."""

    number: int
    size: int
    sha256: str | None


def datasets_location() -> tuple[Store, str]:
    """The external store and its datasets bucket: the only place browsers write."""
    store, bucket = dual_storage.locate("datasets")
    if store.name != "external" or store.config.public_endpoint_url is None:
        raise UploadRefused("Browser uploads go only to the external store.", status=403)
    return store, bucket


def _whole_number(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UploadRefused(f"{field} must be a whole number, not {value!r}.")
    return value


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise UploadRefused(f"{field} must be text of at most {limit} characters.")
    return value


def start(user: Any, request: dict[str, Any]) -> tuple[UploadSession, bool]:
    """Start an upload of the file ``request`` describes (``name``, ``size``, and
    optionally ``last_modified`` and ``description``), or resume the user's active one of
    the same file; the session and whether it was resumed."""
    limits = upload_limits()
    name = _text(request.get("name"), "name", 1024).strip()
    if not name:
        raise UploadRefused("name is required: the file's name.")
    size = _whole_number(request.get("size"), "size")
    if size < 0:
        raise UploadRefused(f"size cannot be negative ({size}).")
    if size > limits.max_bytes:
        raise UploadRefused(
            f"{name!r} is {size:,} bytes; this site takes files up to {limits.max_bytes:,} "
            f"bytes (settings.DUAL_STORAGE_UPLOADS['MAX_BYTES']).",
            status=413,
        )
    last_modified = _whole_number(request.get("last_modified", 0), "last_modified")
    description = _text(request.get("description", ""), "description", 10_000)
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


def _require_active(session: UploadSession) -> None:
    if session.state != UploadSession.State.ACTIVE:
        raise UploadRefused(f"This upload is {session.get_state_display()}.", status=409)
    if session.is_expired:
        raise UploadRefused(
            "This upload expired; start it again (the cleanup command aborts it).", status=410
        )


def _part_numbers_and_checksums(session: UploadSession, entries: Any) -> dict[int, str]:
    """``{number: sha256}`` from ``[{"number": n, "sha256": "..."}]``, each checked."""
    if not isinstance(entries, list):
        raise UploadRefused('parts must be a list of {"number": n, "sha256": base64}.')
    checked: dict[int, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise UploadRefused('Each part must be {"number": n, "sha256": base64}.')
        number = _whole_number(entry.get("number"), "number")
        if not 1 <= number <= session.part_count:
            raise UploadRefused(
                f"Part {number} does not exist: this upload has parts 1 to {session.part_count}."
            )
        try:
            checked[number] = multipart.sha256_base64(
                _text(entry.get("sha256"), f"sha256 of part {number}", 64)
            )
        except InvalidArgument as exc:
            raise UploadRefused(f"Part {number}: {exc}") from exc
    return checked


def sign(session: UploadSession, entries: Any) -> tuple[list[SignedPart], int]:
    """Presigned ``PUT`` URLs for a batch of parts, each bound to its SHA-256, and their
    lifetime in seconds; the checksums are recorded on the session."""
    _require_active(session)
    limits = upload_limits()
    checksums = _part_numbers_and_checksums(session, entries)
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
    _require_active(session)
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
    _require_active(session)
    store, _ = datasets_location()
    parts = multipart.stored_parts(store, session.bucket, session.key, session.upload_id)
    problems = _part_problems(session, parts)
    if claimed is not None:
        for number, sha256 in sorted(_part_numbers_and_checksums(session, claimed).items()):
            if session.checksum_of(number) != sha256:
                problems.append(f"part {number} was signed for other bytes; send it again")
        missing = set(range(1, session.part_count + 1)) - {
            n for n in _part_numbers_and_checksums(session, claimed)
        }
        problems += [f"part {n} is not in the list sent" for n in sorted(missing)]
    if problems:
        shown = "; ".join(problems[:_LISTED_PROBLEMS])
        more = len(problems) - _LISTED_PROBLEMS
        raise UploadRefused(
            f"The upload is not complete: {shown}{f' (and {more} more)' if more > 0 else ''}.",
            status=409,
        )
    checksums = {n: c for n in range(1, session.part_count + 1) if (c := session.checksum_of(n))}
    try:
        etag = multipart.complete(
            store, session.bucket, session.key, session.upload_id, parts, checksums
        )
    except ObjectExists as exc:
        multipart.abort(store, session.bucket, session.key, session.upload_id)
        UploadSession.objects.filter(pk=session.pk).update(state=UploadSession.State.ABORTED)
        raise UploadRefused(f"{exc} The upload was cancelled.", status=409) from exc
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
            transaction.on_commit(_check_later(session.pk))
    except BaseException:
        delete_quietly(store, session.bucket, session.key)  # no object without its row
        raise
    session.refresh_from_db()
    return dataset


def _dataset_name(session: UploadSession) -> str:
    return session.file_name[:255]


def _check_later(session_id: Any) -> Callable[[], None]:
    return lambda: check_in_background(session_id)


def abort(session: UploadSession) -> None:
    """Cancel the upload: the store drops its parts; the session is kept as cancelled."""
    if session.state == UploadSession.State.ABORTED:
        return
    if session.state != UploadSession.State.ACTIVE:
        raise UploadRefused(f"This upload is {session.get_state_display()}.", status=409)
    store, _ = datasets_location()
    multipart.abort(store, session.bucket, session.key, session.upload_id)
    UploadSession.objects.filter(pk=session.pk).update(state=UploadSession.State.ABORTED)
    session.state = UploadSession.State.ABORTED


def abort_expired(*, dry_run: bool = False) -> list[UploadSession]:
    """Abort every active session past its expiry (their parts are billed storage); the
    sessions aborted (or that would be, with ``dry_run``)."""
    expired = list(
        UploadSession.objects.filter(
            state=UploadSession.State.ACTIVE, expires_at__lte=timezone.now()
        )
    )
    if dry_run or not expired:
        return expired
    store, _ = dual_storage.locate("datasets")
    for session in expired:
        try:
            multipart.abort(store, session.bucket, session.key, session.upload_id)
        except DualStorageError as exc:
            logger.error("Could not abort the expired upload of %s: %s", session.key, exc)
            continue
        UploadSession.objects.filter(pk=session.pk).update(state=UploadSession.State.EXPIRED)
        session.state = UploadSession.State.EXPIRED
    return expired

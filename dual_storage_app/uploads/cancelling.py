"""Cancelling uploads, by the user or at expiry: nothing they stored is left behind
(the parts of a multipart upload, the small files a folder upload already put)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .._consistency import delete_quietly
from ..client import dual_storage
from ..exceptions import DualStorageError
from ..models import Dataset
from ..store import Store, multipart
from .folders import abort_folder
from .refusals import UploadRefused, datasets_location
from .session import UploadSession

logger = logging.getLogger(__name__)


def _drop(store: Store, session: UploadSession) -> None:
    if session.kind == UploadSession.Kind.FOLDER:
        abort_folder(store, session)
        return
    multipart.abort(store, session.bucket, session.key, session.upload_id)
    # A complete whose process died before the row leaves an object (and some stores
    # answer the abort of a completed upload with success). The key is this session's
    # alone, so an object there that no row points at is that orphan.
    if not Dataset.objects.filter(file=session.key).exists():
        delete_quietly(store, session.bucket, session.key)


def cancel(session: UploadSession) -> None:
    """Cancel the upload; the session is kept as cancelled. The state changes first,
    under the session's row lock, so a sign request still running either finished
    creating its uploads (dropped below) or sees the cancel and creates none."""
    store, _ = datasets_location()
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        if locked.state == UploadSession.State.ABORTED:
            session.state = locked.state
            return
        if locked.state != UploadSession.State.ACTIVE:
            raise UploadRefused(f"This upload is {locked.get_state_display()}.", status=409)
        locked.state = UploadSession.State.ABORTED
        locked.save(update_fields=["state"])
    session.state = UploadSession.State.ABORTED
    _drop(store, session)


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
            _drop(store, session)
        except DualStorageError as exc:
            logger.error("Could not abort the expired upload of %s: %s", session.key, exc)
            continue
        UploadSession.objects.filter(pk=session.pk).update(state=UploadSession.State.EXPIRED)
        session.state = UploadSession.State.EXPIRED
    return expired

"""The JSON views of browser uploads (mounted by ``dual_storage_app.urls`` under
``uploads/``): start a file or a folder, sign, parts, complete, abort, and the state.

Each needs a signed-in user with ``add_dataset``, and each POST Django's CSRF token (the
browser sends it as ``X-CSRFToken``; checked here even without the CSRF middleware). A
session is visible to its own user only. Answers are JSON; a refusal is
``{"error": "..."}`` with its status. No answer names the internal store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial, wraps
from typing import Any
from uuid import UUID

from django.http import HttpRequest, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from ..exceptions import ConfigurationError, DualStorageError
from ..models import Dataset
from . import folders, service
from .cancelling import cancel
from .limits import upload_limits
from .refusals import UploadRefused
from .session import UploadSession

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024  # a sign or complete request of 10,000 parts fits
# A folder's file list: 100,000 paths of up to ~600 bytes each.
MAX_FOLDER_BODY_BYTES = 64 * 1024 * 1024

JsonView = Callable[..., JsonResponse]


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _json_view(view: JsonView, max_body: int = MAX_BODY_BYTES) -> JsonView:
    """Permission check, JSON body (at most ``max_body`` bytes), refusals and storage
    failures as JSON answers; and no cache may keep an answer (they carry signed URLs)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        user = request.user
        if not user.is_authenticated:
            response = _error("Sign in to upload datasets.", 401)
        elif not user.has_perm("dual_storage_app.add_dataset"):
            response = _error("You may not add datasets.", 403)
        else:
            try:
                response = view(request, _body(request, max_body), *args, **kwargs)
            except UploadRefused as exc:
                response = _error(str(exc), exc.status)
            except ConfigurationError as exc:
                logger.error("Browser upload impossible: %s", exc)
                response = _error("Uploads are not configured on this site.", 503)
            except DualStorageError as exc:
                logger.error("Browser upload failed: %s", exc)
                response = _error(f"The datasets store failed: {exc}", 502)
        patch_cache_control(response, private=True, no_store=True)
        return response

    return wrapper


def _body(request: HttpRequest, limit: int) -> dict[str, Any]:
    """The JSON object posted, read from the stream (so Django's form-data limit,
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, does not apply: ``limit`` does)."""
    if request.method != "POST":
        return {}
    raw = request.body if hasattr(request, "_body") else request.read(limit + 1)
    if len(raw) > limit:
        raise UploadRefused(f"The request is larger than {limit:,} bytes.", status=413)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UploadRefused(f"The request is not JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise UploadRefused("The request must be a JSON object.")
    return body


def _urls(session: UploadSession) -> dict[str, str]:
    return {
        name: reverse(f"dual_storage_app:upload-{name}", kwargs={"session_id": session.pk})
        for name in ("detail", "sign", "parts", "complete", "abort")
    }


def _dataset(dataset: Dataset | None) -> dict[str, Any] | None:
    if dataset is None:
        return None
    try:
        admin_url: str | None = reverse("admin:dual_storage_app_dataset_change", args=[dataset.pk])
    except NoReverseMatch:
        admin_url = None
    return {
        "id": dataset.pk,
        "name": dataset.name,
        "key": dataset.key,
        "size": dataset.size,
        "sha256": dataset.sha256,
        "status": dataset.status,
        "admin_url": admin_url,
    }


def _session(session: UploadSession) -> dict[str, Any]:
    return {
        "id": str(session.pk),
        "kind": session.kind,
        "state": session.state,
        "name": session.file_name,
        "key": session.key,
        "size": session.size,
        "part_size": session.part_size,
        "part_count": session.part_count,
        "expires_at": session.expires_at.isoformat(),
        "sign_batch": upload_limits().sign_batch,
        "dataset": _dataset(session.dataset),
        "urls": _urls(session),
    }


@require_POST
@csrf_protect  # even where a project left the CSRF middleware out
@_json_view
def start(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    session, resumed = service.start(request.user, body)
    return JsonResponse({**_session(session), "resumed": resumed}, status=200 if resumed else 201)


@require_POST
@csrf_protect  # even where a project left the CSRF middleware out
@partial(_json_view, max_body=MAX_FOLDER_BODY_BYTES)
def start_folder(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    session, resumed = folders.start_folder(request.user, body)
    return JsonResponse({**_session(session), "resumed": resumed}, status=200 if resumed else 201)


@require_GET
@_json_view
def detail(request: HttpRequest, body: dict[str, Any], session_id: UUID) -> JsonResponse:
    session = service.find(request.user, session_id)
    if session.dataset_id is not None:
        session.dataset = Dataset.objects.filter(pk=session.dataset_id).first()
    return JsonResponse(_session(session))


@require_POST
@csrf_protect  # even where a project left the CSRF middleware out
@_json_view
def sign(request: HttpRequest, body: dict[str, Any], session_id: UUID) -> JsonResponse:
    session = service.find(request.user, session_id)
    if session.kind == UploadSession.Kind.FOLDER:
        signatures, seconds = folders.sign_folder(session, body.get("files"), body.get("parts"))
        return JsonResponse(
            {
                "files": [
                    {"index": s.index, "url": s.signed.url, "headers": s.signed.headers}
                    for s in signatures
                    if s.whole
                ],
                "parts": [
                    {
                        "file": s.index,
                        "number": s.signed.number,
                        "url": s.signed.url,
                        "headers": s.signed.headers,
                    }
                    for s in signatures
                    if not s.whole
                ],
                "expires_in": seconds,
            }
        )
    signed, seconds = service.sign(session, body.get("parts"))
    return JsonResponse(
        {
            "parts": [{"number": p.number, "url": p.url, "headers": p.headers} for p in signed],
            "expires_in": seconds,
        }
    )


@require_GET
@_json_view
def parts(request: HttpRequest, body: dict[str, Any], session_id: UUID) -> JsonResponse:
    session = service.find(request.user, session_id)
    if session.kind == UploadSession.Kind.FOLDER:
        return JsonResponse(
            {
                "files": folders.stored_folder(session),
                "part_size": session.part_size,
                "file_count": session.part_count,
            }
        )
    held = service.stored_parts(session)
    return JsonResponse(
        {
            "parts": [{"number": p.number, "size": p.size, "sha256": p.sha256} for p in held],
            "part_size": session.part_size,
            "part_count": session.part_count,
        }
    )


@require_POST
@csrf_protect  # even where a project left the CSRF middleware out
@_json_view
def complete(request: HttpRequest, body: dict[str, Any], session_id: UUID) -> JsonResponse:
    session = service.find(request.user, session_id)
    if session.kind == UploadSession.Kind.FOLDER:
        dataset = folders.complete_folder(session, user=request.user)
    else:
        dataset = service.complete(session, body.get("parts"), user=request.user)
    return JsonResponse({**_session(session), "dataset": _dataset(dataset)})


@require_POST
@csrf_protect  # even where a project left the CSRF middleware out
@_json_view
def abort(request: HttpRequest, body: dict[str, Any], session_id: UUID) -> JsonResponse:
    session = service.find(request.user, session_id)
    cancel(session)
    return JsonResponse({"id": str(session.pk), "state": session.state})

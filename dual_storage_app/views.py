"""Downloads for signed-in users: internal artifacts stream through Django, datasets
redirect to a presigned URL on the external store's public endpoint.

The internal store is never exposed: no redirect, no URL and no endpoint in any answer.
Anonymous users are sent to ``settings.LOGIN_URL`` when the project sets one, else to
the admin's login page; signed-in users without permission get 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import global_settings, settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    HttpResponseNotFound,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_cache_control
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods

from ._download_response import artifact_response
from .client import dual_storage
from .exceptions import ConfigurationError, DualStorageError, InvalidArgument, ObjectNotFound
from .kinds import kinds_on
from .links import issue_to_request
from .models import ARTIFACT_MODELS, Artifact, Dataset
from .store.transfer import validate_expiry

logger = logging.getLogger(__name__)

INTERNAL_MODELS: dict[str, type[Artifact]] = {
    kind: ARTIFACT_MODELS[kind] for kind in kinds_on("internal")
}
DEFAULT_LINK_SECONDS = 3600
MAX_LINK_SECONDS = 7 * 24 * 3600  # SigV4's limit
FILES_PAGE = 1000  # files, and presigned links, in one page of a folder dataset

View = Callable[..., HttpResponseBase]


def login_url() -> str:
    """``settings.LOGIN_URL`` if the project changed it, else the admin's login page."""
    if settings.LOGIN_URL != global_settings.LOGIN_URL:
        return str(settings.LOGIN_URL)
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return str(settings.LOGIN_URL)


def _signed_in(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url())
        return view(request, *args, **kwargs)

    return wrapper


def _require_view_permission(request: HttpRequest, model: type[Model]) -> None:
    opts = model._meta
    if not request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
        raise PermissionDenied


def _storage_failure(
    exc: DualStorageError | ConfigurationError, artifact: Artifact
) -> HttpResponse:
    """A plain-text answer naming bucket and key (never the endpoint) for a failure; a
    misconfiguration is a 503 that names the check ids, not a storage failure."""
    reason = artifact.describe_failure(exc)
    if isinstance(exc, ConfigurationError):
        logger.error("Download of %s impossible: %s", artifact.key, exc)
        return HttpResponse(
            f"Cannot serve {artifact}: {reason}.", status=503, content_type="text/plain"
        )
    if isinstance(exc, ObjectNotFound):
        return HttpResponseNotFound(
            f"The file of {artifact} is missing: {reason}.", content_type="text/plain"
        )
    logger.error("Download of %s failed: %s", artifact.key, exc)
    return HttpResponse(
        f"The file of {artifact} cannot be read now: {reason}.",
        status=502,
        content_type="text/plain",
    )


@require_http_methods(["GET", "HEAD"])
@_signed_in
def artifact_download(request: HttpRequest, kind: str, pk: int) -> HttpResponseBase:
    """Stream an internal artifact (weights, checkpoints, schemas) to a staff user: only
    the bytes its row recorded, with HEAD and single ranges (:mod:`._download_response`)."""
    model = INTERNAL_MODELS.get(kind)
    if model is None:
        raise Http404(f"No downloadable artifact kind {kind!r}.")
    if not request.user.is_staff:
        raise PermissionDenied
    _require_view_permission(request, model)
    artifact = get_object_or_404(model, pk=pk)
    try:
        return artifact_response(request, artifact)
    except (DualStorageError, ConfigurationError) as exc:
        back_to = _page_to_return_to(request)
        if back_to is None:
            return _storage_failure(exc, artifact)
        # Inside the admin: an error message on the page the user came from.
        if not isinstance(exc, ObjectNotFound):
            logger.error("Download of %s failed: %s", artifact.key, exc)
        messages.error(request, f"Cannot download {artifact}: {artifact.describe_failure(exc)}.")
        return HttpResponseRedirect(back_to)


def _page_to_return_to(request: HttpRequest) -> str | None:
    """The ``next`` page (a same-site path the admin's download links carry), if safe."""
    back_to = request.GET.get("next")
    safe = back_to and url_has_allowed_host_and_scheme(
        back_to, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return back_to if safe and request.method == "GET" else None


@require_GET
@_signed_in
def dataset_link(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Redirect to a presigned GET URL for a dataset (``?expires=`` seconds, default 1 h)."""
    _require_view_permission(request, Dataset)
    raw = request.GET.get("expires", str(DEFAULT_LINK_SECONDS))
    try:
        expires = validate_expiry(int(raw))
    except (ValueError, InvalidArgument):
        return HttpResponseBadRequest(
            f"expires must be a whole number of seconds from 1 to 604800, not {raw!r}.",
            content_type="text/plain",
        )
    dataset = get_object_or_404(Dataset, pk=pk)
    unusable = dataset.link_refusal()
    if unusable:
        return HttpResponse(unusable, status=409, content_type="text/plain")
    try:
        store, bucket = dataset.location()
        url = issue_to_request(
            request,
            "view",
            store,
            bucket,
            dataset.key,
            expires,
            dataset_id=dataset.pk,
            record=dual_storage.config.link_audit,
        )
    except (DualStorageError, ConfigurationError) as exc:
        return _storage_failure(exc, dataset)
    response = HttpResponseRedirect(url)
    # The link is a bearer credential: no shared cache may keep it, no browser store it.
    patch_cache_control(response, private=True, no_store=True)
    return response


def _whole_number_in(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be a whole number from {low} to {high}, not {raw!r}.")
    return value


@require_GET
@_signed_in
def dataset_files(request: HttpRequest, pk: int) -> HttpResponseBase:
    """A page of a folder dataset's files with a presigned GET URL each, in path order:
    ``?after=<path>`` continues after a path, ``?limit=`` (1 to 1,000, default 1,000),
    ``?expires=`` seconds (default 1 h). ``next`` is the next page's URL, or null."""
    _require_view_permission(request, Dataset)
    dataset = get_object_or_404(Dataset, pk=pk)
    try:
        limit = _whole_number_in(request, "limit", FILES_PAGE, 1, FILES_PAGE)
        expires = validate_expiry(
            _whole_number_in(request, "expires", DEFAULT_LINK_SECONDS, 1, 604800)
        )
    except InvalidArgument as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if not dataset.is_folder:
        return JsonResponse(
            {"error": f"{dataset} is one object, not a folder: use its link."}, status=400
        )
    unusable = dataset.link_refusal()
    if unusable:
        return JsonResponse({"error": unusable}, status=409)
    after = request.GET.get("after", "")
    rows = list(dataset.files.filter(path__gt=after).order_by("path")[: limit + 1])
    more, rows = len(rows) > limit, rows[:limit]
    try:
        store, bucket = dataset.location()
        prefix = dataset.folder_prefix
        files = [
            {
                "path": row.path,
                "size": row.size,
                "sha256": row.sha256,
                "url": issue_to_request(
                    request,
                    "view",
                    store,
                    bucket,
                    prefix + row.path,
                    expires,
                    dataset_id=dataset.pk,
                    batched=True,
                    record=dual_storage.config.link_audit,
                ),
            }
            for row in rows
        ]
    except (DualStorageError, ConfigurationError) as exc:
        return JsonResponse({"error": dataset.describe_failure(exc)}, status=502)
    following = None
    if more:
        query = urlencode({"after": rows[-1].path, "limit": str(limit), "expires": str(expires)})
        following = f"{request.path}?{query}"
    response = JsonResponse(
        {"dataset": dataset.pk, "file_count": dataset.file_count, "files": files, "next": following}
    )
    patch_cache_control(response, private=True, no_store=True)
    return response

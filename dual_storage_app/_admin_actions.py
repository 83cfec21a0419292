"""Admin actions on artifacts: presigned links, download, verify, refresh metadata, and
on checkpoints pin, unpin and the retention preview.

None of them hands a browser anything that points at the internal store: downloads go
through :func:`dual_storage_app.views.artifact_download`, and messages name buckets and
keys, never endpoints.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import Min, QuerySet
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .client import dual_storage
from .exceptions import ConfigurationError, DualStorageError, InvalidArgument, ObjectNotFound
from .links import issue_to_request
from .models import Artifact, Dataset, ModelWeight, TrainingCheckpoint
from .moving.promotion import promote_checkpoint
from .retention import apply_retention, plan_as_previewed, plan_jobs
from .store.transfer import MAX_PRESIGN_SECONDS, validate_expiry
from .verification import check_artifact

if TYPE_CHECKING:
    Admin = admin.ModelAdmin[Any]

# Links one action may create: each is a 7-day bearer credential on a page of its own;
# more is a script's job (manage.py dualstorage_presign), not a page's.
MAX_LINKS_PER_ACTION = 1000


Action = TypeVar("Action", bound=Callable[..., Any])


def _needs_configuration(action: Action) -> Action:
    """Run ``action`` only if the storage is configured; else one error message naming
    the check ids (not one per selected row, and never a value from the settings)."""

    @functools.wraps(action)
    def checked(modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        try:
            dual_storage.config  # noqa: B018 - loads and validates the settings
        except ConfigurationError as exc:
            modeladmin.message_user(
                request, _("Nothing was done: %s.") % exc.public_message(), messages.ERROR
            )
            return None
        return action(modeladmin, request, queryset)

    return checked  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class PresignedLink:
    """A dataset and its link. The URL is a credential: ``repr`` (which Django's template
    debug logging writes) never shows it."""

    dataset: Dataset
    url: str = dataclasses.field(repr=False)


class PresignForm(forms.Form):
    """The lifetime of the links, in seconds: 1 s to 7 days."""

    expires = forms.IntegerField(
        label=gettext_lazy("Expires after (seconds)"),
        min_value=1,
        max_value=MAX_PRESIGN_SECONDS,
        initial=3600,
        help_text=gettext_lazy("From 1 second to 604800 (7 days)."),
    )

    def clean_expires(self) -> int:
        try:
            return validate_expiry(self.cleaned_data["expires"])
        except InvalidArgument as exc:  # pragma: no cover - the field's bounds agree
            raise ValidationError(str(exc)) from exc


def _admin_context(modeladmin: Admin, request: HttpRequest, title: str) -> dict[str, Any]:
    opts = modeladmin.model._meta
    return {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        # admin/base.html reads it; a failed lookup would make Django's template logger
        # write the whole context (CSRF token, links) at DEBUG.
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }


@admin.action(description=gettext_lazy("Create presigned download link"), permissions=["view"])
@_needs_configuration
def create_presigned_links(
    modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Dataset]
) -> HttpResponseBase | None:
    """Ask for an expiry (intermediate page), then show the links and when they expire."""
    count = queryset.count()
    if count > MAX_LINKS_PER_ACTION:
        modeladmin.message_user(
            request,
            _(
                "Select at most %(limit)d datasets to presign at once (%(count)d are "
                "selected); filter the list, or use manage.py dualstorage_presign for scripts."
            )
            % {"limit": MAX_LINKS_PER_ACTION, "count": count},
            messages.ERROR,
        )
        return None
    form = PresignForm(request.POST if "apply" in request.POST else None)
    if not form.is_valid():
        context = _admin_context(modeladmin, request, _("Create presigned download links"))
        context.update(form=form, queryset=queryset, action="create_presigned_links")
        return TemplateResponse(request, "dual_storage_app/admin/presign_form.html", context)
    expires: int = form.cleaned_data["expires"]
    expires_at = timezone.now() + timedelta(seconds=expires)
    links: list[PresignedLink] = []
    for dataset in queryset.iterator():
        refusal = dataset.link_refusal()
        if refusal is not None:
            modeladmin.message_user(request, _("No link: %s") % refusal, messages.ERROR)
            continue
        try:
            store, bucket = dataset.location()
            url = issue_to_request(
                request,
                "admin",
                store,
                bucket,
                dataset.key,
                expires,
                dataset_id=dataset.pk,
                batched=True,  # up to 1,000 at once: written with the request's end
                record=dual_storage.config.link_audit,
            )
            links.append(PresignedLink(dataset, url))
        except DualStorageError as exc:
            modeladmin.message_user(
                request,
                _("No link for %(name)s: %(reason)s.")
                % {"name": dataset, "reason": dataset.describe_failure(exc)},
                messages.ERROR,
            )
    if links:
        modeladmin.message_user(
            request,
            ngettext(
                "Created %(count)d presigned link.",
                "Created %(count)d presigned links.",
                len(links),
            )
            % {"count": len(links)},
            messages.SUCCESS,
        )
    context = _admin_context(modeladmin, request, _("Presigned download links"))
    context.update(links=links, expires=expires, expires_at=expires_at)
    return TemplateResponse(request, "dual_storage_app/admin/presign_result.html", context)


@admin.action(description=gettext_lazy("Download"), permissions=["view"])
def download(
    modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Artifact]
) -> HttpResponseBase | None:
    """Send the browser to the stream-through view for exactly one selected artifact."""
    count = queryset.count()
    if count != 1:
        modeladmin.message_user(
            request,
            ngettext(
                "Select exactly one item to download (%(count)d is selected).",
                "Select exactly one item to download (%(count)d are selected).",
                count,
            )
            % {"count": count},
            messages.ERROR,
        )
        return None
    artifact = queryset.get()
    # A failed download comes back here as an error message (views.artifact_download).
    return HttpResponseRedirect(download_url(artifact, back_to=request.get_full_path()))


def download_url(artifact: Artifact, *, back_to: str) -> str:
    """The stream-through download of ``artifact``; a failure returns to ``back_to`` (an
    admin page) with an error message instead of leaving the admin."""
    url = reverse(
        "dual_storage_app:artifact-download", kwargs={"kind": artifact.kind, "pk": artifact.pk}
    )
    return f"{url}?{urlencode({'next': back_to})}"


# Change permission: a verify re-reads whole objects, not something every viewer may start.
@admin.action(description=gettext_lazy("Verify integrity"), permissions=["change"])
@_needs_configuration
def verify_integrity(modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Artifact]) -> None:
    """Re-read each object and compare its size and SHA-256 with the row: one summary,
    then each failure."""
    counts = {"intact": 0, "changed": 0, "missing": 0, "unreadable": 0, "verifying": 0}
    failures: list[str] = []
    for artifact in queryset.iterator():
        if isinstance(artifact, Dataset) and (
            artifact.is_folder or artifact.status != Dataset.Status.READY
        ):  # a folder is its manifest and its files; a browser upload may be unchecked
            verdict = check_artifact(artifact)
            counts[verdict.outcome] += 1
            if verdict.problem is not None:
                failures.append(
                    _("%(name)s failed verification: %(reason)s.")
                    % {"name": artifact, "reason": verdict.problem}
                )
            continue
        try:
            store, bucket = artifact.location()
            read = store.hash_object(bucket, artifact.key)
            size, sha256 = read.size, read.sha256
        except DualStorageError as exc:
            counts["missing" if isinstance(exc, ObjectNotFound) else "unreadable"] += 1
            failures.append(
                _("%(name)s failed verification: %(reason)s.")
                % {"name": artifact, "reason": artifact.describe_failure(exc)}
            )
            continue
        if (size, sha256) == (artifact.size, artifact.sha256):
            counts["intact"] += 1
            continue
        counts["changed"] += 1
        failures.append(
            _(
                "%(name)s failed verification: key %(key)r holds %(size)s with SHA-256 "
                "%(found)s, but the row records %(expected_size)s with SHA-256 %(expected)s."
            )
            % {
                "name": artifact,
                "key": artifact.key,
                "size": filesizeformat(size),
                "found": sha256[:12],
                "expected_size": filesizeformat(artifact.size),
                "expected": artifact.sha256[:12],
            }
        )
    total = sum(counts.values())
    summary = ngettext(
        "Verified %(total)d artifact: %(intact)d intact, %(changed)d changed, "
        "%(missing)d missing, %(unreadable)d unreadable.",
        "Verified %(total)d artifacts: %(intact)d intact, %(changed)d changed, "
        "%(missing)d missing, %(unreadable)d unreadable.",
        total,
    ) % {"total": total, **counts}
    if counts["verifying"]:
        summary += " " + _("%(count)d still being verified by the server.") % {
            "count": counts["verifying"]
        }
    modeladmin.message_user(request, summary, messages.ERROR if failures else messages.SUCCESS)
    for failure in failures:
        modeladmin.message_user(request, failure, messages.ERROR)


@admin.action(description=gettext_lazy("Refresh metadata from the store"), permissions=["change"])
@_needs_configuration
def refresh_metadata(modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Artifact]) -> None:
    """HEAD each object. Changed content (size or ETag) is reported and the row left
    alone, so a later quick check still sees the change; only the content type, which
    is metadata, is refreshed."""
    unchanged = 0
    for artifact in queryset.iterator():
        try:
            store, bucket = artifact.location()
            info = store.head(bucket, artifact.key)
        except DualStorageError as exc:
            modeladmin.message_user(
                request,
                _("Cannot refresh %(name)s: %(reason)s.")
                % {"name": artifact, "reason": artifact.describe_failure(exc)},
                messages.ERROR,
            )
            continue
        content = {"size": info.size, "etag": info.etag}
        if not artifact.etag:
            content.pop("etag")  # a row that never knew its ETag cannot disagree with one
        changes = [
            f"{name} {getattr(artifact, name)!r} → {value!r}"
            for name, value in content.items()
            if getattr(artifact, name) != value
        ]
        if changes:
            modeladmin.message_user(
                request,
                _(
                    "%(name)s changed in the store (%(changes)s); the row was left as it was. "
                    "“Verify integrity” re-reads it; “Accept the stored content” re-hashes "
                    "it and records what is stored now."
                )
                % {"name": artifact, "changes": ", ".join(changes)},
                messages.ERROR,
            )
            continue
        content_type = info.content_type or ""
        if content_type == artifact.content_type:
            unchanged += 1
            continue
        previous, artifact.content_type = artifact.content_type, content_type
        artifact.save(update_fields=["content_type", "updated_at"])
        modeladmin.message_user(
            request,
            _("%(name)s refreshed: content_type %(old)r → %(new)r.")
            % {"name": artifact, "old": previous, "new": content_type},
            messages.WARNING,
        )
    if unchanged:
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)d artifact matches the store.",
                "%(count)d artifacts match the store.",
                unchanged,
            )
            % {"count": unchanged},
            messages.SUCCESS,
        )


@admin.action(
    description=gettext_lazy("Accept the stored content (re-hash it)"), permissions=["change"]
)
@_needs_configuration
def accept_stored_content(
    modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Artifact]
) -> None:
    """Read each object once and record what is stored now: size, SHA-256, ETag and
    content type. The explicit way to accept content changed outside the app."""
    for artifact in queryset.iterator():
        if isinstance(artifact, Dataset) and artifact.status == Dataset.Status.VERIFYING:
            modeladmin.message_user(
                request,
                _("%(name)s is still being verified; accept its content once it is checked.")
                % {"name": artifact},
                messages.ERROR,
            )
            continue
        try:
            store, bucket = artifact.location()
            read = store.hash_object(bucket, artifact.key)
        except DualStorageError as exc:
            modeladmin.message_user(
                request,
                _("Cannot accept the content of %(name)s: %(reason)s.")
                % {"name": artifact, "reason": artifact.describe_failure(exc)},
                messages.ERROR,
            )
            continue
        stored = (read.size, read.sha256, read.etag)
        corrupt = isinstance(artifact, Dataset) and artifact.status == Dataset.Status.CORRUPT
        if stored == (artifact.size, artifact.sha256, artifact.etag) and not corrupt:
            modeladmin.message_user(
                request, _("%(name)s already records its content.") % {"name": artifact}
            )
            continue
        artifact.size, artifact.sha256, artifact.etag = stored
        artifact.content_type = read.content_type or artifact.content_type
        fields = ["size", "sha256", "etag", "content_type", "updated_at"]
        if isinstance(artifact, Dataset):  # a corrupt browser upload, accepted as it is
            artifact.status = Dataset.Status.READY
            fields.append("status")
        artifact.save(update_fields=fields)
        modeladmin.message_user(
            request,
            _("%(name)s now records the stored content: %(size)s, SHA-256 %(hash)s.")
            % {"name": artifact, "size": filesizeformat(read.size), "hash": read.sha256[:12]},
            messages.WARNING,
        )


# -- checkpoints: pinning and retention ------------------------------------------------------


@admin.action(description=gettext_lazy("Pin"), permissions=["change"])
def pin(modeladmin: Admin, request: HttpRequest, queryset: QuerySet[TrainingCheckpoint]) -> None:
    """Pin the selected checkpoints: retention never deletes them."""
    _set_pinned(modeladmin, request, queryset, pinned=True)


@admin.action(description=gettext_lazy("Unpin"), permissions=["change"])
def unpin(modeladmin: Admin, request: HttpRequest, queryset: QuerySet[TrainingCheckpoint]) -> None:
    """Unpin the selected checkpoints: retention's rules decide again."""
    _set_pinned(modeladmin, request, queryset, pinned=False)


def _set_pinned(
    modeladmin: Admin,
    request: HttpRequest,
    queryset: QuerySet[TrainingCheckpoint],
    *,
    pinned: bool,
) -> None:
    count = queryset.exclude(pinned=pinned).update(pinned=pinned, updated_at=timezone.now())
    if pinned:
        text = ngettext("Pinned %(count)d checkpoint.", "Pinned %(count)d checkpoints.", count)
    else:
        text = ngettext("Unpinned %(count)d checkpoint.", "Unpinned %(count)d checkpoints.", count)
    modeladmin.message_user(request, text % {"count": count}, messages.SUCCESS)


@admin.action(
    description=gettext_lazy("Preview retention for the selected checkpoints' jobs"),
    permissions=["view"],
)
@_needs_configuration
def preview_retention(
    modeladmin: Admin, request: HttpRequest, queryset: QuerySet[TrainingCheckpoint]
) -> HttpResponseBase | None:
    """A page listing, per job of the selected checkpoints, what the retention policy
    keeps (with its reasons) and what it would delete, with a form to apply it (users
    who may delete checkpoints only). Applying deletes only rows shown on that page
    that are still planned and unpinned, then returns to the list with one message."""
    # One selected row per job carries the jobs through the page's form.
    by_job = dict(queryset.values_list("job_id").annotate(Min("pk")).order_by("job_id"))
    if "apply" in request.POST:
        _apply_retention(modeladmin, request, list(by_job))
        return None
    plan = plan_jobs(by_job)
    context = _admin_context(modeladmin, request, _("Retention preview"))
    context.update(
        plan=plan,
        selected=list(by_job.values()),
        action="preview_retention",
        can_apply=modeladmin.has_delete_permission(request),
    )
    return TemplateResponse(request, "dual_storage_app/admin/retention_preview.html", context)


def _apply_retention(modeladmin: Admin, request: HttpRequest, job_ids: list[str]) -> None:
    """Apply the retention of ``job_ids`` to the rows the preview showed for deletion."""
    if not modeladmin.has_delete_permission(request):
        modeladmin.message_user(
            request,
            _(
                "Nothing was deleted: applying retention needs permission to delete "
                "training checkpoints."
            ),
            messages.ERROR,
        )
        return
    # Row ids as the page wrote them; anything else (forged, overlong) is ignored.
    shown = {
        int(pk)
        for pk in request.POST.getlist("planned")
        if pk.isascii() and pk.isdigit() and len(pk) <= 18
    }
    result = apply_retention(plan_as_previewed(job_ids, shown))
    deleted = len(result.deleted)
    text = ngettext(
        "Retention deleted %(count)d checkpoint, freeing %(size)s.",
        "Retention deleted %(count)d checkpoints, freeing %(size)s.",
        deleted,
    ) % {"count": deleted, "size": filesizeformat(result.bytes_freed)}
    if result.spared:
        text += " " + ngettext(
            "%(count)d planned checkpoint was kept: it was pinned, deleted or no longer "
            "planned since the preview.",
            "%(count)d planned checkpoints were kept: they were pinned, deleted or no "
            "longer planned since the preview.",
            len(result.spared),
        ) % {"count": len(result.spared)}
    modeladmin.message_user(request, text, messages.WARNING if result.spared else messages.SUCCESS)


MAX_PROMOTIONS_PER_ACTION = 20  # each is a copy of up to a few GB, read back in the request


@admin.action(description=gettext_lazy("Promote to model weight"), permissions=["view"])
@_needs_configuration
def promote(
    modeladmin: Admin, request: HttpRequest, queryset: QuerySet[TrainingCheckpoint]
) -> None:
    """Copy each selected checkpoint to a model weight under the same key (server-side,
    read back against the checkpoint's SHA-256) and record the weight's row."""
    add_weight = f"{ModelWeight._meta.app_label}.add_{ModelWeight._meta.model_name}"
    if not request.user.has_perm(add_weight):
        modeladmin.message_user(
            request, _("Promoting needs the permission to add model weights."), messages.ERROR
        )
        return
    count = queryset.count()
    if count > MAX_PROMOTIONS_PER_ACTION:
        modeladmin.message_user(
            request,
            _(
                "Select at most %(limit)d checkpoints to promote at once (%(count)d are "
                "selected); use manage.py dualstorage_promote for scripts."
            )
            % {"limit": MAX_PROMOTIONS_PER_ACTION, "count": count},
            messages.ERROR,
        )
        return
    for checkpoint in queryset.order_by("pk"):
        try:
            weight = promote_checkpoint(checkpoint.key)
        except DualStorageError as exc:
            modeladmin.message_user(
                request,
                _("%(key)s was not promoted: %(reason)s")
                % {"key": checkpoint.key, "reason": checkpoint.describe_failure(exc)},
                messages.ERROR,
            )
            continue
        modeladmin.message_user(
            request,
            _("Promoted %(key)s to model weight #%(id)d (%(size)s, SHA-256 verified).")
            % {"key": checkpoint.key, "id": weight.pk, "size": filesizeformat(weight.size)},
            messages.SUCCESS,
        )

"""Admin actions on artifacts: presigned links, download, verify, refresh metadata.

None of them hands a browser anything that points at the internal store: downloads go
through :func:`dual_storage_app.views.artifact_download`, and messages name buckets and
keys, never endpoints.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .exceptions import DualStorageError, InvalidArgument
from .models import Artifact, Dataset
from .store.transfer import MAX_PRESIGN_SECONDS, validate_expiry

if TYPE_CHECKING:
    Admin = admin.ModelAdmin[Any]

# Links one action may create: each is a 7-day bearer credential on a page of its own;
# more is a script's job (manage.py dualstorage_presign), not a page's.
MAX_LINKS_PER_ACTION = 1000


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
        store, bucket = dataset.location()
        try:
            links.append(PresignedLink(dataset, store.presign_get(bucket, dataset.key, expires)))
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
    return HttpResponseRedirect(
        reverse(
            "dual_storage_app:artifact-download",
            kwargs={"kind": artifact.kind, "pk": artifact.pk},
        )
    )


# Change permission: a verify re-reads whole objects, not something every viewer may start.
@admin.action(description=gettext_lazy("Verify integrity"), permissions=["change"])
def verify_integrity(modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Artifact]) -> None:
    """Re-read each object and compare its size and SHA-256 with the row."""
    ok = 0
    for artifact in queryset:
        try:
            store, bucket = artifact.location()
            size, sha256 = store.hash_object(bucket, artifact.key)
        except DualStorageError as exc:
            modeladmin.message_user(
                request,
                _("%(name)s failed verification: %(reason)s.")
                % {"name": artifact, "reason": artifact.describe_failure(exc)},
                messages.ERROR,
            )
            continue
        if (size, sha256) != (artifact.size, artifact.sha256):
            modeladmin.message_user(
                request,
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
                },
                messages.ERROR,
            )
            continue
        ok += 1
        modeladmin.message_user(
            request,
            _("%(name)s is intact: %(size)s, SHA-256 %(hash)s.")
            % {"name": artifact, "size": filesizeformat(size), "hash": sha256[:12]},
            messages.SUCCESS,
        )
    if ok > 1:
        modeladmin.message_user(
            request,
            ngettext("%(count)d artifact verified.", "%(count)d artifacts verified.", ok)
            % {"count": ok},
            messages.SUCCESS,
        )


@admin.action(description=gettext_lazy("Refresh metadata from the store"), permissions=["change"])
def refresh_metadata(modeladmin: Admin, request: HttpRequest, queryset: QuerySet[Artifact]) -> None:
    """HEAD each object and record its size, ETag and content type on the row."""
    unchanged = 0
    for artifact in queryset:
        store, bucket = artifact.location()
        try:
            info = store.head(bucket, artifact.key)
        except DualStorageError as exc:
            modeladmin.message_user(
                request,
                _("Cannot refresh %(name)s: %(reason)s.")
                % {"name": artifact, "reason": artifact.describe_failure(exc)},
                messages.ERROR,
            )
            continue
        new = {"size": info.size, "etag": info.etag, "content_type": info.content_type or ""}
        changes = [
            f"{field} {getattr(artifact, field)!r} → {value!r}"
            for field, value in new.items()
            if getattr(artifact, field) != value
        ]
        if not changes:
            unchanged += 1
            continue
        for field, value in new.items():
            setattr(artifact, field, value)
        artifact.save(update_fields=[*new, "updated_at"])
        modeladmin.message_user(
            request,
            _("%(name)s refreshed: %(changes)s. Run “Verify integrity” to re-measure its SHA-256.")
            % {"name": artifact, "changes": ", ".join(changes)},
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

"""Admin for the artifact models: upload through the add form, inspect metadata, and act.

Uploads stream from Django's upload file through the model's one-pass upload. Metadata
is read-only. Internal artifacts download through the stream-through view (never a URL
to the internal store); datasets get presigned links on the external store. Checkpoints
are pinned and unpinned, and their jobs' retention previewed and applied, from their
list; each job's retention policy has its own page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ._admin_actions import (
    accept_stored_content,
    create_presigned_links,
    download,
    download_url,
    pin,
    preview_retention,
    promote,
    refresh_metadata,
    unpin,
    verify_integrity,
)
from ._admin_usage import usage_page
from .audit import RECORD_FIELDS
from .client import dual_storage
from .exceptions import ConfigurationError, DualStorageError, safe_reason
from .models import (
    Artifact,
    ConfigSchema,
    Dataset,
    IssuedLink,
    MigrationEntry,
    ModelWeight,
    RetentionPolicy,
    StorageUsage,
    TrainingCheckpoint,
    UploadSession,
)
from .retention import resolve_policy
from .uploads.forms import DatasetAdminForm, DirectUploadFileField

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin

_METADATA = (
    "key",
    "store",
    "bucket",
    "size_display",
    "sha256",
    "content_type",
    "etag",
    "uploaded_by",
    "created_at",
    "updated_at",
)

_COMMON_COLUMNS = ("store", "bucket", "size_display", "short_hash", "created_at")


class ArtifactAdmin(_ModelAdmin):
    """Shared list, search, filters, read-only metadata and actions."""

    list_display: tuple[str, ...] = ("name", *_COMMON_COLUMNS)
    # Only users who uploaded something, not every account on the site.
    list_filter: ClassVar[tuple[Any, ...]] = (
        "created_at",
        ("uploaded_by", admin.RelatedOnlyFieldListFilter),
    )
    search_fields: ClassVar[tuple[str, ...]] = ("name", "file", "sha256")
    # No date_hierarchy: its drill-down is a SELECT DISTINCT over every row on each page
    # (505 of 747 ms at 100,000 rows in bench.scale); the created_at filter above is free.
    list_select_related = ("uploaded_by",)
    actions: Sequence[Any] = (verify_integrity, refresh_metadata, accept_stored_content)
    extra_readonly: tuple[str, ...] = ()

    @admin.display(description="store")
    def store(self, obj: Artifact) -> str:
        return obj.store_name

    @admin.display(description="size", ordering="size")
    def size_display(self, obj: Artifact) -> str:
        return filesizeformat(obj.size)

    @admin.display(description="SHA-256", ordering="sha256")
    def short_hash(self, obj: Artifact) -> SafeString:
        return format_html('<code title="{}">{}</code>', obj.sha256, obj.sha256[:12])

    @admin.display(description="key")
    def key(self, obj: Artifact) -> str:
        return obj.key

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A search or filter holding a NUL character (which PostgreSQL cannot compare
        with text: a 500 there) goes back to the plain list with an error message."""
        if any("\x00" in part for key, values in request.GET.lists() for part in (key, *values)):
            self.message_user(
                request,
                "Search terms and filters cannot contain a NUL character; they were cleared.",
                messages.ERROR,
            )
            return HttpResponseRedirect(request.path)
        return super().changelist_view(request, extra_context)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Metadata on the change form; the add form only asks for the file and names."""
        if obj is None:
            return ()
        return (*_METADATA, *self.extra_readonly)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A store failure while saving is an error message, not a 500 (the admin's
        transaction rolls back, and the upload with it)."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (DualStorageError, ConfigurationError) as exc:
            self.message_user(
                request, f"The file was not stored: {safe_reason(exc)}.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())

    def save_model(
        self, request: HttpRequest, obj: Any, form: ModelForm[Any], change: bool
    ) -> None:
        """Record the uploader of a new file; ``obj.save()`` streams the file to its store."""
        if (not change or "file" in form.changed_data) and isinstance(
            request.user, AbstractBaseUser
        ):
            obj.uploaded_by = request.user
        super().save_model(request, obj, form, change)


class InternalArtifactAdmin(ArtifactAdmin):
    """Weights, checkpoints, schemas: downloads stream through Django."""

    actions: Sequence[Any] = (download, verify_integrity, refresh_metadata, accept_stored_content)
    extra_readonly = ("download_link",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """A view-only user sees the key, not the read-only file widget (which would
        ask the internal storage for a URL it never gives)."""
        fields = super().get_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            return [field for field in fields if field != "file"]
        return fields

    @admin.display(description="download")
    def download_link(self, obj: Artifact) -> SafeString:
        change_page = reverse(
            f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk]
        )
        url = download_url(obj, back_to=change_page)
        return format_html('<a href="{}">{}</a>', url, "Download (streamed through Django)")


@admin.register(ModelWeight)
class ModelWeightAdmin(InternalArtifactAdmin):
    list_display = ("name", "framework", *_COMMON_COLUMNS)
    search_fields = (*ArtifactAdmin.search_fields, "framework")


@admin.register(TrainingCheckpoint)
class TrainingCheckpointAdmin(InternalArtifactAdmin):
    list_display = ("name", "job_id", "epoch", "pinned", *_COMMON_COLUMNS)
    list_filter = ("job_id", "pinned", *ArtifactAdmin.list_filter)
    search_fields = (*ArtifactAdmin.search_fields, "job_id")
    actions = (*InternalArtifactAdmin.actions, pin, unpin, preview_retention, promote)


@admin.register(ConfigSchema)
class ConfigSchemaAdmin(InternalArtifactAdmin):
    list_display = ("name", "framework", *_COMMON_COLUMNS)
    search_fields = (*ArtifactAdmin.search_fields, "framework")


@admin.register(Dataset)
class DatasetAdmin(ArtifactAdmin):
    """Datasets: uploaded from the add page straight to the external store by the
    browser (:mod:`.uploads`), or through Django when JavaScript is off."""

    form = DatasetAdminForm
    list_display = ("name", "status", "files", *_COMMON_COLUMNS)
    list_filter = ("status", *ArtifactAdmin.list_filter)
    actions = (create_presigned_links, verify_integrity, refresh_metadata, accept_stored_content)
    extra_readonly = ("status", "files")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """The form, taking only finished uploads of the signed-in user."""
        form_class = super().get_form(request, obj, change, **kwargs)

        class UsersUploadsOnly(form_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **form_kwargs: Any) -> None:
                super().__init__(*args, **form_kwargs)
                field = self.fields.get("file")
                if isinstance(field, DirectUploadFileField):
                    field.user = request.user

        return UsersUploadsOnly

    def save_model(
        self, request: HttpRequest, obj: Any, form: ModelForm[Any], change: bool
    ) -> None:
        """A direct upload's row exists already: write only the form's fields (the
        server's check may be recording the SHA-256 at the same moment)."""
        if isinstance(form, DatasetAdminForm) and form.direct_session is not None:
            obj.save(update_fields=form.direct_update_fields())
            return
        super().save_model(request, obj, form, change)

    @admin.display(description="files", ordering="file_count")
    def files(self, obj: Dataset) -> str:
        return f"folder of {obj.file_count:,}" if obj.is_folder else "one object"


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(_ModelAdmin):
    """A job's retention policy; an empty field falls back to the project default."""

    list_display = ("job_id", "keep_last", "keep_best", "metric", "metric_mode", "effective")
    search_fields = ("job_id", "metric")

    @admin.display(description="effective policy")
    def effective(self, obj: RetentionPolicy) -> str:
        """The rules the job is held to, with the project default filled in."""
        try:
            defaults = dual_storage.config.retention
        except ConfigurationError as exc:
            return f"unknown: {exc.public_message()}"
        policy = resolve_policy(defaults, obj)
        return policy.problem or policy.describe()


@admin.register(IssuedLink)
class IssuedLinkAdmin(_ModelAdmin):
    """The link audit: read-only, filtered by path, date and expiry, searched by key and
    holder. Records go by ``dualstorage_audit --purge`` (``LINK_AUDIT_DAYS``)."""

    list_display = ("issued_at", "via", "actor", "remote_addr", "key", "expires_at")
    list_filter: ClassVar[tuple[Any, ...]] = ("via", "issued_at", "expires_at", "store")
    search_fields = ("key", "actor", "remote_addr")
    # No date_hierarchy (a SELECT DISTINCT over every record per page): the audit grows
    # with every link; the issued_at filter above does the same job.
    list_select_related = False
    readonly_fields = RECORD_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StorageUsage)
class StorageUsageAdmin(_ModelAdmin):
    """The "Usage and cost" page in place of a changelist (the model has no table)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return usage_page(self, request)


@admin.register(MigrationEntry)
class MigrationEntryAdmin(_ModelAdmin):
    """The migration journal (``dualstorage_migrate``): read-only, written by the runs."""

    list_display = ("source_key", "migration", "kind", "target_key", "state", "method", "size")
    list_filter = ("migration", "state", "kind", "method")
    search_fields = ("source_key", "target_key", "error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(UploadSession)
class UploadSessionAdmin(_ModelAdmin):
    """Browser uploads, finished or not: read-only; cancel one from its own page's
    browser, or let it expire (``dualstorage_cleanup_uploads`` aborts it)."""

    list_display = ("file_name", "kind", "user", "state", "size", "created_at", "expires_at")
    list_filter = ("state", "kind", "created_at")
    search_fields = ("file_name", "key")
    list_select_related = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

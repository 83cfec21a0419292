"""Storage jobs in the admin: read-only pages of their progress, batches and reports.

Jobs are started by ``manage.py dualstorage_jobs start`` (or :func:`.runner.start_job`),
never added or edited here; a finished job may be deleted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import truncatechars
from django.utils.html import format_html

from .models import JobBatch, StorageJob
from .runner import with_progress

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[StorageJob]
    _Inline = admin.TabularInline[JobBatch, StorageJob]
else:  # the admin's classes take no type arguments at run time
    _ModelAdmin = admin.ModelAdmin
    _Inline = admin.TabularInline

LIST_ITEMS_SHOWN = 20  # longer lists in a report (ids of intact artifacts) are cut


def _shortened(value: Any) -> Any:
    """``value`` with each list cut to its first items and a note of how many more."""
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, list):
        shown = [_shortened(item) for item in value[:LIST_ITEMS_SHOWN]]
        if len(value) > LIST_ITEMS_SHOWN:
            shown.append(f"... and {len(value) - LIST_ITEMS_SHOWN} more")
        return shown
    return value


def _json_block(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(_shortened(value), indent=2, default=str)  # the report's own order
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)


class ReadOnly:
    """Nothing added or changed through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobBatchInline(ReadOnly, _Inline):
    model = JobBatch
    extra = 0
    can_delete = False
    show_change_link = False
    fields = (
        "index",
        "status",
        "attempts",
        "worker",
        "items",
        "items_done",
        "started_at",
        "heartbeat_at",
        "lease_until",
        "finished_at",
        "error",
        "result_summary",
    )
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="result")
    def result_summary(self, batch: JobBatch) -> str:
        if batch.result is None:
            return "-"
        return truncatechars(json.dumps(_shortened(batch.result), default=str), 200)


@admin.register(StorageJob)
class StorageJobAdmin(ReadOnly, _ModelAdmin):
    list_display = (
        "__str__",
        "kind",
        "status",
        "batches_progress",
        "items_progress",
        "created_at",
        "finished_at",
    )
    list_filter = ("kind", "status")
    date_hierarchy = "created_at"
    inlines = (JobBatchInline,)
    fields = (
        "kind",
        "status",
        "params_display",
        "batches_progress",
        "items_progress",
        "lease_seconds",
        "max_attempts",
        "created_at",
        "started_at",
        "finished_at",
        "report_display",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[StorageJob]:
        return with_progress(super().get_queryset(request))

    @admin.display(description="batches done")
    def batches_progress(self, job: StorageJob) -> str:
        return f"{getattr(job, 'batches_done', 0)} / {job.batches_total}"

    @admin.display(description="items done")
    def items_progress(self, job: StorageJob) -> str:
        """Artifacts checked (verify), keys judged (adopt), training jobs' checkpoints
        (retention) or buckets listed (usage scan), of those planned."""
        return f"{getattr(job, 'items_done', None) or 0} / {job.items_total}"

    @admin.display(description="parameters")
    def params_display(self, job: StorageJob) -> str:
        return _json_block(job.params)

    @admin.display(description="report")
    def report_display(self, job: StorageJob) -> str:
        return _json_block(job.report)

"""The Django app configuration of ``dual_storage_app.jobs``."""

from __future__ import annotations

from django.apps import AppConfig


class StorageJobsConfig(AppConfig):
    """Long storage jobs (verify, adopt, retention, usage scans) on the task framework."""

    name = "dual_storage_app.jobs"
    label = "dual_storage_jobs"
    verbose_name = "Dual storage jobs"
    default_auto_field = "django.db.models.BigAutoField"

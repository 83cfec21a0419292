"""The Django app configuration of ``dual_storage_app``."""

from __future__ import annotations

from django.apps import AppConfig


class DualStorageAppConfig(AppConfig):
    """The Django app: registers the system checks and installs the catalog (client
    writes recorded as artifact rows) and the link audit when Django is ready."""

    name = "dual_storage_app"
    verbose_name = "Dual storage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import audit, catalog, checks  # noqa: F401 - checks registers the system checks

        catalog.install()
        audit.install()

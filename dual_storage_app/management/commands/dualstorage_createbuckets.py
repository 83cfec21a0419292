"""Create every configured bucket that does not exist yet, on both stores."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dual_storage_app.client import dual_storage
from dual_storage_app.exceptions import DualStorageError


class Command(BaseCommand):
    help = "Create the weights, checkpoints, schemas (internal) and datasets (external) buckets."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            created = dual_storage.create_buckets()
        except DualStorageError as exc:
            raise CommandError(str(exc)) from exc
        for bucket, was_created in created.items():
            state = self.style.SUCCESS("created") if was_created else "already exists"
            self.stdout.write(f"{bucket}: {state}")

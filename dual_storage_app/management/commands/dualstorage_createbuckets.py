"""Create every configured bucket that does not exist yet, on both stores."""

from __future__ import annotations

from typing import Any

from dual_storage_app.management._common import StorageCommand, create_buckets


class Command(StorageCommand):
    help = "Create the weights, checkpoints, schemas (internal) and datasets (external) buckets."

    def handle(self, *args: Any, **options: Any) -> None:
        buckets = create_buckets()
        created, exists = self.style.SUCCESS("created"), "already exists"
        self.emit(
            {"buckets": buckets},
            [f"{b['bucket']}: {created if b['created'] else exists}" for b in buckets],
        )

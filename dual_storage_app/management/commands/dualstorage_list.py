"""List artifacts of one kind: rows from the database, or with --store the bucket itself."""

from __future__ import annotations

import itertools
from typing import Any

from django.core.management.base import CommandParser

from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.management._common import (
    StorageCommand,
    artifact_data,
    command_errors,
    format_size,
    positive_int,
    store_and_bucket,
)
from dual_storage_app.models import ARTIFACT_MODELS, Artifact


class Command(StorageCommand):
    help = (
        "List artifacts of KIND: database rows, newest first (name, key, size, short "
        "SHA-256, created), or with --store the objects in the kind's bucket, by key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        self.add_kind_argument(parser)
        parser.add_argument("--prefix", default="", help="Only keys starting with this.")
        parser.add_argument(
            "--limit", type=positive_int, default=50, help="At most this many (default 50)."
        )
        parser.add_argument(
            "--store", action="store_true", help="List the bucket's objects, not the rows."
        )

    def handle(
        self, *args: Any, kind: ArtifactKind, prefix: str, limit: int, store: bool, **options: Any
    ) -> None:
        if store:
            self._list_store(kind, prefix, limit)
        else:
            self._list_rows(kind, prefix, limit)

    def _list_rows(self, kind: ArtifactKind, prefix: str, limit: int) -> None:
        manager: Any = ARTIFACT_MODELS[kind]._default_manager
        rows: list[Artifact] = list(manager.filter(file__startswith=prefix)[:limit])
        lines = [
            f"{row.pk:>6}  {row.name[:30]:<30}  {format_size(row.size):>10}  "
            f"{row.sha256[:12]:<12}  {row.created_at:%Y-%m-%d %H:%M}  {row.key}"
            for row in rows
        ]
        header = f"{'id':>6}  {'name':<30}  {'size':>10}  {'sha256':<12}  {'created':<16}  key"
        self.emit(
            {"kind": kind, "source": "database", "items": [artifact_data(r) for r in rows]},
            [header, *lines, self.style.SUCCESS(f"{len(rows)} {kind} row(s).")],
        )

    def _list_store(self, kind: str, prefix: str, limit: int) -> None:
        store, bucket = store_and_bucket(kind)
        with command_errors():
            objects = list(itertools.islice(store.list(bucket, prefix), limit))
        items = [
            {
                "key": o.key,
                "size": o.size,
                "etag": o.etag,
                "last_modified": o.last_modified.isoformat() if o.last_modified else None,
            }
            for o in objects
        ]
        lines = [
            f"{format_size(o.size):>10}  "
            f"{(o.last_modified.strftime('%Y-%m-%d %H:%M') if o.last_modified else '-'):<16}  "
            f"{o.key}"
            for o in objects
        ]
        self.emit(
            {
                "kind": kind,
                "source": "store",
                "store": store.name,
                "bucket": bucket,
                "items": items,
            },
            [*lines, self.style.SUCCESS(f"{len(objects)} object(s) in {store.name}/{bucket}.")],
        )

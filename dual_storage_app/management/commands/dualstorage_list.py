"""List artifacts of one kind: rows from the database, or with --store the bucket itself."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

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

T = TypeVar("T")


def first_and_total(items: Iterable[T], limit: int) -> tuple[list[T], int]:
    """The first ``limit`` items and how many there are in all, counted as they pass
    (a bucket of a million objects is counted page by page, never held in memory)."""
    first: list[T] = []
    total = 0
    for item in items:
        if total < limit:
            first.append(item)
        total += 1
    return first, total


def shown(count: int, total: int) -> str:
    """``3`` when all are shown, else ``first 3 of 10``."""
    return str(total) if count == total else f"first {count} of {total}"


class Command(StorageCommand):
    help = (
        "List artifacts of KIND: database rows, newest first (name, key, size, short "
        "SHA-256, created), or with --store the objects in the kind's bucket, by key. "
        "With more than --limit, says how many there are in all (first N of M)."
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
        matching = manager.filter(file__startswith=prefix)
        rows: list[Artifact] = list(matching[:limit])
        total = len(rows) if len(rows) < limit else matching.count()
        lines = [
            f"{row.pk:>6}  {row.name[:30]:<30}  {format_size(row.size):>10}  "
            f"{row.sha256[:12]:<12}  {row.created_at:%Y-%m-%d %H:%M}  {row.key}"
            for row in rows
        ]
        header = f"{'id':>6}  {'name':<30}  {'size':>10}  {'sha256':<12}  {'created':<16}  key"
        self.emit(
            {
                "kind": kind,
                "source": "database",
                "items": [artifact_data(r) for r in rows],
                "total": total,
                "truncated": total > len(rows),
            },
            [header, *lines, self.style.SUCCESS(f"{shown(len(rows), total)} {kind} row(s).")],
        )

    def _list_store(self, kind: str, prefix: str, limit: int) -> None:
        store, bucket = store_and_bucket(kind)
        with command_errors():
            objects, total = first_and_total(store.list(bucket, prefix), limit)
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
                "total": total,
                "truncated": total > len(objects),
            },
            [
                *lines,
                self.style.SUCCESS(
                    f"{shown(len(objects), total)} object(s) in {store.name}/{bucket}."
                ),
            ],
        )

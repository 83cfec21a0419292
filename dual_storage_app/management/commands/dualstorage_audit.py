"""The link audit: who was handed which presigned link; purge old records."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from dual_storage_app.audit import IssuedLink, purge_old_records
from dual_storage_app.client import dual_storage
from dual_storage_app.management._common import StorageCommand, command_errors, positive_int


class Command(StorageCommand):
    help = (
        "List the presigned links handed out (newest first: when, to whom, by which path, "
        "from which address, which key, until when; never the URL), or with --purge "
        "delete the records older than LINK_AUDIT_DAYS (or --days)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--key", help="Only links to keys starting with this.")
        parser.add_argument("--actor", help="Only links handed to this user or process.")
        parser.add_argument(
            "--since", type=positive_int, metavar="DAYS", help="Only the last DAYS days."
        )
        parser.add_argument("--limit", type=positive_int, default=50, help="At most (50).")
        parser.add_argument(
            "--purge", action="store_true", help="Delete records older than the retention."
        )
        parser.add_argument(
            "--days", type=positive_int, help="With --purge: keep this many days instead."
        )

    def handle(
        self,
        *args: Any,
        key: str | None,
        actor: str | None,
        since: int | None,
        limit: int,
        purge: bool,
        days: int | None,
        **options: Any,
    ) -> None:
        if purge:
            with command_errors():
                keep = days or dual_storage.config.link_audit_days
            deleted = purge_old_records(keep)
            self.emit(
                {"purged": deleted, "kept_days": keep},
                [self.style.SUCCESS(f"Deleted {deleted} link record(s) older than {keep} days.")],
            )
            return
        records = IssuedLink.objects.all()
        if key:
            records = records.filter(key__startswith=key)
        if actor:
            records = records.filter(actor=actor)
        if since:
            records = records.filter(issued_at__gte=timezone.now() - timedelta(days=since))
        total = records.count()
        shown = list(records[:limit])
        rows = [
            {
                "issued_at": record.issued_at.isoformat(),
                "expires_at": record.expires_at.isoformat(),
                "via": record.via,
                "actor": record.actor,
                "remote_addr": record.remote_addr,
                "bucket": record.bucket,
                "key": record.key,
                "dataset_id": record.dataset_id,
            }
            for record in shown
        ]
        lines = [
            f"{r['issued_at']}  {r['via']:<8} {r['actor']}  {r['remote_addr'] or '-'}  "
            f"{r['key']}  until {r['expires_at']}"
            for r in rows
        ]
        summary = f"first {len(shown)} of {total}" if total > len(shown) else f"{total}"
        lines.append(f"{summary} link record(s).")
        self.emit({"records": rows, "total": total, "truncated": total > len(shown)}, lines)

"""Find and abort stale multipart uploads in every configured bucket of both stores.

A multipart upload that never completes (the process or the server died mid-transfer,
so s3transfer could not abort it) keeps its parts on the server, invisible to
``list_objects`` and billed on R2/S3, until someone aborts it. Run this from cron.

Browser uploads (:mod:`dual_storage_app.uploads`) are the exception while their session
lives: they are kept until the session expires, whatever their age, and then aborted
with it. The command also runs the read-back check of a completed browser upload whose
check never finished (its process died), so no dataset stays "verifying".
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timezone
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.client import without_secrets
from dual_storage_app.exceptions import DualStorageError
from dual_storage_app.kinds import KINDS
from dual_storage_app.management._common import (
    StorageCommand,
    store_and_bucket,
)
from dual_storage_app.store import MultipartUpload, Store
from dual_storage_app.uploads.cancelling import abort_expired
from dual_storage_app.uploads.checking import check_unfinished
from dual_storage_app.uploads.session import UploadSession

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)


def duration(text: str) -> int:
    """argparse type: ``24h``, ``30m``, ``3600s``, ``2d`` or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use e.g. 24h, 30m, 3600s, 2d or 0"
        )
    return int(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def human_age(seconds: float) -> str:
    """``93784`` -> ``1d 2h 3m``; under a minute, whole seconds."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if days or hours else []
    return " ".join([*parts, f"{rest // 60}m"])


def stale_uploads(store: Store, bucket: str, now: datetime) -> list[dict[str, Any]]:
    """Every incomplete multipart upload in ``bucket``, oldest first, as report rows."""
    found = [
        {
            "store": upload.store,
            "bucket": upload.bucket,
            "key": upload.key,
            "upload_id": upload.upload_id,
            "initiated": upload.initiated.isoformat() if upload.initiated else None,
            "age_seconds": (
                None
                if upload.initiated is None
                else max(0, round((now - upload.initiated).total_seconds()))
            ),
        }
        for upload in store.multipart_uploads(bucket)
    ]
    return sorted(found, key=lambda u: -(u["age_seconds"] or 0))


def abort(store: Store, upload: dict[str, Any]) -> str:
    """Abort one upload; ``"aborted"``, or ``"gone"`` if it completed or was aborted since."""
    target = MultipartUpload(
        store=store.name,
        bucket=upload["bucket"],
        key=upload["key"],
        upload_id=upload["upload_id"],
        initiated=None,
    )
    return "aborted" if store.abort_multipart_upload(target) else "gone"


class Command(StorageCommand):
    help = (
        "List incomplete multipart uploads in every configured bucket of both stores and "
        "abort those older than --older-than (default 24h); a browser upload is kept until "
        "its session expires. Reports store, bucket, key, upload id and age, and checks "
        "completed browser uploads whose check never finished. Exits non-zero if a store "
        "cannot be listed or an abort fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--older-than",
            type=duration,
            default=duration("24h"),
            metavar="DURATION",
            help="Abort uploads started at least this long ago: 24h (default), 30m, 3600s, "
            "2d; 0 aborts every incomplete upload (including one in progress right now).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only list; abort nothing.")

    def handle(self, *args: Any, older_than: int, dry_run: bool, **options: Any) -> None:
        targets: dict[tuple[str, str], Store] = {}
        for kind in KINDS:
            store, bucket = store_and_bucket(kind)
            targets.setdefault((store.name, bucket), store)
        now = datetime.now(timezone.utc)
        uploads: list[dict[str, Any]] = []
        failures: list[str] = []
        expired = [str(session.pk) for session in abort_expired(dry_run=dry_run)]
        resumable = dict(
            UploadSession.objects.filter(
                state=UploadSession.State.ACTIVE, expires_at__gt=now
            ).values_list("upload_id", "expires_at")
        )
        for (_, bucket), store in targets.items():
            try:
                found = stale_uploads(store, bucket, now)
            except DualStorageError as exc:
                failures.append(without_secrets(str(exc)))
                continue
            for upload in found:
                age = upload["age_seconds"]
                if upload["upload_id"] in resumable:
                    upload["action"] = "kept"
                    upload["resumable_until"] = resumable[upload["upload_id"]].isoformat()
                elif age is not None and age < older_than:
                    upload["action"] = "kept"
                elif dry_run:
                    upload["action"] = "would abort"
                else:
                    try:
                        upload["action"] = abort(store, upload)
                    except DualStorageError as exc:
                        upload["action"] = "failed"
                        failures.append(without_secrets(str(exc)))
                uploads.append(upload)
        checked = {} if dry_run else check_unfinished()
        lines = [*map(self._line, uploads), self._summary(uploads, dry_run, older_than)]
        if expired:
            verb = "would abort" if dry_run else "aborted"
            lines.append(f"Browser upload sessions expired ({verb}): {len(expired)}.")
        if checked:
            lines.append(f"Browser uploads checked: {checked}.")
        self.emit(
            {
                "dry_run": dry_run,
                "older_than_seconds": older_than,
                "uploads": uploads,
                "aborted": sum(u["action"] == "aborted" for u in uploads),
                "expired_sessions": expired,
                "checked": checked,
                "errors": failures,
            },
            lines,
        )
        if failures:
            raise CommandError(f"{len(failures)} store operation(s) failed: " + " ".join(failures))

    def _line(self, upload: dict[str, Any]) -> str:
        age = "?" if upload["age_seconds"] is None else human_age(upload["age_seconds"])
        until = upload.get("resumable_until")
        note = f"  (browser upload, resumable until {until})" if until else ""
        return (
            f"{upload['action']:<11}  {upload['store']:<8}  {upload['bucket']}  {upload['key']}"
            f"  upload {upload['upload_id']}  age {age}{note}"
        )

    def _summary(self, uploads: list[dict[str, Any]], dry_run: bool, older_than: int) -> str:
        limit = human_age(older_than)
        if dry_run:
            due = sum(u["action"] == "would abort" for u in uploads)
            text = f"Dry run: {due} of {len(uploads)} incomplete upload(s) are {limit} or older."
        else:
            done = sum(u["action"] == "aborted" for u in uploads)
            text = f"Aborted {done} of {len(uploads)} incomplete upload(s) {limit} or older."
        return self.style.SUCCESS(text)

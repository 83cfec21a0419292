"""Reconcile the artifact rows with the stores: missing, changed and orphaned objects."""

from __future__ import annotations

from typing import Any, cast

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.catalog import is_publication
from dual_storage_app.exceptions import DualStorageError, ObjectNotFound
from dual_storage_app.kinds import KINDS, ArtifactKind
from dual_storage_app.management._common import (
    StorageCommand,
    command_errors,
    store_and_bucket,
)
from dual_storage_app.models import ARTIFACT_MODELS, Artifact


class Command(StorageCommand):
    help = (
        "Check every artifact row against its store: re-read each object and compare its "
        "SHA-256 and size (--quick: size and ETag from a HEAD only), and list objects "
        "that no row points at (--orphans). Exits non-zero if anything is wrong."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--kind",
            dest="kinds",
            action="append",
            choices=KINDS,
            help="Only this kind (repeatable; default: all four).",
        )
        parser.add_argument(
            "--quick", action="store_true", help="HEAD only: size and ETag, no re-read."
        )
        parser.add_argument(
            "--orphans", action="store_true", help="Also list objects without a row."
        )

    def handle(
        self, *args: Any, kinds: list[str] | None, quick: bool, orphans: bool, **options: Any
    ) -> None:
        problems: list[dict[str, Any]] = []
        checked = 0
        for kind in kinds or KINDS:
            manager: Any = ARTIFACT_MODELS[cast(ArtifactKind, kind)]._default_manager
            for row in manager.order_by("pk").iterator():
                checked += 1
                problem = self._check(row, quick=quick)
                if problem is not None:
                    problems.append(
                        {"kind": kind, "id": row.pk, "key": row.key, "problem": problem}
                    )
                    self.note(self.style.ERROR(f"{kind} #{row.pk} {row.key}: {problem}"))
            if orphans:
                problems += self._orphans(kind)
        summary = f"Checked {checked} row(s): {len(problems)} problem(s)."
        self.emit(
            {"checked": checked, "problems": problems},
            [self.style.SUCCESS(summary) if not problems else summary],
        )
        if problems:
            raise CommandError(f"{len(problems)} artifact problem(s) found; see above.")

    def _check(self, row: Artifact, *, quick: bool) -> str | None:
        try:
            store, bucket = row.location()
            if quick:
                info = store.head(bucket, row.key)
                if info.size != row.size or (row.etag and info.etag != row.etag):
                    return f"changed in the store (size {info.size}, ETag {info.etag})"
                return None
            read = store.hash_object(bucket, row.key)
            size, sha256 = read.size, read.sha256
        except ObjectNotFound:
            return "missing: no object at its key"
        except DualStorageError as exc:
            return row.describe_failure(exc)
        if (size, sha256) != (row.size, row.sha256):
            return f"changed in the store (size {size}, SHA-256 {sha256[:12]})"
        return None

    def _orphans(self, kind: str) -> list[dict[str, Any]]:
        store, bucket = store_and_bucket(kind)
        manager: Any = ARTIFACT_MODELS[cast(ArtifactKind, kind)]._default_manager
        known = set(manager.values_list("file", flat=True))
        found: list[dict[str, Any]] = []
        with command_errors():
            for info in store.list(bucket):
                if info.key not in known and not is_publication(cast(ArtifactKind, kind), info.key):
                    found.append({"kind": kind, "key": info.key, "problem": "orphan: no row"})
                    self.note(self.style.WARNING(f"{kind} {info.key}: orphan (no row)"))
        return found

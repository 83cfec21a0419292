"""Reconcile the artifact rows with the stores: missing, changed and orphaned objects."""

from __future__ import annotations

from typing import Any, cast

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.catalog import is_publication
from dual_storage_app.kinds import KINDS, ArtifactKind
from dual_storage_app.management._common import (
    StorageCommand,
    command_errors,
    store_and_bucket,
)
from dual_storage_app.models import ARTIFACT_MODELS
from dual_storage_app.owned_keys import OwnedKeys
from dual_storage_app.verification import check_artifacts


class Command(StorageCommand):
    help = (
        "Check every artifact row against its store: re-read each object (16 at a time) and "
        "compare its SHA-256 and size (--quick: size and ETag from a HEAD only), and list objects "
        "that no row points at (--orphans). Exits non-zero if anything is wrong."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        self.add_kinds_option(parser)
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
            rows = manager.order_by("pk").iterator()
            for row, verdict in check_artifacts(rows, quick=quick):
                checked += 1
                problem = verdict.problem
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

    def _orphans(self, kind: str) -> list[dict[str, Any]]:
        store, bucket = store_and_bucket(kind)
        manager: Any = ARTIFACT_MODELS[cast(ArtifactKind, kind)]._default_manager
        known = set(manager.values_list("file", flat=True))
        owned = OwnedKeys.load(cast(ArtifactKind, kind))
        found: list[dict[str, Any]] = []
        with command_errors():
            for info in store.list(bucket):
                if info.key in known or info.key in owned:
                    continue
                if not is_publication(cast(ArtifactKind, kind), info.key):
                    found.append({"kind": kind, "key": info.key, "problem": "orphan: no row"})
                    self.note(self.style.WARNING(f"{kind} {info.key}: orphan (no row)"))
        return found

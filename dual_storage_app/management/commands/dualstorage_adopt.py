"""Register objects that have no artifact row (written by a process without Django, by
another tool, or before the catalog existed): each is read once to hash it."""

from __future__ import annotations

from typing import Any, cast

from django.core.management.base import CommandParser

from dual_storage_app.adoption import PUBLISHED, adopt_object, known_frameworks, reason_to_skip
from dual_storage_app.kinds import KINDS, ArtifactKind
from dual_storage_app.management._common import (
    StorageCommand,
    command_errors,
    size_text,
    store_and_bucket,
)
from dual_storage_app.models import ARTIFACT_MODELS
from dual_storage_app.owned_keys import OwnedKeys


class Command(StorageCommand):
    help = (
        "Give every object without an artifact row a row: each is read once to measure "
        "its size and SHA-256 (with its ETag and type), then recorded as the client "
        "records its writes. Objects that have a row are left alone, so a run that was "
        "stopped resumes where it was. --dry-run lists what would be adopted. Keys the "
        "app would refuse and folder markers are reported, not adopted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        self.add_kinds_option(parser)
        parser.add_argument("--prefix", default="", help="Only keys starting with this.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be adopted; change nothing."
        )

    def handle(
        self, *args: Any, kinds: list[str] | None, prefix: str, dry_run: bool, **options: Any
    ) -> None:
        adopted: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        known = 0
        for kind in cast(list[ArtifactKind], kinds or list(KINDS)):
            store, bucket = store_and_bucket(kind)
            manager: Any = ARTIFACT_MODELS[kind]._default_manager
            rows = set(manager.values_list("file", flat=True))
            frameworks = known_frameworks(kind)
            owned = OwnedKeys.load(kind)
            with command_errors():
                for info in store.list(bucket, prefix):
                    if info.key in rows:
                        known += 1
                        continue
                    reason = reason_to_skip(kind, info.key, frameworks, owned)
                    if reason is not None:
                        if reason != PUBLISHED:
                            skipped.append({"kind": kind, "key": info.key, "reason": reason})
                            self.note(self.style.WARNING(f"skipped {kind} {info.key}: {reason}"))
                        else:
                            known += 1
                        continue
                    entry = {"kind": kind, "key": info.key, "size": info.size}
                    if not dry_run:
                        row = adopt_object(kind, store, bucket, info.key)
                        if row is None:  # deleted since the listing
                            continue
                        entry.update(size=row.size, sha256=row.sha256, id=row.pk)
                        if kind == "schemas":
                            frameworks.add(getattr(row, "framework", ""))
                    adopted.append(entry)
                    verb = "would adopt" if dry_run else "adopted"
                    self.note(f"{verb:<11} {kind:<11} {info.key}  ({size_text(info.size)})")
        total = sum(int(entry["size"]) for entry in adopted)
        verb = "Would adopt" if dry_run else "Adopted"
        summary = (
            f"{verb} {len(adopted)} object(s), {size_text(total)}; {known} already had a "
            f"row; {len(skipped)} skipped."
        )
        self.emit(
            {
                "dry_run": dry_run,
                "adopted": adopted,
                "skipped": skipped,
                "already_recorded": known,
                "bytes": total,
            },
            [self.style.SUCCESS(summary)],
        )

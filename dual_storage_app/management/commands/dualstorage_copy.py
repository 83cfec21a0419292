"""Copy an artifact to another kind (and so, maybe, another store), verified."""

from __future__ import annotations

from typing import Any, cast

from django.core.management.base import CommandParser

from dual_storage_app.kinds import KINDS, ArtifactKind
from dual_storage_app.management._common import StorageCommand, command_errors, size_text
from dual_storage_app.moving.promotion import copy_artifact


class Command(StorageCommand):
    help = (
        "Copy the artifact SOURCE_KIND SOURCE_KEY to TARGET_KIND TARGET_KEY: server-side "
        "when both kinds live on one server, streamed otherwise; the copy is read back and "
        "must match the source row's SHA-256, then gets its own row. An existing target "
        "is never replaced."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("source_kind", choices=KINDS)
        parser.add_argument("source_key")
        parser.add_argument("target_kind", choices=KINDS)
        parser.add_argument("target_key")

    def handle(
        self,
        *args: Any,
        source_kind: str,
        source_key: str,
        target_kind: str,
        target_key: str,
        **options: Any,
    ) -> None:
        with command_errors():
            row, outcome = copy_artifact(
                cast(ArtifactKind, source_kind),
                source_key,
                cast(ArtifactKind, target_kind),
                target_key,
            )
        self.emit(
            {
                "id": row.pk,
                "kind": target_kind,
                "key": row.key,
                "bucket": row.bucket,
                "size": row.size,
                "sha256": row.sha256,
                "method": outcome.method,
            },
            [
                self.style.SUCCESS(
                    f"Copied {source_kind} {source_key} to {target_kind} {row.key} "
                    f"({size_text(row.size)}, {outcome.method}, SHA-256 {row.sha256[:12]}... "
                    "verified)."
                )
            ],
        )

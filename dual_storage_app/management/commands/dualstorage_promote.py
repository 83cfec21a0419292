"""Promote a training checkpoint to a model weight: a verified server-side copy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from dual_storage_app.management._common import StorageCommand, command_errors, size_text
from dual_storage_app.moving.promotion import promote_checkpoint


class Command(StorageCommand):
    help = (
        "Make the checkpoint CHECKPOINT_KEY a model weight (WEIGHT_KEY, default the same "
        "key): copied server-side on the internal store, read back against the "
        "checkpoint's recorded SHA-256, and recorded as a ModelWeight row. An existing "
        "weight is never replaced."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("checkpoint_key")
        parser.add_argument("weight_key", nargs="?")

    def handle(
        self, *args: Any, checkpoint_key: str, weight_key: str | None, **options: Any
    ) -> None:
        with command_errors():
            weight = promote_checkpoint(checkpoint_key, weight_key)
        self.emit(
            {"id": weight.pk, "key": weight.key, "size": weight.size, "sha256": weight.sha256},
            [
                self.style.SUCCESS(
                    f"Promoted {checkpoint_key} to model weight {weight.key} "
                    f"({size_text(weight.size)}, SHA-256 {weight.sha256[:12]}... verified)."
                )
            ],
        )

"""Upload a local file as a new artifact row (weights, checkpoint, schema or dataset)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.client import schema_key
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.management._common import (
    StorageCommand,
    artifact_data,
    check_json,
    check_source,
    command_errors,
    size_text,
)
from dual_storage_app.models import ARTIFACT_MODELS, Artifact, ConfigSchema

# Options that only make sense for some kinds, and those a kind cannot do without.
_ALLOWED = {
    "weights": {"framework"},
    "checkpoints": {"job_id", "epoch", "metrics"},
    "schemas": {"framework"},
    "datasets": set(),
}
_REQUIRED = {"checkpoints": {"job_id"}, "schemas": {"framework"}}


def _metrics(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"loss\": 0.12}'")
    return value


def _epoch(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative whole number")
    return int(text)


class Command(StorageCommand):
    help = (
        "Upload PATH as a new artifact of KIND: the file streams to its store once, and "
        "its row records key, bucket, size, SHA-256 and ETag. Checkpoints need --job-id; "
        "schemas need --framework (an existing framework's schema gets a new version). "
        "An empty file is refused, as the admin's upload form refuses it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        self.add_kind_argument(parser)
        parser.add_argument("path", type=Path, help="The local file to upload.")
        parser.add_argument("--name", help="Display name (default: file name; schemas: framework).")
        parser.add_argument("--framework", help="Schemas (required) and weights: the framework.")
        parser.add_argument("--job-id", help="Checkpoints (required): the training job id.")
        parser.add_argument("--epoch", type=_epoch, help="Checkpoints: the epoch number.")
        parser.add_argument(
            "--metrics", type=_metrics, help="Checkpoints: a JSON object, e.g. '{\"loss\": 0.1}'."
        )

    def handle(
        self, *args: Any, kind: ArtifactKind, path: Path, name: str | None, **options: Any
    ) -> None:
        fields = self._kind_fields(kind, options)
        check_source(kind, path)  # the admin's rule: an empty file is refused
        if kind == "schemas":
            check_json(path)
        artifact, replaced = self._row(kind, fields)
        default = fields["framework"] if kind == "schemas" else path.name
        artifact.name = name or artifact.name or default
        self.store_file(artifact, path)
        verb = "Replaced the file of" if replaced else "Uploaded"
        self.emit(
            {**artifact_data(artifact), "replaced": replaced},
            [
                self.style.SUCCESS(f"{verb} {artifact._meta.verbose_name} #{artifact.pk}."),
                f"key:    {artifact.key}",
                f"bucket: {artifact.bucket} ({artifact.store_name} store)",
                f"size:   {size_text(artifact.size)}",
                f"sha256: {artifact.sha256}",
            ],
        )

    @staticmethod
    def _kind_fields(kind: ArtifactKind, options: dict[str, Any]) -> dict[str, Any]:
        given = {f: options[f] for f in ("framework", "job_id", "epoch", "metrics")}
        given = {f: v for f, v in given.items() if v is not None}
        for field in sorted(set(given) - _ALLOWED[kind]):
            option = "--" + field.replace("_", "-")
            raise CommandError(f"{option} does not apply to {kind}.")
        for field in sorted(_REQUIRED.get(kind, set()) - set(given)):
            raise CommandError(f"Uploading {kind} needs --{field.replace('_', '-')}.")
        if "framework" in given and kind == "schemas":
            with command_errors():
                schema_key(given["framework"])  # a name get_schema() can read back
        return given

    @staticmethod
    def _row(kind: ArtifactKind, fields: dict[str, Any]) -> tuple[Artifact, bool]:
        """A new row, or for a schema of a known framework that framework's row."""
        if kind == "schemas":
            existing = ConfigSchema.objects.filter(framework=fields["framework"]).first()
            if existing is not None:
                return existing, True
        return ARTIFACT_MODELS[kind](**fields), False

"""Seed weights and schemas from a folder; re-running skips what is already stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.client import schema_key
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.management._common import (
    StorageCommand,
    artifact_data,
    check_json,
    command_errors,
)
from dual_storage_app.models import ARTIFACT_MODELS, Artifact
from dual_storage_app.store.hashing import hash_file

ACTIONS = ("created", "replaced", "skipped")


def _visible(path: Path, root: Path) -> bool:
    return path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)


def plan(folder: Path) -> list[tuple[ArtifactKind, str, Path]]:
    """``(kind, name or framework, path)`` for every file the folder convention picks."""
    if not folder.is_dir():
        raise CommandError(f"{str(folder)!r} is not a directory.")
    weights, schemas = folder / "weights", folder / "schemas"
    if not weights.is_dir() and not schemas.is_dir():
        raise CommandError(
            f"Nothing to seed in {str(folder)!r}: expected a weights/ or schemas/ folder in it."
        )
    items: list[tuple[ArtifactKind, str, Path]] = [
        ("weights", path.relative_to(weights).as_posix(), path)
        for path in sorted(weights.rglob("*"))
        if _visible(path, weights)
    ]
    for path in sorted(schemas.glob("*.json")):
        if _visible(path, schemas):
            check_json(path)  # refuse a broken schema before anything is uploaded
            with command_errors():
                schema_key(path.stem)  # and a name get_schema() could not read back
            items.append(("schemas", path.stem, path))
    return items


class Command(StorageCommand):
    help = (
        "Seed artifacts from FOLDER. Convention: every file under FOLDER/weights/ (any "
        "depth) becomes a model weight named by its path below weights/ (e.g. "
        "'yolo/v8n.pt'); every FOLDER/schemas/<framework>.json becomes the config schema "
        "of <framework> (it must be valid JSON). Names starting with '.' are ignored. "
        "Idempotent: a file whose SHA-256 equals the stored row of that name (weights) or "
        "framework (schemas) is skipped; a changed file replaces that row's file (the old "
        "object is deleted after commit); a new file creates a row. Reports created, "
        "replaced and skipped counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("folder", type=Path, help="Folder with weights/ and/or schemas/.")

    def handle(self, *args: Any, folder: Path, **options: Any) -> None:
        counts = dict.fromkeys(ACTIONS, 0)
        items: list[dict[str, Any]] = []
        for kind, ident, path in plan(folder):
            action, row = self._seed_one(kind, ident, path)
            counts[action] += 1
            items.append({"action": action, "path": str(path), **artifact_data(row)})
            self.note(f"{action:<8} {kind:<7} {ident}  ({row.key})")
        summary = ", ".join(f"{counts[action]} {action}" for action in ACTIONS)
        self.emit(
            {**counts, "items": items},
            [self.style.SUCCESS(f"Seeded {folder}: {summary}.")],
        )

    def _seed_one(self, kind: ArtifactKind, ident: str, path: Path) -> tuple[str, Artifact]:
        """Skip, replace or create the row for one file; returns the action and the row.

        The local file is hashed only when a row of the same name and size exists, so a
        new file is read once (by the upload, which hashes it in the same pass)."""
        lookup = {"framework": ident} if kind == "schemas" else {"name": ident}
        rows: Any = ARTIFACT_MODELS[kind]._default_manager.filter(**lookup)
        candidates: Any = rows.filter(size=path.stat().st_size)
        if candidates.exists():
            same: Artifact | None = candidates.filter(sha256=hash_file(path)).first()
            if same is not None:
                return "skipped", same
        row: Artifact | None = rows.order_by("-created_at", "-pk").first()
        action = "replaced" if row is not None else "created"
        if row is None:
            row = ARTIFACT_MODELS[kind](**{"name": ident, **lookup})
        self.store_file(row, path)
        return action, row

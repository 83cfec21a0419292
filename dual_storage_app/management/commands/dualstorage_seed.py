"""Seed artifacts of every kind from a folder; re-running skips what is already stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.client import schema_key
from dual_storage_app.keys import validate_segment
from dual_storage_app.kinds import KINDS, ArtifactKind
from dual_storage_app.management._common import (
    StorageCommand,
    artifact_data,
    check_json,
    check_source,
    command_errors,
)
from dual_storage_app.models import ARTIFACT_MODELS, Artifact
from dual_storage_app.store.hashing import hash_file

ACTIONS = ("created", "replaced", "skipped")


@dataclass(frozen=True)
class SeedItem:
    """One file to seed: its kind and path, the name a new row gets, and the fields that
    find its row on a later run."""

    kind: ArtifactKind
    path: Path
    name: str
    lookup: dict[str, str]  # the row of this file, if any, is the one with these values

    @property
    def label(self) -> str:
        """How the output names it: ``yolo/v8n.pt``, ``job-7/epoch_1.pth``, ``ultralytics``."""
        return "/".join(self.lookup.values())


def _visible(path: Path, root: Path) -> bool:
    return path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)


def _files(root: Path) -> list[tuple[Path, str]]:
    """Every visible file under ``root`` (any depth) and its path below ``root``."""
    return [
        (path, path.relative_to(root).as_posix())
        for path in sorted(root.rglob("*"))
        if _visible(path, root)
    ]


def _by_name(kind: ArtifactKind) -> Callable[[Path], list[SeedItem]]:
    """Weights and datasets: every file, named by its path below the kind's folder."""

    def plan_kind(root: Path) -> list[SeedItem]:
        return [SeedItem(kind, path, name, {"name": name}) for path, name in _files(root)]

    return plan_kind


def _checkpoints(root: Path) -> list[SeedItem]:
    """``checkpoints/<job id>/<file>``: the folder is the job id (one key segment, as
    the model wants it), the rest the name."""
    items = []
    for path, relative in _files(root):
        job_id, slash, name = relative.partition("/")
        if not slash:
            raise CommandError(
                f"Checkpoint {str(path)!r} is not in a job's folder: put it in "
                f"checkpoints/<job id>/{relative}."
            )
        with command_errors():
            validate_segment(job_id, field="job_id", store="internal")
        items.append(SeedItem("checkpoints", path, name, {"job_id": job_id, "name": name}))
    return items


def _schemas(root: Path) -> list[SeedItem]:
    """``schemas/<framework>.json``, named so that get_schema() can read it back."""
    items = []
    for path in sorted(root.glob("*.json")):
        if _visible(path, root):
            with command_errors():
                schema_key(path.stem)
            items.append(SeedItem("schemas", path, path.stem, {"framework": path.stem}))
    return items


# How FOLDER/<kind>/ is read, for every kind of the registry (a test holds it to that).
PLANNERS: dict[ArtifactKind, Callable[[Path], list[SeedItem]]] = {
    "weights": _by_name("weights"),
    "checkpoints": _checkpoints,
    "schemas": _schemas,
    "datasets": _by_name("datasets"),
}


def plan(folder: Path) -> list[SeedItem]:
    """Every file the folder convention picks, each checked (not empty, schemas valid
    JSON) before anything is uploaded; a folder that names no kind is refused."""
    if not folder.is_dir():
        raise CommandError(f"{str(folder)!r} is not a directory.")
    expected = ", ".join(f"{kind}/" for kind in KINDS)
    unknown = sorted(
        entry.name + "/"
        for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in PLANNERS
    )
    loose = sorted(
        entry.name
        for entry in folder.iterdir()
        if not entry.is_dir() and not entry.name.startswith(".")
    )
    if unknown or loose:
        found = [f"unknown folder(s) {', '.join(unknown)}"] if unknown else []
        found += [f"loose file(s) {', '.join(loose)}"] if loose else []
        raise CommandError(
            f"{'; '.join(found)} in {str(folder)!r}: a seed folder holds only {expected} "
            "(names starting with '.' are ignored)."
        )
    present = [kind for kind in KINDS if (folder / kind).is_dir()]
    if not present:
        raise CommandError(f"Nothing to seed in {str(folder)!r}: expected one of {expected}.")
    items = [item for kind in present for item in PLANNERS[kind](folder / kind)]
    for item in items:
        check_source(item.kind, item.path)  # the admin's rule: an empty file is refused
        if item.kind == "schemas":
            check_json(item.path)
    return items


class Command(StorageCommand):
    help = (
        "Seed artifacts from FOLDER, one subfolder per kind: every file under "
        "FOLDER/weights/ or FOLDER/datasets/ (any depth) becomes a model weight or dataset "
        "named by its path below that folder (e.g. 'yolo/v8n.pt'); every file under "
        "FOLDER/checkpoints/<job id>/ a training checkpoint of that job; every "
        "FOLDER/schemas/<framework>.json the config schema of <framework> (it must be "
        "valid JSON). Empty files, other folders and loose files beside them are refused "
        "before anything is stored; names starting with '.' are ignored. Idempotent: a "
        "file whose SHA-256 equals the stored row of that name (schemas: framework; "
        "checkpoints: job and name) is skipped; a changed file replaces that row's file "
        "(the old object is deleted after commit); a new file creates a row. Reports "
        "created, replaced and skipped counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "folder", type=Path, help="Folder with weights/, checkpoints/, schemas/, datasets/."
        )

    def handle(self, *args: Any, folder: Path, **options: Any) -> None:
        counts = dict.fromkeys(ACTIONS, 0)
        items: list[dict[str, Any]] = []
        for item in plan(folder):
            action, row = self._seed_one(item)
            counts[action] += 1
            items.append({"action": action, "path": str(item.path), **artifact_data(row)})
            self.note(f"{action:<8} {item.kind:<11} {item.label}  ({row.key})")
        summary = ", ".join(f"{counts[action]} {action}" for action in ACTIONS)
        self.emit(
            {**counts, "items": items},
            [self.style.SUCCESS(f"Seeded {folder}: {summary}.")],
        )

    def _seed_one(self, item: SeedItem) -> tuple[str, Artifact]:
        """Skip, replace or create the row for one file; returns the action and the row.

        The local file is hashed only when a row of the same name and size exists, so a
        new file is read once (by the upload, which hashes it in the same pass)."""
        rows: Any = ARTIFACT_MODELS[item.kind]._default_manager.filter(**item.lookup)
        candidates: Any = rows.filter(size=item.path.stat().st_size)
        if candidates.exists():
            same: Artifact | None = candidates.filter(sha256=hash_file(item.path)).first()
            if same is not None:
                return "skipped", same
        row: Artifact | None = rows.order_by("-created_at", "-pk").first()
        action = "replaced" if row is not None else "created"
        if row is None:
            row = ARTIFACT_MODELS[item.kind](**{"name": item.name, **item.lookup})
        self.store_file(row, item.path)
        return action, row

"""What the ``dualstorage_*`` commands share: kinds, row lookup, errors and output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, cast

from django.core.files.base import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat
from tqdm import tqdm

from dual_storage_app.client import MAX_SCHEMA_BYTES, dual_storage, schema_problem
from dual_storage_app.exceptions import DualStorageError
from dual_storage_app.kinds import KINDS, ArtifactKind
from dual_storage_app.models import ARTIFACT_MODELS, Artifact
from dual_storage_app.store import Store

from ._progress import transfer_progress

# Kind-specific model fields, shown in output when the row has them.
_EXTRA_FIELDS = ("framework", "job_id", "epoch", "metrics", "description")


def store_and_bucket(kind: str) -> tuple[Store, str]:
    """The store and bucket of ``kind`` (one of :data:`KINDS`, checked by argparse);
    a configuration error becomes a ``CommandError``."""
    with command_errors():
        return dual_storage.locate(cast(ArtifactKind, kind))


def format_size(size: int) -> str:
    """``3000`` -> ``2.9 KB``: Django's ``filesizeformat``, the admin's formatter (1 KB =
    1,024 bytes), with a plain space for a terminal's columns."""
    return str(filesizeformat(size)).replace("\xa0", " ")


def size_text(size: int) -> str:
    """``3000`` -> ``2.9 KB (3000 bytes)``."""
    return f"{format_size(size)} ({size} bytes)"


def positive_int(text: str) -> int:
    """argparse type: an int of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def check_json(path: Path) -> None:
    """Refuse a schema file that is not valid JSON before anything is uploaded."""
    with path.open("rb") as handle:
        problem = schema_problem(handle.read(MAX_SCHEMA_BYTES + 1))
    if problem is not None:
        raise CommandError(f"Schema file {str(path)!r} is not valid JSON: {problem}.")


def existing_file(path: Path) -> Path:
    """``path``, refused with a ``CommandError`` unless it is a file."""
    if not path.is_file():
        raise CommandError(f"{str(path)!r} is not a file.")
    return path


def artifact_data(artifact: Artifact) -> dict[str, Any]:
    """A row as plain JSON-ready values."""
    data: dict[str, Any] = {
        "id": artifact.pk,
        "kind": artifact.kind,
        "name": artifact.name,
        "store": artifact.store_name,
        "bucket": artifact.bucket,
        "key": artifact.key,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "etag": artifact.etag,
        "content_type": artifact.content_type,
        "created_at": artifact.created_at.isoformat() if artifact.created_at else None,
    }
    data.update({f: getattr(artifact, f) for f in _EXTRA_FIELDS if hasattr(artifact, f)})
    return data


def without_secrets(message: str) -> str:
    """Belt and braces: error messages never carry a secret, and this makes sure."""
    try:
        config = dual_storage.config
    except DualStorageError:
        return message
    for secret in (config.internal.secret_key, config.external.secret_key):
        if secret:
            message = message.replace(secret, "***")
    return message


@contextmanager
def command_errors() -> Iterator[None]:
    """Re-raise storage and local file errors as ``CommandError`` (non-zero exit)."""
    try:
        yield
    except DualStorageError as exc:  # names store, bucket and key
        raise CommandError(without_secrets(str(exc))) from exc
    except OSError as exc:  # the local side: unreadable source, unwritable destination
        where = f": {str(exc.filename)!r}" if exc.filename else ""
        raise CommandError(f"Local file error ({exc.strerror or exc}){where}.") from exc


class StorageCommand(BaseCommand):
    """Base of the ``dualstorage_*`` commands: ``--json``, lookups, output, progress."""

    json_output = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON document (for scripts)."
        )

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.json_output = bool(options.get("json"))
        return super().execute(*args, **options)

    @staticmethod
    def add_kind_argument(parser: CommandParser) -> None:
        parser.add_argument(
            "kind",
            choices=KINDS,
            help="weights, checkpoints, schemas (internal store) or datasets (external).",
        )

    @staticmethod
    def add_lookup_arguments(parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", type=positive_int, help="The artifact row's id.")
        which.add_argument("--key", help="The object key in the kind's bucket.")

    def find_artifact(
        self, kind: str, pk: int | None, key: str | None, *, required: bool
    ) -> Artifact | None:
        """The row with ``pk`` or ``key``; ``None`` for an unknown key unless ``required``."""
        model = ARTIFACT_MODELS[cast(ArtifactKind, kind)]
        manager: Any = model._default_manager
        row = cast(
            "Artifact | None",
            manager.filter(pk=pk).first() if pk is not None else manager.filter(file=key).first(),
        )
        if row is None and (required or pk is not None):
            label = model._meta.verbose_name
            what = f"id {pk}" if pk is not None else f"key {key!r}"
            raise CommandError(f"No {label} with {what} in the database.")
        return row

    def emit(self, data: Mapping[str, Any], lines: Iterable[str] = ()) -> None:
        """Write ``data`` as JSON with ``--json``, else the human-readable ``lines``."""
        if self.json_output:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            for line in lines:
                self.stdout.write(line)

    def note(self, line: str) -> None:
        """A human-readable line written as work happens (nothing with ``--json``)."""
        if not self.json_output:
            self.stdout.write(line)

    def progress(self, label: str, total: int | None) -> AbstractContextManager[tqdm[None]]:
        """A progress bar (terminal only, never with ``--json``) fed by the transfers
        started inside the block."""
        return transfer_progress(self.stdout, label, total, quiet=self.json_output)

    def store_file(self, artifact: Artifact, path: Path) -> None:
        """Upload ``path`` through the model (size, SHA-256 and ETag measured on the way)
        and save the row, with a progress bar on a terminal.

        The open file itself is handed over, so the store uploads it by path (parts read
        from disk in parallel, memory flat); the bar hears the bytes sent.
        """
        with command_errors(), path.open("rb") as handle:
            size = path.stat().st_size
            with self.progress(f"Uploading {path.name}", size):
                artifact.file.save(path.name, File(handle, name=path.name), False)
                artifact.save()  # the upload happens here, with the row's INSERT

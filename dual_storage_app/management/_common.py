"""What the ``dualstorage_*`` commands share: kinds, row lookup, errors and output.

Every command is a :class:`StorageCommand`, so every command takes ``--json`` and reports
errors the same way: without it, Django's ``CommandError: ...`` line on stderr; with it,
one JSON object on stderr (:func:`error_report`), and a non-zero exit either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, cast

from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat
from tqdm import tqdm

from dual_storage_app.client import (
    MAX_SCHEMA_BYTES,
    dual_storage,
    schema_problem,
    without_secrets,
)
from dual_storage_app.exceptions import ConfigurationError, DualStorageError
from dual_storage_app.keys import validate_key
from dual_storage_app.kinds import KINDS, ArtifactKind
from dual_storage_app.models import ARTIFACT_MODELS, Artifact
from dual_storage_app.store import Store

from ._progress import transfer_progress

# Kind-specific model fields, shown in output when the row has them.
_EXTRA_FIELDS = ("framework", "job_id", "epoch", "metrics", "description")

# The app's errors, which a command turns into a CommandError. Two trees: a
# misconfiguration is not a storage failure (ConfigurationError is Django's
# ImproperlyConfigured, no DualStorageError), so both are named.
APP_ERRORS: tuple[type[Exception], ...] = (DualStorageError, ConfigurationError)

# The context an error of the app carries, as ``--json`` reports it (None when absent).
_ERROR_CONTEXT = ("store", "bucket", "key", "code", "status")

JSON_FLAG = "--json"


def store_and_bucket(kind: str) -> tuple[Store, str]:
    """The store and bucket of ``kind`` (one of :data:`KINDS`, checked by argparse);
    a configuration error becomes a ``CommandError``."""
    with command_errors():
        return dual_storage.locate(cast(ArtifactKind, kind))


def create_buckets() -> list[dict[str, Any]]:
    """Create every configured bucket that is missing; ``[{store, bucket, created}]``."""
    stores = {bucket: store.name for store, bucket in map(store_and_bucket, KINDS)}
    with command_errors():
        created = dual_storage.create_buckets()
    return [
        {"store": stores.get(bucket), "bucket": bucket, "created": was_created}
        for bucket, was_created in created.items()
    ]


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


def check_source(kind: ArtifactKind, path: Path) -> None:
    """Refuse ``path`` unless it is a file the admin's add form would take as the file of
    a ``kind`` artifact: the check is the form field of the model's ``file`` (an empty
    file is refused with its message, "The submitted file is empty.")."""
    existing_file(path)
    model: Any = ARTIFACT_MODELS[kind]
    field = model._meta.get_field("file").formfield()
    assert field is not None  # a FileField always has a form field
    with command_errors(), path.open("rb") as handle:
        try:
            field.clean(File(handle, name=path.name))
        except ValidationError as exc:
            raise CommandError(f"Refused {str(path)!r}: {' '.join(exc.messages)}") from exc


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


def as_command_error(exc: Exception) -> CommandError:
    """``exc``, one of :data:`APP_ERRORS`, as a ``CommandError`` with its message (the
    caller raises it ``from exc``, which :func:`error_report` reads)."""
    return CommandError(without_secrets(str(exc)))  # names store, bucket and key


@contextmanager
def command_errors() -> Iterator[None]:
    """Re-raise the app's and local file errors as ``CommandError`` (non-zero exit)."""
    try:
        yield
    except APP_ERRORS as exc:
        raise as_command_error(exc) from exc
    except OSError as exc:  # the local side: unreadable source, unwritable destination
        where = f": {str(exc.filename)!r}" if exc.filename else ""
        raise CommandError(f"Local file error ({exc.strerror or exc}){where}.") from exc


def error_report(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}``: what ``--json`` writes to stderr for ``exc``.

    ``type`` is the app's error behind a ``CommandError`` when there is one
    (``ObjectNotFound``, ``AccessDenied``, ``ConfigurationError``...), else the
    ``CommandError``'s own class (``CommandError``, ``SystemCheckError``); ``message`` is
    the line the command would print without ``--json``; ``store``, ``bucket``, ``key``,
    ``code`` (the S3 error code) and ``status`` (HTTP) are ``null`` where unknown; a
    misconfiguration adds its ``check_ids``.
    """
    source = next((e for e in (exc, exc.__cause__) if isinstance(e, APP_ERRORS)), exc)
    report: dict[str, Any] = {
        "type": error_type or type(source).__name__,
        "message": without_secrets(str(exc)),
        **{name: getattr(source, name, None) for name in _ERROR_CONTEXT},
    }
    check_ids = getattr(source, "check_ids", None)
    if check_ids:
        report["check_ids"] = list(check_ids)
    return {"error": report}


class StorageCommand(BaseCommand):
    """Base of the ``dualstorage_*`` commands: ``--json``, errors, lookups, output,
    progress."""

    json_output = False
    _json_in_argv = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            JSON_FLAG,
            action="store_true",
            help="Print one JSON document on stdout, and an error as one JSON object on "
            "stderr (for scripts).",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        # Known before the arguments are parsed, so a usage error can be JSON too.
        self._json_in_argv = JSON_FLAG in argv[2:]
        super().run_from_argv(argv)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if self._json_in_argv and parser.called_from_command_line:
            # CommandParser has no hook for how a usage error is shown: on the command
            # line argparse prints the usage and exits 2. Same exit, the error as JSON.
            parser.error = partial(self._usage_error, parser)  # type: ignore[method-assign]
        return parser

    def _usage_error(self, parser: CommandParser, message: str) -> NoReturn:
        report = error_report(CommandError(message), "UsageError")
        report["error"]["usage"] = parser.format_usage().strip()
        self._write_error(report)
        parser.exit(2)

    def execute(self, *args: Any, **options: Any) -> str | None:
        """Run the command; an error of the app becomes a ``CommandError``, and with
        ``--json`` every ``CommandError`` is also written to stderr as JSON (from the
        command line the process then exits with its return code; ``call_command``
        still raises it)."""
        self.json_output = bool(options.get("json"))
        try:
            try:
                return super().execute(*args, **options)
            except APP_ERRORS as exc:  # one that escaped command_errors()
                raise as_command_error(exc) from exc
        except CommandError as exc:
            if not self.json_output or options.get("traceback"):
                raise
            self._write_error(error_report(exc))
            if getattr(self, "_called_from_command_line", False):  # set by run_from_argv
                sys.exit(exc.returncode)  # as BaseCommand.run_from_argv would, minus its line
            raise

    def _write_error(self, report: Mapping[str, Any]) -> None:
        self.stderr.write(json.dumps(report, default=str), style_func=lambda text: text)

    @staticmethod
    def add_kind_argument(parser: CommandParser) -> None:
        parser.add_argument(
            "kind",
            choices=KINDS,
            help="weights, checkpoints, schemas (internal store) or datasets (external).",
        )

    @staticmethod
    def add_kinds_option(
        parser: argparse.ArgumentParser,
        help_text: str = "Only this kind (repeatable; default: all four).",
    ) -> None:
        """``--kind K`` (repeatable, into ``kinds``): the artifact kinds to work on."""
        parser.add_argument("--kind", dest="kinds", action="append", choices=KINDS, help=help_text)

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
        if key is not None:
            # Refused before the lookup, as the store would refuse it: a key with NUL is
            # not even a value PostgreSQL can compare.
            store, bucket = dual_storage.locate(cast(ArtifactKind, kind))
            validate_key(key, store=store.name, bucket=bucket)
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

    def emit(
        self, data: Mapping[str, Any], lines: Iterable[str] = (), *, event: bool = False
    ) -> None:
        """Write ``data`` as JSON with ``--json``, else the human-readable ``lines``.

        ``event``: ``data`` is one event of a stream (JSON lines: one compact line each,
        flushed at once) rather than the command's one document."""
        if self.json_output:
            self.stdout.write(json.dumps(data, indent=None if event else 2, default=str))
        else:
            for line in lines:
                self.stdout.write(line)
        if event:
            self.stdout.flush()

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

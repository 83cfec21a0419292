"""Download an artifact to a local file, atomically, verifying its recorded SHA-256."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.folder_download import download_folder
from dual_storage_app.management._common import (
    StorageCommand,
    command_errors,
    size_text,
    store_and_bucket,
)
from dual_storage_app.manifests import is_manifest
from dual_storage_app.models import Dataset


class Command(StorageCommand):
    help = (
        "Download an artifact of KIND, chosen by --id or --key, to DEST (a file, or a "
        "directory to keep the key's file name). The bytes land in a temporary file that "
        "replaces DEST only when complete; when a row exists its SHA-256 is verified first. "
        "A folder dataset (its key is its manifest) fills the directory DEST, every file "
        "verified against the manifest."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        self.add_kind_argument(parser)
        self.add_lookup_arguments(parser)
        parser.add_argument("dest", type=Path, help="Destination file or directory.")

    def handle(
        self, *args: Any, kind: str, id: int | None, key: str | None, dest: Path, **options: Any
    ) -> None:
        row = self.find_artifact(kind, id, key, required=False)
        key = row.key if row is not None else str(key)
        refusal = row.link_refusal() if isinstance(row, Dataset) else None
        if refusal is not None:
            raise CommandError(refusal)
        if kind == "datasets" and is_manifest(key):
            self._download_folder(row, key, dest)
            return
        if dest.is_dir():
            dest = dest / posixpath.basename(key)
        expected = row.sha256 if row is not None and row.sha256 else None
        store, bucket = store_and_bucket(kind)
        with command_errors():
            total = row.size if row is not None else store.head(bucket, key).size
            with self.progress(f"Downloading {dest.name}", total):
                result = store.download(bucket, key, dest, expected_sha256=expected)
        self.emit(
            {
                "id": row.pk if row is not None else None,
                "kind": kind,
                "store": result.store,
                "bucket": result.bucket,
                "key": result.key,
                "dest": str(dest),
                "size": result.size,
                "sha256": result.sha256,
                "verified": expected is not None,
            },
            [
                self.style.SUCCESS(f"Downloaded {result.key} to {dest}."),
                f"size:   {size_text(result.size)}",
                f"sha256: {result.sha256}"
                + (" (verified)" if expected else " (no row: not verified)"),
            ],
        )

    def _download_folder(self, row: Any, key: str, dest: Path) -> None:
        expected = row.sha256 if row is not None and row.sha256 else None
        store, bucket = store_and_bucket("datasets")
        with command_errors():
            result = download_folder(store, bucket, key, dest, expected_sha256=expected)
        count = row.file_count if row is not None else None
        self.emit(
            {
                "id": row.pk if row is not None else None,
                "kind": "datasets",
                "store": result.store,
                "bucket": result.bucket,
                "key": result.key,
                "dest": str(dest),
                "size": result.size,
                "sha256": result.sha256,
                "files": count,
                "verified": True,
            },
            [
                self.style.SUCCESS(f"Downloaded the folder {key} into {dest}."),
                f"size:   {size_text(result.size)}",
                "every file verified against the manifest"
                + (" (and the manifest against the row)" if expected else ""),
            ],
        )

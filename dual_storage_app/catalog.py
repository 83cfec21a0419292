"""One catalog of every artifact: the client's writes recorded as artifact rows.

Installed on the client by the app's ``ready()`` (:func:`install`), so a process where
Django is set up with the app installed records every ``upload_*`` in the row of that
bucket and key, and a process without Django (a training worker with only the
environment) records nothing; ``manage.py dualstorage_adopt`` registers what it wrote.

A row made here points at the key the client wrote (``resnet50.pth``, not a model's
``weights/<hex>/...`` key); the object was already stored and measured in the same pass
(size, SHA-256, ETag, type), so nothing is uploaded twice. A schema goes through
``ConfigSchema``: a new version of the framework's row, published as ``<framework>.json``
(put back if the transaction rolls back), so the admin and ``get_schema`` show one version.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Sequence
from functools import partial
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction

from ._consistency import delete_on_rollback, delete_quietly, on_rollback
from .client import SCHEMA_CONTENT_TYPE, Catalog, install_catalog
from .keys import segment_problem
from .kinds import REGISTRY, ArtifactKind
from .manifests import ManifestEntry, folder_prefix
from .models import ARTIFACT_MODELS, Artifact, ConfigSchema, Dataset, DatasetFile
from .store import Store, TransferResult

logger = logging.getLogger(__name__)

_NAME_LENGTH = 255  # Artifact.name's max_length
_EPOCH = re.compile(r"epoch[_-]?(\d+)", re.IGNORECASE)


def is_publication(kind: ArtifactKind, key: str) -> bool:
    """True for ``<framework>.json`` at the top of the schemas bucket: the published
    copy of a ``ConfigSchema`` row's version, which needs no row of its own."""
    return kind == "schemas" and "/" not in key


def schema_framework(key: str) -> str:
    """The framework a key of the schemas bucket belongs to: ``<framework>.json`` at the
    top, or ``schemas/<framework>/...`` (a version the models wrote)."""
    prefix = f"{REGISTRY['schemas'].key_prefix}/"
    if key.startswith(prefix) and key.count("/") >= 2:
        return key.split("/")[1]
    return posixpath.basename(key).removesuffix(".json")


def identity(kind: ArtifactKind, key: str) -> dict[str, Any]:
    """The fields a new row for ``key`` gets besides what was measured: its name and,
    for a checkpoint under ``jobs/<job id>/``, the job id and an epoch read from
    ``epoch_10`` in its name (a key outside that layout gets an empty job id)."""
    fields: dict[str, Any] = {"name": key[-_NAME_LENGTH:]}
    if kind == "checkpoints":
        prefix = f"{REGISTRY['checkpoints'].key_prefix}/"
        job, slash, rest = key.removeprefix(prefix).partition("/")
        in_layout = key.startswith(prefix) and slash and segment_problem(job) is None
        fields["job_id"] = job if in_layout else ""
        if in_layout:
            fields["name"] = rest[-_NAME_LENGTH:]
        epoch = _EPOCH.search(posixpath.basename(key))
        fields["epoch"] = int(epoch.group(1)) if epoch else None
    if kind == "schemas":
        fields["framework"] = schema_framework(key)
        fields["name"] = fields["framework"]
    return fields


def measured(result: TransferResult) -> dict[str, Any]:
    """The row fields measured by a transfer (or a read) of the object."""
    return {
        "bucket": result.bucket,
        "size": result.size,
        "sha256": result.sha256,
        "etag": result.etag,
        "content_type": result.content_type or "",
    }


def register(kind: ArtifactKind, result: TransferResult) -> tuple[Artifact, bool]:
    """Create or update the row of ``result.key`` from what was measured; return the
    row and whether it was created. Concurrent calls for one key make one row."""
    manager: Any = ARTIFACT_MODELS[kind]._default_manager
    with transaction.atomic(using=manager.db):
        row, created = manager.update_or_create(
            file=result.key,
            defaults=measured(result),
            create_defaults={**measured(result), **identity(kind, result.key)},
        )
    return row, created


def register_folder(result: TransferResult, files: Sequence[ManifestEntry]) -> tuple[Dataset, bool]:
    """Create or update the folder ``Dataset`` row of the manifest ``result.key`` as a
    browser's folder ends up once read back ("ready", its file count, the manifest's
    SHA-256, the files' total size) and replace its ``DatasetFile`` rows with ``files``,
    in one transaction; return the row and whether it was created."""
    fields = {
        **measured(result),
        "status": Dataset.Status.READY,
        "file_count": len(files),
    }
    name = folder_prefix(result.key).removesuffix("/")[-_NAME_LENGTH:]
    manager: Any = Dataset._default_manager
    with transaction.atomic(using=manager.db):
        row, created = manager.update_or_create(
            file=result.key, defaults=fields, create_defaults={**fields, "name": name}
        )
        if not created:
            DatasetFile.objects.filter(dataset=row).delete()
        DatasetFile.objects.bulk_create(
            [DatasetFile(dataset=row, path=f.path, size=f.size, sha256=f.sha256) for f in files],
            batch_size=1000,
        )
    return row, created


def _delete_folder(
    store: Store, bucket: str, manifest_key: str, files: Sequence[ManifestEntry]
) -> None:
    """Delete a folder dataset's manifest and files (its row was rolled back)."""
    delete_quietly(store, bucket, manifest_key)
    prefix = folder_prefix(manifest_key)
    for entry in files:
        delete_quietly(store, bucket, prefix + entry.path)


def _report_rolled_back_update(result: TransferResult) -> None:
    """A rollback took back the update of a row whose object already holds the new bytes
    (a store write cannot be rolled back). Runs while Django is still leaving the
    transaction, where no query may be made, so it says what to do rather than fix it."""
    logger.error(
        "A rollback took back the row of %s/%s on the %s store, but the object already "
        "holds the bytes written in that transaction (SHA-256 %s): dualstorage_verify "
        "reports it as changed; record it with the admin's 'Accept the stored content' or "
        "by writing it again.",
        result.bucket,
        result.key,
        result.store,
        result.sha256[:12],
    )


class ModelCatalog:
    """The artifact models as the client's :class:`~.client.Catalog`.

    Inside a transaction that rolls back, the object of a row the write created is
    deleted with it, as the models do (no object without a row). A row it updated goes
    back to the bytes it recorded while the object keeps the new ones (a store write
    cannot be rolled back): that is logged as an error naming the key, and
    ``dualstorage_verify`` reports the row as changed."""

    def record(self, kind: ArtifactKind, store: Store, result: TransferResult) -> None:
        row, created = register(kind, result)
        using = row._state.db or "default"
        if created:
            delete_on_rollback(store, result.bucket, result.key, using=using)
        else:
            on_rollback(partial(_report_rolled_back_update, result), using=using)

    def record_folder(
        self, store: Store, result: TransferResult, files: Sequence[ManifestEntry]
    ) -> None:
        row, created = register_folder(result, files)
        using = row._state.db or "default"
        if created:
            cleanup = partial(_delete_folder, store, result.bucket, result.key, list(files))
            on_rollback(cleanup, using=using)
        else:
            on_rollback(partial(_report_rolled_back_update, result), using=using)

    def forget(self, kind: ArtifactKind, key: str) -> None:
        # The post_delete handler deletes the (already deleted) object again after
        # commit, which a store answers as a success.
        manager: Any = ARTIFACT_MODELS[kind]._default_manager
        manager.filter(file=key).delete()

    def write_schema(self, framework: str, data: bytes) -> TransferResult:
        row = ConfigSchema.objects.filter(framework=framework).first()
        if row is None:
            row = ConfigSchema(framework=framework, name=framework)
        row.file.save(f"{framework}.json", ContentFile(data))
        return TransferResult(
            store="internal",
            bucket=row.bucket,
            key=f"{framework}.json",
            size=row.size,
            sha256=row.sha256,
            etag=row.etag,  # a copy of a single-part object keeps its ETag
            content_type=SCHEMA_CONTENT_TYPE,
        )


def install() -> None:
    """Record the client's writes in the artifact rows (``AppConfig.ready``)."""
    catalog: Catalog = ModelCatalog()
    install_catalog(catalog)

"""The seed's Python API: ``DualStorageClient`` and the lazy process-wide ``dual_storage``.

Internal store (private MinIO): model weights, training checkpoints, config schemas.
External store (R2/S3): training datasets, handed to browsers as presigned URLs.
Internal objects never get a URL. ``get_schema`` reads through a per-process cache
(:mod:`.store.schema_cache`): fresh for ``SCHEMA_CACHE_SECONDS``, then revalidated by ETag.
The client routes an artifact kind to its store and bucket (:mod:`.kinds`); the stores
(:mod:`.store`) do the work.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from django.core.signals import setting_changed
from django.dispatch import receiver

from .config.loading import load_config
from .config.sources import SETTINGS_KEY
from .config.stores import DualStorageSettings
from .exceptions import (
    CatalogError,
    ConfigurationError,
    DualStorageError,
    InvalidArgument,
    InvalidKey,
)
from .folder_download import download_folder
from .folder_upload import upload_folder
from .keys import segment_problem, validate_key
from .kinds import KINDS, ArtifactKind, StoreName
from .links import issue
from .manifests import ManifestEntry, is_manifest
from .store import ObjectInfo, Store, TransferResult
from .store.schema_cache import schema_cache

SCHEMA_CONTENT_TYPE = "application/json"


class Catalog(Protocol):
    """Where client writes are recorded: the artifact rows (:mod:`.catalog`, installed
    when Django is ready). The client knows only this protocol, so it never imports the
    models, and a process without Django records nothing."""

    def record(self, kind: ArtifactKind, store: Store, result: TransferResult) -> None:
        """Create or update the row of ``result``'s bucket and key, which ``store`` holds."""

    def record_folder(
        self, store: Store, result: TransferResult, files: Sequence[ManifestEntry]
    ) -> None:
        """Create or update the folder ``Dataset`` row whose key is ``result``'s manifest,
        "ready", with one ``DatasetFile`` row per file of ``files``, in one transaction."""

    def forget(self, kind: ArtifactKind, key: str) -> None:
        """Delete the rows of a deleted object."""

    def write_schema(self, framework: str, data: bytes) -> TransferResult:
        """Store ``data`` as a new version of ``framework``'s schema row and publish it as
        ``<framework>.json``; return what was published."""


_catalog: Catalog | None = None


def install_catalog(catalog: Catalog | None) -> None:
    """Record every client write in ``catalog`` from now on (``None``: record nothing)."""
    global _catalog
    _catalog = catalog


@dataclass(frozen=True)
class _Bound:
    """A configuration and the two stores built from it."""

    config: DualStorageSettings
    internal: Store
    external: Store

    @classmethod
    def build(cls, config: DualStorageSettings) -> _Bound:
        return cls(config, Store(config.internal), Store(config.external))


class DualStorageClient:
    """Both stores behind one small API. Safe to share between threads.

    Built from ``config``, else from ``overrides`` over Django settings and the
    environment (:mod:`.config.sources`); a bad configuration raises
    ``ConfigurationError`` here."""

    def __init__(
        self,
        config: DualStorageSettings | None = None,
        *,
        overrides: Mapping[str, str | None] | None = None,
    ) -> None:
        self._bound: _Bound | None = _Bound.build(
            config if config is not None else load_config(overrides)
        )

    def _binding(self) -> _Bound:
        assert self._bound is not None
        return self._bound

    @property
    def config(self) -> DualStorageSettings:
        return self._binding().config

    @property
    def internal(self) -> Store:
        return self._binding().internal

    @property
    def external(self) -> Store:
        return self._binding().external

    def __repr__(self) -> str:
        return f"<DualStorageClient internal={self.internal!r} external={self.external!r}>"

    # -- routing ---------------------------------------------------------------

    def store(self, name: StoreName) -> Store:
        return self.internal if name == "internal" else self.external

    def locate(self, kind: ArtifactKind) -> tuple[Store, str]:
        """The store and bucket that hold artifacts of ``kind`` (``InvalidArgument`` for
        an unknown kind)."""
        bound = self._binding()  # once: a concurrent reset() cannot mix two configurations
        store_config = bound.config.store_for(kind)
        store = bound.internal if store_config.name == "internal" else bound.external
        return store, store_config.buckets[kind]

    # -- the catalog ------------------------------------------------------------

    def catalog(self) -> Catalog | None:
        """The catalog this client's writes are recorded in: the installed one, unless
        ``RECORD_CATALOG`` is false."""
        return _catalog if self.config.record_catalog else None

    def _recorded(
        self,
        kind: ArtifactKind,
        store: Store,
        result: TransferResult,
        *,
        files: Sequence[ManifestEntry] | None = None,
    ) -> TransferResult:
        """Record ``result`` (with ``files``: a folder dataset's manifest, listing them)
        in the catalog, if any; the object is kept if that fails."""
        catalog = self.catalog()
        if catalog is not None:
            try:
                if files is None:
                    catalog.record(kind, store, result)
                else:
                    catalog.record_folder(store, result, files)
            except Exception as exc:
                raise CatalogError(
                    f"Stored {result.key!r} in bucket {result.bucket!r} on the "
                    f"{result.store} store, but could not record its row "
                    f"({type(exc).__name__}: {exc}); the object is kept: repeat the write, "
                    "or run `manage.py dualstorage_adopt`.",
                    store=result.store,
                    bucket=result.bucket,
                    key=result.key,
                ) from exc
        return result

    # -- internal: weights and checkpoints -------------------------------------

    def upload_weight(self, file_path: Path | str, weight_key: str) -> TransferResult:
        store, bucket = self.locate("weights")
        result = store.upload_file(bucket, weight_key, Path(file_path))
        return self._recorded("weights", store, result)

    def download_weight(self, weight_key: str, dest_path: Path | str) -> TransferResult:
        store, bucket = self.locate("weights")
        return store.download(bucket, weight_key, Path(dest_path))

    def upload_checkpoint(self, file_path: Path | str, checkpoint_key: str) -> TransferResult:
        store, bucket = self.locate("checkpoints")
        result = store.upload_file(bucket, checkpoint_key, Path(file_path))
        return self._recorded("checkpoints", store, result)

    def download_checkpoint(self, checkpoint_key: str, dest_path: Path | str) -> TransferResult:
        store, bucket = self.locate("checkpoints")
        return store.download(bucket, checkpoint_key, Path(dest_path))

    # -- internal: config schemas ----------------------------------------------

    def upload_schema(self, framework: str, schema: bytes | str) -> TransferResult:
        """Store ``schema`` as ``<framework>.json``; this process's next read sees it.
        With the catalog, it is a new version of the framework's ``ConfigSchema`` row,
        published as ``<framework>.json`` at once (put back if the transaction rolls back)."""
        data = schema.encode("utf-8") if isinstance(schema, str) else bytes(schema)
        store, bucket = self.locate("schemas")
        key = schema_key(framework)
        validate_schema_json(data, framework)  # get_schema() must never serve broken JSON
        catalog = self.catalog()
        if catalog is not None:
            try:
                return catalog.write_schema(framework, data)
            except (DualStorageError, ConfigurationError):
                raise
            except Exception as exc:  # the database: the row, so the version, failed
                raise CatalogError(
                    f"Could not record the schema {framework!r} ({type(exc).__name__}: "
                    f"{exc}); nothing was published.",
                    store=store.name,
                    bucket=bucket,
                    key=key,
                ) from exc
        try:
            return store.upload(bucket, key, io.BytesIO(data), content_type=SCHEMA_CONTENT_TYPE)
        finally:
            schema_cache.invalidate(store, bucket, key)

    def get_schema(self, framework: str) -> bytes:
        """The bytes of ``<framework>.json``, from memory for ``SCHEMA_CACHE_SECONDS`` after
        the store last confirmed them, then revalidated with a conditional GET."""
        store, bucket = self.locate("schemas")
        return schema_cache.get(
            store, bucket, schema_key(framework), self.config.schema_cache_seconds
        )

    # -- external: datasets ----------------------------------------------------

    def upload_dataset(self, file_obj: BinaryIO, dataset_key: str) -> TransferResult:
        store, bucket = self.locate("datasets")
        return self._recorded("datasets", store, store.upload(bucket, dataset_key, file_obj))

    def upload_dataset_folder(self, folder: Path | str, dataset_key: str) -> TransferResult:
        """Upload every file under the directory ``folder`` as the folder dataset
        ``dataset_key``: ``<dataset_key>/<path>`` for each file, in parallel, never
        replacing an object, then its manifest ``<dataset_key>.manifest.json`` (the
        result's key, which :meth:`download_dataset` takes). Paths are checked as a
        browser's are, before anything is sent; on any failure nothing of it is kept.
        With the catalog, its ``Dataset`` row is "ready" and lists every file."""
        store, bucket = self.locate("datasets")
        uploaded = upload_folder(store, bucket, Path(folder), dataset_key)
        return self._recorded("datasets", store, uploaded.result, files=uploaded.files)

    def download_dataset(self, dataset_key: str, dest_path: Path | str) -> TransferResult:
        """Download a dataset to ``dest_path``, verified. A folder dataset (its key is its
        manifest, ``....manifest.json``) goes into the directory ``dest_path``: every
        file in parallel, each checked against the manifest's SHA-256."""
        store, bucket = self.locate("datasets")
        if is_manifest(dataset_key):
            return download_folder(store, bucket, dataset_key, Path(dest_path))
        return store.download(bucket, dataset_key, Path(dest_path))

    def generate_dataset_presigned_url(
        self, dataset_key: str, expiration: int = 3600, *, inline: bool = False
    ) -> str:
        """A GET URL for a browser, signed against ``EXTERNAL_STORAGE_PUBLIC_ENDPOINT``.
        It downloads as an attachment named after the key; ``inline=True`` lets a
        browser show it in place, for types that run nothing (images, PDF, text...)."""
        store, bucket = self.locate("datasets")
        return issue(
            store,
            bucket,
            dataset_key,
            expiration,
            via="client",
            inline=inline,
            record=self.config.link_audit,
        )

    # -- any kind --------------------------------------------------------------

    def exists(self, kind: ArtifactKind, key: str) -> bool:
        store, bucket = self.locate(kind)
        return store.exists(bucket, key)

    def head(self, kind: ArtifactKind, key: str) -> ObjectInfo:
        store, bucket = self.locate(kind)
        return store.head(bucket, key)

    def delete(self, kind: ArtifactKind, key: str) -> None:
        """Delete the object, then (with the catalog) the rows that pointed at it."""
        store, bucket = self.locate(kind)
        try:
            store.delete(bucket, key)
        finally:
            if kind == "schemas":
                schema_cache.invalidate(store, bucket, key)
        catalog = self.catalog()
        if catalog is not None:
            catalog.forget(kind, key)

    def list_objects(self, kind: ArtifactKind, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects of ``kind`` whose key starts with ``prefix``, lazily, page by page."""
        store, bucket = self.locate(kind)
        return store.list(bucket, prefix)

    def create_buckets(self) -> dict[str, bool]:
        """Create every configured bucket that is missing; ``{bucket: created}``."""
        created: dict[str, bool] = {}
        for kind in KINDS:
            store, bucket = self.locate(kind)
            created[bucket] = store.create_bucket(bucket)
        return created


def schema_key(framework: str) -> str:
    """``"ultralytics"`` -> ``"ultralytics.json"``; the one check of a schema name,
    which is one key segment used as it is (no ``/``, ``..``, ``.``, control characters)."""
    problem = segment_problem(framework)
    if problem is not None:
        raise InvalidKey(
            f"Invalid schema name {framework!r}: {problem}; a schema name is one key "
            "segment, used as it is.",
            store="internal",
            key=framework if isinstance(framework, str) else None,
        )
    return validate_key(f"{framework}.json", store="internal")


MAX_SCHEMA_BYTES = 16 * 1024 * 1024  # schemas are ~10 KB; this is read whole to check it


def schema_problem(data: bytes) -> str | None:
    """What makes ``data`` not a JSON document, with its line and column; ``None`` if
    it is one. The one check of schema content, for every write path."""
    if len(data) > MAX_SCHEMA_BYTES:
        return f"it is {len(data)} bytes, more than the {MAX_SCHEMA_BYTES} a schema may have"
    try:
        json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"it is not UTF-8 text (byte {exc.start})"
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    return None


def validate_schema_json(data: bytes, framework: str) -> None:
    """Refuse, before anything is stored, a schema that is not a JSON document."""
    problem = schema_problem(data)
    if problem is not None:
        raise InvalidArgument(
            f"The schema of {framework!r} is not valid JSON: {problem}.", store="internal"
        )


def without_secrets(message: str) -> str:
    """Belt and braces: error messages never carry a secret, and this makes sure (the
    configured stores' secret keys become ``***``)."""
    try:
        config = dual_storage.config
    except (DualStorageError, ConfigurationError):
        return message
    for secret in (config.internal.secret_key, config.external.secret_key):
        if secret:
            message = message.replace(secret, "***")
    return message


def clear_schema_cache() -> None:
    """Forget every cached schema in this process (``get_schema`` asks the store again)."""
    schema_cache.clear()


class LazyDualStorageClient(DualStorageClient):
    """The process-wide client: built from settings on first use, rebuilt after
    :meth:`reset` (which ``DUAL_STORAGE`` changes call)."""

    def __init__(self) -> None:  # no configuration is read until first use
        self._bound = None
        self._lock = threading.Lock()

    def _binding(self) -> _Bound:
        bound = self._bound
        if bound is None:
            with self._lock:
                if self._bound is None:
                    self._bound = _Bound.build(load_config())
                bound = self._bound
        return bound

    def reset(self) -> None:
        """Forget the configuration (read again on next use) and the schema cache."""
        with self._lock:
            self._bound = None
        schema_cache.clear()

    def __repr__(self) -> str:
        if self._bound is None:
            return "<lazy dual_storage: unconfigured>"
        return f"<lazy dual_storage: {super().__repr__()}>"


dual_storage = LazyDualStorageClient()
"""The process-wide client of the README: ``from dual_storage_app.client import dual_storage``."""


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_KEY:
        dual_storage.reset()

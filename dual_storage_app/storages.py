"""Django storages for the two stores: thin ``S3Storage`` subclasses bound to one bucket.

Use them through the callables, so migrations record a function path and never an
endpoint or a secret::

    weights = models.FileField(storage=weights_storage)

or as ``STORAGES`` aliases (``{"BACKEND": "dual_storage_app.storages.InternalStorage",
"OPTIONS": {"kind": "weights"}}``). Policy lives in :mod:`.conf` and :mod:`.store`: keys
are validated (refused, never silently cleaned), saves stream through the hashing,
never-partial upload path, internal files have no URL, external URLs are presigned
against the public endpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.files.base import File
from django.utils.deconstruct import deconstructible
from storages.backends.s3 import S3Storage

from .client import dual_storage
from .conf import KIND_BUCKET_SETTING, ArtifactKind, StoreName, build_store_config, resolve
from .exceptions import ConfigurationError, NoPublicURL
from .keys import validate_key
from .store import MiB, Store, transfer_config

_SPOOL_TO_DISK_AFTER = 8 * MiB  # opened files spill to a temp file beyond this


class _DualStorage(S3Storage):  # type: ignore[misc]
    store_name: ClassVar[StoreName]
    default_kind: ClassVar[ArtifactKind]

    def __init__(self, kind: ArtifactKind | None = None, **options: Any) -> None:
        self.kind: ArtifactKind = kind or self.default_kind
        owner = KIND_BUCKET_SETTING.get(self.kind, (None, None))[0]
        if owner != self.store_name:
            kinds = [k for k, (s, _) in KIND_BUCKET_SETTING.items() if s == self.store_name]
            raise ConfigurationError(
                f"{type(self).__name__} holds {', '.join(kinds)}, not {self.kind!r}.",
                store=self.store_name,
            )
        # Resolve without validating: a misconfiguration is reported by `manage.py check`
        # and raised on first use, never at import time.
        config = build_store_config(self.store_name, resolve())
        defaults: dict[str, Any] = {
            "bucket_name": config.buckets[self.kind],
            "endpoint_url": config.endpoint_url or None,
            "access_key": config.access_key or None,
            "secret_key": config.secret_key or None,
            "region_name": config.region,
            "addressing_style": config.provider.addressing_style,
            "client_config": config.provider.botocore_config(
                max_pool_connections=32, connect_timeout=5, read_timeout=60
            ),
            "transfer_config": transfer_config(),
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
            "max_memory_size": _SPOOL_TO_DISK_AFTER,
        }
        super().__init__(**{**defaults, **options})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind!r} bucket={self.bucket_name!r}>"

    @property
    def store(self) -> Store:
        """The shared store client (one boto3 client per store per process)."""
        return dual_storage.store(self.store_name)

    def _key(self, name: str) -> str:
        return validate_key(str(name), store=self.store_name, bucket=self.bucket_name)

    def _save(self, name: str, content: File[Any]) -> str:
        key = self._key(name)
        if content.seekable():
            content.seek(0)
        self.store.upload(
            self.bucket_name, key, content, content_type=getattr(content, "content_type", None)
        )
        return key

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        return super()._open(self._key(name), mode)  # type: ignore[no-any-return]

    def exists(self, name: str) -> bool:
        return self.store.exists(self.bucket_name, self._key(name))

    def delete(self, name: str) -> None:
        self.store.delete(self.bucket_name, self._key(name))

    def size(self, name: str) -> int:
        return self.store.head(self.bucket_name, self._key(name)).size

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return super().get_available_name(self._key(name), max_length)  # type: ignore[no-any-return]


@deconstructible
class InternalStorage(_DualStorage):
    """Private MinIO: weights, checkpoints, schemas. Never hands out a URL."""

    store_name = "internal"
    default_kind = "weights"

    def url(self, name: str, *args: Any, **kwargs: Any) -> str:
        raise NoPublicURL(
            f"{name!r} is on the internal store, which browsers must never reach; "
            "stream it through the backend instead.",
            store=self.store_name,
            bucket=self.bucket_name,
            key=name,
        )


@deconstructible
class ExternalStorage(_DualStorage):
    """R2/S3 datasets; ``url()`` is a presigned GET against the public endpoint."""

    store_name = "external"
    default_kind = "datasets"

    def url(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        expire: int | None = None,
        http_method: str | None = None,
    ) -> str:
        if http_method not in (None, "GET"):
            raise NoPublicURL(f"Only GET links are issued, not {http_method}.", store="external")
        expiration = self.querystring_expire if expire is None else expire
        return self.store.presign_get(
            self.bucket_name, self._key(name), expiration, extra=parameters
        )


def weights_storage() -> InternalStorage:
    return InternalStorage(kind="weights")


def checkpoints_storage() -> InternalStorage:
    return InternalStorage(kind="checkpoints")


def schemas_storage() -> InternalStorage:
    return InternalStorage(kind="schemas")


def datasets_storage() -> ExternalStorage:
    return ExternalStorage(kind="datasets")

"""Django storages for the two stores: thin ``S3Storage`` subclasses bound to one bucket.

Use them through the callables, so migrations record a function path and never an
endpoint or a secret::

    weights = models.FileField(storage=weights_storage)

or as ``STORAGES`` aliases (``{"BACKEND": "dual_storage_app.storages.InternalStorage",
"OPTIONS": {"kind": "weights"}}``). Policy lives in :mod:`.config` and :mod:`.store`:
keys are validated (refused, never silently cleaned), saves stream through the hashing,
never-partial upload path, opened files are downloaded (verified) to a temporary file on
disk, internal files have no URL, external URLs are presigned against the public
endpoint.
"""

from __future__ import annotations

import posixpath
import tempfile
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.files.base import File
from django.utils import timezone
from django.utils.deconstruct import deconstructible
from storages.backends.s3 import S3Storage

from .client import dual_storage
from .config.sources import resolve
from .exceptions import ConfigurationError, NoPublicURL, ObjectExists, ObjectNotFound
from .keys import validate_key
from .kinds import REGISTRY, ArtifactKind, StoreName, kinds_on
from .store import Store

# Connection settings come from DUAL_STORAGE / the environment, never from options.
_REFUSED_OPTIONS = frozenset(
    {
        "bucket_name",
        "endpoint_url",
        "access_key",
        "secret_key",
        "security_token",
        "session_profile",
        "region_name",
        "default_acl",
        "custom_domain",
        "location",
    }
)

# Saves of one name racing each other: each lost race costs one attempt.
_SAVE_ATTEMPTS = 10


class _DualStorage(S3Storage):  # type: ignore[misc]
    store_name: ClassVar[StoreName]
    default_kind: ClassVar[ArtifactKind]

    def __init__(self, kind: ArtifactKind | None = None, **options: Any) -> None:
        self.kind: ArtifactKind = kind or self.default_kind
        spec = REGISTRY.get(self.kind)
        if spec is None or spec.store != self.store_name:
            kinds = kinds_on(self.store_name)
            raise ConfigurationError(
                f"{type(self).__name__} holds {', '.join(kinds)}, not {self.kind!r}.",
                store=self.store_name,
            )
        refused = sorted(_REFUSED_OPTIONS & set(options))
        if refused:
            raise ConfigurationError(
                f"{type(self).__name__} does not take {', '.join(refused)}: endpoints, "
                "credentials and buckets come from DUAL_STORAGE or the environment.",
                store=self.store_name,
            )
        defaults = {"file_overwrite": False, "querystring_auth": True, "default_acl": None}
        super().__init__(**{**defaults, **options})
        # Informational only (resolved without validation, so imports never fail); every
        # operation asks the shared client for the current store and bucket.
        self.bucket_name = resolve()[spec.bucket_setting].value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind!r}>"

    def _location(self) -> tuple[Store, str]:
        """The shared store and its bucket for this kind (read on every call, so a
        settings change is followed). The store validates every key it is given."""
        return dual_storage.locate(self.kind)

    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        # Our key rules run before Django's own name checks, so every entry point
        # refuses a bad name with the same InvalidKey.
        store, bucket = self._location()
        name = name if name is not None else getattr(content, "name", "")
        validate_key(str(name), store=store.name, bucket=bucket)
        # Without file_overwrite the write is conditional: a save that loses the race for
        # a free name to a concurrent save is told so (ObjectExists, nothing written) and
        # tries an alternative name, the one Django gives a name that exists. (SeaweedFS
        # also refuses a name that is only a prefix of other keys, "a" beside "a/b",
        # which HEAD reports free: an alternative name is the way out there too.)
        candidate = str(name)
        for attempt in range(_SAVE_ATTEMPTS):
            try:
                return super().save(candidate, content, max_length)  # type: ignore[no-any-return]
            except ObjectExists:
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise
                directory, file_name = posixpath.split(str(name))
                root, extension = posixpath.splitext(file_name)
                alternative = self.get_alternative_name(root, extension)
                candidate = posixpath.join(directory, alternative)
        raise AssertionError("unreachable")  # pragma: no cover

    def _save(self, name: str, content: File[Any]) -> str:
        store, bucket = self._location()
        if content.seekable():
            content.seek(0)
        # The type comes from the name, as for the models, never from the browser's claim.
        return store.upload(bucket, str(name), content, if_absent=not self.file_overwrite).key

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        """Read-only: the object is downloaded (parallel ranged GETs, SHA-256 verified
        against its tag) into an anonymous temporary file on disk, so memory stays flat
        whatever the size.

        Writing through an open file is refused, because django-storages' ``S3File``
        completes a multipart upload even after an exception; use ``save()``.
        """
        if set(mode) & set("wax+"):
            raise ValueError(f"{type(self).__name__} opens files read-only; use save().")
        store, bucket = self._location()
        local = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller open
        try:
            result = store.read_into(bucket, str(name), local)
        except BaseException:
            local.close()
            raise
        local.seek(0)
        return File(local, name=result.key)

    def exists(self, name: str) -> bool:
        store, bucket = self._location()
        return store.exists(bucket, str(name))

    def delete(self, name: str) -> None:
        store, bucket = self._location()
        store.delete(bucket, str(name))

    def size(self, name: str) -> int:
        store, bucket = self._location()
        return store.head(bucket, str(name)).size

    def get_modified_time(self, name: str) -> datetime:
        store, bucket = self._location()
        info = store.head(bucket, str(name))
        if info.last_modified is None:  # pragma: no cover - every S3 server sends it
            raise ObjectNotFound(f"No modification time for {info.key!r}.", store=store.name)
        return info.last_modified if settings.USE_TZ else timezone.make_naive(info.last_modified)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        store, bucket = self._location()
        return store.list_dir(bucket, f"{path.rstrip('/')}/" if path else "")

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        store, bucket = self._location()
        validate_key(str(name), store=store.name, bucket=bucket)
        return super().get_available_name(name, max_length)  # type: ignore[no-any-return]


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
        store, bucket = self._location()
        expiration = self.querystring_expire if expire is None else expire
        return store.presign_get(bucket, str(name), expiration, extra=parameters)


def weights_storage() -> InternalStorage:
    return InternalStorage(kind="weights")


def checkpoints_storage() -> InternalStorage:
    return InternalStorage(kind="checkpoints")


def schemas_storage() -> InternalStorage:
    return InternalStorage(kind="schemas")


def datasets_storage() -> ExternalStorage:
    return ExternalStorage(kind="datasets")

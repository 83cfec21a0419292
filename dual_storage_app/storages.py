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

import gzip
import io
import mimetypes
import os
import posixpath
import shutil
import tempfile
import threading
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.files.base import File
from django.utils import timezone
from django.utils.deconstruct import deconstructible
from storages.backends.s3 import S3Storage
from storages.utils import ReadBytesWrapper

from .client import dual_storage
from .exceptions import (
    ConfigurationError,
    InvalidArgument,
    NoPublicURL,
    ObjectExists,
    ObjectNotFound,
)
from .keys import validate_key
from .kinds import REGISTRY, ArtifactKind, StoreName, kinds_on
from .links import issue
from .store import Store
from .store.transfer import guess_content_type
from .store.upload import read_arguments

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
    }
)
# Accepted only with this value, from an option, a class attribute or the setting alike
# (S3Storage's precedence), each with why: (value, setting, reason).
_NEUTRAL = {
    "location": (
        "",
        "AWS_LOCATION",
        "keys are the bucket's keys, as the client and the artifact rows record them.",
    ),
    "default_acl": (
        None,
        "AWS_DEFAULT_ACL",
        "objects are never given ACLs (the buckets are private).",
    ),
    "custom_domain": (
        None,
        "AWS_S3_CUSTOM_DOMAIN",
        "links are presigned against the store's public endpoint "
        "(EXTERNAL_STORAGE_PUBLIC_ENDPOINT), never served from another domain.",
    ),
}
# Saves of one name racing each other: each lost race costs one attempt.
_SAVE_ATTEMPTS = 10
# Names get_available_name may probe before giving up: Django's loop has no bound, so a
# store (or a proxy, or a test's mock) that reports every name as taken would hang it.
_NAME_PROBES = 100
_NO_FREE_NAME = "NoFreeName"
# What is left of the current get_available_name's probes, per thread.
_probes_left = threading.local()


def _decompressed(compressed: Any) -> Any:
    """A read-only handle on the gunzipped bytes of ``compressed`` (then closed)."""
    plain = tempfile.TemporaryFile()  # noqa: SIM115 - reopened read-only below
    try:
        with compressed, gzip.GzipFile(mode="rb", fileobj=compressed) as unpacking:
            shutil.copyfileobj(unpacking, plain)
        reader = open(os.dup(plain.fileno()), "rb")  # noqa: SIM115
    finally:
        plain.close()
    reader.seek(0)
    return reader


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
        # S3Storage's precedence: option > class attribute > setting > default.
        super().__init__(**options)
        for name, (neutral, setting_name, why) in _NEUTRAL.items():
            if getattr(self, name) != neutral:
                raise ConfigurationError(
                    f"{type(self).__name__} does not take {name} {getattr(self, name)!r} "
                    f"(from the option, a class attribute or {setting_name}): {why}"
                    f" Pass {name}={neutral!r} to override the setting.",
                    store=self.store_name,
                )
        if "ACL" in self.object_parameters:
            raise ConfigurationError(
                f"{type(self).__name__} refuses ACL in object_parameters: objects are never "
                "given ACLs (the buckets are private).",
                store=self.store_name,
            )

    def get_default_settings(self) -> dict[str, Any]:
        defaults: dict[str, Any] = super().get_default_settings()
        # The bucket is the kind's (a property); names are never overwritten by default.
        defaults.pop("bucket_name", None)
        defaults["file_overwrite"] = getattr(settings, "AWS_S3_FILE_OVERWRITE", False)
        return defaults

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind!r}>"

    # -- S3Storage's attributes, on the configured store ---------------------------------

    @property
    def bucket_name(self) -> str:
        """The kind's bucket on the configured store (read on every access)."""
        return dual_storage.locate(self.kind)[1]

    @bucket_name.setter
    def bucket_name(self, value: str) -> None:
        raise ConfigurationError(
            f"{type(self).__name__}'s bucket comes from DUAL_STORAGE or the environment.",
            store=self.store_name,
        )

    @property
    def connection(self) -> Any:
        """This thread's boto3 S3 resource over the configured store's shared client, or
        whatever was put in its place (a test's mock): the storage's requests follow it."""
        local = self._connections
        connection = getattr(local, "connection", None)
        built = getattr(local, "built", None)
        if connection is None or (connection is built and self._stale(connection)):
            connection = local.connection = local.built = dual_storage.locate(self.kind)[
                0
            ].resource()
        return connection

    def _stale(self, connection: Any) -> bool:
        return connection.meta.client is not dual_storage.locate(self.kind)[0].client

    @property
    def unsigned_connection(self) -> Any:
        raise NoPublicURL(
            f"{type(self).__name__} issues no unsigned URLs: its buckets are private.",
            store=self.store_name,
        )

    @property
    def bucket(self) -> Any:
        """The kind's bucket as a boto3 resource of :attr:`connection`."""
        name, connection = self.bucket_name, self.connection
        bucket: Any = self.__dict__.get("_bucket")
        if (
            bucket is None
            or getattr(bucket, "name", None) != name
            or bucket.meta.client is not connection.meta.client
        ):
            bucket = self._bucket = connection.Bucket(name)
        return bucket

    def _location(self) -> tuple[Store, str]:
        """The store and bucket for this kind (read on every call, so a settings change is
        followed), its requests sent through :attr:`connection`'s client."""
        store, bucket = dual_storage.locate(self.kind)
        return store.using(self.connection.meta.client), bucket

    # -- operations ----------------------------------------------------------------------

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
            except ObjectExists as taken:
                if attempt == _SAVE_ATTEMPTS - 1 or taken.code == _NO_FREE_NAME:
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
        parameters = self.get_object_parameters(name)
        if "ACL" in parameters:
            raise InvalidArgument(
                f"Refused ACL for {name!r}: objects are never given ACLs (private buckets).",
                store=store.name,
                bucket=bucket,
                key=name,
            )
        # The type comes from the name, as for the models, never from the browser's claim
        # (an explicit ContentType parameter wins, as in S3Storage); so does the encoding.
        content_type = parameters.pop("ContentType", None) or guess_content_type(name)
        encoding = mimetypes.guess_type(name)[1]
        if encoding and "ContentEncoding" not in parameters:
            parameters["ContentEncoding"] = encoding
        source: Any = content
        if (
            self.gzip
            and content_type in self.gzip_content_types
            and "ContentEncoding" not in parameters
        ):
            source = self._compress_content(ReadBytesWrapper(content))
            parameters["ContentEncoding"] = "gzip"
        return store.upload(
            bucket,
            str(name),
            source,
            content_type=content_type,
            if_absent=not self.file_overwrite,
            extra_args=parameters,
        ).key

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        """Read-only: the object is downloaded (parallel ranged GETs, SHA-256 verified
        against its tag) into an anonymous temporary file on disk, so memory stays flat
        whatever the size. ``"r"`` gives UTF-8 text with universal newlines, ``"rb"``
        bytes; neither can be written to (``io.UnsupportedOperation``). With ``gzip`` a
        gzip-encoded object is decompressed, as S3Storage does.

        Writing through an open file is refused, because django-storages' ``S3File``
        completes a multipart upload even after an exception; use ``save()``.
        """
        if set(mode) & set("wax+"):
            raise ValueError(f"{type(self).__name__} opens files read-only; use save().")
        store, bucket = self._location()
        read = read_arguments(self.get_object_parameters(str(name)))
        local = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller open
        try:
            result = store.read_into(bucket, str(name), local, extra_args=read)
            # A read-only handle on the same anonymous file: writes are refused.
            reader: Any = open(os.dup(local.fileno()), "rb")  # noqa: SIM115
        finally:
            local.close()
        reader.seek(0)
        if self.gzip and store.head(bucket, result.key, extra_args=read).content_encoding == "gzip":
            reader = _decompressed(reader)
        if "b" not in mode:
            reader = io.TextIOWrapper(reader, encoding="utf-8")
        return File(reader, name=result.key)

    def exists(self, name: str) -> bool:
        store, bucket = self._location()
        read = read_arguments(self.get_object_parameters(str(name)))
        return store.exists(bucket, str(name), extra_args=read)

    def delete(self, name: str) -> None:
        store, bucket = self._location()
        store.delete(bucket, str(name))

    def size(self, name: str) -> int:
        store, bucket = self._location()
        read = read_arguments(self.get_object_parameters(str(name)))
        return store.head(bucket, str(name), extra_args=read).size

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
        """S3Storage's (so Django's) free name, after at most 100 probes: past that,
        :class:`ObjectExists` (code ``NoFreeName``) rather than Django's endless loop."""
        store, bucket = self._location()
        validate_key(str(name), store=store.name, bucket=bucket)
        _probes_left.count = _NAME_PROBES
        try:
            return super().get_available_name(name, max_length)  # type: ignore[no-any-return]
        finally:
            _probes_left.count = None

    def is_name_available(self, name: str, max_length: int | None = None) -> bool:
        left = getattr(_probes_left, "count", None)
        if left is not None:
            if left <= 0:
                store, bucket = self._location()
                raise ObjectExists(
                    f"No free name like {name!r} after {_NAME_PROBES} tries: the store "
                    "reports every alternative name as taken.",
                    store=store.name,
                    bucket=bucket,
                    key=str(name),
                    code=_NO_FREE_NAME,
                )
            _probes_left.count = left - 1
        return super().is_name_available(name, max_length)  # type: ignore[no-any-return]


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
        # Pages of thousands of links: the audit writes them in batches.
        return issue(
            store,
            bucket,
            str(name),
            expiration,
            via="storage",
            extra=parameters,
            batched=True,
            record=dual_storage.config.link_audit,
        )


def weights_storage() -> InternalStorage:
    return InternalStorage(kind="weights", location="", default_acl=None, custom_domain=None)


def checkpoints_storage() -> InternalStorage:
    return InternalStorage(kind="checkpoints", location="", default_acl=None, custom_domain=None)


def schemas_storage() -> InternalStorage:
    return InternalStorage(kind="schemas", location="", default_acl=None, custom_domain=None)


def datasets_storage() -> ExternalStorage:
    return ExternalStorage(kind="datasets", location="", default_acl=None, custom_domain=None)

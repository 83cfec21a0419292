"""One S3-compatible store: a shared boto3 client and the operations the app needs.

A :class:`Store` is bucket-agnostic; the client maps artifact kinds to buckets. Every
operation validates its key first, streams with bounded memory, and raises the app's
own exceptions. boto3 clients are thread-safe, so one client per store is shared by all
threads; it is created lazily, under a lock, from its own boto3 session (sessions are
not thread-safe).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import _integrity, _uploads
from ._clients import make_client
from ._downloads import download_to_descriptor, download_to_stream
from ._errors import translated
from ._etags import ETagRecorder
from ._presign import Presigner
from ._streams import Readable, atomic_destination, has_descriptor, local_file
from .conf import StoreConfig
from .exceptions import InvalidArgument, NoPublicURL, ObjectNotFound
from .keys import validate_key, validate_prefix
from .objects import ObjectInfo, TransferResult
from .transfer import guess_content_type, validate_expiry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Store:
    """Operations on one store (internal MinIO or external R2/S3)."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.name = config.name
        self._lock = threading.Lock()
        self._client: S3Client | None = None
        self._presign_client: S3Client | None = None
        self._links: Presigner | None = None
        self._etag_recorder: ETagRecorder | None = None

    def __repr__(self) -> str:
        return f"<Store {self.name} {self.config.endpoint_url} ({self.config.provider.name})>"

    # -- clients ---------------------------------------------------------------

    @property
    def client(self) -> S3Client:
        """The boto3 client for this store, shared by all threads."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client(self.config.endpoint_url)
        return self._client

    def _etags(self) -> ETagRecorder:
        """The ETag listener registered on :attr:`client`."""
        client = self.client
        recorder = self._etag_recorder
        if recorder is None or recorder.client is not client:
            with self._lock:
                recorder = self._etag_recorder
                if recorder is None or recorder.client is not client:
                    recorder = self._etag_recorder = ETagRecorder(client)
        return recorder

    def _make_client(self, endpoint_url: str, *, path_style: bool = False) -> S3Client:
        return make_client(self.config, endpoint_url, path_style=path_style)

    def _presigner(self) -> S3Client:
        """A client signing against the public endpoint; signing makes no request."""
        public = self.config.public_endpoint_url
        if not public or public == self.config.endpoint_url:
            return self.client
        if self._presign_client is None:
            with self._lock:
                if self._presign_client is None:
                    # A custom public host serves /bucket/key; never prepend the bucket.
                    self._presign_client = self._make_client(public, path_style=True)
        return self._presign_client

    def _link_signer(self) -> Presigner:
        """Signs as :meth:`_presigner`'s client would, without botocore's per-URL cost."""
        if self._links is None:
            client = self._presigner()
            with self._lock:
                if self._links is None:
                    self._links = Presigner(client, self.config)
        return self._links

    # -- operations ------------------------------------------------------------

    def upload(
        self,
        bucket: str,
        key: str,
        source: Readable,
        *,
        content_type: str | None = None,
    ) -> TransferResult:
        """Stream ``source`` to ``bucket/key``, hashing it on the way.

        A regular file read from its start goes by path: s3transfer reads its parts in
        parallel while another thread hashes the file in order, and a file that changes
        during the upload is refused. Any other source is read once, in order, and
        hashed as it passes. A failed multipart upload is aborted by s3transfer, so no
        partial object is ever published under ``key``. The requests are the upload's
        own plus one that records the SHA-256 tag: no HEAD before or after.
        """
        key = validate_key(key, store=self.name, bucket=bucket)
        content_type = content_type or guess_content_type(key)
        extra = {"ContentType": content_type}
        local = local_file(source)
        with self._etags().waiting_for(bucket, key) as etag:
            if local is not None:
                size, sha256 = _uploads.upload_local_file(self, bucket, key, local, extra)
            else:
                size, sha256 = _uploads.upload_stream(self, bucket, key, source, extra)
        _integrity.record(self, bucket, key, sha256)
        return TransferResult(
            self.name,
            bucket,
            key,
            size,
            sha256,
            etag[0] if etag[0] is not None else self.head(bucket, key).etag,
            content_type,
        )

    def upload_file(
        self, bucket: str, key: str, path: Path, *, content_type: str | None = None
    ) -> TransferResult:
        """Upload a local file (validated before the file is opened)."""
        key = validate_key(key, store=self.name, bucket=bucket)
        with Path(path).open("rb") as source:
            return self.upload(bucket, key, source, content_type=content_type)

    def download(
        self,
        bucket: str,
        key: str,
        dest: Path,
        *,
        expected_sha256: str | None = None,
    ) -> TransferResult:
        """Stream ``bucket/key`` into ``dest`` atomically, hashing and verifying it.

        The bytes go to a temporary file beside ``dest`` that is renamed into place only
        when complete and verified against ``expected_sha256`` or, when not given, the
        SHA-256 recorded at upload: a failed or corrupt download leaves no file and an
        existing ``dest`` untouched. With ``expected_sha256`` (an artifact row knows it)
        the download is GET requests only: s3transfer learns the size from the first
        ranged GET, so there is no HEAD.
        """
        key = validate_key(key, store=self.name, bucket=bucket)
        with atomic_destination(Path(dest)) as tmp_file:
            return self.read_into(bucket, key, tmp_file, expected_sha256=expected_sha256)

    def read_into(
        self,
        bucket: str,
        key: str,
        sink: BinaryIO,
        *,
        expected_sha256: str | None = None,
    ) -> TransferResult:
        """Stream ``bucket/key`` into ``sink`` (ranged GETs in parallel), then verify it
        as :meth:`download` does (``sink`` must be ``w+b``); ``sink`` is left at its end."""
        key = validate_key(key, store=self.name, bucket=bucket)
        expected = expected_sha256 or _integrity.recorded(self, bucket, key)
        with translated(self.config, "download", bucket, key):
            if has_descriptor(sink):
                size, sha256 = download_to_descriptor(self.client, bucket, key, sink)
            else:
                size, sha256 = download_to_stream(self.client, bucket, key, sink)
        result = TransferResult(self.name, bucket, key, size, sha256, "")
        _integrity.check(self, result, expected)
        return result

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """Read a small object whole (schemas); large objects go through :meth:`download`."""
        key = validate_key(key, store=self.name, bucket=bucket)
        with translated(self.config, "read", bucket, key):
            response = self.client.get_object(Bucket=bucket, Key=key)
            return response["Body"].read()

    def head(self, bucket: str, key: str) -> ObjectInfo:
        key = validate_key(key, store=self.name, bucket=bucket)
        with translated(self.config, "inspect", bucket, key):
            response = self.client.head_object(Bucket=bucket, Key=key)
        return ObjectInfo(
            store=self.name,
            bucket=bucket,
            key=key,
            size=response["ContentLength"],
            etag=response.get("ETag", "").strip('"'),
            last_modified=response.get("LastModified"),
            content_type=response.get("ContentType"),
        )

    def exists(self, bucket: str, key: str) -> bool:
        """True if ``bucket/key`` exists (HEAD cannot tell a missing bucket from a missing key)."""
        try:
            self.head(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, bucket: str, key: str) -> None:
        """Delete ``bucket/key``; deleting a missing object is not an error (S3 semantics)."""
        key = validate_key(key, store=self.name, bucket=bucket)
        with translated(self.config, "delete", bucket, key):
            self.client.delete_object(Bucket=bucket, Key=key)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, one page (up to 1,000) requested at a time.

        The prefix is checked now, not when the first page is asked for."""
        prefix = validate_prefix(prefix, store=self.name, bucket=bucket)
        return self._pages(bucket, prefix)

    def _pages(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        with translated(self.config, "list", bucket, prefix or None):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield ObjectInfo(
                        store=self.name,
                        bucket=bucket,
                        key=entry["Key"],
                        size=entry["Size"],
                        etag=entry.get("ETag", "").strip('"'),
                        last_modified=entry.get("LastModified"),
                    )

    def list_dir(self, bucket: str, prefix: str) -> tuple[builtins.list[str], builtins.list[str]]:
        """Django's ``listdir``: immediate sub-"directories" and files under ``prefix``."""
        directories: builtins.list[str] = []
        files: builtins.list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        with translated(self.config, "list", bucket, prefix or None):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                directories += [
                    p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])
                ]
                files += [e["Key"][len(prefix) :] for e in page.get("Contents", [])]
        return directories, files

    def presign_get(
        self, bucket: str, key: str, expiration: int, *, extra: dict[str, Any] | None = None
    ) -> str:
        """A presigned GET URL, signed against the public endpoint. No network request."""
        key = validate_key(key, store=self.name, bucket=bucket)
        if self.config.public_endpoint_url is None:  # the internal store
            raise NoPublicURL(
                f"{key!r} is on the {self.name} store, which never hands out URLs; "
                "stream it through the backend instead.",
                store=self.name,
                bucket=bucket,
                key=key,
            )
        expiration = validate_expiry(expiration, store=self.name, bucket=bucket, key=key)
        refused = sorted(name for name in (extra or {}) if not name.startswith("Response"))
        if refused:
            raise InvalidArgument(
                f"Presign parameters {', '.join(refused)} are not allowed for key {key!r}; "
                "only Response* overrides (e.g. ResponseContentDisposition) are.",
                store=self.name,
                bucket=bucket,
                key=key,
            )
        with translated(self.config, "presign", bucket, key):
            return self._link_signer().presign_get(bucket, key, expiration, extra)

    def copy(self, bucket: str, source_key: str, dest_key: str) -> None:
        """Server-side copy within ``bucket`` (small objects: one CopyObject request)."""
        source_key = validate_key(source_key, store=self.name, bucket=bucket)
        dest_key = validate_key(dest_key, store=self.name, bucket=bucket)
        with translated(self.config, "copy", bucket, dest_key):
            self.client.copy_object(
                Bucket=bucket, Key=dest_key, CopySource={"Bucket": bucket, "Key": source_key}
            )

    def create_bucket(self, bucket: str) -> bool:
        """Create ``bucket`` if missing; True if it was created."""
        with translated(self.config, "create bucket", bucket):
            try:
                self.client.head_bucket(Bucket=bucket)
                return False
            except self.client.exceptions.ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status != 404:
                    raise
            self.client.create_bucket(
                Bucket=bucket, **self.config.provider.create_bucket_args(self.config.region)
            )
            return True

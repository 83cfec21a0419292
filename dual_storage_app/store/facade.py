"""One S3-compatible store: the only object in the package that talks to S3.

A :class:`Store` is bucket-agnostic; the client maps artifact kinds to buckets. Each
public operation validates its key once, before any request, then hands a boto3 client
and the store's configuration to the module that does the work (:mod:`.upload`,
:mod:`.download`, :mod:`.integrity`, :mod:`.streaming`, :mod:`.presign`), and raises
the app's own exceptions (:mod:`.errors`). boto3 clients are thread-safe, so one client
per store is shared by all threads; it is created lazily, under a lock (:mod:`.clients`).
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import weakref
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import ClientError

from ..config.stores import StoreConfig
from ..exceptions import DualStorageError, InvalidArgument, NoPublicURL, ObjectNotFound
from ..keys import validate_key, validate_prefix
from .clients import make_client, make_resource
from .disposition import link_parameters
from .download import atomic_destination, download_to_descriptor, has_descriptor
from .errors import translated
from .etags import ETagRecorder
from .hashing import Readable, hash_chunks
from .integrity import check_sha256, record_sha256, recorded_sha256
from .objects import MultipartUpload, ObjectInfo, TransferResult
from .presign import Presigner
from .streaming import ObjectStream
from .transfer import guess_content_type, validate_expiry
from .upload import (
    fits_one_put,
    put_bytes_if_absent,
    put_if_absent,
    regular_file_of,
    reserve,
    source_size,
    upload_local_file,
    upload_stream,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


# GetObject parameters a link carries in its query string; every other one is a header
# the browser would have to send (a link signed with it fails) or is the store's own.
_LINK_QUERY_PARAMETERS = frozenset({"VersionId", "PartNumber"})


def _refusal(name: str) -> str:
    """Why a presigned GET cannot carry GetObject parameter ``name``."""
    if name in ("Bucket", "Key"):
        return "the bucket and key are the storage's own"
    return "a request header a browser following the link does not send"


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
        self._stand_ins: weakref.WeakKeyDictionary[Any, Store] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<Store {self.name} {self.config.endpoint_url} ({self.config.provider.name})>"

    # -- clients ---------------------------------------------------------------

    @property
    def client(self) -> S3Client:
        """The boto3 client for this store, shared by all threads."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(self.config, self.config.endpoint_url)
        return self._client

    def resource(self) -> Any:
        """A new boto3 S3 resource over :attr:`client` (one per thread: resources are not
        thread-safe), for code that wants boto3's resource API on this store."""
        return make_resource(self.config, self.client)

    def using(self, client: S3Client) -> Store:
        """This store with its requests sent through ``client`` instead (a storage whose
        ``connection`` was replaced, e.g. mocked in a test); one such store per client."""
        if client is self.client:
            return self
        with self._lock:
            found = self._stand_ins.get(client)
            if found is None:
                found = self._stand_ins[client] = Store(self.config)
                found._client = client
        return found

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

    def _presigner(self) -> S3Client:
        """A client signing against the public endpoint; signing makes no request."""
        public = self.config.public_endpoint_url
        if not public or public == self.config.endpoint_url:
            return self.client
        if self._presign_client is None:
            with self._lock:
                if self._presign_client is None:
                    # A custom public host serves /bucket/key; never prepend the bucket.
                    self._presign_client = make_client(self.config, public, path_style=True)
        return self._presign_client

    def presigning_client(self) -> S3Client:
        """The boto3 client that signs URLs for browsers (the public endpoint's); it is
        never used to send a request."""
        return self._presigner()

    def _link_signer(self) -> Presigner:
        """Signs as :meth:`_presigner`'s client would, without botocore's per-URL cost."""
        if self._links is None:
            client = self._presigner()
            with self._lock:
                if self._links is None:
                    self._links = Presigner(client, self.config)
        return self._links

    # -- uploads ---------------------------------------------------------------

    def upload(
        self,
        bucket: str,
        key: str,
        source: Readable,
        *,
        content_type: str | None = None,
        if_absent: bool = False,
        extra_args: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        """Stream ``source`` to ``bucket/key``, hashing it on the way.

        A regular file read from its start goes by path: s3transfer reads its parts in
        parallel while another thread hashes the file in order, and a file that changes
        during the upload is refused. Any other source is read once, in order, and
        hashed as it passes. A failed multipart upload is aborted by s3transfer, so no
        partial object is ever published under ``key``. The requests are the upload's
        own plus one that records the SHA-256 tag: no HEAD before or after.

        With ``if_absent`` an existing object is never replaced: the write is conditional
        (``If-None-Match: *``) and a taken key raises ``ObjectExists`` with nothing
        written; see :mod:`.upload` for how large sources stay atomic. ``extra_args`` are
        further PutObject/CreateMultipartUpload arguments (``CacheControl``,
        ``ContentDisposition``, ``ContentEncoding``, ``Metadata``, SSE...), as
        s3transfer's ``ExtraArgs``; ``content_type`` (else the key's type) wins over a
        ``ContentType`` among them.
        """
        key = validate_key(key, store=self.name, bucket=bucket)
        return self._upload(bucket, key, source, content_type, if_absent, extra_args)

    def upload_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        if_absent: bool = False,
        extra_args: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        """Upload a local file (the key is validated before the file is opened); the
        keywords are :meth:`upload`'s."""
        key = validate_key(key, store=self.name, bucket=bucket)
        with Path(path).open("rb") as source:
            return self._upload(bucket, key, source, content_type, if_absent, extra_args)

    def put_bytes(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        extra_args: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        """Write ``body``, a small object held in memory, as one PutObject that carries its
        SHA-256 tag and replaces nothing (``ObjectExists`` if ``key`` is taken): one
        request where :meth:`upload` sends two."""
        key = validate_key(key, store=self.name, bucket=bucket)
        content_type = guess_content_type(key)
        extra = {**(extra_args or {}), "ContentType": content_type}
        sha256, etag = put_bytes_if_absent(self.client, self.config, bucket, key, body, extra)
        return TransferResult(self.name, bucket, key, len(body), sha256, etag, content_type)

    def _upload(
        self,
        bucket: str,
        key: str,
        source: Readable,
        content_type: str | None,
        if_absent: bool,
        extra_args: Mapping[str, Any] | None,
    ) -> TransferResult:
        content_type = content_type or guess_content_type(key)
        extra = {**(extra_args or {}), "ContentType": content_type}
        client = self.client
        if not if_absent:
            size, sha256, etag = self._send(bucket, key, source, extra)
            record_sha256(client, self.config, bucket, key, sha256)
        else:
            one_put = fits_one_put(source, source_size(source))
            if one_put:  # ObjectExists before anything is stored
                size, sha256, etag = put_if_absent(client, self.config, bucket, key, source, extra)
            else:
                reserve(client, self.config, bucket, key)
            try:
                if not one_put:
                    size, sha256, etag = self._send(bucket, key, source, extra)
                record_sha256(client, self.config, bucket, key, sha256)
            except BaseException:
                # The key is ours (claimed above): a failed save leaves nothing under it.
                with (
                    contextlib.suppress(DualStorageError),
                    translated(self.config, "delete", bucket, key),
                ):
                    client.delete_object(Bucket=bucket, Key=key)
                raise
        return TransferResult(
            self.name,
            bucket,
            key,
            size,
            sha256,
            etag if etag is not None else self._head(bucket, key).etag,
            content_type,
        )

    def _send(
        self, bucket: str, key: str, source: Readable, extra: Mapping[str, Any]
    ) -> tuple[int, str, str | None]:
        """``(size, sha256, etag)`` of an unconditional upload (etag ``None`` when the
        response could not be told apart from another upload of the key)."""
        client, local = self.client, regular_file_of(source)
        with self._etags().waiting_for(bucket, key) as etag:
            if local is not None:
                size, sha256 = upload_local_file(client, self.config, bucket, key, local, extra)
            else:
                size, sha256 = upload_stream(client, self.config, bucket, key, source, extra)
        return size, sha256, etag[0]

    # -- downloads and reads ---------------------------------------------------

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
        the download is GET requests only: the first ranged GET tells the size, so there
        is no HEAD.
        """
        key = validate_key(key, store=self.name, bucket=bucket)
        with atomic_destination(Path(dest)) as tmp_file:
            return self._read_into(bucket, key, tmp_file, expected_sha256, write_behind=True)

    def read_into(
        self,
        bucket: str,
        key: str,
        sink: BinaryIO,
        *,
        expected_sha256: str | None = None,
        extra_args: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        """Stream ``bucket/key`` into ``sink``, a real file opened ``w+b`` (parallel
        ranged GETs written at their offsets), then verify it as :meth:`download` does;
        ``sink`` is left at its end. ``extra_args`` go with every GET (the SSE-C key of an
        object stored with one)."""
        key = validate_key(key, store=self.name, bucket=bucket)
        if not has_descriptor(sink):
            raise InvalidArgument(
                f"Cannot download {key!r} into {type(sink).__name__}: the sink must be a "
                "file with a descriptor (open(..., 'w+b') or tempfile.TemporaryFile()).",
                store=self.name,
                bucket=bucket,
                key=key,
            )
        return self._read_into(bucket, key, sink, expected_sha256, extra_args)

    def _read_into(
        self,
        bucket: str,
        key: str,
        sink: BinaryIO,
        expected_sha256: str | None,
        extra_args: Mapping[str, Any] | None = None,
        *,
        write_behind: bool = False,
    ) -> TransferResult:
        client = self.client
        # The recorded SHA-256 is needed only at the end: its read (one round trip, which
        # a far store makes long) runs beside the GETs instead of before them.
        tag_read: Future[str | None] | None = None
        if expected_sha256 is None and self.config.provider.supports_tagging:
            reader = ThreadPoolExecutor(1, thread_name_prefix="dual-storage-tag")
            tag_read = reader.submit(recorded_sha256, client, self.config, bucket, key)
            reader.shutdown(wait=False)  # its one thread ends with the read
        try:
            with translated(self.config, "download", bucket, key):
                size, sha256 = download_to_descriptor(
                    client, bucket, key, sink, extra_args, write_behind=write_behind
                )
        except BaseException:
            if tag_read is not None:
                tag_read.cancel()
            raise
        expected = expected_sha256 if tag_read is None else tag_read.result()
        result = TransferResult(self.name, bucket, key, size, sha256, "")
        check_sha256(self.config, result, expected)
        return result

    def read_object(self, bucket: str, key: str) -> tuple[bytes, str]:
        """``(bytes, etag)`` of a small object read whole (schemas); large objects go
        through :meth:`download`."""
        key = validate_key(key, store=self.name, bucket=bucket)
        with translated(self.config, "read", bucket, key):
            response = self.client.get_object(Bucket=bucket, Key=key)
            return bytes(response["Body"].read()), response.get("ETag", "").strip('"')

    def read_object_if_changed(self, bucket: str, key: str, etag: str) -> tuple[bytes, str] | None:
        """As :meth:`read_object`, but ``None`` (a 304, no body) while the object's ETag
        is still ``etag``."""
        key = validate_key(key, store=self.name, bucket=bucket)
        quoted = '"' + etag.strip('"') + '"'
        with translated(self.config, "read", bucket, key):
            try:
                response = self.client.get_object(Bucket=bucket, Key=key, IfNoneMatch=quoted)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 304:  # botocore raises it; not an error
                    return None
                raise
            return bytes(response["Body"].read()), response.get("ETag", "").strip('"')

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """The bytes of a small object read whole."""
        return self.read_object(bucket, key)[0]

    def open_stream(
        self,
        bucket: str,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
    ) -> ObjectStream:
        """An open GET of ``bucket/key`` (or of bytes ``byte_range``, inclusive) to
        iterate in 1 MiB chunks, then ``close()``; with ``if_match`` the store refuses it
        (``IntegrityError``) unless the object's ETag is still that one."""
        key = validate_key(key, store=self.name, bucket=bucket)
        return ObjectStream(
            self.client, self.config, bucket, key, byte_range=byte_range, if_match=if_match
        )

    def recorded_sha256(self, bucket: str, key: str) -> str | None:
        """The SHA-256 recorded with the object at upload (its tag), or ``None`` where the
        provider has no tagging or the object carries none."""
        key = validate_key(key, store=self.name, bucket=bucket)
        return recorded_sha256(self.client, self.config, bucket, key)

    def hash_object(self, bucket: str, key: str) -> TransferResult:
        """Size and SHA-256 of the stored bytes, read once and discarded as they pass,
        with the ETag and content type of that same read."""
        stream = self.open_stream(bucket, key)
        try:
            size, sha256 = hash_chunks(stream)
        finally:
            stream.close()
        return TransferResult(
            self.name, bucket, stream.key, size, sha256, stream.etag, stream.content_type
        )

    # -- metadata --------------------------------------------------------------

    def head(
        self, bucket: str, key: str, *, extra_args: Mapping[str, Any] | None = None
    ) -> ObjectInfo:
        """The object's metadata; ``extra_args`` are further HeadObject arguments (the
        SSE-C key an encrypted object needs, ``VersionId``)."""
        key = validate_key(key, store=self.name, bucket=bucket)
        return self._head(bucket, key, extra_args)

    def _head(
        self, bucket: str, key: str, extra_args: Mapping[str, Any] | None = None
    ) -> ObjectInfo:
        with translated(self.config, "inspect", bucket, key):
            response = self.client.head_object(Bucket=bucket, Key=key, **(extra_args or {}))
        return ObjectInfo(
            store=self.name,
            bucket=bucket,
            key=key,
            size=response["ContentLength"],
            etag=response.get("ETag", "").strip('"'),
            last_modified=response.get("LastModified"),
            content_type=response.get("ContentType"),
            content_encoding=response.get("ContentEncoding"),
        )

    def exists(self, bucket: str, key: str, *, extra_args: Mapping[str, Any] | None = None) -> bool:
        """True if ``bucket/key`` exists (HEAD cannot tell a missing bucket from a missing
        key); ``extra_args`` as for :meth:`head`."""
        try:
            self.head(bucket, key, extra_args=extra_args)
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
        """Django's ``listdir``: immediate sub-"directories" and files under ``prefix``
        (empty, or a valid prefix ending in ``/``)."""
        prefix = validate_prefix(prefix, store=self.name, bucket=bucket)
        directories: builtins.list[str] = []
        files: builtins.list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        with translated(self.config, "list", bucket, prefix or None):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                directories += [
                    p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])
                ]
                # A folder marker ("dir/" itself) is the folder, not a file in it.
                files += [
                    e["Key"][len(prefix) :] for e in page.get("Contents", []) if e["Key"] != prefix
                ]
        return directories, files

    # -- links -----------------------------------------------------------------

    def presign_get(
        self,
        bucket: str,
        key: str,
        expiration: int,
        *,
        extra: dict[str, Any] | None = None,
        inline: bool = False,
    ) -> str:
        """A presigned GET URL, signed against the public endpoint. No network request.

        The link asks the store for ``Content-Disposition: attachment`` with the file
        name, or ``inline`` (when asked) only for types a browser shows without running
        them; a type a browser would execute is never served as such
        (:mod:`.disposition`)."""
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
        refused = [
            f"{name} ({_refusal(name)})"
            for name in sorted(extra or {})
            if not name.startswith("Response") and name not in _LINK_QUERY_PARAMETERS
        ]
        if refused:
            raise InvalidArgument(
                f"Presign parameters for key {key!r} refused: {'; '.join(refused)}. A link "
                "takes Response* overrides, VersionId and PartNumber.",
                store=self.name,
                bucket=bucket,
                key=key,
            )
        parameters = link_parameters(key, extra, inline=inline)
        with translated(self.config, "presign", bucket, key):
            return self._link_signer().presign_get(bucket, key, expiration, parameters)

    # -- server-side operations ------------------------------------------------

    def copy(self, bucket: str, source_key: str, dest_key: str) -> None:
        """Server-side copy within ``bucket`` (small objects: one CopyObject request)."""
        source_key = validate_key(source_key, store=self.name, bucket=bucket)
        dest_key = validate_key(dest_key, store=self.name, bucket=bucket)
        with translated(self.config, "copy", bucket, dest_key):
            self.client.copy_object(
                Bucket=bucket, Key=dest_key, CopySource={"Bucket": bucket, "Key": source_key}
            )

    def multipart_uploads(self, bucket: str) -> builtins.list[MultipartUpload]:
        """Every incomplete multipart upload in ``bucket``, page by page."""
        found: builtins.list[MultipartUpload] = []
        with translated(self.config, "list multipart uploads", bucket):
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=bucket):
                found += [
                    MultipartUpload(
                        store=self.name,
                        bucket=bucket,
                        key=upload.get("Key", ""),
                        upload_id=upload.get("UploadId", ""),
                        initiated=upload.get("Initiated"),
                    )
                    for upload in page.get("Uploads", [])
                ]
        return found

    def abort_multipart_upload(self, upload: MultipartUpload) -> bool:
        """Abort ``upload``; False if it was already gone (completed or aborted since)."""
        try:
            with translated(self.config, "abort a multipart upload", upload.bucket, upload.key):
                self.client.abort_multipart_upload(
                    Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id
                )
        except ObjectNotFound:  # NoSuchUpload: nothing left to clean
            return False
        return True

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

"""Copy one object to another store or bucket, verified end to end, never overwriting.

* **Server-side** when source and target are one server with one identity: a single
  CopyObject (objects up to 5 GiB), or s3transfer's multipart copy above that where the
  provider has UploadPartCopy; no byte passes through this process.
* **Streamed** across servers: a GET of the source piped into the target's upload
  (multipart above 16 MiB, at most 48 MiB of parts buffered; an object up to 8 MiB is
  read whole and written by one conditional PutObject carrying its SHA-256 tag), hashed as
  it passes.
* **In place** when source and target are the same object: nothing is copied.

Every copy is then verified: the target is read back and its SHA-256 must equal the
source's (hashed from the stream, or read in parallel for a server-side copy) and, when
the caller knows one (an artifact row's), that hash too. The source is read with
``If-Match`` on the ETag it was planned with, so a source changed meanwhile is refused.

A copy never replaces an object: the target is looked up first (a small streamed copy
is a conditional PutObject instead, which a taken key refuses). Each copy carries the
metadata :data:`SOURCE_METADATA`, a token naming the source object and its ETag, so a
target found there later is recognised as this copy (a run killed after the copy but
before its journal was written): it is verified, not copied again. A target holding the
same bytes is accepted; one holding other bytes is refused with ``ObjectExists``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..exceptions import IntegrityError, ObjectExists, ObjectNotFound
from ..store import Store, TransferResult
from ..store.errors import describe, translated
from ..store.hashing import hash_chunks
from ..store.transfer import guess_content_type, transfer_config

if TYPE_CHECKING:
    from ..store.streaming import ObjectStream

SOURCE_METADATA = "dual-storage-source"
ONE_REQUEST_COPY_LIMIT = 5 * 1024**3  # CopyObject's limit on every provider
SMALL_OBJECT = 8 * 1024**2  # streamed copies up to this size are read whole: one PUT each

Method = Literal["server-side", "streamed", "in place", "found"]


@dataclass(frozen=True)
class ObjectRef:
    """One object: the store that holds it, its bucket and key."""

    store: Store
    bucket: str
    key: str

    def describe(self) -> str:
        return describe(self.store.config, self.bucket, self.key)


@dataclass(frozen=True)
class CopyOutcome:
    """The verified target (measured by reading it back) and how it got there."""

    target: TransferResult
    method: Method


def source_token(source: ObjectRef, etag: str) -> str:
    """The metadata value that marks a copy of ``source`` at ``etag`` (a hash: metadata
    values must be ASCII, keys need not be)."""
    identity = "\n".join((source.store.config.endpoint_url, source.bucket, source.key, etag))
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def same_server(source: Store, target: Store) -> bool:
    """True when ``target``'s client can read ``source``'s buckets: one endpoint, one
    identity (a server-side copy needs both)."""
    return (
        source.config.endpoint_url.rstrip("/") == target.config.endpoint_url.rstrip("/")
        and source.config.access_key == target.config.access_key
    )


def is_same_object(source: ObjectRef, target: ObjectRef) -> bool:
    return same_server(source.store, target.store) and (source.bucket, source.key) == (
        target.bucket,
        target.key,
    )


class _StreamReader:
    """An :class:`ObjectStream` as a file object: ``read(n)`` for s3transfer."""

    def __init__(self, stream: ObjectStream) -> None:
        self._chunks: Iterator[bytes] = iter(stream)
        self._buffer = bytearray()
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def _hash(ref: ObjectRef, if_match: str | None = None) -> TransferResult:
    stream = ref.store.open_stream(ref.bucket, ref.key, if_match=if_match)
    try:
        size, sha256 = hash_chunks(stream)
    finally:
        stream.close()
    return TransferResult(
        ref.store.name, ref.bucket, ref.key, size, sha256, stream.etag, stream.content_type
    )


def _hash_both(
    source: ObjectRef, source_etag: str, target: ObjectRef
) -> tuple[str, TransferResult]:
    """The source's SHA-256 and the target's measurement, read in parallel."""
    with ThreadPoolExecutor(2) as pool:
        source_read = pool.submit(_hash, source, source_etag)
        target_read = pool.submit(_hash, target)
        return source_read.result().sha256, target_read.result()


def _target_metadata(target: ObjectRef) -> dict[str, str] | None:
    """The target's user metadata, or ``None`` when there is no object."""
    with translated(target.store.config, "inspect", target.bucket, target.key):
        try:
            response = target.store.client.head_object(Bucket=target.bucket, Key=target.key)
        except target.store.client.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                return None
            raise
    return {str(k).lower(): str(v) for k, v in response.get("Metadata", {}).items()}


def abort_interrupted_uploads(target: ObjectRef) -> int:
    """Abort the multipart uploads of the target key left by a killed streamed copy;
    return how many."""
    client, aborted = target.store.client, 0
    with translated(target.store.config, "list multipart uploads", target.bucket, target.key):
        listing = client.list_multipart_uploads(Bucket=target.bucket, Prefix=target.key)
        for upload in listing.get("Uploads", []):
            if upload.get("Key") == target.key:
                client.abort_multipart_upload(
                    Bucket=target.bucket, Key=target.key, UploadId=upload["UploadId"]
                )
                aborted += 1
    return aborted


def _server_side(source: ObjectRef, source_etag: str, size: int, target: ObjectRef) -> None:
    client = target.store.client
    metadata = {SOURCE_METADATA: source_token(source, source_etag)}
    content_type = guess_content_type(target.key)
    copy_source = {"Bucket": source.bucket, "Key": source.key}
    with translated(target.store.config, "copy", target.bucket, target.key):
        if size <= ONE_REQUEST_COPY_LIMIT:
            client.copy_object(
                Bucket=target.bucket,
                Key=target.key,
                CopySource=copy_source,  # type: ignore[arg-type]
                CopySourceIfMatch='"' + source_etag + '"',
                MetadataDirective="REPLACE",
                Metadata=metadata,
                ContentType=content_type,
            )
        else:
            client.copy(
                copy_source,  # type: ignore[arg-type]
                target.bucket,
                target.key,
                ExtraArgs={
                    "CopySourceIfMatch": '"' + source_etag + '"',
                    "MetadataDirective": "REPLACE",
                    "Metadata": metadata,
                    "ContentType": content_type,
                },
                Config=transfer_config(size),
            )


def _read_small(source: ObjectRef, source_etag: str) -> bytes:
    """A small source object's bytes, read whole (as planned: ``If-Match`` its ETag)."""
    stream = source.store.open_stream(source.bucket, source.key, if_match=source_etag)
    try:
        return b"".join(stream)
    finally:
        stream.close()


def _streamed(source: ObjectRef, source_etag: str, target: ObjectRef) -> TransferResult:
    """Pipe a large source into the target's multipart upload; the result's SHA-256 is of
    the bytes read."""
    stream = source.store.open_stream(source.bucket, source.key, if_match=source_etag)
    try:
        return target.store.upload(
            target.bucket,
            target.key,
            _StreamReader(stream),
            extra_args={"Metadata": {SOURCE_METADATA: source_token(source, source_etag)}},
        )
    finally:
        stream.close()


def _found(
    source: ObjectRef,
    source_etag: str,
    target: ObjectRef,
    metadata: dict[str, str],
    expected: str | None,
    source_sha256: str | None = None,
) -> CopyOutcome:
    """Accept an object already at the target: this copy from an earlier run (its source
    token) or the same bytes; ``ObjectExists`` for other bytes."""
    if source_sha256 is None:
        source_sha256, found = _hash_both(source, source_etag, target)
    else:
        found = _hash(target)
    ours = metadata.get(SOURCE_METADATA) == source_token(source, source_etag)
    if not ours and found.sha256 != source_sha256:
        raise ObjectExists(
            f"{target.describe()} already holds other bytes than {source.describe()} "
            f"(SHA-256 {found.sha256[:12]}..., not {source_sha256[:12]}...); it was left "
            "as it is. Map the source to another key or remove the target.",
            store=target.store.name,
            bucket=target.bucket,
            key=target.key,
        )
    _check(source, found, source_sha256, expected)
    return CopyOutcome(found, "found")


def _check(
    source: ObjectRef, target: TransferResult, source_sha256: str, expected: str | None
) -> None:
    for wanted, what in ((source_sha256, "the source"), (expected, "the recorded hash")):
        if wanted is not None and wanted != target.sha256:
            raise IntegrityError(
                f"The copy of {source.describe()} reads back with SHA-256 {target.sha256}, "
                f"not {wanted} ({what}); it was not recorded.",
                store=target.store,
                bucket=target.bucket,
                key=target.key,
            )


def copy_verified(
    source: ObjectRef,
    target: ObjectRef,
    *,
    source_etag: str,
    size: int,
    expected_sha256: str | None = None,
    interrupted: bool = False,
) -> CopyOutcome:
    """Copy ``source`` (planned at ``source_etag``, ``size`` bytes) to ``target`` and
    verify it, as the module says. ``interrupted``: an earlier attempt may have died
    mid-copy, so its multipart upload is aborted first. Raises ``ObjectExists`` when the
    target holds other bytes, ``IntegrityError`` when the copy reads back wrong (the bad
    copy is deleted), ``ObjectNotFound``/``IntegrityError`` when the source is gone or
    changed."""
    if is_same_object(source, target):
        found = _hash(target, if_match=source_etag)
        _check(source, found, found.sha256, expected_sha256)
        return CopyOutcome(found, "in place")
    if size <= SMALL_OBJECT and not same_server(source.store, target.store):
        return _copy_small(source, source_etag, target, expected_sha256)
    metadata = _target_metadata(target)
    if metadata is not None:
        return _found(source, source_etag, target, metadata, expected_sha256)
    if interrupted:
        abort_interrupted_uploads(target)
    server_side = same_server(source.store, target.store) and (
        size <= ONE_REQUEST_COPY_LIMIT or target.store.config.provider.multipart_copy
    )
    if server_side:
        _server_side(source, source_etag, size, target)
        source_sha256, copied = _hash_both(source, source_etag, target)
        method: Method = "server-side"
    else:
        source_sha256 = _streamed(source, source_etag, target).sha256
        copied = _hash(target)
        method = "streamed"
    _keep_if_verified(source, target, copied, source_sha256, expected_sha256)
    return CopyOutcome(copied, method)


def _keep_if_verified(
    source: ObjectRef,
    target: ObjectRef,
    copied: TransferResult,
    source_sha256: str,
    expected: str | None,
) -> None:
    """Check the copy as read back; a bad copy is deleted, never left behind."""
    try:
        _check(source, copied, source_sha256, expected)
    except IntegrityError:
        target.store.delete(target.bucket, target.key)
        raise


def _copy_small(
    source: ObjectRef, source_etag: str, target: ObjectRef, expected: str | None
) -> CopyOutcome:
    """A small object across servers: read whole, written by one conditional PutObject
    (no HEAD first: a taken key answers 412, and then the object found is judged)."""
    body = _read_small(source, source_etag)
    source_sha256 = hashlib.sha256(body).hexdigest()
    extra = {"Metadata": {SOURCE_METADATA: source_token(source, source_etag)}}
    try:
        target.store.put_bytes(target.bucket, target.key, body, extra_args=extra)
    except ObjectExists:
        metadata = _target_metadata(target) or {}
        return _found(source, source_etag, target, metadata, expected, source_sha256)
    copied = _hash(target)
    _keep_if_verified(source, target, copied, source_sha256, expected)
    return CopyOutcome(copied, "streamed")


def source_etag_and_size(source: ObjectRef) -> tuple[str, int]:
    """The source's current ETag and size (``ObjectNotFound`` when it is gone)."""
    info = source.store.head(source.bucket, source.key)
    return info.etag, info.size


def delete_source(source: ObjectRef, etag: str) -> None:
    """Delete the source object, only while it is still the one copied (its ETag)."""
    try:
        current, _ = source_etag_and_size(source)
    except ObjectNotFound:
        return
    if current != etag:
        raise IntegrityError(
            f"{source.describe()} changed since it was copied (ETag {current}, not {etag}); "
            "it was not deleted.",
            store=source.store.name,
            bucket=source.bucket,
            key=source.key,
        )
    source.store.delete(source.bucket, source.key)

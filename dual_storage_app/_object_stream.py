"""Read an artifact's object as a stream, for the download view and the admin checks.

Messages built here are safe to show in a page: they name the store, bucket and key,
never an endpoint (the internal one is private) and never a credential.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from ._errors import translated
from .client import dual_storage
from .exceptions import AccessDenied, DualStorageError, ObjectNotFound, StorageUnavailable
from .store import Store
from .transfer import MiB

if TYPE_CHECKING:
    from .models import Artifact

CHUNK_SIZE = MiB


def locate(artifact: Artifact) -> tuple[Store, str]:
    """The store holding ``artifact`` and its bucket (the one recorded on the row)."""
    store, bucket = dual_storage.locate(artifact.kind)
    return store, artifact.bucket or bucket


class ObjectStream:
    """An open GetObject body: iterate it for 1 MiB chunks, then ``close()`` it."""

    def __init__(self, artifact: Artifact) -> None:
        store, bucket = locate(artifact)
        with translated(store.config, "download", bucket, artifact.key):
            response = store.client.get_object(Bucket=bucket, Key=artifact.key)
        self._body: Any = response["Body"]
        self._where = (store.config, bucket, artifact.key)
        self.size: int = response["ContentLength"]
        self.etag: str = response.get("ETag", "").strip('"')
        self.content_type: str = response.get("ContentType") or ""

    def __iter__(self) -> Iterator[bytes]:
        config, bucket, key = self._where
        with translated(config, "download", bucket, key):
            yield from self._body.iter_chunks(CHUNK_SIZE)

    async def aiter(self) -> AsyncIterator[bytes]:
        """The same chunks for ASGI: each blocking read runs in a worker thread, so the
        event loop never waits and Django never buffers the whole body."""
        chunks = iter(self)

        def next_chunk() -> bytes | None:
            return next(chunks, None)

        read = sync_to_async(next_chunk, thread_sensitive=False)
        while (chunk := await read()) is not None:
            yield chunk

    def close(self) -> None:
        self._body.close()


def hash_object(artifact: Artifact) -> tuple[int, str]:
    """Size and SHA-256 of the stored bytes, read once and discarded as they pass."""
    stream = ObjectStream(artifact)
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
    finally:
        stream.close()
    return size, digest.hexdigest()


def safe_reason(exc: DualStorageError, artifact: Artifact | None = None) -> str:
    """Why an operation on ``artifact`` (else the error's own object) failed, without the
    store's endpoint."""
    if artifact is not None:
        key, bucket, store = artifact.key, artifact.bucket, artifact.store_name
    else:
        key, bucket, store = exc.key or "", exc.bucket or "", exc.store or "storage"
    where = f"key {key!r} in bucket {bucket!r} on the {store} store"
    if isinstance(exc, ObjectNotFound):
        return f"no object at {where}"
    if isinstance(exc, AccessDenied):
        return f"access to {where} was refused (check the store's credentials)"
    if isinstance(exc, StorageUnavailable):
        return f"the {store} store could not be reached or failed for {where}"
    return f"{type(exc).__name__} for {where}"

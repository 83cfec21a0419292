"""An object read as a stream of chunks: the stream-through download and re-reads that
hash stored bytes without keeping them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..config.stores import StoreConfig
from .errors import translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK_SIZE = 1024 * 1024


class ObjectStream:
    """An open GetObject body: iterate it for 1 MiB chunks, then ``close()`` it.

    Opening sends the GET, so a missing object or an unreachable store fails here (before
    a caller commits to an answer) with the app's own exception."""

    def __init__(self, client: S3Client, config: StoreConfig, bucket: str, key: str) -> None:
        self._config, self.bucket, self.key = config, bucket, key
        with translated(config, "download", bucket, key):
            response = client.get_object(Bucket=bucket, Key=key)
        self._body: Any = response["Body"]
        self.size: int = response["ContentLength"]
        self.etag: str = response.get("ETag", "").strip('"')
        self.content_type: str = response.get("ContentType") or ""

    def __iter__(self) -> Iterator[bytes]:
        with translated(self._config, "download", self.bucket, self.key):
            yield from self._body.iter_chunks(CHUNK_SIZE)

    def close(self) -> None:
        self._body.close()

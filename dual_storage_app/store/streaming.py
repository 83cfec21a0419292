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

    Opening sends the GET, so a missing object, an object whose ETag is no longer
    ``if_match`` (``IntegrityError``) or an unreachable store fails here, before a caller
    commits to an answer, with the app's own exception. ``byte_range`` (first and last
    byte, inclusive) asks for part of the object."""

    def __init__(
        self,
        client: S3Client,
        config: StoreConfig,
        bucket: str,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
    ) -> None:
        self._config, self.bucket, self.key = config, bucket, key
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if byte_range is not None:
            params["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        if if_match:
            params["IfMatch"] = '"' + if_match.strip('"') + '"'
        with translated(config, "download", bucket, key):
            response = client.get_object(**params)
        self._body: Any = response["Body"]
        self.size: int = response["ContentLength"]  # of this response: the range, if any
        self.etag: str = response.get("ETag", "").strip('"')
        self.content_type: str = response.get("ContentType") or ""

    def __iter__(self) -> Iterator[bytes]:
        with translated(self._config, "download", self.bucket, self.key):
            yield from self._body.iter_chunks(CHUNK_SIZE)

    def close(self) -> None:
        self._body.close()

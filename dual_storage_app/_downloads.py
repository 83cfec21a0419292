"""The two ways a download lands: into a file descriptor, or into any seekable sink.

Both return ``(size, sha256)`` of the bytes written; the caller verifies the hash.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

from ._parallel_hash import PrefixHasher
from ._ranged_download import download_into
from ._streams import HashingWriter
from .transfer import transfer_config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def download_to_descriptor(
    client: S3Client, bucket: str, key: str, sink: BinaryIO
) -> tuple[int, str]:
    """Parallel ranged GETs ``pwrite`` into the file; a thread hashes behind them."""
    sink.flush()
    fd = sink.fileno()
    hasher = PrefixHasher(fd)
    try:
        size = download_into(client, bucket, key, fd, on_progress=hasher.advance)
    except BaseException:
        hasher.abandon()
        raise
    os.ftruncate(fd, size)  # a reused sink may have held more
    sink.seek(size)
    return size, hasher.finish(size)


def download_to_stream(client: S3Client, bucket: str, key: str, sink: BinaryIO) -> tuple[int, str]:
    """s3transfer into a seekable in-memory or spooled sink, hashed as it is written."""
    writer = HashingWriter(sink)
    client.download_fileobj(
        bucket,
        key,
        writer,  # type: ignore[arg-type]
        Config=transfer_config(),
    )
    return writer.size, writer.sha256

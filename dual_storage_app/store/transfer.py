"""Transfer policy shared by every path: part sizes, content types, presign expiry."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from boto3.s3.transfer import TransferConfig

from ..exceptions import InvalidArgument

MiB = 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit; botocore does not enforce it.
DEFAULT_CONTENT_TYPE = "application/octet-stream"


PART_SIZE = 16 * MiB
# Downloads (ranged_download.download_into): ranged GETs of this size, this many at once,
# each resumed this many times if its stream breaks.
DOWNLOAD_PART_SIZE = 16 * MiB
# Sixteen: a far store caps each connection (R2-like, 25 MB/s a connection in bench.wan),
# so throughput there is connections x cap; 16 against boto3's 10 took 1 GiB in 4.2 s
# instead of 6.6 s at 100 ms, and costs nothing measurable on loopback.
DOWNLOAD_THREADS = 16
DOWNLOAD_ATTEMPTS = 5
MAX_PARTS = 10_000
# Parts of a multipart upload sent at once: 16, as DOWNLOAD_THREADS and for the same
# reason (a per-connection cap). Files are read part by part as they are sent; a stream
# still buffers at most _IN_MEMORY_BUDGET.
UPLOAD_THREADS = 16
# Files of a folder dataset in flight at once, uploaded (folder_upload) or downloaded
# (folder_download); a large file counts for as many as the requests it sends at once.
FOLDER_FILES_AT_ONCE = 64
# Parts a stream upload may buffer at once, whatever the part size. Files never buffer
# parts (they go by path); with Django and boto3 loaded (~80 MiB) a stream upload then
# peaks under 150 MB.
_IN_MEMORY_BUDGET = 48 * MiB

ProgressCallback = Callable[[int], None]
_progress: ContextVar[ProgressCallback | None] = ContextVar("dual_storage_progress", default=None)


@contextmanager
def reporting_progress(callback: ProgressCallback) -> Iterator[None]:
    """Within this block, transfers started by this thread report their bytes to
    ``callback`` as increments: uploads the bytes sent (negative when a retry resends a
    part), downloads the bytes written. This reaches transfers started deep inside a
    model's ``save()`` or a storage's ``open()`` without changing their signatures."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


def progress_callback() -> ProgressCallback | None:
    """The callback set by :func:`reporting_progress` for this thread, if any."""
    return _progress.get()


def transfer_config(size: int | None = None) -> TransferConfig:
    """Multipart settings for a transfer of ``size`` bytes (``None``: unknown).

    Parts are 16 MiB, grown in whole MiB when ``size`` would need more than 10,000 of
    them; a stream upload buffers at most 48 MiB of parts (at least two parts). A stream
    of unknown size can therefore carry at most 16 MiB x 10,000 (156 GiB).
    """
    part_size = PART_SIZE
    if size is not None and size > PART_SIZE * MAX_PARTS:
        smallest = -(-size // MAX_PARTS)  # ceil(size / MAX_PARTS)
        part_size = -(-smallest // MiB) * MiB  # rounded up to a whole MiB
    config = TransferConfig(
        multipart_threshold=PART_SIZE,
        multipart_chunksize=part_size,
        max_concurrency=UPLOAD_THREADS,
        use_threads=True,
        # The CRT client ignores endpoint_url and would talk to AWS (boto3 #4839).
        preferred_transfer_client="classic",
    )
    config.max_in_memory_upload_chunks = max(2, _IN_MEMORY_BUDGET // part_size)
    return config


# Model formats that mimetypes misnames (".pt" is a SNES page table to it).
_BINARY_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".bin", ".npz", ".h5")


def guess_content_type(key: str) -> str:
    """The Content-Type to store for ``key``: model formats are plain binary."""
    if key.lower().endswith(_BINARY_SUFFIXES):
        return DEFAULT_CONTENT_TYPE
    return mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE


def validate_expiry(
    expiration: object,
    *,
    store: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
) -> int:
    """Presign lifetime in seconds: an int from 1 s to 7 days."""
    where = f" for {store} store, bucket {bucket!r}, key {key!r}" if store else ""
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise InvalidArgument(
            f"Presign expiration{where} must be an int number of seconds, not {expiration!r}.",
            store=store,
            bucket=bucket,
            key=key,
        )
    if not 1 <= expiration <= MAX_PRESIGN_SECONDS:
        raise InvalidArgument(
            f"Presign expiration {expiration} s{where} is out of range: "
            f"use 1 to {MAX_PRESIGN_SECONDS} seconds (7 days).",
            store=store,
            bucket=bucket,
            key=key,
        )
    return expiration

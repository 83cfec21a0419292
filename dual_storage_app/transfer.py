"""Transfer policy shared by every path: part sizes, content types, presign expiry."""

from __future__ import annotations

import mimetypes

from boto3.s3.transfer import TransferConfig

from .exceptions import InvalidArgument

MiB = 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit; botocore does not enforce it.
DEFAULT_CONTENT_TYPE = "application/octet-stream"


PART_SIZE = 16 * MiB
MAX_PARTS = 10_000
_IN_MEMORY_BUDGET = 96 * MiB  # parts buffered at once, whatever the part size


def transfer_config(size: int | None = None) -> TransferConfig:
    """Multipart settings for a transfer of ``size`` bytes (``None``: unknown).

    Parts are 16 MiB, grown in whole MiB when ``size`` would need more than 10,000 of
    them; memory stays within about 96 MiB of buffered parts. A stream of unknown size
    can therefore carry at most 16 MiB x 10,000 (156 GiB).
    """
    part_size = PART_SIZE
    if size is not None and size > PART_SIZE * MAX_PARTS:
        smallest = -(-size // MAX_PARTS)  # ceil(size / MAX_PARTS)
        part_size = -(-smallest // MiB) * MiB  # rounded up to a whole MiB
    config = TransferConfig(
        multipart_threshold=PART_SIZE,
        multipart_chunksize=part_size,
        max_concurrency=10,
        # Downloads: 1 MiB reads per write task (s3transfer's 256 KiB default costs
        # four times the Python overhead), at most 32 of them queued for the disk.
        io_chunksize=MiB,
        max_io_queue=32,
        use_threads=True,
        # The CRT client ignores endpoint_url and would talk to AWS (boto3 #4839).
        preferred_transfer_client="classic",
    )
    in_memory = max(2, _IN_MEMORY_BUDGET // part_size)
    config.max_in_memory_upload_chunks = in_memory
    config.max_in_memory_download_chunks = in_memory
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

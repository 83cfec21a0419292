"""The two ways an upload leaves: a regular file by path, or any other stream.

Both return ``(size, sha256)`` of exactly the bytes sent. A failed multipart upload is
aborted by s3transfer, so no partial object is ever published under the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import describe, translated
from ._parallel_hash import PrefixHasher
from ._streams import HashingReader, LocalFile, Readable, source_size
from .exceptions import IntegrityError
from .transfer import progress_callback, transfer_config

if TYPE_CHECKING:
    from .store import Store


def upload_stream(
    store: Store, bucket: str, key: str, source: Readable, extra: dict[str, str]
) -> tuple[int, str]:
    """Read ``source`` once, in order, hashing it as it passes (parts are buffered)."""
    size = source_size(source)
    reader = HashingReader(source)
    with translated(store.config, "upload", bucket, key):
        store.client.upload_fileobj(
            reader,  # type: ignore[arg-type]
            bucket,
            key,
            ExtraArgs=extra,
            Config=transfer_config(size),
            Callback=progress_callback(),
        )
    return reader.size, reader.sha256


def upload_local_file(
    store: Store, bucket: str, key: str, local: LocalFile, extra: dict[str, str]
) -> tuple[int, str]:
    """s3transfer reads the file's parts in parallel by path while a thread hashes it
    in order; a file that changes during the upload is refused and the object deleted."""
    hasher = PrefixHasher(local.fd)
    hasher.advance(local.size)
    try:
        with translated(store.config, "upload", bucket, key):
            store.client.upload_file(
                local.path,
                bucket,
                key,
                ExtraArgs=extra,
                Config=transfer_config(local.size),
                Callback=progress_callback(),
            )
    except BaseException:
        hasher.abandon()
        raise
    try:
        sha256 = hasher.finish(local.size)
    except OSError:
        sha256 = ""  # the file shrank under us: reported as changed below
    if not sha256 or local.changed():
        store.delete(bucket, key)
        raise IntegrityError(
            f"{local.path!r} changed while it was uploaded to the "
            f"{describe(store.config, bucket, key)}; the object was deleted. "
            "Upload a file that is not being written to.",
            store=store.name,
            bucket=bucket,
            key=key,
        )
    return local.size, sha256

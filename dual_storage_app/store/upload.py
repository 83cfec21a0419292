"""The two ways an upload leaves: a regular file by path, or any other stream.

Both return ``(size, sha256)`` of exactly the bytes sent. A failed multipart upload is
aborted by s3transfer, so no partial object is ever published under the key. Keys
reaching this module are already validated (by :class:`~.facade.Store`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.stores import StoreConfig
from ..exceptions import IntegrityError
from .errors import describe, translated
from .hashing import HashingReader, PrefixHasher, Readable
from .transfer import progress_callback, transfer_config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class LocalFile:
    """A regular file, open at its start, that can also be opened again by ``path``."""

    path: str
    fd: int
    size: int
    identity: tuple[int, int, int, int]  # device, inode, size, mtime (ns) when found

    def changed(self) -> bool:
        """True if the file was written to (or replaced) since it was found."""
        return (
            _identity(os.fstat(self.fd)) != self.identity
            or _identity(os.stat(self.path)) != self.identity
        )


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _is_django_file(source: object) -> bool:
    """Django's ``File`` (and ``UploadedFile``), recognised by its shape so that the
    engine needs no Django import: a wrapped ``file`` and a ``multiple_chunks()``."""
    return hasattr(source, "file") and callable(getattr(source, "multiple_chunks", None))


def regular_file_of(source: object) -> LocalFile | None:
    """``source`` as a :class:`LocalFile` when it is a regular file read from byte 0
    whose name still leads to it (``open(path)``, Django's ``File(open(path))`` and
    ``TemporaryUploadedFile``); ``None`` for anything else (streams, BytesIO, pipes)."""
    raw: Any = source.file if _is_django_file(source) else source  # type: ignore[attr-defined]
    temporary_path = getattr(source, "temporary_file_path", None)
    name = temporary_path() if callable(temporary_path) else getattr(raw, "name", None)
    if not isinstance(name, str | Path):
        return None
    try:
        fd = raw.fileno()
        if raw.tell() != 0:
            return None
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or not os.path.samestat(status, os.stat(name)):
            return None
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return LocalFile(os.path.abspath(name), fd, status.st_size, _identity(status))


def source_size(source: object) -> int | None:
    """Bytes left to read in ``source``, when that can be known without reading it."""
    if _is_django_file(source):
        try:
            size = source.size  # type: ignore[attr-defined]
            return int(size - (source.tell() if source.seekable() else 0))  # type: ignore[attr-defined]
        except (OSError, ValueError, AttributeError, TypeError):
            return None  # a File around a stream that cannot tell its size
    try:
        return int(os.fstat(source.fileno()).st_size - source.tell())  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (BytesIO raises UnsupportedOperation)
    try:
        if getattr(source, "seekable", lambda: False)():
            position = source.tell()  # type: ignore[attr-defined]
            end = source.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
            source.seek(position)  # type: ignore[attr-defined]
            return int(end - position)
    except (OSError, ValueError, AttributeError):
        return None
    return None


def upload_stream(
    client: S3Client,
    config: StoreConfig,
    bucket: str,
    key: str,
    source: Readable,
    extra: dict[str, str],
) -> tuple[int, str]:
    """Read ``source`` once, in order, hashing it as it passes (parts are buffered)."""
    size = source_size(source)
    reader = HashingReader(source)
    with translated(config, "upload", bucket, key):
        client.upload_fileobj(
            reader,  # type: ignore[arg-type]
            bucket,
            key,
            ExtraArgs=extra,
            Config=transfer_config(size),
            Callback=progress_callback(),
        )
    return reader.size, reader.sha256


def upload_local_file(
    client: S3Client,
    config: StoreConfig,
    bucket: str,
    key: str,
    local: LocalFile,
    extra: dict[str, str],
) -> tuple[int, str]:
    """s3transfer reads the file's parts in parallel by path while a thread hashes it
    in order; a file that changes during the upload is refused and the object deleted."""
    hasher = PrefixHasher(local.fd)
    hasher.advance(local.size)
    try:
        with translated(config, "upload", bucket, key):
            client.upload_file(
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
        with translated(config, "delete", bucket, key):
            client.delete_object(Bucket=bucket, Key=key)
        raise IntegrityError(
            f"{local.path!r} changed while it was uploaded to the "
            f"{describe(config, bucket, key)}; the object was deleted. "
            "Upload a file that is not being written to.",
            store=config.name,
            bucket=bucket,
            key=key,
        )
    return local.size, sha256

"""The two ways an upload leaves: a regular file by path, or any other stream.

Both return ``(size, sha256)`` of exactly the bytes sent. A failed multipart upload is
aborted by s3transfer, so no partial object is ever published under the key. Keys
reaching this module are already validated (by :class:`~.facade.Store`).

Writes that must never replace an object (``if_absent``, the storages' saves of a name
that is not to be overwritten) are conditional, ``If-None-Match: *``, and a taken key is
:class:`~..exceptions.ObjectExists`:

* a small seekable source (under the multipart threshold) goes up as one conditional
  PutObject (:func:`put_if_absent`);
* anything else first claims the key with a conditional empty PutObject (:func:`reserve`)
  and then uploads over its own placeholder. ``If-None-Match`` on
  CompleteMultipartUpload is not enough: SeaweedFS checks it but not atomically (two
  racing completions both succeed, one overwriting the other), while its conditional
  PutObject is atomic. A lost race therefore never starts a multipart upload, and a
  stream is refused before any of it is read (so it can be retried). A failed upload
  deletes its placeholder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError
from s3transfer.constants import ALLOWED_DOWNLOAD_ARGS

from ..config.stores import StoreConfig
from ..exceptions import IntegrityError, ObjectExists
from .errors import describe, translated
from .hashing import HashingReader, PrefixHasher, Readable
from .integrity import TAG
from .transfer import PART_SIZE, progress_callback, transfer_config

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
    extra: Mapping[str, Any],
) -> tuple[int, str]:
    """Read ``source`` once, in order, hashing it as it passes (parts are buffered)."""
    size = source_size(source)
    reader = HashingReader(source)
    with translated(config, "upload", bucket, key):
        client.upload_fileobj(
            reader,  # type: ignore[arg-type]
            bucket,
            key,
            ExtraArgs=dict(extra),
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
    extra: Mapping[str, Any],
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
                ExtraArgs=dict(extra),
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


# -- conditional writes ------------------------------------------------------------------

# 412 is the condition failing (the key is taken); 409 ConditionalRequestConflict is AWS
# S3 seeing another conditional write to the key in flight. Either way the key is not ours.
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
#: User metadata on a name's placeholder, so a reservation left by a killed process can
#: be told from an object (it is empty and carries this).
RESERVATION_METADATA = {"dual-storage-reservation": "1"}


@contextmanager
def refused_if_taken(config: StoreConfig, bucket: str, key: str) -> Iterator[None]:
    """Turn the store's answer to a failed ``If-None-Match: *`` into ``ObjectExists``
    (errors.py would read a 412 as a changed object during a read)."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code not in _CONFLICT_CODES and status != 412:
            raise
        raise ObjectExists(
            f"Cannot upload: the {describe(config, bucket, key)} is already taken "
            f"({code or status}); nothing was written.",
            store=config.name,
            bucket=bucket,
            key=key,
            code=code or None,
            status=status,
        ) from exc


def fits_one_put(source: object, size: int | None) -> bool:
    """True when ``source`` can go up as one conditional PutObject: its size is known and
    under the multipart threshold, and it can be rewound for a retry under another name."""
    seekable = getattr(source, "seekable", None)
    try:
        rewindable = bool(seekable()) if callable(seekable) else False
    except (OSError, ValueError, AttributeError):
        rewindable = False
    return rewindable and size is not None and size < PART_SIZE


def put_if_absent(
    client: S3Client,
    config: StoreConfig,
    bucket: str,
    key: str,
    source: Readable,
    extra: Mapping[str, Any],
) -> tuple[int, str, str]:
    """``(size, sha256, etag)`` of ``source`` (under the multipart threshold) written as one
    PutObject only if ``key`` is free; ``ObjectExists`` if it is taken."""
    reader = HashingReader(source)
    body = reader.read()
    with translated(config, "upload", bucket, key), refused_if_taken(config, bucket, key):
        response = client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
    callback = progress_callback()
    if callback is not None:
        callback(len(body))
    return reader.size, reader.sha256, str(response.get("ETag", "")).strip('"')


def put_bytes_if_absent(
    client: S3Client,
    config: StoreConfig,
    bucket: str,
    key: str,
    body: bytes,
    extra: Mapping[str, Any],
) -> tuple[str, str]:
    """``(sha256, etag)`` of ``body`` written as one PutObject only if ``key`` is free,
    with its SHA-256 tag in the same request where the provider has tagging
    (``ObjectExists`` if the key is taken)."""
    sha256 = hashlib.sha256(body).hexdigest()
    arguments = dict(extra)
    if config.provider.supports_tagging:
        arguments["Tagging"] = urlencode({TAG: sha256})
    with translated(config, "upload", bucket, key), refused_if_taken(config, bucket, key):
        response = client.put_object(
            Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **arguments
        )
    return sha256, str(response.get("ETag", "")).strip('"')


def reserve(client: S3Client, config: StoreConfig, bucket: str, key: str) -> None:
    """Claim ``key`` with an empty placeholder written only if no object has it
    (``ObjectExists`` if one does); the upload that follows replaces the placeholder."""
    with translated(config, "upload", bucket, key), refused_if_taken(config, bucket, key):
        client.put_object(
            Bucket=bucket, Key=key, Body=b"", IfNoneMatch="*", Metadata=RESERVATION_METADATA
        )


def read_arguments(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Of an upload's object parameters, those a read (HEAD, GET) of the object needs:
    the SSE-C key and the like (s3transfer's ALLOWED_DOWNLOAD_ARGS, as S3Storage)."""
    return {k: v for k, v in parameters.items() if k in ALLOWED_DOWNLOAD_ARGS}

"""Streaming helpers: hash bytes as they pass, and write files atomically."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from django.core.files.base import File


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes | str: ...


class HashingReader:
    """A forward-only reader that computes SHA-256 and size of everything read.

    It deliberately has no ``seek``: s3transfer then reads the source exactly once, in
    order, in one thread, and keeps at most a bounded number of parts in memory; retries
    resend the buffered part instead of re-reading the source, so the hash stays exact.
    """

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._coerce(self._source.read())
        else:
            # Fill the request unless at EOF: R2 wants equal-sized parts.
            chunks: list[bytes] = []
            remaining = size
            while remaining > 0:
                chunk = self._coerce(self._source.read(remaining))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        self._sha256.update(data)
        self.size += len(data)
        return data

    @staticmethod
    def _coerce(chunk: bytes | str) -> bytes:
        return chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


class HashingWriter:
    """A seekable writer that computes SHA-256 of the file in byte order.

    s3transfer writes the ranged parts of a download at their offsets, out of order, from
    one I/O thread (``seek`` then ``write``). Bytes that extend the hashed prefix are
    hashed at once; a part that arrives early is hashed by reading it back from ``sink``
    (page cache) when the gap before it fills. Memory stays flat whatever the size.

    (The forward-only alternative, s3transfer's non-seekable output manager, deadlocks
    on downloads of more parts than ``max_in_memory_download_chunks`` in s3transfer 0.19
    when ``response_checksum_validation="when_required"``.)

    ``sink`` must be readable, writable and seekable (``w+b``).
    """

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._sha256 = hashlib.sha256()
        self._position = 0
        self._hashed = 0  # bytes [0, _hashed) are in the hash
        self._pending: dict[int, int] = {}  # offset -> length written ahead of _hashed
        self._rewritten = False  # a retry wrote again below _hashed
        self.size = 0

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._position = self._sink.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes) -> int:
        offset = self._position
        written = self._sink.write(data)
        self._position += written
        self.size = max(self.size, self._position)
        if offset == self._hashed:
            self._sha256.update(data[:written])
            self._hashed += written
            self._absorb_pending()
        elif offset > self._hashed:
            self._pending[offset] = written
        else:
            # s3transfer retried a range from its start: bytes already hashed were
            # written again (and may differ). Hash the finished file from disk instead.
            self._rewritten = True
        return written

    def _absorb_pending(self) -> None:
        while self._hashed in self._pending:
            length = self._pending.pop(self._hashed)
            self._sink.seek(self._hashed)
            self._sha256.update(self._sink.read(length))
            self._hashed += length
        self._sink.seek(self._position)

    @property
    def sha256(self) -> str:
        if self._rewritten:
            return self._rehash()
        if self._pending or self._hashed != self.size:
            raise RuntimeError("The download left a gap; its hash is incomplete.")
        return self._sha256.hexdigest()

    def _rehash(self) -> str:
        """SHA-256 of the sink's bytes as they are now (page cache; retries only)."""
        digest = hashlib.sha256()
        self._sink.seek(0)
        remaining = self.size
        while remaining > 0:
            block = self._sink.read(min(remaining, 1024 * 1024))
            if not block:
                raise RuntimeError("The download left a gap; its hash is incomplete.")
            digest.update(block)
            remaining -= len(block)
        self._sink.seek(self._position)
        return digest.hexdigest()

    def close(self) -> None:
        """Nothing to release (the same interface as ``OffsetWriter``)."""


def has_descriptor(sink: object) -> bool:
    """True if ``sink`` is backed by a real file descriptor (not BytesIO, not a spool)."""
    try:
        return isinstance(sink.fileno(), int)  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return False


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


def local_file(source: object) -> LocalFile | None:
    """``source`` as a :class:`LocalFile` when it is a regular file read from byte 0
    whose name still leads to it (``open(path)``, ``File(open(path))``, Django's
    ``TemporaryUploadedFile``); ``None`` for anything else (streams, BytesIO, pipes)."""
    raw = source.file if isinstance(source, File) else source
    temporary_path = getattr(source, "temporary_file_path", None)
    name = temporary_path() if callable(temporary_path) else getattr(raw, "name", None)
    if not isinstance(name, str | Path):
        return None
    try:
        fd = raw.fileno()  # type: ignore[attr-defined]
        if raw.tell() != 0:  # type: ignore[attr-defined]
            return None
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or not os.path.samestat(status, os.stat(name)):
            return None
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return LocalFile(os.path.abspath(name), fd, status.st_size, _identity(status))


@contextmanager
def atomic_destination(dest: Path) -> Iterator[BinaryIO]:
    """Yield a temporary file beside ``dest``; rename it over ``dest`` only on success.

    On any exception the temporary file is removed and an existing ``dest`` is untouched.
    """
    dest = Path(dest)
    if dest.is_dir():
        raise IsADirectoryError(f"Download destination {str(dest)!r} is a directory.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name[:200]}.", suffix=".part", dir=dest.parent)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as tmp_file:
            yield tmp_file
            tmp_file.flush()
            # mkstemp makes 0600; give the file the mode a plain open() would have.
            os.fchmod(tmp_file.fileno(), _default_file_mode(dest))
            os.fsync(tmp_file.fileno())
        os.replace(tmp_path, dest)
        _fsync_directory(dest.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    # Read once at import: os.umask() can only be read by setting it, which is not
    # thread-safe while downloads run.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _default_file_mode(dest: Path) -> int:
    """The existing destination's mode, else 0666 minus the process umask."""
    try:
        return dest.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def source_size(source: object) -> int | None:
    """Bytes left to read in ``source``, when that can be known without reading it."""
    if isinstance(source, File):  # Django File / UploadedFile
        try:
            size = source.size
            return size - (source.tell() if source.seekable() else 0)
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
    return None


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a directory we may not open
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)

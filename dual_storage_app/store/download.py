"""Where a download lands: a file descriptor filled by parallel ranged GETs, hashed by a
thread that follows them, inside a temporary file renamed into place only when complete.

Keys reaching this module are already validated (by :class:`~.facade.Store`); the caller
verifies the hash (:mod:`.integrity`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .hashing import PrefixHasher, hash_fd
from .ranged_download import READ_SIZE, download_into
from .transfer import DOWNLOAD_PART_SIZE, progress_callback

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def has_descriptor(sink: object) -> bool:
    """True if ``sink`` is backed by a real file descriptor (not BytesIO)."""
    try:
        return isinstance(sink.fileno(), int)  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return False


WRITE_BEHIND_STEP = 64 * 1024 * 1024
# How far the parallel GETs may run ahead of the hash. Unchecked, on a machine whose
# cores the transfer fills, the hash gets the least CPU and most of it is left for
# after the last byte arrives, on one core; held within this window, the hash keeps
# pace and what is left at the end is at most the window. It must exceed one part (the
# lowest incomplete part must always be allowed on).
HASH_WINDOW = max(128 * 1024 * 1024, DOWNLOAD_PART_SIZE + READ_SIZE)


class WriteBehind:
    """Flush a file being downloaded to disk while the download runs, so the ``fsync``
    that makes the finished file durable finds little left to write.

    A daemon thread calls ``fdatasync`` whenever :meth:`advance` has announced another
    ``WRITE_BEHIND_STEP`` bytes since its last flush. The disk then writes while the
    network still delivers (the bytes must reach it before the rename either way), off
    the transfer's threads and without holding the interpreter's lock.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._announced = 0
        self._flushed = 0
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="dual-storage-flush", daemon=True)
        self._thread.start()

    def advance(self, ready: int) -> None:
        with self._changed:
            if ready - self._flushed >= WRITE_BEHIND_STEP:
                self._announced = ready
                self._changed.notify()

    def stop(self) -> None:
        """Stop flushing (the caller's own ``fsync`` writes the rest); idempotent."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._announced <= self._flushed and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                target = self._announced
            try:
                os.fdatasync(self._fd)
            except OSError:  # the caller's fsync reports a real failure
                return
            self._flushed = target


class _Followers:
    """What follows a download's bytes: the SHA-256 and, for a file that will be
    ``fsync``-ed, the write-behind. Started when the size is known, and only for an
    object of more than one part: one part arrives in one stream, in order, and is
    hashed from the page cache once it has landed, with no thread to start."""

    def __init__(self, fd: int, write_behind: bool) -> None:
        self._fd, self._write_behind = fd, write_behind
        self._hasher: PrefixHasher | None = None
        self._flusher: WriteBehind | None = None

    def on_size(self, size: int) -> None:
        if size > DOWNLOAD_PART_SIZE:
            self._hasher = PrefixHasher(self._fd)
            self._flusher = WriteBehind(self._fd) if self._write_behind else None

    def advance(self, ready: int) -> None:
        if self._hasher is not None:
            self._hasher.advance(ready)
        if self._flusher is not None:
            self._flusher.advance(ready)

    def pace(self, end: int) -> bool:
        return self._hasher is None or self._hasher.wait_for_room(end, HASH_WINDOW, timeout=0.1)

    def stop_flushing(self) -> None:
        if self._flusher is not None:
            self._flusher.stop()

    def abandon(self) -> None:
        self.stop_flushing()
        if self._hasher is not None:
            self._hasher.abandon()

    def sha256(self, size: int) -> str:
        """The SHA-256 of bytes ``[0, size)``, once every byte has been written."""
        return hash_fd(self._fd, size) if self._hasher is None else self._hasher.finish(size)


def download_to_descriptor(
    client: S3Client,
    bucket: str,
    key: str,
    sink: BinaryIO,
    extra_args: Mapping[str, Any] | None = None,
    *,
    write_behind: bool = False,
) -> tuple[int, str]:
    """Parallel ranged GETs ``pwrite`` into ``sink``'s file; a thread hashes behind them.
    Returns ``(size, sha256)`` of the bytes written; ``sink`` is left at its end.
    ``extra_args`` go with every GET (an SSE-C key). ``write_behind``: flush to disk
    while downloading (:class:`WriteBehind`; for a file that will be ``fsync``-ed)."""
    sink.flush()
    fd = sink.fileno()
    followers = _Followers(fd, write_behind)
    try:
        size = download_into(
            client,
            bucket,
            key,
            fd,
            on_contiguous=followers.advance,
            on_bytes=progress_callback(),
            extra_args=extra_args,
            pace=followers.pace,
            on_size=followers.on_size,
        )
    except BaseException:
        followers.abandon()
        raise
    followers.stop_flushing()
    os.ftruncate(fd, size)  # a reused sink may have held more
    sink.seek(size)
    return size, followers.sha256(size)


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

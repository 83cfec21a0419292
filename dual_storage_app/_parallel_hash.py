"""SHA-256 of a file computed in a background thread, beside the transfer that moves it.

Hashing in the transfer's own thread puts ~0.5 ms per MiB on its critical path. Here a
:class:`PrefixHasher` thread reads the file back with ``os.pread`` (page cache, its own
offset, no seek races) as far as the bytes are final, so on a multi-core machine the
hash costs only the tail that is left when the transfer ends.

:class:`OffsetWriter` is the download side: s3transfer writes ranged parts at their
offsets (``seek`` + ``write`` from its one I/O thread); the writer ``pwrite``\\ s them and
tells the hasher how far the file is contiguous from byte 0.
"""

from __future__ import annotations

import hashlib
import os
import threading

_READ_SIZE = 4 * 1024 * 1024


def hash_fd(fd: int, size: int) -> str:
    """SHA-256 of bytes ``[0, size)`` of ``fd``, read with ``pread``."""
    digest = hashlib.sha256()
    _update(digest, fd, 0, size)
    return digest.hexdigest()


def _update(digest: hashlib._Hash, fd: int, start: int, end: int) -> None:
    while start < end:
        block = os.pread(fd, min(_READ_SIZE, end - start), start)
        if not block:
            raise OSError(f"file ended at byte {start}, {end - start} bytes short of {end}")
        digest.update(block)
        start += len(block)


class PrefixHasher:
    """Hash ``fd`` in order in a daemon thread, up to the end announced by :meth:`advance`."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._digest = hashlib.sha256()
        self._ready = 0  # bytes [0, _ready) are final and may be hashed
        self._hashed = 0
        self._stopping = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="dual-storage-hash", daemon=True)
        self._thread.start()

    def advance(self, ready: int) -> None:
        """Bytes ``[0, ready)`` are final."""
        with self._changed:
            if ready > self._ready:
                self._ready = ready
                self._changed.notify()

    def finish(self, size: int) -> str:
        """Wait for the hash of bytes ``[0, size)`` and return it."""
        self.advance(size)
        self._stop()
        if self._error is not None:
            raise self._error
        if self._hashed != size:
            raise OSError(f"hashed {self._hashed} of {size} bytes")
        return self._digest.hexdigest()

    def abandon(self) -> None:
        """Stop without a result (the transfer failed); safe to call more than once."""
        self._stop()

    def _stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                with self._changed:
                    while self._hashed == self._ready and not self._stopping:
                        self._changed.wait()
                    ready = self._ready
                    if self._hashed == ready:  # stopping, and nothing left
                        return
                _update(self._digest, self._fd, self._hashed, ready)
                self._hashed = ready
        except BaseException as exc:  # reported by finish()
            self._error = exc


class OffsetWriter:
    """A seekable, write-only file for s3transfer that hashes the file in byte order.

    ``sink`` must be a real file opened ``w+b``. Writes go straight to its descriptor
    with ``pwrite`` (its Python buffer is flushed first and never used). If a retry
    writes bytes again (s3transfer restarts a failed range from its start), the file is
    hashed again from disk at the end, so the hash is always of the bytes on disk.
    """

    def __init__(self, sink: object) -> None:
        sink.flush()  # type: ignore[attr-defined]
        self._fd: int = sink.fileno()  # type: ignore[attr-defined]
        self._position = 0
        self._contiguous = 0  # bytes [0, _contiguous) are written
        self._islands: dict[int, int] = {}  # start -> end, written beyond _contiguous
        self._rewritten = False
        self.size = 0
        self._hasher = PrefixHasher(self._fd)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise OSError("OffsetWriter seeks to absolute offsets only")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes) -> int:
        start = self._position
        view = memoryview(data)
        while view:  # pwrite may write less than asked
            written = os.pwrite(self._fd, view, self._position)
            view = view[written:]
            self._position += written
        self.size = max(self.size, self._position)
        self._record(start, self._position)
        return len(data)

    def _record(self, start: int, end: int) -> None:
        if start < self._contiguous or any(
            start < island_end and island_start < end
            for island_start, island_end in self._islands.items()
        ):
            self._rewritten = True  # bytes written twice: hash the final file instead
        extended = next((s for s, e in self._islands.items() if e == start), None)
        if start == self._contiguous:
            self._contiguous = end
        elif extended is not None:
            self._islands[extended] = end
        else:
            self._islands[start] = end
        while self._contiguous in self._islands:
            self._contiguous = self._islands.pop(self._contiguous)
        self._hasher.advance(self._contiguous)

    @property
    def sha256(self) -> str:
        """The SHA-256 of the whole file; waits for the hasher to catch up."""
        if self._rewritten:
            self._hasher.abandon()
            return hash_fd(self._fd, self.size)
        if self._islands or self._contiguous != self.size:
            self._hasher.abandon()
            raise OSError("The download left a gap; its hash is incomplete.")
        return self._hasher.finish(self.size)

    def close(self) -> None:
        """Stop the hasher (after a failed download)."""
        self._hasher.abandon()

"""SHA-256 of a file computed in a background thread, beside the transfer that moves it.

Hashing in the transfer's own thread puts ~0.5 ms per MiB on its critical path. Here a
:class:`PrefixHasher` thread reads the file back with ``os.preadv`` into one reused
buffer (page cache, its own offset, no seek races) as far as the bytes are final, so on
a multi-core machine the hash costs only the tail that is left when the transfer ends.
Uploads of files announce the whole file at once; downloads announce each range as it
completes in order.
"""

from __future__ import annotations

import hashlib
import os
import threading

_READ_SIZE = 4 * 1024 * 1024


def hash_fd(fd: int, size: int) -> str:
    """SHA-256 of bytes ``[0, size)`` of ``fd``, read with ``preadv``."""
    digest = hashlib.sha256()
    _update(digest, fd, 0, size, bytearray(_READ_SIZE))
    return digest.hexdigest()


def _update(digest: hashlib._Hash, fd: int, start: int, end: int, buffer: bytearray) -> None:
    """Hash bytes ``[start, end)`` of ``fd``, read into ``buffer`` (reused: no allocation
    and no fresh pages to fault in per block)."""
    view = memoryview(buffer)
    while start < end:
        count = os.preadv(fd, [view[: min(len(view), end - start)]], start)
        if not count:
            raise OSError(f"file ended at byte {start}, {end - start} bytes short of {end}")
        digest.update(view[:count])
        start += count


class PrefixHasher:
    """Hash ``fd`` in order in a daemon thread, up to the end announced by :meth:`advance`."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._digest = hashlib.sha256()
        self._ready = 0  # bytes [0, _ready) are final and may be hashed
        self._hashed = 0
        self._buffer = bytearray(_READ_SIZE)
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
                _update(self._digest, self._fd, self._hashed, ready, self._buffer)
                self._hashed = ready
        except BaseException as exc:  # reported by finish()
            self._error = exc

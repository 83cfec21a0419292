"""SHA-256 of what a transfer moves, in the same pass: the engine's one hashing module.

* :class:`HashingReader` hashes a stream upload as s3transfer reads it, in order.
* :class:`PrefixHasher` hashes a file in a background thread beside the transfer that
  writes or reads it (file uploads, downloads).
* :func:`hash_chunks` hashes a stream of chunks as they pass (re-reads of stored
  objects); :func:`hash_file` hashes a local file.

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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

_READ_SIZE = 4 * 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes | str: ...


def hash_fd(fd: int, size: int) -> str:
    """SHA-256 of bytes ``[0, size)`` of ``fd``, read with ``preadv``."""
    digest = hashlib.sha256()
    _update(digest, fd, 0, size, bytearray(_READ_SIZE))
    return digest.hexdigest()


def hash_file(path: Path) -> str:
    """SHA-256 of a whole local file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return hash_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def hash_chunks(chunks: Iterable[bytes]) -> tuple[int, str]:
    """``(size, sha256)`` of the bytes of ``chunks``, each discarded once hashed."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


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


def _update(
    digest: hashlib._Hash,
    fd: int,
    start: int,
    end: int,
    buffer: bytearray,
    on_block: Callable[[int], None] | None = None,
) -> None:
    """Hash bytes ``[start, end)`` of ``fd``, read into ``buffer`` (reused: no allocation
    and no fresh pages to fault in per block); ``on_block(position)`` hears the progress."""
    view = memoryview(buffer)
    while start < end:
        count = os.preadv(fd, [view[: min(len(view), end - start)]], start)
        if not count:
            raise OSError(f"file ended at byte {start}, {end - start} bytes short of {end}")
        digest.update(view[:count])
        start += count
        if on_block is not None:
            on_block(start)


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
                self._changed.notify_all()

    def wait_for_room(self, end: int, window: int, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until the hash is within ``window`` bytes of
        ``end``, or has stopped; True if it is. A writer that waits here keeps the hash
        from falling behind, so little is left to hash when the transfer ends."""
        with self._changed:
            return self._changed.wait_for(
                lambda: end - self._hashed <= window or self._stopping or self._error is not None,
                timeout,
            )

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
            self._changed.notify_all()
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
                _update(self._digest, self._fd, self._hashed, ready, self._buffer, self._hashed_to)
        except BaseException as exc:  # reported by finish()
            with self._changed:
                self._error = exc
                self._changed.notify_all()

    def _hashed_to(self, position: int) -> None:
        with self._changed:
            self._hashed = position
            self._changed.notify_all()

"""Parallel ranged GETs written straight into a file descriptor.

s3transfer moves every 256 KiB of a download through a queue to one I/O thread; on a
2-core machine that thread and the GIL hand-offs cost a third of the wire speed. Here
each worker thread streams its own ranged GET into the file with ``os.pwrite`` (which
releases the GIL), so the only shared state is which ranges are complete.

The protocol is s3transfer's: the first ranged GET tells the size and the ETag (no
HEAD); the others carry ``If-Match`` so an object replaced mid-download fails with 412
instead of mixing versions; a stream that breaks mid-body (s3transfer's own list of
retryable download errors) is resumed from the byte it reached, up to ``attempts`` times
per part; an empty object (416 to a ranged GET) is read with a plain GET.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from s3transfer.exceptions import RetriesExceededError
from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

from .transfer import DOWNLOAD_ATTEMPTS, DOWNLOAD_PART_SIZE, DOWNLOAD_THREADS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

READ_SIZE = 1024 * 1024


def _ignore(_count: int) -> None:
    """A progress listener that listens to nothing."""


def _no_pace(_end: int) -> bool:
    """A pace that never holds a block back."""
    return True


def download_into(
    client: S3Client,
    bucket: str,
    key: str,
    fd: int,
    on_contiguous: Callable[[int], None] = _ignore,
    on_bytes: Callable[[int], None] | None = None,
    extra_args: Mapping[str, Any] | None = None,
    pace: Callable[[int], bool] = _no_pace,
    on_size: Callable[[int], None] = _ignore,
) -> int:
    """Download ``bucket/key`` into ``fd`` with the transfer policy's part size, threads
    and attempts; return the object's size. ``on_contiguous``, ``on_bytes``,
    ``extra_args``, ``pace`` and ``on_size`` are as for :class:`RangedDownload`."""
    return RangedDownload(
        client,
        bucket,
        key,
        fd,
        part_size=DOWNLOAD_PART_SIZE,
        threads=DOWNLOAD_THREADS,
        attempts=DOWNLOAD_ATTEMPTS,
        on_contiguous=on_contiguous,
        on_bytes=on_bytes or _ignore,
        extra_args=extra_args,
        pace=pace,
        on_size=on_size,
    ).run()


class RangedDownload:
    """Download ``bucket/key`` into ``fd`` with ``threads`` parallel ranged GETs of
    ``part_size`` bytes. ``on_contiguous(end)`` hears how far the file is complete from
    byte 0 (for a hasher that follows); ``on_bytes(count)`` hears every block written, as
    an increment, from the worker threads (for a progress bar). ``extra_args`` go with
    every GET (the SSE-C key of an object stored with one). ``pace(end)`` is asked before
    each block is read whether bytes up to ``end`` may come now; it may wait a little and
    answer False, and is asked again (a hasher that keeps the writers within reach of
    it). It must answer True for the lowest incomplete part, or the download stalls.
    ``on_size(size)`` hears the object's size once, before any byte is written. An
    object of one part is read in the calling thread, with no pool."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        fd: int,
        *,
        part_size: int,
        threads: int,
        attempts: int,
        on_contiguous: Callable[[int], None],
        on_bytes: Callable[[int], None] = _ignore,
        extra_args: Mapping[str, Any] | None = None,
        pace: Callable[[int], bool] = _no_pace,
        on_size: Callable[[int], None] = _ignore,
    ) -> None:
        self._client, self._bucket, self._key, self._fd = client, bucket, key, fd
        self._pace, self._on_size = pace, on_size
        self._extra: dict[str, Any] = dict(extra_args or {})
        self._part_size, self._threads, self._attempts = part_size, threads, attempts
        self._on_contiguous, self._on_bytes = on_contiguous, on_bytes
        self._lock = threading.Lock()
        self._finished: dict[int, int] = {}  # part start -> end, beyond _contiguous
        self._contiguous = 0
        self._cancelled = threading.Event()

    def run(self) -> int:
        """Download everything; return the object's size."""
        try:
            first = self._get(0, self._part_size - 1, etag=None)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            return self._empty_object()
        content_range = first.get("ContentRange")
        if content_range:  # "bytes 0-16777215/536870912"
            size = int(str(content_range).rsplit("/", 1)[1])
            first_end = min(self._part_size, size)
        else:  # a server that ignored the Range header sent the whole object
            size = first_end = int(first["ContentLength"])
        etag = first.get("ETag")
        self._on_size(size)
        starts = range(first_end, size, self._part_size)
        if not starts:  # one part: no pool to start for it
            self._write_part(0, first_end, etag, first)
            return size
        with ThreadPoolExecutor(self._threads, thread_name_prefix="dual-storage-get") as pool:
            futures = [pool.submit(self._write_part, 0, first_end, etag, first)]
            futures += [
                pool.submit(self._write_part, start, min(start + self._part_size, size), etag)
                for start in starts
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                self._cancelled.set()
                for future in futures:
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]
        return size

    def _empty_object(self) -> int:
        response = self._client.get_object(Bucket=self._bucket, Key=self._key, **self._extra)
        data = response["Body"].read()
        self._on_size(len(data))
        os.pwrite(self._fd, data, 0)
        self._on_bytes(len(data))
        self._on_contiguous(len(data))
        return len(data)

    def _get(self, start: int, end: int, etag: str | None) -> Any:
        arguments = {"Range": f"bytes={start}-{end}", **self._extra}
        if etag is not None:
            arguments["IfMatch"] = etag
        return self._client.get_object(Bucket=self._bucket, Key=self._key, **arguments)

    def _write_part(self, start: int, end: int, etag: str | None, response: Any = None) -> None:
        position = start
        last_error: BaseException = RuntimeError("no attempt was made")
        for _ in range(self._attempts):
            if self._cancelled.is_set():
                return
            try:
                if response is None:  # (re)start the range from the byte reached
                    response = self._get(position, end - 1, etag)
                body = response["Body"]
                try:
                    while position < end and not self._cancelled.is_set():
                        block_end = min(position + READ_SIZE, end)
                        if not self._pace(block_end):
                            continue  # asked again, unless cancelled meanwhile
                        block = body.read(block_end - position)
                        if not block:
                            break  # ended early: resume with a new ranged GET
                        position = self._write_at(block, position)
                finally:
                    body.close()
                if position == end:
                    self._record(start, end)
                    return
            except S3_RETRYABLE_DOWNLOAD_ERRORS as exc:
                last_error = exc
            response = None
        raise RetriesExceededError(last_error)

    def _write_at(self, block: bytes, position: int) -> int:
        """``pwrite`` all of ``block`` at ``position``; return the position after it."""
        view = memoryview(block)
        while view:
            written = os.pwrite(self._fd, view, position)
            view = view[written:]
            position += written
        self._on_bytes(len(block))
        return position

    def _record(self, start: int, end: int) -> None:
        with self._lock:
            self._finished[start] = end
            while self._contiguous in self._finished:
                self._contiguous = self._finished.pop(self._contiguous)
            contiguous = self._contiguous
        self._on_contiguous(contiguous)

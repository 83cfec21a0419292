"""A per-process cache of schemas for ``get_schema``: fresh for a window, then revalidated.

The rule, for each ``(endpoint, bucket, key)``:

* a read within ``max_age`` seconds (``SCHEMA_CACHE_SECONDS``) of the last answer from the
  store returns the cached bytes and makes no request;
* a later read sends a conditional GET (``If-None-Match: <etag>``): a 304 keeps the bytes
  and restarts the window, a 200 replaces them, a 404 evicts the entry and raises
  ``ObjectNotFound``. ``max_age=0`` revalidates on every read;
* a write made through this process (``upload_schema``, ``delete``, the ``ConfigSchema``
  publish, rename and delete paths) calls :meth:`SchemaCache.invalidate` once it is done,
  so this process never reads its own write stale. A read that was already in flight
  when an invalidation happened returns what the store answered but never caches it.

So a change made elsewhere (another process, another tool) is seen at most
``max_age`` seconds after it lands, and a change made here at once. The window is
counted from when the request that last confirmed the bytes was *sent*.

An entry is only served without a request to a client with the same store settings
(endpoint, keys, region...) as the one whose read last confirmed it; any other client
revalidates with its own credentials, so a cache hit never lets a client read what the
store would refuse it. The cache keeps
at most 256 entries and 32 MiB (least recently used go first); objects over 1 MiB or
without an ETag are returned but never cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.stores import StoreConfig
from ..exceptions import ObjectNotFound

if TYPE_CHECKING:
    from .facade import Store

MiB = 1024 * 1024
MAX_ENTRIES = 256
MAX_TOTAL_BYTES = 32 * MiB
MAX_OBJECT_BYTES = 1 * MiB

CacheKey = tuple[str, str, str]  # (endpoint URL, bucket, key)


@dataclass(frozen=True)
class _Entry:
    data: bytes
    etag: str
    checked_at: float  # clock() when the request that confirmed ``data`` was sent
    reader: StoreConfig  # the settings that request was sent with


class SchemaCache:
    """Thread-safe LRU of small objects, revalidated by ETag after ``max_age`` seconds."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_object_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.max_total_bytes = max_total_bytes
        self.max_object_bytes = max_object_bytes
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._total_bytes = 0
        self._generation = 0  # bumped by every invalidation: in-flight reads don't cache
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, store: Store, bucket: str, key: str, max_age: float) -> bytes:
        """The bytes of ``bucket/key`` (a validated key) on ``store``, by the rule above."""
        cache_key = (store.config.endpoint_url, bucket, key)
        reader = store.config
        with self._lock:
            entry = self._entries.get(cache_key)
            generation = self._generation
            if entry is not None:
                self._entries.move_to_end(cache_key)
                same_reader = entry.reader is reader or entry.reader == reader
                if same_reader and self.clock() - entry.checked_at < max_age:
                    return entry.data
        sent_at = self.clock()
        try:
            data, etag = _fetch(store, bucket, key, entry)
        except ObjectNotFound:
            self.invalidate(store, bucket, key)
            raise
        with self._lock:
            current = self._entries.get(cache_key)
            if not etag or len(data) > self.max_object_bytes:
                self._drop(cache_key)  # the store has moved on; keep nothing older
            elif self._generation == generation and (
                current is None or current.checked_at <= sent_at
            ):
                self._put(cache_key, _Entry(data, etag, sent_at, reader))
        return data

    def invalidate(self, store: Store, bucket: str, key: str) -> None:
        """Forget ``bucket/key`` on ``store``: call it after writing or deleting it."""
        with self._lock:
            self._generation += 1
            self._drop((store.config.endpoint_url, bucket, key))

    def clear(self) -> None:
        """Forget everything (settings changed, or between tests)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._total_bytes = 0

    def _put(self, cache_key: CacheKey, entry: _Entry) -> None:
        self._drop(cache_key)
        self._entries[cache_key] = entry
        self._total_bytes += len(entry.data)
        while len(self._entries) > self.max_entries or self._total_bytes > self.max_total_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, cache_key: CacheKey) -> None:
        old = self._entries.pop(cache_key, None)
        if old is not None:
            self._total_bytes -= len(old.data)


def _fetch(store: Store, bucket: str, key: str, cached: _Entry | None) -> tuple[bytes, str]:
    """``(bytes, etag)`` of ``bucket/key``: a GET, conditional on ``cached``'s ETag if any
    (a 304 Not Modified returns ``cached``'s bytes)."""
    if cached is None:
        return store.read_object(bucket, key)
    changed = store.read_object_if_changed(bucket, key, cached.etag)
    return (cached.data, cached.etag) if changed is None else changed


schema_cache = SchemaCache()
"""The process-wide cache used by ``DualStorageClient.get_schema``."""

"""The ETag an upload's last request returned, without a HEAD request after it.

s3transfer's futures return nothing, but every upload ends in one PutObject or one
CompleteMultipartUpload whose response carries the ETag. :class:`ETagRecorder` listens
for those responses on a client and hands the ETag to the upload that is waiting for
that bucket and key. Two uploads of the same key at once in one process cannot be told
apart, so then neither gets one and the caller asks the server (HEAD).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CONTEXT_KEY = "dual_storage_upload_target"
_LAST_REQUESTS = ("PutObject", "CompleteMultipartUpload")


class ETagRecorder:
    """Per-client registry of uploads waiting for their ETag."""

    def __init__(self, client: S3Client) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._waiting: dict[tuple[str, str], list[str | None]] = {}
        self._contended: set[tuple[str, str]] = set()
        events = client.meta.events
        for operation in _LAST_REQUESTS:
            events.register(f"before-parameter-build.s3.{operation}", self._remember_target)
            events.register(f"after-call.s3.{operation}", self._capture)

    @contextmanager
    def waiting_for(self, bucket: str, key: str) -> Iterator[list[str | None]]:
        """Yield a one-slot list that holds the upload's ETag (or None) when it is done."""
        target = (bucket, key)
        slot: list[str | None] = [None]
        with self._lock:
            if target in self._waiting:
                self._contended.add(target)
            self._waiting[target] = slot
        try:
            yield slot
        finally:
            with self._lock:
                if target in self._contended:
                    slot[0] = None
                if self._waiting.get(target) is slot:
                    del self._waiting[target]
                    self._contended.discard(target)

    @staticmethod
    def _remember_target(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_CONTEXT_KEY] = (params.get("Bucket"), params.get("Key"))

    def _capture(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        etag = parsed.get("ETag")
        target = context.get(_CONTEXT_KEY)
        if not etag or target is None:
            return
        with self._lock:
            slot = self._waiting.get(target)
            if slot is not None:
                slot[0] = str(etag).strip('"')

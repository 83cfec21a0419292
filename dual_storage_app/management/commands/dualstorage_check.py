"""Probe both stores for real: put, head, get and delete a small object in every bucket."""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.management.base import CommandError

from dual_storage_app.client import without_secrets
from dual_storage_app.exceptions import DualStorageError, IntegrityError
from dual_storage_app.kinds import KINDS
from dual_storage_app.management._common import (
    StorageCommand,
    store_and_bucket,
)
from dual_storage_app.store import Store

PROBE_PREFIX = "_dualstorage_check"


def probe(store: Store, bucket: str) -> dict[str, Any]:
    """Round-trip one probe object through ``bucket``; a failed step ends the probe."""
    key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}.txt"
    data = f"dual-storage check {key}\n".encode()

    def put() -> None:
        store.upload(bucket, key, io.BytesIO(data), content_type="text/plain")

    def head() -> None:
        size = store.head(bucket, key).size
        _expect(size == len(data), f"HEAD reported {size} bytes, {len(data)} were put", bucket)

    def get() -> None:
        _expect(store.get_bytes(bucket, key) == data, "GET returned other bytes", bucket)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("put", put),
        ("head", head),
        ("get", get),
        ("delete", lambda: store.delete(bucket, key)),
    ]
    result: dict[str, Any] = {
        "store": store.name,
        "endpoint": store.config.endpoint_url,
        "bucket": bucket,
        "key": key,
        "ok": True,
        "steps": {},
        "failed_step": None,
        "error": None,
    }
    for name, step in steps:
        started = time.perf_counter()
        try:
            step()
        except DualStorageError as exc:
            result.update(ok=False, failed_step=name, error=without_secrets(str(exc)))
            if name not in ("put", "delete"):
                _cleanup(store, bucket, key)
            break
        result["steps"][name] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _expect(condition: bool, problem: str, bucket: str) -> None:
    if not condition:
        raise IntegrityError(f"Probe of bucket {bucket!r}: {problem}.", bucket=bucket)


def _cleanup(store: Store, bucket: str, key: str) -> None:
    with contextlib.suppress(DualStorageError):  # the probe already failed; it says why
        store.delete(bucket, key)


class Command(StorageCommand):
    help = (
        "Check both stores with a real round trip: in every configured bucket put a small "
        "probe object, HEAD it, GET it (bytes compared) and delete it, with timings in ms. "
        "Exits non-zero if any step fails. Prints endpoints and buckets, never secrets."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        targets: dict[tuple[str, str], Store] = {}
        for kind in KINDS:
            store, bucket = store_and_bucket(kind)
            targets.setdefault((store.name, bucket), store)
        # In parallel: an unreachable store costs one connect timeout, not one per bucket.
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            results = list(pool.map(lambda t: probe(t[1], t[0][1]), targets.items()))
        self.emit(
            {"ok": all(r["ok"] for r in results), "results": results},
            [self._line(r) for r in results],
        )
        failed = [r for r in results if not r["ok"]]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} store checks failed: "
                + "; ".join(f"{r['store']}/{r['bucket']} at {r['failed_step']}" for r in failed)
            )

    def _line(self, result: dict[str, Any]) -> str:
        where = f"{result['store']:<8} {result['bucket']:<22}"
        timings = "  ".join(f"{step} {ms:.1f} ms" for step, ms in result["steps"].items())
        if result["ok"]:
            return f"{self.style.SUCCESS('OK  ')} {where} {timings}"
        done = f" (after {timings})" if timings else ""
        failure = f"{result['failed_step']} failed{done}: {result['error']}"
        return f"{self.style.ERROR('FAIL')} {where} {failure}"

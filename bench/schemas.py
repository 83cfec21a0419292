"""Small objects: 1,000 ``get_schema`` reads of one 10 KB schema, against raw boto3.

Contenders: ``ours`` (the default ``SCHEMA_CACHE_SECONDS``: the cache is cleared before
every timed run, so each run pays one full GET and then serves from memory),
``ours (revalidate every read)`` (``SCHEMA_CACHE_SECONDS=0``: one conditional GET
answered 304 per read) and ``boto3 get_object`` (one plain GET per read). Every read's
bytes are checked. The order rotates each round; everything is warmed up first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial

from dual_storage_app.client import DualStorageClient, clear_schema_cache

from .contenders import OURS, raw_client
from .report import Result
from .target import Target

OPERATION = "get_schema 10 KB x1000"
READS = 1000
SCHEMA_SIZE = 10_000
FRAMEWORK = "bench-schema"
WARM_UP_READS = 20

Reader = Callable[[], bytes]


def run(target: Target, *, repeat: int) -> list[Result]:
    """Time ``READS`` reads per contender, median of ``max(3, repeat)`` rounds."""
    overrides = {**target.overrides(), "INTERNAL_BUCKET_SCHEMAS": target.bucket}
    cached = DualStorageClient(overrides=overrides)
    revalidating = DualStorageClient(overrides={**overrides, "SCHEMA_CACHE_SECONDS": "0"})
    raw = raw_client(target)
    body = schema_bytes()
    cached.upload_schema(FRAMEWORK, body)
    key = f"{FRAMEWORK}.json"

    def read_raw() -> bytes:
        return raw.get_object(Bucket=target.bucket, Key=key)["Body"].read()

    contenders: list[tuple[Result, Reader, Callable[[], None]]] = [
        (result(OURS), lambda: cached.get_schema(FRAMEWORK), clear_schema_cache),
        (
            result(f"{OURS} (revalidate every read)"),
            lambda: revalidating.get_schema(FRAMEWORK),
            lambda: None,
        ),
        (result("boto3 get_object"), read_raw, lambda: None),
    ]
    for outcome, read, _ in contenders:  # clients, connection pools, the first fetch
        _attempt(outcome, partial(_read_all, read, body, WARM_UP_READS))
    for round_number in range(max(3, repeat)):
        shift = round_number % len(contenders)
        for outcome, read, prepare in contenders[shift:] + contenders[:shift]:
            if outcome.note is None:
                prepare()
                _attempt(outcome, partial(_read_all, read, body, READS), timed=True)
    return [outcome for outcome, _, _ in contenders]


def result(name: str) -> Result:
    return Result(OPERATION, 0, name, per_run=READS)


def schema_bytes() -> bytes:
    """A 10 KB JSON document (random text, so no layer can compress it away)."""
    pad = os.urandom(SCHEMA_SIZE).hex()
    prefix = b'{"type": "object", "pad": "'
    return prefix + pad[: SCHEMA_SIZE - len(prefix) - 2].encode() + b'"}'


def _read_all(read: Reader, expected: bytes, count: int) -> None:
    for _ in range(count):
        if read() != expected:
            raise RuntimeError("a read returned the wrong bytes")


def _attempt(outcome: Result, step: Callable[[], None], *, timed: bool = False) -> None:
    """Run ``step``, appending its time when ``timed``; a failure becomes the row's note."""
    start = time.perf_counter()
    try:
        step()
    except Exception as exc:
        outcome.note = f"error: {type(exc).__name__}: {exc}"[:120]
    else:
        if timed:
            outcome.seconds.append(time.perf_counter() - start)

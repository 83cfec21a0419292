"""The model save moves bytes before it opens its transaction and keeps the transaction to
the INSERT/UPDATE, on the real servers; the guarantees stay: a failed INSERT leaves no
object, a retried save uploads again, a caller's rollback still deletes the object.

The transaction check itself needs PostgreSQL (``pg_stat_activity``): it runs in the
PostgreSQL pass (``scripts/pytest_on_postgres.py``) and is deselected on SQLite.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, connection, transaction

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import ConfigSchema, ModelWeight
from dual_storage_app.store.facade import Store
from dual_storage_app.store.transfer import MiB

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


def keys_of(storage: DualStorageClient, kind: Any, prefix: str) -> set[str]:
    return {info.key for info in storage.list_objects(kind, prefix)}


def test_a_failed_insert_leaves_no_object(real_storage: DualStorageClient) -> None:
    """The upload is done when the INSERT fails (a unique framework), outside any
    transaction: the object is deleted at once, and the instance's file is pending
    again, so a retry uploads it instead of recording a row that points at nothing."""
    ConfigSchema(name="first", framework="taken").file.save("a.json", ContentFile(b"{}"))
    before = keys_of(real_storage, "schemas", "versions/taken/")
    second = ConfigSchema(name="second", framework="taken")
    with pytest.raises(IntegrityError):
        second.file.save("b.json", ContentFile(b'{"b": 1}'))
    assert keys_of(real_storage, "schemas", "versions/taken/") == before
    assert ConfigSchema.objects.count() == 1
    second.framework = "free"
    second.save()
    assert real_storage.internal.get_bytes("config-schemas", second.key) == b'{"b": 1}'
    assert ConfigSchema.objects.get(framework="free").key == second.key


def test_a_callers_rollback_still_deletes_the_object(real_storage: DualStorageClient) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        weight = ModelWeight(name="rolled back")
        weight.file.save("w.pth", ContentFile(b"gone"))
        assert real_storage.exists("weights", weight.key)
        raise RuntimeError("the caller's transaction fails")
    assert not real_storage.exists("weights", weight.key)
    assert not ModelWeight.objects.filter(name="rolled back").exists()


# -- PostgreSQL: no transaction is open while bytes move -----------------------------


@dataclass
class Sample:
    at: float  # when the answer came back
    in_transaction: bool
    began: float = 0.0  # when the query was sent: it saw the backend somewhere in between


class TransactionSampler:
    """Samples, from its own connection, whether the backend ``pid`` has a transaction
    open (``pg_stat_activity.xact_start``), every few milliseconds until stopped."""

    def __init__(self, pid: int) -> None:
        import psycopg

        params = connection.settings_dict
        self.connection = psycopg.connect(
            host=params["HOST"],
            port=params["PORT"],
            user=params["USER"],
            password=params["PASSWORD"],
            dbname=connection.settings_dict["NAME"],
            autocommit=True,
        )
        self.pid = pid
        self.samples: list[Sample] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = "SELECT xact_start IS NOT NULL FROM pg_stat_activity WHERE pid = %s"
        while not self.stopped.is_set():
            began = time.monotonic()
            row = self.connection.execute(query, (self.pid,)).fetchone()
            self.samples.append(Sample(time.monotonic(), bool(row and row[0]), began))
            time.sleep(0.005)

    def __enter__(self) -> TransactionSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.connection.close()

    def between(self, start: float, end: float) -> list[Sample]:
        """The samples taken wholly inside ``start``..``end``: one sent just before
        ``start`` may have seen the statement that preceded it (the row's SELECT)."""
        return [s for s in self.samples if start <= s.began and s.at <= end]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def timed_uploads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Record when each ``Store.upload`` (the bytes moving) starts and ends."""
    windows: list[tuple[float, float]] = []
    upload: Callable[..., Any] = Store.upload

    def timed(self: Store, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return upload(self, *args, **kwargs)
        finally:
            windows.append((start, time.monotonic()))

    monkeypatch.setattr(Store, "upload", timed)
    return windows


@pytest.mark.postgres
def test_the_sampler_sees_an_open_transaction(real_storage: DualStorageClient) -> None:
    """The check below can fail: a transaction held open is seen."""
    pid = backend_pid()
    with TransactionSampler(pid) as sampler, transaction.atomic():
        ModelWeight.objects.filter(name="none").exists()  # the transaction starts here
        start = time.monotonic()
        time.sleep(0.2)
        end = time.monotonic()
    seen = sampler.between(start, end)
    assert len(seen) >= 10 and all(s.in_transaction for s in seen)


@pytest.mark.postgres
def test_a_200_mb_save_holds_no_transaction_while_bytes_move(
    real_storage: DualStorageClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new row, then a new file for that row (whose save first reads the row's stored
    key, which used to open the transaction before the upload)."""
    source = tmp_path / "big.pth"
    with source.open("wb") as out:
        for _ in range(200):
            out.write(os.urandom(MiB))
    windows = timed_uploads(monkeypatch)
    pid = backend_pid()
    with TransactionSampler(pid) as sampler:
        weight = ModelWeight(name="big")
        with source.open("rb") as handle:
            weight.file.save("big.pth", File(handle))
        first_key = weight.key
        with source.open("rb") as handle:
            weight.file.save("big-v2.pth", File(handle))
    assert ModelWeight.objects.get(pk=weight.pk).size == 200 * MiB
    assert not real_storage.exists("weights", first_key)  # replaced: deleted after commit
    assert len(windows) == 2
    for start, end in windows:
        moving = sampler.between(start, end)
        assert len(moving) >= 20, f"only {len(moving)} samples while the bytes moved"
        open_while_moving = [s for s in moving if s.in_transaction]
        assert open_while_moving == [], (
            f"{len(open_while_moving)} of {len(moving)} samples saw a transaction open "
            f"during an upload of {end - start:.2f} s"
        )

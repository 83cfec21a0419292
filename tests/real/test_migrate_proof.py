"""The migration engine's proof, on real servers: nothing lost, nothing copied twice.

* **2,000 legacy objects** in every layout the ``legacy`` preset maps, on a third
  SeaweedFS server (neither the internal nor the external one, with its own
  credentials), 1 KiB up to two 17 MiB objects (above the 16 MiB multipart threshold):
  ``dualstorage_migrate --apply`` puts each one in its kind's store and bucket with a row
  holding the source's SHA-256; a second ``--apply`` copies nothing.
* **SIGKILLed three times**: 200 legacy objects in the same layouts (two of 17 MiB; not
  2,000, for the file's time budget) migrated by ``dualstorage_migrate --apply`` run as a
  subprocess (its own database: a SQLite file, or
  a fresh PostgreSQL database in the PostgreSQL pass), with request-counting proxies in
  front of both target servers; it is killed after random progress, once while a
  multipart copy is in flight, and again; a fourth run finishes. Every target key got
  exactly one *successful* object-creating request (PutObject, CopyObject or
  CompleteMultipartUpload answered 200), no multipart upload is left behind, and the
  journal is all ``recorded``.
* **A task worker killed mid-batch**: ``dualstorage_jobs start migrate`` (enqueued) shared
  by two ``db_worker`` processes; one is SIGKILLed while it holds journal rows it has not
  finished; its batch's lease (3 s) expires and the other worker finishes. 200 objects
  in 5 batches (not 2,000), so the part stays within ~15 s of the file's budget.
* **A provider swap of 500 datasets** between two external servers: copied from the old
  one (``DUAL_STORAGE_MIGRATION``) into the new one (the configured external store) with
  ``--rules datasets --keep-rows``; the rows stay as they were, links signed against
  the old server before the switch still serve the old bytes, and a link issued after it
  points at the new server and serves the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import pytest
from django.conf import settings as django_settings
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.catalog import register
from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.moving.journal import MigrationEntry
from dual_storage_app.store.transfer import PART_SIZE, MiB
from dual_storage_app.testing.pair import S3Servers, fresh_buckets
from dual_storage_app.testing.plugin import REQUIRE_ENV
from dual_storage_app.testing.server import LocalS3Server, find_weed, free_port_pair
from tests.helpers import REPO_ROOT, run_json
from tests.requestlog import CountingProxy, operation
from tests.workers import WorkerDatabase, run_django, stop_process, worker_environment

pytestmark = [pytest.mark.real_s3]

LEGACY_ACCESS_KEY, LEGACY_SECRET = "legacy-access", "legacy-secret-Hq2mT9wE"
BIG = 17 * MiB
assert BIG > PART_SIZE  # the two big objects go multipart
MODELS: dict[ArtifactKind, Any] = {
    "weights": ModelWeight,
    "checkpoints": TrainingCheckpoint,
    "schemas": ConfigSchema,
    "datasets": Dataset,
}
CREATING = ("PutObject", "CopyObject", "CompleteMultipartUpload")
DEADLINE = 60.0


# -- the legacy objects ----------------------------------------------------------------------


def legacy_layout(scale: float, big: bool) -> dict[str, tuple[ArtifactKind, str]]:
    """``200 * scale`` legacy keys (two of them big ones when ``big``) in every layout
    the ``legacy`` preset maps, and the kind and key each must land under, written out
    by hand (not computed by the engine)."""

    def count(base: int) -> int:
        return int(base * scale)

    expected: dict[str, tuple[ArtifactKind, str]] = {}
    for i in range(count(30)):
        expected[f"weights/w{i:04d}.pth"] = ("weights", f"w{i:04d}.pth")
    for i in range(count(20)):
        expected[f"models/m{i:04d}.safetensors"] = ("weights", f"m{i:04d}.safetensors")
    for i in range(count(30)):
        key = f"jobs/{i // 15}/checkpoint_epoch_{i % 15}.pth"
        expected[f"checkpoints/{key}"] = ("checkpoints", key)
    for i in range(count(20)):
        key = f"jobs/{100 + i // 10}/checkpoint_epoch_{i % 10}.pth"
        expected[key] = ("checkpoints", key)
    for i in range(count(2)):
        expected[f"schemas/fw{i:02d}.json"] = ("schemas", f"fw{i:02d}.json")
    datasets = [f"datasets/d{i:04d}.zip" for i in range(count(48))]
    datasets += [f"coco/images/{i:05d}.jpg" for i in range(count(30))]
    datasets += [f"misc/notes-{i}.txt" for i in range(count(20) - (2 if big else 0))]
    if big:
        datasets += ["datasets/big-a.tar", "datasets/big-b.tar"]
    expected.update({key: ("datasets", key) for key in datasets})
    assert len(expected) == count(200)
    return expected


def legacy_bytes(key: str) -> bytes:
    """Deterministic content: 1 KiB to 64 KiB (log-uniform), 17 MiB for the big ones."""
    rng = random.Random(key)  # noqa: S311 - test data
    if "/big-" in key:
        return rng.randbytes(BIG)
    if key.startswith("schemas/"):
        return json.dumps({"type": "object", "title": key, "pad": "x" * 1000}).encode()
    return rng.randbytes(int(1024 * 2 ** rng.uniform(0, 6)))


@dataclass
class Legacy:
    """A filled legacy bucket on the third server."""

    server: LocalS3Server
    bucket: str
    expected: dict[str, tuple[ArtifactKind, str]]  # source key -> (kind, target key)
    data: dict[str, bytes]

    def source_settings(self) -> dict[str, Any]:
        return {
            "SOURCE_ENDPOINT": self.server.endpoint_url,
            "SOURCE_ACCESS_KEY": self.server.access_key,
            "SOURCE_SECRET_KEY": self.server.secret_key,
            "SOURCE_BUCKETS": [self.bucket],
        }

    def source_environment(self) -> dict[str, str]:
        return {
            f"MIGRATION_{name}": value if isinstance(value, str) else ",".join(value)
            for name, value in self.source_settings().items()
        }


@pytest.fixture(scope="module")
def third_server(
    dual_storage_servers: S3Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalS3Server]:
    """A third SeaweedFS server with its own credentials: the legacy store (and, in the
    swap test, the new external provider)."""
    try:
        find_weed()
    except FileNotFoundError as exc:  # the plugin's servers would have skipped already
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but SeaweedFS is missing: {exc}")
        pytest.skip(f"no real S3 server for these tests: {exc}")
    used = {server.s3_port for server in dual_storage_servers}
    server = LocalS3Server(
        data_dir=tmp_path_factory.mktemp("s3-legacy"),
        s3_port=free_port_pair(used),
        access_key=LEGACY_ACCESS_KEY,
        secret_key=LEGACY_SECRET,
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _fill(server: LocalS3Server, scale: float, *, big: bool) -> Legacy:
    began = time.monotonic()
    bucket = f"legacy-{uuid.uuid4().hex[:10]}"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    expected = legacy_layout(scale, big)
    data = {key: legacy_bytes(key) for key in expected}

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data[key])

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(put, sorted(data, key=lambda k: -len(data[k]))))
    print(f"\n{len(data)} legacy objects written in {time.monotonic() - began:.1f} s")
    return Legacy(server, bucket, expected, data)


@pytest.fixture(scope="module")
def legacy(third_server: LocalS3Server) -> Legacy:
    """2,000 legacy objects, two of 17 MiB (the in-process test)."""
    return _fill(third_server, 10, big=True)


@pytest.fixture(scope="module")
def legacy_killed(third_server: LocalS3Server) -> Legacy:
    """200 legacy objects, two of 17 MiB (the test that kills the command)."""
    return _fill(third_server, 1, big=True)


@pytest.fixture(scope="module")
def legacy_small(third_server: LocalS3Server) -> Legacy:
    """200 small legacy objects (the test that kills a task worker)."""
    return _fill(third_server, 1, big=False)


# -- checking the targets --------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_targets(client: DualStorageClient, legacy: Legacy) -> None:
    """Each target bucket holds exactly the objects mapped to it, each with the source's
    bytes (single-part: the listed ETag is the MD5 of the source; multipart: read back
    and hashed)."""
    wanted: dict[ArtifactKind, dict[str, str]] = {kind: {} for kind in MODELS}
    for source_key, (kind, key) in legacy.expected.items():
        wanted[kind][key] = source_key
    for kind, keys in wanted.items():
        store, bucket = client.locate(kind)
        listed = {info.key: info for info in store.list(bucket)}
        assert set(listed) == set(keys), (
            f"{kind} bucket {bucket}: missing {sorted(set(keys) - set(listed))[:5]}, "
            f"unexpected {sorted(set(listed) - set(keys))[:5]}"
        )
        for key, source_key in keys.items():
            data = legacy.data[source_key]
            info = listed[key]
            assert info.size == len(data), key
            etag = info.etag.strip('"')
            if "-" in etag:
                assert sha256(store.get_bytes(bucket, key)) == sha256(data), key
            else:
                assert etag == hashlib.md5(data).hexdigest(), key  # noqa: S324 - an ETag


def check_rows(
    rows: dict[str, dict[str, tuple[str, str, int]]], client: DualStorageClient, legacy: Legacy
) -> None:
    """``rows``: kind -> file -> (bucket, sha256, size): exactly one per migrated object,
    in its kind's bucket, with the SHA-256 of the source bytes."""
    for kind in MODELS:
        _, bucket = client.locate(kind)
        want = {
            key: (bucket, sha256(legacy.data[source_key]), len(legacy.data[source_key]))
            for source_key, (k, key) in legacy.expected.items()
            if k == kind
        }
        got = rows.get(kind, {})
        wrong = sorted(key for key in set(want) | set(got) if want.get(key) != got.get(key))
        assert not wrong, f"{kind} rows differ for {len(wrong)} key(s), e.g. " + ", ".join(
            f"{key}: {got.get(key)} != {want.get(key)}" for key in wrong[:3]
        )


def orm_rows() -> dict[str, dict[str, tuple[str, str, int]]]:
    return {
        kind: {
            str(file): (bucket, sha, size)
            for file, bucket, sha, size in model.objects.values_list(
                "file", "bucket", "sha256", "size"
            )
        }
        for kind, model in MODELS.items()
    }


def sql_rows(database: WorkerDatabase) -> dict[str, dict[str, tuple[str, str, int]]]:
    return {
        kind: {
            str(file): (str(bucket), str(sha), int(size))
            for file, bucket, sha, size in database.rows(
                f"SELECT file, bucket, sha256, size FROM {model._meta.db_table}"  # noqa: S608
            )
        }
        for kind, model in MODELS.items()
    }


def journal_states(database: WorkerDatabase) -> dict[str, int]:
    table = MigrationEntry._meta.db_table
    return {
        str(state): int(count)
        for state, count in database.rows(
            f"SELECT state, COUNT(*) FROM {table} GROUP BY state"  # noqa: S608
        )
    }


def no_open_uploads(client: DualStorageClient) -> None:
    for kind in MODELS:
        store, bucket = client.locate(kind)
        uploads = store.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert uploads == [], f"{kind} bucket {bucket}: incomplete uploads {uploads}"


def bulk_empty(s3: Any, bucket: str) -> None:
    """Delete every object of ``bucket``, 1,000 per request (the fixtures' teardown then
    finds it empty instead of deleting 2,000 objects one request at a time)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def empty_targets(client: DualStorageClient) -> None:
    for kind in MODELS:
        store, bucket = client.locate(kind)
        bulk_empty(store.client, bucket)


@pytest.fixture
def quick_cleanup(dual_storage_buckets: DualStorageClient) -> Iterator[DualStorageClient]:
    """``dual_storage_buckets``, emptied in bulk after the test."""
    yield dual_storage_buckets
    empty_targets(dual_storage_buckets)


# -- counting successful creations -----------------------------------------------------------


class _StatusSocket:
    """The client socket of one relayed exchange: the first ``sendall`` is the
    response's head, whose status is reported (even if the client has died since)."""

    def __init__(self, sock: Any, on_status: Callable[[int], None]) -> None:
        self._sock = sock
        self._on_status: Callable[[int], None] | None = on_status

    def sendall(self, data: bytes) -> None:
        if self._on_status is not None:
            report, self._on_status = self._on_status, None
            report(int(bytes(data).split(b"\r\n", 1)[0].split(b" ", 2)[1]))
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class StatusProxy(CountingProxy):
    """A counting proxy that also keeps each response's status, by S3 operation and
    ``bucket/key``: the server's answer, whether or not the client lived to read it."""

    def __init__(self, store: str, upstream: tuple[str, int]) -> None:
        super().__init__(store, upstream)
        self.answered: list[tuple[str, str, str, int]] = []  # operation, bucket, key, status
        self._answered_lock = threading.Lock()

    def _relay(
        self, client: Any, client_in: Any, upstream: Any, upstream_in: Any, request: Any, plan: Any
    ) -> bool:
        name = operation(
            request.method, request.target, request.headers.get("x-amz-copy-source", "")
        )
        bucket, _, key = unquote(urlsplit(request.target).path).lstrip("/").partition("/")

        def answered(status: int) -> None:
            with self._answered_lock:
                self.answered.append((name, bucket, key, status))

        return bool(
            super()._relay(
                cast(Any, _StatusSocket(client, answered)),
                client_in,
                upstream,
                upstream_in,
                request,
                plan,
            )
        )

    def snapshot(self) -> list[tuple[str, str, str, int]]:
        with self._answered_lock:
            return list(self.answered)


@pytest.fixture
def proxies(dual_storage_servers: S3Servers) -> Iterator[dict[str, StatusProxy]]:
    started = {
        name: StatusProxy(name, ("127.0.0.1", server.s3_port))
        for name, server in dual_storage_servers._asdict().items()
    }
    for proxy in started.values():
        proxy.start()
    try:
        yield started
    finally:
        for proxy in started.values():
            proxy.stop()


def check_one_create_per_key(
    proxies: dict[str, StatusProxy], client: DualStorageClient, legacy: Legacy
) -> Counter[str]:
    """Exactly one successful object-creating request per target key, none elsewhere;
    returns the requests' counts by operation and status."""
    want: Counter[tuple[str, str, str]] = Counter()
    for kind, key in legacy.expected.values():
        store, bucket = client.locate(kind)
        want[(store.name, bucket, key)] += 1
    got: Counter[tuple[str, str, str]] = Counter()
    figures: Counter[str] = Counter()
    for name, proxy in proxies.items():
        for op, bucket, key, status in proxy.snapshot():
            figures[f"{op} {status}"] += 1
            if op in CREATING and status == 200:
                got[(name, bucket, key)] += 1
    twice, never = got - want, want - got
    assert not twice and not never, (
        f"created more than once (or unexpected): {sorted(twice.items())[:5]}; "
        f"never created: {sorted(never)[:5]}"
    )
    return figures


# -- 1. 2,000 objects in-process -------------------------------------------------------------


@pytest.mark.volume
@pytest.mark.django_db(transaction=True)
def test_2000_legacy_objects_land_once_with_their_hash(
    legacy: Legacy, quick_cleanup: DualStorageClient, settings: SettingsWrapper
) -> None:
    dual_storage_buckets = quick_cleanup
    began = time.monotonic()
    settings.DUAL_STORAGE_MIGRATION = legacy.source_settings()
    first = run_json("dualstorage_migrate", "--apply")
    assert first["states"]["recorded"] == 2_000, first["states"]
    assert first["run"]["outcomes"] == {"recorded": 2_000, "streamed": 2_000}
    assert first["run"]["bytes_copied"] == sum(len(d) for d in legacy.data.values())
    check_targets(dual_storage_buckets, legacy)
    check_rows(orm_rows(), dual_storage_buckets, legacy)
    checkpoint = TrainingCheckpoint.objects.get(file="jobs/101/checkpoint_epoch_3.pth")
    assert (checkpoint.job_id, checkpoint.epoch) == ("101", 3)
    assert ConfigSchema.objects.get(file="fw07.json").framework == "fw07"
    migrated = time.monotonic()

    second = run_json("dualstorage_migrate", "--apply")
    assert set(second["journal"].values()) == {0}, second["journal"]  # nothing added
    assert second["run"]["outcomes"] == {}
    assert second["run"]["bytes_copied"] == 0
    print(
        f"\nmigrate 2,000 in-process: first --apply {migrated - began:.1f} s "
        f"({first['run']['bytes_copied'] / MiB:.1f} MiB), second "
        f"{time.monotonic() - migrated:.1f} s, outcomes {second['run']['outcomes']}"
    )


# -- 2 and 3: subprocesses on a shared database ----------------------------------------------


@dataclass
class Targets:
    direct: DualStorageClient  # straight to the servers (for checking)
    env: dict[str, str]  # the subprocesses' environment: stores behind the proxies


@pytest.fixture
def targets(
    dual_storage_servers: S3Servers,
    proxies: dict[str, StatusProxy],
    worker_database: str,
    settings: SettingsWrapper,
) -> Iterator[Targets]:
    with fresh_buckets(dual_storage_servers):
        values = dict(getattr(django_settings, "DUAL_STORAGE"))  # noqa: B009 - set by fresh_buckets
        direct = DualStorageClient(overrides=values)
        behind = {
            **values,
            "INTERNAL_STORAGE_ENDPOINT": proxies["internal"].url,
            "EXTERNAL_STORAGE_ENDPOINT": proxies["external"].url,
            "RECORD_CATALOG": "false",
        }
        yield Targets(direct, worker_environment(worker_database, behind))
        empty_targets(direct)


def _spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed alone
        )


def _engine(database: str) -> str:
    return "PostgreSQL" if database.startswith("postgres") else "SQLite"


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _done(states: dict[str, int]) -> int:
    return states.get("recorded", 0)


def _progress(states: dict[str, int]) -> int:
    return states.get("copied", 0) + states.get("recorded", 0)


def _creates(proxies: dict[str, StatusProxy], marks: dict[str, int]) -> int:
    """Successful object-creating requests the proxies answered since ``marks`` (each
    proxy's count of answers when the run started)."""
    return sum(
        op in CREATING and status == 200
        for name, proxy in proxies.items()
        for op, _, _, status in proxy.snapshot()[marks[name] :]
    )


def _in_flight_multipart(proxy: StatusProxy, since: int = 0) -> set[str]:
    """``bucket/key`` of the multipart uploads created among the requests the proxy has
    seen from the ``since``-th on, and not completed by a later one."""
    started, completed = set(), set()
    with proxy._seen_lock:
        requests = proxy.seen[since:]
    for request in requests:
        path = unquote(urlsplit(request.target).path).lstrip("/")
        if request.name[1] == "CreateMultipartUpload":
            started.add(path)
            completed.discard(path)
        elif request.name[1] == "CompleteMultipartUpload":
            completed.add(path)
    return started - completed


def test_a_migration_killed_three_times_copies_nothing_twice(
    legacy_killed: Legacy,
    targets: Targets,
    proxies: dict[str, StatusProxy],
    worker_database: str,
    tmp_path: Path,
) -> None:
    """200 objects (not 2,000: four Django start-ups and the proxies' relaying fit in
    ~15 s this way), two of them 17 MiB. Run 1 is killed after a random number of copies
    (inside the first batch), run 2 while a multipart copy is in flight, run 3 after a
    random number more; run 4 finishes. Copies are counted as the servers answer them, so
    most kills land inside a chunk whose journal entries were never committed (the next
    run finds those copies by their source token). Listing order puts the big objects
    61st and 62nd, so run 1 (killed at 5 to 30 copies, 8 at a time) never reaches them
    and run 2 always starts one."""
    began = time.monotonic()
    legacy = legacy_killed
    total = len(legacy.expected)
    seed = int(os.environ.get("DUAL_STORAGE_PROOF_SEED", random.randrange(10**6)))  # noqa: S311
    rng = random.Random(seed)  # noqa: S311 - kill points, not secrets
    env = {**targets.env, **legacy.source_environment()}
    run_django(env, "migrate", "--noinput", "-v", "0")
    database = WorkerDatabase(worker_database)
    log = tmp_path / "migrate.log"
    command = ("dualstorage_migrate", "--apply", "--workers", "8")
    kills: list[str] = []
    try:
        for run in (1, 2, 3):
            since = len(proxies["external"].seen)
            marks = {name: len(proxy.snapshot()) for name, proxy in proxies.items()}
            process = _spawn(env, log, *command)
            deadline = time.monotonic() + DEADLINE
            if run == 2:
                # Killed while a multipart copy (one of the two 17 MiB objects) is in flight.
                while not _in_flight_multipart(proxies["external"], since):
                    assert process.poll() is None, log.read_text()[-3000:]
                    assert time.monotonic() < deadline, "no multipart copy was ever started"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, 0.05))
            else:
                # Killed after a random number of copies, counted as the servers answer
                # them: mostly inside a chunk whose journal entries are not committed.
                wanted = rng.randint(5, 30) if run == 1 else rng.randint(20, 60)
                while _creates(proxies, marks) < wanted:
                    assert process.poll() is None, log.read_text()[-3000:]
                    assert time.monotonic() < deadline, f"run {run} made no progress"
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.02))
            assert process.poll() is None, f"run {run} finished before it was killed"
            _kill(process)
            time.sleep(0.2)  # let the proxies relay what the dead process had already sent
            states = journal_states(database)
            in_flight = sorted(_in_flight_multipart(proxies["external"], since))
            if run == 2:
                assert in_flight, "the multipart copy finished before the kill"
            if in_flight:  # a multipart upload the next run must abort
                store, _ = targets.direct.locate("datasets")
                bucket = in_flight[0].partition("/")[0]
                uploads = store.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
                assert uploads, "the killed multipart copy left no upload behind"
            kills.append(
                f"run {run}: killed at {states.get('copied', 0)} copied + "
                f"{states.get('recorded', 0)} recorded"
                + (f", multipart in flight: {in_flight}" if in_flight else "")
            )
            assert _progress(states) < total
        run_django(env, *command)  # the fourth run finishes (asserts its exit status)
        states = journal_states(database)
        assert states == {"recorded": total}, states
        rows = sql_rows(database)
    finally:
        database.close()
    migrated = time.monotonic()

    check_targets(targets.direct, legacy)
    check_rows(rows, targets.direct, legacy)
    figures = check_one_create_per_key(proxies, targets.direct, legacy)
    no_open_uploads(targets.direct)
    print(
        f"\nmigrate of {total} killed 3 times ({_engine(worker_database)}, seed {seed}):"
        f" {'; '.join(kills)}; four runs {migrated - began:.1f} s; requests"
        f" {dict(sorted(figures.items()))}; whole test {time.monotonic() - began:.1f} s"
    )


LEASE_SECONDS = 3
BATCH_SIZE = 40


def test_a_task_worker_killed_mid_batch_loses_and_repeats_nothing(
    legacy_small: Legacy,
    targets: Targets,
    proxies: dict[str, StatusProxy],
    worker_database: str,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    legacy = legacy_small
    env = {**targets.env, **legacy.source_environment()}
    run_django(env, "migrate", "--noinput", "-v", "0")
    started = json.loads(
        run_django(
            env,
            "dualstorage_jobs",
            "start",
            "migrate",
            "--batch-size",
            str(BATCH_SIZE),
            "--workers",
            "4",
            "--lease",
            str(LEASE_SECONDS),
            "--json",
        )
    )
    job_id = int(started["id"])
    total = len(legacy.expected)
    assert started["progress"]["batches"]["total"] == total // BATCH_SIZE

    database = WorkerDatabase(worker_database)
    table = MigrationEntry._meta.db_table
    workers = [
        _spawn(
            env,
            tmp_path / f"worker{number}.log",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.1",
            "--worker-id",
            f"worker-{number}",
        )
        for number in (1, 2)
    ]
    doomed, survivor = workers
    try:
        deadline = time.monotonic() + DEADLINE
        held_at_kill = 0
        while not held_at_kill:
            assert time.monotonic() < deadline, "the first worker never held a batch part-way"
            assert doomed.poll() is None, (tmp_path / "worker1.log").read_text()
            done = _done(journal_states(database))
            held = database.rows(
                f"SELECT COUNT(*) FROM {table} WHERE worker LIKE %s"  # noqa: S608
                " AND lease_until IS NOT NULL AND state IN ('pending', 'copied')",
                f"%:{doomed.pid}",
            )[0][0]
            if done >= 20 and held:
                _kill(doomed)
                held_at_kill = int(held)
            time.sleep(0.005)
        at_kill = _done(journal_states(database))
        killed_at = time.monotonic()
        while database.job_status(job_id) not in ("done", "failed"):
            assert time.monotonic() < deadline, f"job {job_id}: {database.batches(job_id)}"
            assert survivor.poll() is None, (tmp_path / "worker2.log").read_text()
            time.sleep(0.05)
        finished = time.monotonic()
        batches = database.batches(job_id)
        states = journal_states(database)
        rows = sql_rows(database)
    finally:
        for worker in workers:
            stop_process(worker)
        database.close()

    assert states == {"recorded": total}, states
    assert all(status == "done" for _, status, _, _ in batches), batches
    rerun = [index for index, _, _, attempts in batches if attempts > 1]
    assert rerun, f"no batch was run again after the kill: {batches}"
    assert all(
        worker.endswith(f":{survivor.pid}") for index, _, worker, _ in batches if index in rerun
    )
    check_targets(targets.direct, legacy)
    check_rows(rows, targets.direct, legacy)
    figures = check_one_create_per_key(proxies, targets.direct, legacy)
    no_open_uploads(targets.direct)
    print(
        f"\nmigrate job, 2 workers ({_engine(worker_database)}):"
        f" {total} objects, {len(batches)} batches; worker 1 killed holding {held_at_kill}"
        f" unfinished row(s) with {at_kill} recorded; job done {finished - killed_at:.1f} s"
        f" later; batches run twice: {rerun}; requests {dict(sorted(figures.items()))};"
        f" whole test {time.monotonic() - began:.1f} s"
    )


# -- 4. a provider swap ------------------------------------------------------------------------

SWAP = 500
SAMPLE = 20


def _fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), bytes(response.read())


@pytest.mark.volume
@pytest.mark.django_db(transaction=True)
def test_a_provider_swap_of_500_datasets_keeps_rows_and_old_links(
    third_server: LocalS3Server,
    quick_cleanup: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    settings: SettingsWrapper,
) -> None:
    """Old provider: the plugin's external server; new one: the third server (its own
    credentials, a bucket of the same name). The copy runs with the external store
    configured as the new server and the migration source as the old one."""
    began = time.monotonic()
    old, new = s3_servers["external"], third_server
    store, bucket = dual_storage.locate("datasets")
    data = {
        f"swap/{i:04d}-{uuid.uuid4().hex[:6]}.bin": random.randbytes(2048 + i)  # noqa: S311
        for i in range(SWAP)
    }
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda k: store.upload(bucket, k, io.BytesIO(data[k])), data))
    for result in results:
        register("datasets", result)  # the rows the client's catalog writes
    assert Dataset.objects.count() == SWAP
    before = {
        row[0]: row
        for row in Dataset.objects.values_list(
            "file", "bucket", "size", "sha256", "etag", "updated_at"
        )
    }
    sample = sorted(data)[:: SWAP // SAMPLE]
    old_links = {key: dual_storage.generate_dataset_presigned_url(key) for key in sample}
    assert all(urlsplit(url).port == old.s3_port for url in old_links.values())

    # Old and new side by side: the external store is the new server, the source the old.
    new.client().create_bucket(Bucket=bucket)
    try:
        settings.DUAL_STORAGE = {
            **settings.DUAL_STORAGE,
            "EXTERNAL_STORAGE_ENDPOINT": new.endpoint_url,
            "EXTERNAL_STORAGE_ACCESS_KEY": new.access_key,
            "EXTERNAL_STORAGE_SECRET_KEY": new.secret_key,
        }
        settings.DUAL_STORAGE_MIGRATION = {
            "SOURCE_ENDPOINT": old.endpoint_url,
            "SOURCE_ACCESS_KEY": old.access_key,
            "SOURCE_SECRET_KEY": old.secret_key,
            "SOURCE_BUCKETS": [bucket],
        }
        dual_storage.reset()
        copied_from = time.monotonic()
        swap = run_json(
            "dualstorage_migrate", "--apply", "--rules", "datasets", "--keep-rows", "--name", "swap"
        )
        copy_seconds = time.monotonic() - copied_from
        assert swap["run"]["outcomes"] == {"recorded": SWAP, "streamed": SWAP}, swap["run"]
        assert swap["states"]["recorded"] == SWAP

        new_store, new_bucket = dual_storage.locate("datasets")
        assert new_store.config.endpoint_url == new.endpoint_url and new_bucket == bucket
        listed = {info.key: info for info in new_store.list(bucket)}
        assert set(listed) == set(data)
        # Every copy: the new server's ETag is the MD5 of the bytes written on the old one,
        # and the SHA-256 the engine measured reading the copy back is theirs.
        assert {key: info.etag.strip('"') for key, info in listed.items()} == {
            key: hashlib.md5(value).hexdigest()  # noqa: S324 - an ETag
            for key, value in data.items()
        }
        journal = dict(
            MigrationEntry.objects.filter(migration="swap").values_list("target_key", "sha256")
        )
        assert journal == {key: sha256(value) for key, value in data.items()}

        after = {
            row[0]: row
            for row in Dataset.objects.values_list(
                "file", "bucket", "size", "sha256", "etag", "updated_at"
            )
        }
        assert after == before  # rows untouched: same bucket name, same bytes
        assert (
            run_json("dualstorage_migrate", "--finish-swap", "--name", "swap")["rows_updated"] == 0
        )

        for key, url in old_links.items():  # issued before the switch, signed for the old server
            assert _fetch(url) == (200, data[key]), key
        for key in sample:  # issued now: the new server, the same bytes
            url = dual_storage.generate_dataset_presigned_url(key)
            assert urlsplit(url).port == new.s3_port, url
            assert _fetch(url) == (200, data[key]), key
    finally:
        bulk_empty(new.client(), bucket)
        new.delete_bucket(bucket)
    print(
        f"\nprovider swap: {SWAP} datasets copied in {copy_seconds:.1f} s, {SAMPLE} old and"
        f" {SAMPLE} new links fetched; whole test {time.monotonic() - began:.1f} s"
    )

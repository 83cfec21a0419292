"""Two real worker processes share a verify job of 2,000 artifacts; one is killed mid-batch.

Everything a deployment has, on loopback: the real SeaweedFS servers, a database that
three processes reach (a SQLite file, or in the PostgreSQL pass a fresh PostgreSQL
database), ``manage.py migrate`` and ``dualstorage_jobs start`` run as commands, and two
``db_worker`` processes (django-tasks-db's worker). When the job is part-way through, the
first worker is SIGKILLed just after it claimed a batch; its lease (3 s) expires, the
job's sweep puts that batch back in the queue, the other worker runs it, and the report
lists every artifact exactly once, the one changed and the one missing among them.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.testing.pair import S3Servers, fresh_buckets
from tests.helpers import REPO_ROOT
from tests.workers import WorkerDatabase, run_django, stop_process, worker_environment

pytestmark = pytest.mark.real_s3

ARTIFACTS: dict[ArtifactKind, int] = {"weights": 800, "checkpoints": 600, "datasets": 600}
BATCH_SIZE = 100  # 20 batches
LEASE_SECONDS = 3
JOB_TIMEOUT = 60.0

_SEED = """
import json, sys
import django
django.setup()
from dual_storage_app.models import ARTIFACT_MODELS
rows = json.load(open(sys.argv[1]))
ids = {}
for kind, entries in rows.items():
    model = ARTIFACT_MODELS[kind]
    model.objects.bulk_create([model(**fields) for fields in entries], batch_size=500)
    ids[kind] = dict(model.objects.values_list("file", "pk"))
print(json.dumps(ids))
"""


@pytest.fixture
def buckets(dual_storage_servers: S3Servers, settings: SettingsWrapper) -> Iterator[dict[str, str]]:
    """Fresh buckets for this test; their settings, as the workers' environment gets them."""
    with fresh_buckets(dual_storage_servers):
        yield {**settings.DUAL_STORAGE, "RECORD_CATALOG": "false"}


def _objects_and_rows(client: DualStorageClient) -> dict[str, list[dict[str, Any]]]:
    """2,000 small objects written in parallel through the Store API, and the rows that
    record them (written later with bulk_create)."""
    work = [(kind, i) for kind, count in ARTIFACTS.items() for i in range(count)]
    keys = {
        "weights": "weights/w{:04d}.pth",
        "checkpoints": "jobs/job-{:02d}/checkpoint_epoch_{:04d}.pth",
        "datasets": "datasets/d{:04d}.zip",
    }

    def store(item: tuple[ArtifactKind, int]) -> tuple[ArtifactKind, int, Any]:
        kind, i = item
        key = keys[kind].format(i % 10, i) if kind == "checkpoints" else keys[kind].format(i)
        target, bucket = client.locate(kind)
        data = f"{kind} artifact {i} ".encode() * 8
        # Fresh keys: a conditional PUT (one request, no s3transfer) and the SHA-256 tag.
        return kind, i, target.upload(bucket, key, io.BytesIO(data), if_absent=True)

    rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ARTIFACTS}
    with ThreadPoolExecutor(16) as pool:
        for kind, i, result in pool.map(store, work):
            fields = {
                "name": f"{kind}-{i}",
                "file": result.key,
                "bucket": result.bucket,
                "size": result.size,
                "sha256": result.sha256,
                "etag": result.etag,
                "content_type": result.content_type or "",
            }
            if kind == "checkpoints":
                fields.update(job_id=f"job-{i % 10:02d}", epoch=i)
            rows[kind].append(fields)
    return rows


def test_two_workers_share_a_verify_and_a_killed_one_loses_nothing(
    worker_database: str, buckets: dict[str, str], tmp_path: Path
) -> None:
    began = time.monotonic()
    env = worker_environment(worker_database, buckets)
    run_django(env, "migrate", "--noinput", "-v", "0")
    migrated = time.monotonic()

    client = DualStorageClient(overrides=buckets)
    rows = _objects_and_rows(client)
    uploaded = time.monotonic()
    seed = tmp_path / "rows.json"
    seed.write_text(json.dumps(rows))
    done = subprocess.run(
        [sys.executable, "-c", _SEED, str(seed)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ids: dict[str, dict[str, int]] = json.loads(done.stdout)
    everything = {(kind, pk) for kind, by_key in ids.items() for pk in by_key.values()}
    assert len(everything) == 2_000

    # Beforehand: one object deleted, one replaced with other bytes.
    missing_key, changed_key = rows["weights"][17]["file"], rows["datasets"][42]["file"]
    weights, weights_bucket = client.locate("weights")
    weights.delete(weights_bucket, missing_key)
    datasets, datasets_bucket = client.locate("datasets")
    datasets.upload(datasets_bucket, changed_key, io.BytesIO(b"replaced out of band"))
    prepared = time.monotonic()

    started = json.loads(
        run_django(
            env,
            "dualstorage_jobs",
            "start",
            "verify",
            "--batch-size",
            str(BATCH_SIZE),
            "--lease",
            str(LEASE_SECONDS),
            "--json",
        )
    )
    job_id = int(started["id"])
    assert started["progress"]["batches"]["total"] == 20

    database = WorkerDatabase(worker_database)
    workers: list[subprocess.Popen[bytes]] = []
    logs = [(tmp_path / f"worker{number}.log").open("wb") for number in (1, 2)]
    try:
        for number, log in enumerate(logs, start=1):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "django",
                        "db_worker",
                        "--no-reload",
                        "--no-startup-delay",
                        "--interval",
                        "0.1",
                        "--worker-id",
                        f"worker-{number}",
                    ],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, killed alone
                )
            )
        doomed, survivor = workers
        doomed_worker = f":{doomed.pid}"

        # Part-way through, kill the first worker just after it claims a batch: a claim
        # not seen by the previous poll (~10 ms ago) is at the start of its batch.
        seen: set[tuple[int, int]] = set()
        killed_batch: int | None = None
        deadline = time.monotonic() + JOB_TIMEOUT
        while killed_batch is None:
            assert time.monotonic() < deadline, "the first worker never took a batch part-way"
            assert doomed.poll() is None, (tmp_path / "worker1.log").read_text()
            state = database.batches(job_id)
            done_count = sum(1 for _, status, _, _ in state if status == "done")
            fresh = [
                index
                for index, status, worker, attempts in state
                if status == "running"
                and worker.endswith(doomed_worker)
                and (index, attempts) not in seen
            ]
            seen.update((index, attempts) for index, _, _, attempts in state)
            if fresh and done_count >= 4:
                os.killpg(doomed.pid, signal.SIGKILL)
                doomed.wait(10)
                killed_batch = fresh[0]
            time.sleep(0.01)
        killed_at = time.monotonic()
        at_kill = {index: (status, worker) for index, status, worker, _ in database.batches(job_id)}
        assert at_kill[killed_batch][0] == "running", "the batch finished before the kill"
        done_at_kill = sum(1 for status, _ in at_kill.values() if status == "done")

        while database.job_status(job_id) not in ("done", "failed"):
            assert time.monotonic() < deadline, (
                f"job {job_id} did not finish: {database.batches(job_id)}"
            )
            assert survivor.poll() is None, (tmp_path / "worker2.log").read_text()
            time.sleep(0.1)
        finished = time.monotonic()
    finally:
        for worker in workers:
            stop_process(worker)
        for log in logs:
            log.close()
        database.close()

    shown = json.loads(run_django(env, "dualstorage_jobs", "show", str(job_id), "--json"))
    report = shown["report"]
    assert shown["status"] == "done"

    # Every artifact exactly once.
    listed = [
        (kind, pk)
        for kind, by_outcome in report["artifacts"].items()
        for pks in by_outcome.values()
        for pk in pks
    ]
    assert len(listed) == 2_000
    assert len(set(listed)) == 2_000
    assert set(listed) == everything
    assert report["checked"] == 2_000
    assert report["counts"] == {
        "intact": 1_998,
        "changed": 1,
        "missing": 1,
        "unreadable": 0,
        "verifying": 0,
    }
    assert report["artifacts"]["weights"]["missing"] == [ids["weights"][missing_key]]
    assert report["artifacts"]["datasets"]["changed"] == [ids["datasets"][changed_key]]
    assert {(p["kind"], p["key"], p["outcome"]) for p in report["problems"]} == {
        ("weights", missing_key, "missing"),
        ("datasets", changed_key, "changed"),
    }

    # The killed worker's batch was run again, by the other worker, and counted once.
    batches = {batch["index"]: batch for batch in shown["batches"]}
    assert batches[killed_batch]["attempts"] == 2
    assert batches[killed_batch]["worker"].endswith(f":{survivor.pid}")
    assert all(batch["status"] == "done" for batch in batches.values())
    rerun = [index for index, batch in batches.items() if batch["attempts"] > 1]
    assert killed_batch in rerun
    assert report["batches"]["rerun"] == len(rerun)
    by_worker = {
        pid: sum(1 for b in batches.values() if b["worker"].endswith(f":{pid}"))
        for pid in (doomed.pid, survivor.pid)
    }
    assert by_worker[doomed.pid] >= 2 and sum(by_worker.values()) == 20

    total = time.monotonic() - began
    print(
        f"\njobs workers ({'PostgreSQL' if worker_database.startswith('postgres') else 'SQLite'}):"
        f" 2,000 artifacts, 20 batches; setup {prepared - began:.1f} s (migrate"
        f" {migrated - began:.1f} s, objects {uploaded - migrated:.1f} s, rows"
        f" {prepared - uploaded:.1f} s); worker 1 killed in"
        f" batch {killed_batch} with {done_at_kill} batches done; job finished"
        f" {finished - killed_at:.1f} s after the kill; batches run twice: {rerun};"
        f" done by worker 1 / 2: {by_worker[doomed.pid]} / {by_worker[survivor.pid]};"
        f" counts {report['counts']}; whole test {total:.1f} s"
    )
    assert total < 90

"""``dual_storage_app.jobs``, fast: claims, leases, idempotent completion, the job's end,
report merging, sweeps and retries (on a stand-in job kind), then each real job kind on
moto, the in-process database worker, the ``dualstorage_jobs`` command and the admin.

Worker processes sharing a job on a real server are in ``tests/real/test_jobs_workers.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import InvalidArgument, InvalidKey
from dual_storage_app.jobs import engine, runner, tasks, work
from dual_storage_app.jobs.models import BatchStatus, JobBatch, JobKind, JobStatus, StorageJob
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from tests.helpers import make, run, run_json, sha256

pytestmark = pytest.mark.django_db


# -- a stand-in job kind: batches of numbers, each run recorded ---------------------------


class Numbers:
    """A job kind whose batches are lists of numbers; ``fail`` makes runs raise."""

    def __init__(self) -> None:
        self.runs: list[int] = []
        self.fail: dict[int, int] = {}  # batch's first number -> runs left that raise

    def clean(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"count": int(params.get("count", 10)), "size": int(params.get("size", 3))}

    def plan(self, params: dict[str, Any]) -> work.Plan:
        numbers = list(range(params["count"]))
        chunks = [numbers[i : i + params["size"]] for i in range(0, len(numbers), params["size"])]
        return work.Plan([work.BatchPlan({"numbers": c}, len(c)) for c in chunks], {"n": 1})

    def run(self, job: StorageJob, batch: dict[str, Any], progress: work.Progress) -> work.Result:
        first = batch["numbers"][0]
        self.runs.append(first)
        if self.fail.get(first, 0) > 0:
            self.fail[first] -= 1
            raise RuntimeError(f"batch starting at {first} broke")
        for done, _ in enumerate(batch["numbers"], start=1):
            progress(done)
        return {"numbers": batch["numbers"]}

    def merge(self, job: StorageJob, results: Sequence[work.Result]) -> dict[str, Any]:
        return {"numbers": sorted(n for result in results for n in result["numbers"])}


@pytest.fixture
def numbers(monkeypatch: pytest.MonkeyPatch) -> Numbers:
    kind = Numbers()
    spec = work.JobSpec(JobKind.VERIFY, kind.clean, kind.plan, kind.run, kind.merge)
    monkeypatch.setitem(work.SPECS, "verify", spec)
    return kind


def new_job(count: int = 10, size: int = 3, **options: Any) -> StorageJob:
    """A job of the stand-in kind, planned but not enqueued (the test's transaction never
    commits, so its on_commit enqueue never runs)."""
    return runner.start_job("verify", {"count": count, "size": size}, **options)


def batches(job: StorageJob) -> list[JobBatch]:
    return list(job.batches.order_by("index"))


def expire(batch: JobBatch) -> None:
    """As if its worker died a while ago: the lease is in the past."""
    JobBatch.objects.filter(pk=batch.pk).update(
        lease_until=timezone.now() - dt.timedelta(seconds=1)
    )


# -- claims and leases ---------------------------------------------------------------------


def test_a_job_is_split_into_pending_batches(numbers: Numbers) -> None:
    job = new_job(10, 3)
    assert (job.status, job.batches_total, job.items_total) == ("pending", 4, 10)
    assert [(b.index, b.params["numbers"], b.items) for b in batches(job)] == [
        (0, [0, 1, 2], 3),
        (1, [3, 4, 5], 3),
        (2, [6, 7, 8], 3),
        (3, [9], 1),
    ]
    assert all(b.status == "pending" and b.attempts == 0 for b in batches(job))
    assert job.plan == {"n": 1}


def test_a_batch_is_claimed_once(numbers: Numbers) -> None:
    job = new_job()
    first = batches(job)[0]
    claim = engine.claim_batch(first.pk, worker="host:1")
    assert claim is not None
    assert engine.claim_batch(first.pk, worker="host:2") is None  # held under a live lease
    batch = JobBatch.objects.get(pk=first.pk)
    assert (batch.status, batch.attempts, batch.worker, batch.claim) == (
        "running",
        1,
        "host:1",
        claim.token,
    )
    assert batch.lease_until is not None
    lease = (batch.lease_until - timezone.now()).total_seconds()
    assert 55 < lease <= 60
    job.refresh_from_db()
    assert job.status == "running" and job.started_at is not None


def test_an_expired_lease_is_claimed_again_and_the_first_run_is_dropped(
    numbers: Numbers,
) -> None:
    job = new_job(3, 3)
    (batch,) = batches(job)
    dead = engine.claim_batch(batch.pk, worker="host:dead")
    assert dead is not None
    expire(batch)
    again = engine.claim_batch(batch.pk, worker="host:alive")
    assert again is not None and again.token != dead.token
    assert JobBatch.objects.get(pk=batch.pk).attempts == 2

    # The second claim's run writes the result and ends the job...
    assert engine.run_claim(again).status == "done"
    # ...and the first worker, woken up, writes nothing.
    assert engine.run_claim(dead).status == "lost"
    batch.refresh_from_db()
    assert (batch.status, batch.worker, batch.result) == (
        "done",
        "host:alive",
        {"numbers": [0, 1, 2]},
    )
    job.refresh_from_db()
    assert job.report is not None and job.report["numbers"] == [0, 1, 2]
    assert job.report["batches"]["rerun"] == 1


def test_a_live_lease_is_renewed_by_progress_and_lost_to_a_new_claim(numbers: Numbers) -> None:
    job = new_job(3, 3)
    (batch,) = batches(job)
    claim = engine.claim_batch(batch.pk)
    assert claim is not None
    lease = engine.Lease(claim)
    lease.interval = 0  # renew on every call
    before = JobBatch.objects.get(pk=batch.pk).lease_until
    lease.progress(2)
    renewed = JobBatch.objects.get(pk=batch.pk)
    assert renewed.items_done == 2
    assert before is not None and renewed.lease_until is not None
    assert renewed.lease_until >= before
    expire(batch)
    assert engine.claim_batch(batch.pk) is not None  # another worker takes it over
    with pytest.raises(engine.LeaseLost, match="claimed by another worker"):
        lease.progress(3)
    assert lease.lost


def test_completion_is_written_once_and_the_job_ends_once(numbers: Numbers) -> None:
    job = new_job(6, 3)
    outcomes = [engine.run_batch(b.pk) for b in batches(job)]
    assert [o.status for o in outcomes] == ["done", "done"]
    assert [o.job_finished for o in outcomes] == [False, True]
    # Duplicate deliveries of the same tasks change nothing.
    assert [engine.run_batch(b.pk).status for b in batches(job)] == ["skipped", "skipped"]
    assert engine.finish_if_complete(job.pk) is False
    job.refresh_from_db()
    assert job.status == "done" and job.finished_at is not None
    assert job.report == {
        "numbers": [0, 1, 2, 3, 4, 5],
        "batches": {
            "total": 2,
            "pending": 0,
            "running": 0,
            "done": 2,
            "failed": 0,
            "rerun": 0,
        },
    }
    assert numbers.runs == [0, 3]


def test_two_workers_finishing_at_once_end_the_job_once(numbers: Numbers) -> None:
    job = new_job(3, 3)
    engine.run_batch(batches(job)[0].pk)
    # The job ended with its batch; a racing worker that saw all batches done finds the
    # end already written (the conditional UPDATE on finished_at).
    StorageJob.objects.filter(pk=job.pk).update(status="running")
    assert engine.finish_if_complete(job.pk) is False
    job.refresh_from_db()
    assert job.report is not None and job.report["numbers"] == [0, 1, 2]


def test_a_failed_run_is_retried_then_failed_for_good(numbers: Numbers) -> None:
    job = new_job(6, 3, max_attempts=2)
    numbers.fail = {0: 1, 3: 5}  # batch 0 fails once, batch 1 always
    first, second = batches(job)
    assert engine.run_batch(first.pk).status == "retry"
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.error == "RuntimeError: batch starting at 0 broke"
    assert engine.run_batch(first.pk).status == "done"
    assert engine.run_batch(second.pk).status == "retry"
    outcome = engine.run_batch(second.pk)
    assert (outcome.status, outcome.job_finished) == ("failed", True)
    assert engine.run_batch(second.pk).status == "skipped"  # no runs left
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.report is not None
    assert job.report["numbers"] == [0, 1, 2]  # what the done batches found
    assert job.report["failed_batches"] == [
        {"index": 1, "error": "RuntimeError: batch starting at 3 broke"}
    ]


def test_run_here_runs_every_batch_and_retries(numbers: Numbers) -> None:
    numbers.fail = {3: 1}
    job = new_job(9, 3, now=True)
    assert job.status == "done"
    assert numbers.runs == [0, 3, 3, 6]  # after its failure, batch 1 was run again
    assert job.report is not None and job.report["numbers"] == list(range(9))


def test_a_job_without_batches_ends_at_once(numbers: Numbers) -> None:
    job = new_job(0)
    assert (job.status, job.batches_total, job.report) == (
        "done",
        0,
        {
            "numbers": [],
            "batches": {
                "total": 0,
                "pending": 0,
                "running": 0,
                "done": 0,
                "failed": 0,
                "rerun": 0,
            },
        },
    )


def test_a_sweep_releases_dead_workers_batches_and_fails_exhausted_ones(
    numbers: Numbers,
) -> None:
    job = new_job(9, 3, max_attempts=2)
    dead, exhausted, live = batches(job)
    engine.claim_batch(dead.pk)
    for _ in range(2):
        engine.claim_batch(exhausted.pk)
        expire(exhausted)
    engine.claim_batch(live.pk)
    expire(dead)
    swept = engine.sweep(job.pk)
    assert swept.released == [dead.pk]
    assert swept.failed == 1
    assert swept.next_expiry == JobBatch.objects.get(pk=live.pk).lease_until
    assert not swept.finished
    states = {b.pk: (b.status, b.claim) for b in batches(job)}
    assert states[dead.pk] == ("pending", "")
    assert states[exhausted.pk][0] == "failed"
    assert states[live.pk][0] == "running"
    assert "lease expired" in JobBatch.objects.get(pk=exhausted.pk).error


def test_retention_deletions_are_kept_only_with_the_batch_result(
    moto_configured: DualStorageClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retention batch's run shares its completion's transaction: if the completion
    finds its claim gone, the deletions roll back with it."""
    for epoch in range(1, 5):
        make(TrainingCheckpoint, b"c%d" % epoch, job_id="7", epoch=epoch)
    from dual_storage_app.models import RetentionPolicy

    RetentionPolicy.objects.create(job_id="7", keep_last=1)
    job = runner.start_job("retention")
    (batch,) = batches(job)
    claim = engine.claim_batch(batch.pk)
    assert claim is not None
    expire(batch)
    assert engine.claim_batch(batch.pk) is not None  # taken over before the first finishes
    assert engine.run_claim(claim).status == "lost"
    assert TrainingCheckpoint.objects.count() == 4  # nothing deleted without its result


# -- each kind on moto -------------------------------------------------------------------------


def test_verify_classifies_every_artifact_once(moto_configured: DualStorageClient) -> None:
    weights = [make(ModelWeight, b"weight %d" % i) for i in range(5)]
    datasets = [make(Dataset, b"dataset %d" % i) for i in range(3)]
    moto_configured.delete("weights", weights[1].key)
    store, bucket = moto_configured.locate("datasets")
    store.client.put_object(Bucket=bucket, Key=datasets[2].key, Body=b"tampered")

    job = runner.start_job("verify", {"batch_size": 2}, now=True)
    assert (job.status, job.batches_total, job.items_total) == ("done", 5, 8)
    report = job.report
    assert report is not None
    assert report["counts"] == {
        "intact": 6,
        "changed": 1,
        "missing": 1,
        "unreadable": 0,
        "verifying": 0,
    }
    assert report["artifacts"]["weights"]["missing"] == [weights[1].pk]
    assert report["artifacts"]["datasets"]["changed"] == [datasets[2].pk]
    assert sorted(report["artifacts"]["weights"]["intact"]) == sorted(
        w.pk for w in weights if w is not weights[1]
    )
    assert [(p["kind"], p["id"], p["outcome"]) for p in report["problems"]] == [
        ("weights", weights[1].pk, "missing"),
        ("datasets", datasets[2].pk, "changed"),
    ]
    # The same words as dualstorage_verify's.
    assert report["problems"][0]["problem"] == "missing: no object at its key"
    assert report["problems"][1]["problem"].startswith("changed in the store (size 8, SHA-256")


def test_verify_quick_and_kind_parameters(moto_configured: DualStorageClient) -> None:
    make(ModelWeight, b"w")
    make(Dataset, b"d")
    job = runner.start_job("verify", {"kinds": ["datasets"], "quick": True}, now=True)
    assert job.report is not None
    assert job.report["quick"] is True
    assert list(job.report["artifacts"]) == ["datasets"]
    assert job.report["counts"]["intact"] == 1


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("verify", {"quick": "yes"}, "quick must be true or false"),
        ("verify", {"kinds": ["models"]}, "Unknown artifact kind"),
        ("verify", {"batch_size": 0}, "batch_size must be a whole number"),
        ("verify", {"prefix": "a/"}, "Unknown parameter.*prefix"),
        ("adopt", {"prefix": "../x"}, "Invalid listing prefix '../x'"),
        ("retention", {"job_ids": "7"}, "job_ids must be a list"),
        ("reindex", {}, "Unknown job kind 'reindex'; use one of verify, adopt"),
    ],
)
def test_wrong_parameters_are_refused_by_name(
    kind: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises((InvalidArgument, InvalidKey), match=message):
        runner.start_job(kind, params)
    assert not StorageJob.objects.exists()


def test_adopt_registers_objects_without_rows(moto_configured: DualStorageClient) -> None:
    import io

    recorded = make(ModelWeight, b"has a row")
    for key in ("a.pth", "b.pth", "c.pth"):
        moto_configured.internal.upload("model-weights", key, io.BytesIO(key.encode()))
    moto_configured.internal.client.put_object(Bucket="model-weights", Key="folder/", Body=b"")
    moto_configured.internal.upload(
        "config-schemas", "ultralytics.json", io.BytesIO(b'{"type": "object"}')
    )

    planned = runner.start_job("adopt", {"dry_run": True, "batch_size": 2}, now=True)
    assert planned.report is not None
    assert [e["key"] for e in planned.report["adopted"]] == [
        "a.pth",
        "b.pth",
        "c.pth",
        "ultralytics.json",
    ]
    assert not ConfigSchema.objects.exists()

    job = runner.start_job("adopt", {"batch_size": 2}, now=True)
    report = job.report
    assert report is not None
    assert [(e["kind"], e["key"]) for e in report["adopted"]] == [
        ("weights", "a.pth"),
        ("weights", "b.pth"),
        ("weights", "c.pth"),
        ("schemas", "ultralytics.json"),
    ]
    assert report["skipped"] == [{"kind": "weights", "key": "folder/", "reason": "a folder marker"}]
    assert report["already_recorded"] == 1
    assert ModelWeight.objects.get(file="a.pth").sha256 == sha256(b"a.pth")
    assert ConfigSchema.objects.get().framework == "ultralytics"
    assert ModelWeight.objects.filter(pk=recorded.pk).exists()

    again = runner.start_job("adopt", now=True)
    assert again.report is not None
    assert again.report["adopted"] == [] and again.report["already_recorded"] == 5


def test_an_adopt_batch_run_again_reports_its_keys_once(
    moto_configured: DualStorageClient,
) -> None:
    """A worker that adopted a key and died before writing its result: the re-run finds
    the row it made and reports the key as adopted, once, without reading it again."""
    import io

    moto_configured.internal.upload("model-weights", "x.pth", io.BytesIO(b"x"))
    job = runner.start_job("adopt", {"kinds": ["weights"]})
    (batch,) = batches(job)
    from dual_storage_app.adoption import adopt_object

    store, bucket = moto_configured.locate("weights")
    adopt_object("weights", store, bucket, "x.pth")  # the dead worker's work
    assert engine.run_batch(batch.pk).status == "done"
    job.refresh_from_db()
    assert job.report is not None
    assert [e["key"] for e in job.report["adopted"]] == ["x.pth"]
    assert ModelWeight.objects.filter(file="x.pth").count() == 1


def test_usage_scan_lists_each_bucket_and_compares_with_the_catalog(
    moto_configured: DualStorageClient,
) -> None:
    import io

    make(ModelWeight, b"12345")
    moto_configured.internal.upload("model-weights", "stray.bin", io.BytesIO(b"123"))
    job = runner.start_job("usage-scan", now=True)
    assert (job.status, job.batches_total) == ("done", 4)
    report = job.report
    assert report is not None and report["scanned"] is True
    weights = next(entry for entry in report["kinds"] if entry["kind"] == "weights")
    assert (weights["objects"], weights["scanned_objects"], weights["difference"]) == (1, 2, 1)
    assert weights["scanned_bytes"] == 8
    assert "comparison" in report and "stores" in report


def test_retention_applies_the_policy_per_training_job(moto_configured: DualStorageClient) -> None:
    from dual_storage_app.models import RetentionPolicy

    rows = {
        (job, epoch): make(
            TrainingCheckpoint, b"%s-%d" % (job.encode(), epoch), job_id=job, epoch=epoch
        )
        for job in ("a", "b")
        for epoch in range(1, 4)
    }
    RetentionPolicy.objects.create(job_id="a", keep_last=1)
    RetentionPolicy.objects.create(job_id="b", keep_last=2)

    preview = runner.start_job("retention", {"dry_run": True}, now=True)
    assert preview.report is not None
    assert (preview.report["deleted"], TrainingCheckpoint.objects.count()) == (3, 6)

    job = runner.start_job("retention", now=True)
    assert (job.status, job.batches_total) == ("done", 2)
    report = job.report
    assert report is not None
    assert report["deleted"] == 3
    assert [entry["job_id"] for entry in report["training_jobs"]] == ["a", "b"]
    deleted = {d["id"] for entry in report["training_jobs"] for d in entry["deleted"]}
    assert deleted == {rows["a", 1].pk, rows["a", 2].pk, rows["b", 1].pk}
    assert set(TrainingCheckpoint.objects.values_list("epoch", "job_id")) == {
        (3, "a"),
        (2, "b"),
        (3, "b"),
    }


# -- the task framework, in this process ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_enqueued_batches_run_on_the_database_worker(
    moto_configured: DualStorageClient, keep_signals: None
) -> None:
    from django_tasks_db.models import DBTaskResult

    for i in range(5):
        make(ModelWeight, b"w%d" % i)
    job = runner.start_job("verify", {"batch_size": 2})
    assert job.status == "pending"
    queued = DBTaskResult.objects.filter(task_path="dual_storage_app.jobs.tasks.run_batch")
    assert queued.count() == 3
    sweep = DBTaskResult.objects.get(task_path="dual_storage_app.jobs.tasks.sweep_job")
    job.refresh_from_db()
    assert sweep.run_after == job.sweep_at  # a lease (60 s) and a margin from now
    assert job.sweep_at is not None
    assert 60 <= (job.sweep_at - job.created_at).total_seconds() < 62

    call_command(
        "db_worker", "--batch", "--no-reload", "--no-startup-delay", "--interval", "0", verbosity=0
    )
    job.refresh_from_db()
    assert job.status == "done"
    assert job.report is not None and job.report["counts"]["intact"] == 5
    assert {result.status for result in queued} == {"SUCCESSFUL"}

    # The sweep, when due, finds the job finished and schedules nothing more.
    assert tasks.sweep_job.call(job.pk) == {
        "job_id": job.pk,
        "released": [],
        "failed": 0,
        "finished": True,
    }


@pytest.mark.django_db(transaction=True)
def test_resume_enqueues_what_a_dead_worker_left(
    moto_configured: DualStorageClient, keep_signals: None
) -> None:
    for i in range(4):
        make(ModelWeight, b"w%d" % i)
    job = runner.start_job("verify", {"batch_size": 2}, now=False)
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()  # the queue was lost
    first = batches(job)[0]
    assert engine.claim_batch(first.pk, worker="host:dead") is not None
    expire(first)  # ...and the worker that held batch 0 died

    resumed = runner.resume_job(job.pk)
    assert (resumed.released, resumed.failed, resumed.enqueued) == (1, 0, 2)
    call_command(
        "db_worker", "--batch", "--no-reload", "--no-startup-delay", "--interval", "0", verbosity=0
    )
    job.refresh_from_db()
    assert job.status == "done"
    assert [b.attempts for b in batches(job)] == [2, 1]
    assert job.report is not None and job.report["checked"] == 4


def test_sweeps_are_one_chain_per_job(numbers: Numbers) -> None:
    job = new_job()
    due = timezone.now() + dt.timedelta(seconds=30)
    first = tasks.schedule_sweep(job.pk, due)
    assert first is not None and first > due
    assert tasks.schedule_sweep(job.pk, due) is None  # one is already due later
    job.refresh_from_db()
    assert job.sweep_at == first


# -- the command -------------------------------------------------------------------------------


def test_the_command_starts_shows_and_lists_jobs(moto_configured: DualStorageClient) -> None:
    make(ModelWeight, b"w")
    missing = make(Dataset, b"d")
    moto_configured.delete("datasets", missing.key)
    data = run_json("dualstorage_jobs", "start", "verify", "--now", "--batch-size", "1")
    assert (data["status"], data["progress"]["batches"]["done"]) == ("done", 2)
    assert data["report"]["counts"]["missing"] == 1

    text = run("dualstorage_jobs", "show", str(data["id"]))
    assert f"verify job #{data['id']}: done" in text
    assert "checked 2: 1 intact, 0 changed, 1 missing, 0 unreadable, 0 verifying" in text
    assert f"datasets #{missing.pk} {missing.key}: missing: no object at its key" in text

    listed = run_json("dualstorage_jobs", "list")
    assert [job["id"] for job in listed["jobs"]] == [data["id"]]
    assert "report" not in listed["jobs"][0]
    assert f"#{data['id']:<5} verify" in run("dualstorage_jobs", "list")


def test_the_command_enqueues_by_default(moto_configured: DualStorageClient) -> None:
    make(ModelWeight, b"w")
    text = run("dualstorage_jobs", "start", "verify", "--json")
    data = json.loads(text)
    assert data["status"] == "pending"
    assert data["progress"]["batches"]["pending"] == 1


def test_the_command_refuses_options_of_another_kind() -> None:
    with pytest.raises(CommandError, match="--quick does not apply to a adopt job"):
        run("dualstorage_jobs", "start", "adopt", "--quick")
    with pytest.raises(CommandError, match="No storage job with id 999"):
        run("dualstorage_jobs", "show", "999")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``manage.py ARGV`` as a script runs it: exit status, stdout, stderr."""
    from django.core.management import ManagementUtility

    capsys.readouterr()
    try:
        ManagementUtility(["manage.py", *argv]).fetch_command(argv[0]).run_from_argv(
            ["manage.py", *argv]
        )
        status = 0
    except SystemExit as exited:
        status = exited.code if isinstance(exited.code, int) else 1
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_command_line_reports_errors_as_json(
    capsys: pytest.CaptureFixture[str], moto_configured: DualStorageClient
) -> None:
    status, out, err = _cli(capsys, "dualstorage_jobs", "show", "x", "--json")
    error = json.loads(err)["error"]
    assert (status, out, error["type"]) == (2, "", "UsageError")
    assert error["message"] == "argument ID: 'x' is not a whole number"
    assert error["usage"].endswith("dualstorage_jobs show [-h] [--json] ID")

    status, out, err = _cli(capsys, "dualstorage_jobs", "--json", "show", "999")
    error = json.loads(err.splitlines()[-1])["error"]  # after moto's warning (W002)
    assert (status, out, error["type"]) == (1, "", "InvalidArgument")
    assert error["message"] == "No storage job with id 999."


def test_the_command_resumes_here(moto_configured: DualStorageClient) -> None:
    for i in range(3):
        make(ModelWeight, b"w%d" % i)
    job = runner.start_job("verify", {"batch_size": 2})
    data = run_json("dualstorage_jobs", "resume", str(job.pk), "--now")
    assert (data["ran"], data["job"]["status"]) == (2, "done")
    assert data["job"]["report"]["counts"]["intact"] == 3


def test_the_command_names_the_missing_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.apps import apps

    installed = apps.is_installed
    monkeypatch.setattr(
        apps, "is_installed", lambda name: name != "dual_storage_app.jobs" and installed(name)
    )
    with pytest.raises(CommandError, match=r"add 'dual_storage_app\.jobs' and a task backend"):
        run("dualstorage_jobs", "list")


# -- the admin ---------------------------------------------------------------------------------


def test_the_admin_shows_progress_batches_and_the_report(
    admin_client: Client, numbers: Numbers
) -> None:
    done = new_job(6, 3, now=True)
    running = new_job(9, 3)
    engine.run_batch(batches(running)[0].pk)
    engine.claim_batch(batches(running)[1].pk, worker="host:42")

    page = admin_client.get(reverse("admin:dual_storage_jobs_storagejob_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "2 / 2" in text and "6 / 6" in text  # batches and items of the done job
    assert "1 / 3" in text and "3 / 9" in text  # the running one
    assert reverse("admin:dual_storage_jobs_storagejob_add") not in text

    change = admin_client.get(
        reverse("admin:dual_storage_jobs_storagejob_change", args=[running.pk])
    )
    assert change.status_code == 200
    body = change.content.decode()
    assert "host:42" in body  # the batches inline
    assert 'name="_save"' not in body  # read-only
    report = admin_client.get(reverse("admin:dual_storage_jobs_storagejob_change", args=[done.pk]))
    assert "&quot;numbers&quot;" in report.content.decode()

    assert admin_client.get(reverse("admin:dual_storage_jobs_storagejob_add")).status_code == 403
    posted = admin_client.post(
        reverse("admin:dual_storage_jobs_storagejob_change", args=[done.pk]), {"status": "failed"}
    )
    assert posted.status_code == 403
    done.refresh_from_db()
    assert done.status == "done"


def test_long_lists_in_the_report_are_cut_in_the_admin() -> None:
    from dual_storage_app.jobs.admin import _shortened

    assert _shortened({"ids": list(range(25))}) == {"ids": [*range(20), "... and 5 more"]}


def test_statuses_are_shared_vocabulary() -> None:
    assert set(BatchStatus.values) == {"pending", "running", "done", "failed"}
    assert set(JobStatus.values) == set(BatchStatus.values)
    assert set(JobKind.values) == set(work.SPECS)

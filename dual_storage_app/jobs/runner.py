"""Starting, resuming and describing storage jobs: the API the commands use.

``start_job("verify", {"kinds": ["weights"]})`` plans the job and creates its batches,
then enqueues one task per batch once the transaction commits (a worker runs them), or
with ``now=True`` runs every batch in this process before returning. ``resume_job`` puts
the batches of dead workers back in the queue (or runs them here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import router, transaction
from django.db.models import Count, Q, QuerySet, Sum

from ..exceptions import InvalidArgument
from . import engine, tasks
from .models import BatchStatus, JobBatch, StorageJob
from .work import spec_for

DEFAULT_LEASE_SECONDS = 60
DEFAULT_MAX_ATTEMPTS = 3


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be a whole number of at least 1, not {value!r}.")
    return value


def start_job(
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    now: bool = False,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> StorageJob:
    """Create a ``kind`` job (``verify``, ``adopt``, ``retention``, ``usage-scan``) and its
    batches; enqueue them (once the transaction commits), or run them here with ``now``.

    Parameters are checked first (``InvalidArgument`` names a wrong one); planning reads
    the database and, for adopt, lists the buckets. A job with nothing to do ends at once.
    """
    spec = spec_for(kind)
    cleaned = spec.clean(params or {})
    lease_seconds = _positive("lease_seconds", lease_seconds)
    max_attempts = _positive("max_attempts", max_attempts)
    plan = spec.plan(cleaned)
    with transaction.atomic(using=router.db_for_write(StorageJob)):
        job = StorageJob.objects.create(
            kind=spec.kind,
            params=cleaned,
            plan=plan.summary,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            batches_total=len(plan.batches),
            items_total=sum(batch.items for batch in plan.batches),
        )
        JobBatch.objects.bulk_create(
            JobBatch(job=job, index=index, params=batch.params, items=batch.items)
            for index, batch in enumerate(plan.batches)
        )
    if not plan.batches:
        engine.finish_if_complete(job.pk)
    elif now:
        run_here(job.pk)
    else:
        transaction.on_commit(
            partial(tasks.enqueue_job, job.pk), using=router.db_for_write(StorageJob)
        )
    job.refresh_from_db()
    return job


def run_here(job_id: int) -> int:
    """Run the job's claimable batches in this process, one after the other, until none
    is left (a failed batch is tried again while it has runs left); how many runs.
    Batches that other workers hold under a live lease are left to them."""
    runs = 0
    while (claim := engine.claim_next(job_id)) is not None:
        engine.run_claim(claim)
        runs += 1
    return runs


@dataclass(frozen=True)
class Resumed:
    """What :func:`resume_job` did."""

    job: StorageJob
    released: int  # running batches whose lease had expired, put back to pending
    failed: int  # of those, the ones with no runs left
    enqueued: int  # pending batches enqueued (0 with now=True)
    ran: int  # batch runs in this process (now=True)


def resume_job(job_id: int, *, now: bool = False) -> Resumed:
    """Release the job's batches whose lease expired, then enqueue every pending batch
    (duplicates are harmless: a batch runs once) and schedule the sweep, or with ``now``
    run them here."""
    job = get_job(job_id)
    swept = engine.sweep(job.pk)
    enqueued = ran = 0
    if not job.is_finished:
        if now:
            ran = run_here(job.pk)
        else:
            enqueued = tasks.enqueue_job(job.pk)
    job.refresh_from_db()
    return Resumed(job, len(swept.released), swept.failed, enqueued, ran)


def get_job(job_id: int) -> StorageJob:
    job = StorageJob.objects.filter(pk=job_id).first()
    if job is None:
        raise InvalidArgument(f"No storage job with id {job_id}.")
    return job


def with_progress(jobs: QuerySet[StorageJob]) -> QuerySet[StorageJob]:
    """``jobs`` annotated with ``batches_done`` and ``items_done`` (done batches' items,
    plus the progress of running ones)."""
    return jobs.annotate(
        batches_done=Count("batches", filter=Q(batches__status=BatchStatus.DONE)),
        items_done=Sum("batches__items_done"),
    )


def describe(job: StorageJob, *, report: bool = True) -> dict[str, Any]:
    """A job as JSON-ready data: kind, status, times, progress, batches and its report."""
    batches = list(job.batches.order_by("index"))
    data: dict[str, Any] = {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "params": job.params,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "lease_seconds": job.lease_seconds,
        "progress": {
            "batches": engine.batch_summary(batches),
            "items_total": job.items_total,
            "items_done": sum(batch.items_done for batch in batches),
        },
    }
    if report:
        data["plan"] = job.plan
        data["batches"] = [
            {
                "index": batch.index,
                "status": batch.status,
                "attempts": batch.attempts,
                "worker": batch.worker,
                "items": batch.items,
                "items_done": batch.items_done,
                "lease_until": batch.lease_until.isoformat() if batch.lease_until else None,
                "error": batch.error,
            }
            for batch in batches
        ]
        data["report"] = job.report
    return data

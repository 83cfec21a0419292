"""The task framework's side: one task per batch, a sweep task per running job, and the
read-back of a completed browser upload when ``DUAL_STORAGE_UPLOADS["CHECK"]`` is
``"task"``.

``run_batch`` claims and runs one batch (:func:`.engine.run_batch`); a duplicate delivery
finds the batch done or held and does nothing. ``sweep_job`` is scheduled (``run_after``)
for when the job's earliest lease can have expired: it puts the batches of dead workers
back to pending and enqueues them again, then schedules the next sweep while the job runs.
Only backends that can defer a task (the database backend can) get sweeps; elsewhere
``dualstorage_jobs resume`` does that work.

Tasks go to the backend and queue named by the settings ``DUAL_STORAGE_JOBS_BACKEND`` and
``DUAL_STORAGE_JOBS_QUEUE`` (both ``"default"`` unless set).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..uploads import checking
from . import engine
from ._tasks_api import BaseTaskBackend, task, task_backends
from .models import StorageJob

DEFAULT_ALIAS = "default"
SWEEP_MARGIN = dt.timedelta(seconds=1)  # after a lease's expiry, so it has expired
SWEEP_PRIORITY = 10  # ahead of batches, where the backend has priorities


def backend_alias() -> str:
    return str(getattr(settings, "DUAL_STORAGE_JOBS_BACKEND", DEFAULT_ALIAS) or DEFAULT_ALIAS)


def queue_name() -> str:
    return str(getattr(settings, "DUAL_STORAGE_JOBS_QUEUE", DEFAULT_ALIAS) or DEFAULT_ALIAS)


def backend() -> BaseTaskBackend:
    """The task backend jobs are enqueued on."""
    return task_backends[backend_alias()]


@task()
def run_batch(batch_id: int) -> dict[str, Any]:
    """Claim and run one batch; a failed one with runs left is enqueued again."""
    outcome = engine.run_batch(batch_id)
    if outcome.status == "retry":
        enqueue_batches([batch_id])
    return outcome.as_dict()


@task()
def sweep_job(job_id: int) -> dict[str, Any]:
    """Release and re-enqueue the job's batches whose workers died; come back at the next
    lease's expiry while the job runs."""
    result = engine.sweep(job_id)
    enqueue_batches(result.released)
    if not result.finished:
        schedule_sweep(job_id, result.next_expiry)
    return {
        "job_id": job_id,
        "released": result.released,
        "failed": result.failed,
        "finished": result.finished,
    }


@task()
def check_upload(session_id: str) -> dict[str, Any]:
    """The read-back of a completed browser upload (``DUAL_STORAGE_UPLOADS["CHECK"] =
    "task"``): its SHA-256 recorded, or the dataset marked corrupt."""
    return {"session": session_id, "status": checking.check_upload(session_id)}


def enqueue_upload_check(session_id: str) -> None:
    """Enqueue :func:`check_upload` on the jobs' backend and queue (after the commit
    that completed the upload; a worker that dies mid-check leaves it to the cleanup)."""
    check_upload.using(backend=backend_alias(), queue_name=queue_name()).enqueue(session_id)


def enqueue_batches(batch_ids: Iterable[int]) -> int:
    """Enqueue one ``run_batch`` per batch; how many were enqueued."""
    configured = run_batch.using(backend=backend_alias(), queue_name=queue_name())
    count = 0
    for batch_id in batch_ids:
        configured.enqueue(batch_id)
        count += 1
    return count


def schedule_sweep(job_id: int, due: dt.datetime | None) -> dt.datetime | None:
    """Schedule the job's next sweep just after ``due`` (the earliest lease's expiry; a
    whole lease from now when no batch runs), unless one is scheduled already or the
    backend cannot defer tasks. Returns when it will run, or ``None``."""
    tasks_backend = backend()
    if not tasks_backend.supports_defer:
        return None
    job = StorageJob.objects.filter(pk=job_id).first()
    if job is None or job.is_finished:
        return None
    now = timezone.now()
    when = max(due or now + dt.timedelta(seconds=job.lease_seconds), now) + SWEEP_MARGIN
    # One chain of sweeps per job: a sweep is scheduled only when none is due later.
    taken = StorageJob.objects.filter(Q(sweep_at__isnull=True) | Q(sweep_at__lte=now), pk=job_id)
    if not taken.update(sweep_at=when):
        return None
    options: dict[str, Any] = {"backend": backend_alias(), "queue_name": queue_name()}
    if tasks_backend.supports_priority:
        options["priority"] = SWEEP_PRIORITY
    sweep_job.using(run_after=when, **options).enqueue(job_id)
    return when


def enqueue_job(job_id: int) -> int:
    """Enqueue every pending batch of the job and schedule its sweep; how many batches."""
    count = enqueue_batches(engine.pending_ids(job_id))
    schedule_sweep(job_id, None)
    return count

"""Running batches so that each counts once: claims, leases, completion, the job's end.

* **Claim.** A worker takes a batch with one conditional UPDATE: only a ``pending`` batch,
  or a ``running`` one whose lease has expired, and only while it has runs left. The
  UPDATE gives the batch a fresh random token, so of two workers racing for a batch
  exactly one gets it.
* **Lease.** A claim holds for the job's ``lease_seconds`` and is renewed (``heartbeat``)
  at most every third of that: by the run's progress calls, and by a watchdog thread when
  the run is inside one long step (hashing a large object, listing a large bucket). A
  worker that dies stops renewing; once its lease has expired the batch is claimed again
  and run from the start.
* **Completion.** The batch's result, its ``done`` status and its progress are written in
  one UPDATE that requires the claim's token: a run whose batch was claimed by another
  worker in the meantime (its lease had expired) writes nothing, so one result is kept
  per batch, however many times it ran. A kind whose batch changes data (retention's
  deletions) runs inside the same transaction as that UPDATE.
* **The job's end.** When no batch is pending or running, the job's report is merged from
  the done batches' results and written with its end by one conditional UPDATE (only
  while it has no end), so two workers finishing at once finish it once, with the same
  report.
* **Sweep.** Batches whose lease expired are put back to ``pending`` (and re-enqueued by
  the caller) or, with no runs left, failed.

Nothing here knows the task framework: :mod:`.tasks` enqueues, :mod:`.runner` runs batches
in the foreground.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F, Min, Q, QuerySet
from django.utils import timezone

from ..client import without_secrets
from .models import BatchStatus, JobBatch, JobStatus, StorageJob
from .work import spec_for

logger = logging.getLogger(__name__)

OPEN = (BatchStatus.PENDING, BatchStatus.RUNNING)
HEARTBEATS_PER_LEASE = 3
MAX_ERROR_CHARS = 2_000


class LeaseLost(Exception):
    """Another worker claimed the batch after this run's lease expired: the run's work is
    dropped (the other run's result is the one kept)."""


def worker_name() -> str:
    """``host:pid``: who holds a claim, as shown in the admin and ``dualstorage_jobs``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _db() -> str:
    return router.db_for_write(JobBatch)


@dataclass(frozen=True)
class Claim:
    """A batch this worker holds, the job it belongs to, and the claim's token."""

    batch: JobBatch
    job: StorageJob
    token: str

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.job.lease_seconds)

    def mine(self) -> QuerySet[JobBatch]:
        """The batch, only while this claim holds it."""
        return JobBatch.objects.filter(
            pk=self.batch.pk, claim=self.token, status=BatchStatus.RUNNING
        )


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt to run a batch.

    ``status``: ``done``; ``skipped`` (not claimable: done, failed, or held by another
    worker's live lease); ``lost`` (taken over by another worker, nothing written);
    ``retry`` (failed, back to pending with runs left); ``failed`` (no runs left)."""

    status: str
    batch_id: int
    job_id: int | None = None
    job_finished: bool = False
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SweepResult:
    """A sweep's work: batches released to pending (to enqueue again), batches failed for
    good, when the next lease expires, and whether the job is now finished."""

    released: list[int] = field(default_factory=list)
    failed: int = 0
    next_expiry: dt.datetime | None = None
    finished: bool = False


# -- claims ----------------------------------------------------------------------------------


def _claimable(now: dt.datetime) -> Q:
    return Q(status=BatchStatus.PENDING) | Q(status=BatchStatus.RUNNING, lease_until__lt=now)


def claim_batch(batch_id: int, *, worker: str | None = None) -> Claim | None:
    """Claim batch ``batch_id`` for this worker, or ``None`` when it is not claimable
    (done, failed, out of runs, or running under a live lease)."""
    batch = JobBatch.objects.select_related("job").filter(pk=batch_id).first()
    if batch is None:
        return None
    job = batch.job
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = JobBatch.objects.filter(
        _claimable(now), pk=batch_id, attempts__lt=job.max_attempts
    ).update(
        status=BatchStatus.RUNNING,
        claim=token,
        worker=(worker or worker_name())[:255],
        attempts=F("attempts") + 1,
        lease_until=now + dt.timedelta(seconds=job.lease_seconds),
        heartbeat_at=now,
        started_at=now,
        finished_at=None,
        items_done=0,
        error="",
    )
    if not claimed:
        return None
    StorageJob.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
        status=JobStatus.RUNNING, started_at=now
    )
    batch.refresh_from_db()
    return Claim(batch, job, token)


def claimable_ids(job_id: int) -> list[int]:
    """The job's batches a worker could claim now, in order."""
    job = StorageJob.objects.get(pk=job_id)
    return list(
        JobBatch.objects.filter(
            _claimable(timezone.now()), job_id=job_id, attempts__lt=job.max_attempts
        )
        .order_by("index")
        .values_list("pk", flat=True)
    )


def claim_next(job_id: int, *, worker: str | None = None) -> Claim | None:
    """Claim the job's first claimable batch, or ``None`` when there is none."""
    for batch_id in claimable_ids(job_id):
        claim = claim_batch(batch_id, worker=worker)
        if claim is not None:
            return claim
    return None


# -- leases ----------------------------------------------------------------------------------


class Lease:
    """Keeps a claim alive while its batch runs.

    :meth:`progress` is the run's callback: it records how far the run got and renews the
    lease when a third of it has passed since the last renewal, raising
    :class:`LeaseLost` once the claim is gone. Inside :meth:`kept`, a watchdog thread
    renews it too whenever the run has not for that long (one long step)."""

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.items_done = 0
        self.lost = False
        self.interval = max(claim.job.lease_seconds / HEARTBEATS_PER_LEASE, 0.05)
        self._renewed = time.monotonic()
        self._stop = threading.Event()

    def progress(self, items_done: int) -> None:
        self.items_done = items_done
        if self.lost:
            raise LeaseLost(self._lost_message())
        if time.monotonic() - self._renewed >= self.interval and not self.renew():
            raise LeaseLost(self._lost_message())

    def renew(self) -> bool:
        """Extend the lease from now, recording the progress; ``False`` (and
        :attr:`lost`) when the claim is gone."""
        now = timezone.now()
        renewed = self.claim.mine().update(
            lease_until=now + self.claim.lease, heartbeat_at=now, items_done=self.items_done
        )
        self._renewed = time.monotonic()
        if not renewed:
            self.lost = True
        return bool(renewed)

    @contextmanager
    def kept(self) -> Iterator[Lease]:
        """Run the watchdog thread while the block runs."""
        watchdog = threading.Thread(
            target=self._watch, name=f"lease-{self.claim.batch.pk}", daemon=True
        )
        watchdog.start()
        try:
            yield self
        finally:
            self._stop.set()
            watchdog.join()

    def _watch(self) -> None:
        try:
            while not self._stop.wait(self.interval / 2):
                if time.monotonic() - self._renewed >= self.interval and not self.renew():
                    return
        except Exception:  # the run goes on; its completion still requires the claim
            logger.exception("The heartbeat of batch %s failed", self.claim.batch.pk)
        finally:
            connections.close_all()  # this thread's own connections

    def _lost_message(self) -> str:
        batch = self.claim.batch
        return f"Batch {batch.index} of job #{batch.job_id} was claimed by another worker."


# -- running ---------------------------------------------------------------------------------


def run_batch(batch_id: int, *, worker: str | None = None) -> Outcome:
    """Claim batch ``batch_id`` and run it (a task's whole work)."""
    claim = claim_batch(batch_id, worker=worker)
    if claim is None:
        return Outcome("skipped", batch_id)
    return run_claim(claim)


def run_claim(claim: Claim) -> Outcome:
    """Run a claimed batch and write its result once; end the job after its last batch."""
    spec = spec_for(claim.job.kind)
    batch, job = claim.batch, claim.job
    lease = Lease(claim)
    try:
        with lease.kept():
            if spec.atomic:
                with transaction.atomic(using=_db()):
                    result = spec.run(job, batch.params, lease.progress)
                    _complete(claim, result, lease.items_done)  # or LeaseLost: rolled back
            else:
                result = spec.run(job, batch.params, lease.progress)
                _complete(claim, result, lease.items_done)
    except LeaseLost as exc:
        logger.warning("%s Its run's work is dropped.", exc)
        return Outcome("lost", batch.pk, job.pk)
    except Exception as exc:
        return _fail(claim, exc)
    return Outcome("done", batch.pk, job.pk, job_finished=finish_if_complete(job.pk))


def _complete(claim: Claim, result: dict[str, Any], items_done: int) -> None:
    """Write the result and ``done`` in one UPDATE, only while the claim holds."""
    with transaction.atomic(using=_db()):
        written = claim.mine().update(
            status=BatchStatus.DONE,
            result=result,
            items_done=items_done,
            finished_at=timezone.now(),
            lease_until=None,
        )
    if not written:
        batch = claim.batch
        raise LeaseLost(
            f"Batch {batch.index} of job #{batch.job_id} was claimed by another worker."
        )


def _fail(claim: Claim, exc: Exception) -> Outcome:
    """Record the failure: back to pending while the batch has runs left, else failed."""
    batch, job = claim.batch, claim.job
    error = without_secrets(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
    retry = batch.attempts < job.max_attempts
    logger.error(
        "Batch %s of job #%s failed on run %s of %s: %s",
        batch.index,
        job.pk,
        batch.attempts,
        job.max_attempts,
        error,
        exc_info=exc,
    )
    now = timezone.now()
    written = claim.mine().update(
        status=BatchStatus.PENDING if retry else BatchStatus.FAILED,
        error=error,
        lease_until=None,
        finished_at=None if retry else now,
    )
    if not written:
        return Outcome("lost", batch.pk, job.pk, error=error)
    if retry:
        return Outcome("retry", batch.pk, job.pk, error=error)
    return Outcome("failed", batch.pk, job.pk, job_finished=finish_if_complete(job.pk), error=error)


# -- the job's end ---------------------------------------------------------------------------


def batch_summary(batches: list[JobBatch]) -> dict[str, int]:
    """How many batches are in each state, and how many ran more than once."""
    summary = {"total": len(batches), **{status.value: 0 for status in BatchStatus}}
    for batch in batches:
        summary[batch.status] += 1
    summary["rerun"] = sum(1 for batch in batches if batch.attempts > 1)
    return summary


def finish_if_complete(job_id: int) -> bool:
    """End the job with its report once no batch is pending or running; ``True`` only
    for the call that ended it."""
    if JobBatch.objects.filter(job_id=job_id, status__in=OPEN).exists():
        return False
    job = StorageJob.objects.get(pk=job_id)
    if job.is_finished:
        return False
    batches = list(job.batches.order_by("index"))
    results = [batch.result for batch in batches if batch.status == BatchStatus.DONE]
    failed = [batch for batch in batches if batch.status == BatchStatus.FAILED]
    report = spec_for(job.kind).merge(job, [result for result in results if result is not None])
    report["batches"] = batch_summary(batches)
    if failed:
        report["failed_batches"] = [
            {"index": batch.index, "error": batch.error} for batch in failed
        ]
    now = timezone.now()
    ended = StorageJob.objects.filter(pk=job_id, finished_at__isnull=True).update(
        status=JobStatus.FAILED if failed else JobStatus.DONE,
        report=report,
        finished_at=now,
        started_at=job.started_at or now,
    )
    return bool(ended)


# -- sweeping --------------------------------------------------------------------------------


def sweep(job_id: int) -> SweepResult:
    """Release the job's batches whose lease expired (their workers died) back to
    ``pending``, or fail those with no runs left; the caller enqueues the released ones."""
    job = StorageJob.objects.filter(pk=job_id).first()
    if job is None or job.is_finished:
        return SweepResult(finished=True)
    now = timezone.now()
    expired = JobBatch.objects.filter(
        job_id=job_id, status=BatchStatus.RUNNING, lease_until__lt=now
    )
    failed = expired.filter(attempts__gte=job.max_attempts).update(
        status=BatchStatus.FAILED,
        finished_at=now,
        lease_until=None,
        error=f"Its worker stopped (its lease expired) on each of its {job.max_attempts} runs.",
    )
    released = []
    for batch_id in expired.values_list("pk", flat=True):  # those with runs left
        # The same condition as a claim: a batch renewed or claimed since stays as it is.
        if JobBatch.objects.filter(
            pk=batch_id, status=BatchStatus.RUNNING, lease_until__lt=now
        ).update(status=BatchStatus.PENDING, claim="", lease_until=None):
            released.append(batch_id)
    finished = finish_if_complete(job_id) if failed else False
    next_expiry = JobBatch.objects.filter(job_id=job_id, status=BatchStatus.RUNNING).aggregate(
        first=Min("lease_until")
    )["first"]
    return SweepResult(released, failed, next_expiry, finished)


def pending_ids(job_id: int) -> list[int]:
    """The job's pending batches, in order."""
    return list(
        JobBatch.objects.filter(job_id=job_id, status=BatchStatus.PENDING)
        .order_by("index")
        .values_list("pk", flat=True)
    )

"""Checkpoint retention: which checkpoints of a training job to keep, and deleting the rest.

A job's policy is its :class:`~.models.RetentionPolicy` row, each empty field falling back
to the project default (the settings ``RETENTION_KEEP_LAST``, ``RETENTION_KEEP_BEST``,
``RETENTION_METRIC``, ``RETENTION_METRIC_MODE``). Of each job it keeps:

* the last ``keep_last`` checkpoints, newest first by epoch (a row without an epoch counts
  as older than every row with one), then ``created_at`` (then id);
* the best ``keep_best`` by ``metric`` in the checkpoint's ``metrics`` (``min``: lower is
  better, ``max``: higher; a tie goes to the newer row); a row without a numeric value
  for the metric is never among the best;
* every pinned checkpoint;
* the newest checkpoint, always.

Everything else of the job is planned for deletion. A job whose policy keeps neither the
last nor the best (unset, or a count of 0) loses nothing, and neither does one whose
policy keeps the best without naming a metric.

Planning only reads the database: :func:`plan_retention` and :func:`plan_jobs` load the
rows and policies; :func:`resolve_policy` and :func:`select` are the rules, pure;
:func:`plan_as_previewed` is a plan as a user was shown it. :func:`apply_retention`
deletes through the models (``row.delete()``: the ``post_delete`` handler deletes the
object once the row's deletion commits), one short transaction per job that holds no
transfer, and deletes a row only if it is, at that moment, still unpinned and still
planned for deletion.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from django.db import router, transaction

from .client import dual_storage
from .config.stores import RetentionDefaults
from .keys import validate_segment
from .models import RetentionPolicy, TrainingCheckpoint

NO_POLICY = "no retention policy (neither keep_last nor keep_best is set); nothing is deleted"


@dataclass(frozen=True)
class Policy:
    """The rules one job is held to, after falling back to the project default."""

    keep_last: int | None = None
    keep_best: int | None = None
    metric: str | None = None
    metric_mode: str = "min"
    source: str = "project default"  # where the rules came from, for reports

    @property
    def problem(self) -> str | None:
        """Why this policy deletes nothing, or ``None`` when it applies."""
        if not self.keep_last and not self.keep_best:
            return NO_POLICY
        if self.keep_best and not self.metric:
            return (
                f"keep_best is {self.keep_best} but no metric is set (the job's policy or "
                "RETENTION_METRIC); nothing is deleted"
            )
        if self.metric_mode not in ("min", "max"):
            return f"metric_mode is {self.metric_mode!r}, not min or max; nothing is deleted"
        return None

    def describe(self) -> str:
        """``keep last 3, best 2 by val_loss (min: lower is better)``."""
        rules = []
        if self.keep_last:
            rules.append(f"last {self.keep_last}")
        if self.keep_best:
            better = "lower" if self.metric_mode == "min" else "higher"
            rules.append(
                f"best {self.keep_best} by {self.metric} ({self.metric_mode}: {better} is better)"
            )
        return "keep " + (", ".join(rules) if rules else "everything")


@dataclass(frozen=True)
class Kept:
    """A checkpoint the policy keeps, and every rule that keeps it."""

    checkpoint: TrainingCheckpoint
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class JobPlan:
    """One job's plan: what stays (newest first, with reasons) and what goes."""

    job_id: str
    policy: Policy
    kept: tuple[Kept, ...]
    delete: tuple[TrainingCheckpoint, ...]

    @property
    def skipped(self) -> str | None:
        """Why nothing of this job is deleted by its policy, or ``None``."""
        return self.policy.problem

    @property
    def bytes_freed(self) -> int:
        return sum(row.size for row in self.delete)


@dataclass(frozen=True)
class RetentionPlan:
    """The plan of every job planned, in job id order."""

    jobs: tuple[JobPlan, ...]

    @property
    def delete(self) -> tuple[TrainingCheckpoint, ...]:
        return tuple(row for job in self.jobs for row in job.delete)

    @property
    def bytes_freed(self) -> int:
        return sum(job.bytes_freed for job in self.jobs)


@dataclass(frozen=True)
class Deleted:
    """A deleted checkpoint; ``id`` is its row's id (the instance no longer has one)."""

    id: int
    checkpoint: TrainingCheckpoint


@dataclass(frozen=True)
class Spared:
    """A checkpoint the plan would delete that was left alone at apply time, and why."""

    checkpoint: TrainingCheckpoint
    reason: str


@dataclass(frozen=True)
class JobResult:
    job_id: str
    deleted: tuple[Deleted, ...]
    spared: tuple[Spared, ...]

    @property
    def bytes_freed(self) -> int:
        return sum(item.checkpoint.size for item in self.deleted)


@dataclass(frozen=True)
class RetentionResult:
    """What :func:`apply_retention` did, per job that had rows planned for deletion."""

    jobs: tuple[JobResult, ...]

    @property
    def deleted(self) -> tuple[Deleted, ...]:
        return tuple(item for job in self.jobs for item in job.deleted)

    @property
    def spared(self) -> tuple[Spared, ...]:
        return tuple(item for job in self.jobs for item in job.spared)

    @property
    def bytes_freed(self) -> int:
        return sum(job.bytes_freed for job in self.jobs)


# -- the rules (pure) ----------------------------------------------------------------------


def resolve_policy(defaults: RetentionDefaults, override: RetentionPolicy | None) -> Policy:
    """The job's rules: each field of its ``override`` row that is set, else the project
    default's."""
    if override is None:
        return Policy(defaults.keep_last, defaults.keep_best, defaults.metric, defaults.metric_mode)
    own = {
        "keep_last": override.keep_last,
        "keep_best": override.keep_best,
        "metric": override.metric or None,
        "metric_mode": override.metric_mode or None,
    }
    inherited = [name for name, value in own.items() if value is None]
    source = "job policy" + (
        f" ({', '.join(inherited)} from the project default)" if inherited else ""
    )
    return Policy(
        keep_last=override.keep_last if override.keep_last is not None else defaults.keep_last,
        keep_best=override.keep_best if override.keep_best is not None else defaults.keep_best,
        metric=override.metric or defaults.metric,
        metric_mode=override.metric_mode or defaults.metric_mode,
        source=source,
    )


def newest_first(rows: Iterable[TrainingCheckpoint]) -> list[TrainingCheckpoint]:
    """``rows`` newest first: by epoch (a row without one counts as older than any row
    with one), then ``created_at``, then id."""
    return sorted(
        rows,
        key=lambda row: (row.epoch is not None, row.epoch or 0, row.created_at, row.pk or 0),
        reverse=True,
    )


def metric_value(row: TrainingCheckpoint, metric: str) -> float | None:
    """The row's value of ``metric`` when it is a number (not a bool, not NaN)."""
    value = row.metrics.get(metric) if isinstance(row.metrics, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def select(
    rows: Sequence[TrainingCheckpoint], policy: Policy
) -> tuple[tuple[Kept, ...], tuple[TrainingCheckpoint, ...]]:
    """Split one job's ``rows`` into kept (with reasons) and to delete, both newest first."""
    ordered = newest_first(rows)
    reasons: dict[int, list[str]] = {id(row): [] for row in ordered}
    problem = policy.problem
    if problem is not None:  # nothing goes; the rows still say why they stay
        label = "no policy" if problem == NO_POLICY else "policy unusable"
        for row in ordered:
            reasons[id(row)].append(label)
    else:
        if policy.keep_last:
            for row in ordered[: policy.keep_last]:
                reasons[id(row)].append(f"last {policy.keep_last}")
        if policy.keep_best and policy.metric:
            for row in _best(ordered, policy.metric, policy.metric_mode, policy.keep_best):
                reasons[id(row)].append(f"best {policy.keep_best} by {policy.metric}")
    for row in ordered:
        if row.pinned:
            reasons[id(row)].append("pinned")
    if ordered:
        reasons[id(ordered[0])].append("newest")
    kept = tuple(Kept(row, tuple(reasons[id(row)])) for row in ordered if reasons[id(row)])
    delete = tuple(row for row in ordered if not reasons[id(row)])
    return kept, delete


def _best(
    ordered: list[TrainingCheckpoint], metric: str, mode: str, count: int
) -> list[TrainingCheckpoint]:
    """The ``count`` best of ``ordered`` (newest first) by ``metric``; a tie goes to the
    newer row, and a row without a numeric value of the metric is never among them."""
    sign = 1 if mode == "min" else -1
    scored = [
        (sign * value, position, row)
        for position, row in enumerate(ordered)  # position 0: the newest
        if (value := metric_value(row, metric)) is not None
    ]
    scored.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in scored[:count]]


def plan_job(job_id: str, rows: Sequence[TrainingCheckpoint], policy: Policy) -> JobPlan:
    """The plan of one job from its rows and its policy (pure)."""
    kept, delete = select(rows, policy)
    return JobPlan(job_id, policy, kept, delete)


# -- planning from the database ------------------------------------------------------------


def plan_retention(job_id: str | None = None) -> RetentionPlan:
    """The plan of every job with checkpoints, or of ``job_id`` alone, refused
    (``InvalidKey``) before any query if it could not be a job id. Reads the database;
    deletes nothing."""
    if job_id is None:
        return plan_jobs()
    return plan_jobs([validate_segment(job_id, field="job_id", store="internal")])


def plan_jobs(job_ids: Iterable[str] | None = None) -> RetentionPlan:
    """The plan of each job among ``job_ids`` (job ids read from the database) that has
    checkpoints; ``None``: every job."""
    defaults = dual_storage.config.retention
    rows = TrainingCheckpoint.objects.order_by("job_id", "pk")
    policies = RetentionPolicy.objects.all()
    if job_ids is not None:
        wanted = list(job_ids)
        rows, policies = rows.filter(job_id__in=wanted), policies.filter(job_id__in=wanted)
    by_job: dict[str, list[TrainingCheckpoint]] = defaultdict(list)
    for row in rows.iterator():
        by_job[row.job_id].append(row)
    overrides = {policy.job_id: policy for policy in policies}
    return RetentionPlan(
        tuple(
            plan_job(job, by_job[job], resolve_policy(defaults, overrides.get(job)))
            for job in sorted(by_job)
        )
    )


def plan_as_previewed(job_ids: Iterable[str], ids: Collection[int]) -> RetentionPlan:
    """The plan of ``job_ids`` as a user was shown it: to delete, each job's rows among
    ``ids`` (the rows the preview listed), whatever the rules say now. Rows since deleted
    are left out; :func:`apply_retention` re-checks the others (still planned, unpinned)
    and reports those it spares."""
    plan = plan_jobs(job_ids)
    shown: dict[str, list[TrainingCheckpoint]] = defaultdict(list)
    jobs = [job.job_id for job in plan.jobs]
    for row in TrainingCheckpoint.objects.filter(pk__in=list(ids), job_id__in=jobs):
        shown[row.job_id].append(row)
    return RetentionPlan(
        tuple(replace(job, delete=tuple(newest_first(shown[job.job_id]))) for job in plan.jobs)
    )


# -- applying ------------------------------------------------------------------------------


def apply_retention(plan: RetentionPlan) -> RetentionResult:
    """Delete the rows ``plan`` would delete, each job in its own short transaction.

    In that transaction the job's rows are locked and planned again, and a row goes only
    if it is still there, unpinned, and still planned for deletion: a row pinned since
    ``plan`` was made, or kept now by a newer checkpoint or a changed policy, stays.
    Rows are deleted through the model, so each object is deleted after the commit.
    """
    defaults = dual_storage.config.retention
    return RetentionResult(tuple(_apply_job(job, defaults) for job in plan.jobs if job.delete))


def _apply_job(job: JobPlan, defaults: RetentionDefaults) -> JobResult:
    deleted: list[Deleted] = []
    spared: list[Spared] = []
    with transaction.atomic(using=router.db_for_write(TrainingCheckpoint)):
        # Locked in id order (on databases that lock rows), so two runs cannot deadlock.
        current = list(
            TrainingCheckpoint.objects.select_for_update().filter(job_id=job.job_id).order_by("pk")
        )
        override = RetentionPolicy.objects.filter(job_id=job.job_id).first()
        now = plan_job(job.job_id, current, resolve_policy(defaults, override))
        still_planned = {row.pk for row in now.delete}
        by_id = {row.pk: row for row in current}
        for planned in job.delete:
            row = by_id.get(planned.pk)
            if row is None:
                spared.append(Spared(planned, "already deleted"))
            elif row.pinned:
                spared.append(Spared(row, "pinned since the plan was made"))
            elif row.pk not in still_planned:
                spared.append(Spared(row, "no longer planned for deletion"))
            else:
                row_id = row.pk
                row.delete()
                deleted.append(Deleted(row_id, row))
    return JobResult(job.job_id, tuple(deleted), tuple(spared))

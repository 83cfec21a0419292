"""Apply the checkpoint retention policy: per training job, list what is kept (and why)
and what goes, then delete it (rows and objects) unless ``--dry-run``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.keys import validate_segment
from dual_storage_app.management._common import (
    StorageCommand,
    artifact_data,
    command_errors,
    format_size,
    size_text,
)
from dual_storage_app.models import TrainingCheckpoint
from dual_storage_app.retention import (
    JobPlan,
    RetentionPlan,
    RetentionResult,
    apply_retention,
    plan_retention,
)


def _row_data(row: TrainingCheckpoint, **extra: Any) -> dict[str, Any]:
    return {**artifact_data(row), "pinned": row.pinned, **extra}


def _row_text(row: TrainingCheckpoint, row_id: int | None = None) -> str:
    epoch = f"epoch {row.epoch}" if row.epoch is not None else "no epoch"
    return f"#{row_id or row.pk} {epoch} {row.key} ({format_size(row.size)})"


def plan_data(job: JobPlan) -> dict[str, Any]:
    """One job's plan as JSON-ready values."""
    policy = job.policy
    return {
        "job_id": job.job_id,
        "policy": {
            "keep_last": policy.keep_last,
            "keep_best": policy.keep_best,
            "metric": policy.metric,
            "metric_mode": policy.metric_mode,
            "source": policy.source,
        },
        "skipped": job.skipped,
        "kept": [_row_data(kept.checkpoint, reasons=list(kept.reasons)) for kept in job.kept],
        "delete": [_row_data(row) for row in job.delete],
        "bytes_freed": job.bytes_freed,
    }


def result_data(result: RetentionResult) -> dict[str, Any]:
    """What was deleted and what was spared at apply time, as JSON-ready values."""
    return {
        "deleted": [_row_data(item.checkpoint, id=item.id) for item in result.deleted],
        "spared": [_row_data(item.checkpoint, reason=item.reason) for item in result.spared],
        "bytes_freed": result.bytes_freed,
    }


class Command(StorageCommand):
    help = (
        "Apply the checkpoint retention policy (settings RETENTION_*, overridden per job by "
        "a RetentionPolicy row): of each training job keep the last N epochs, the best K by "
        "a metric, every pinned checkpoint and the newest, and delete the rest, rows and "
        "objects. Lists per job what is kept, with its reasons, and what goes, with the "
        "bytes freed. A job whose policy keeps neither the last nor the best loses nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--job", metavar="JOB_ID", help="Only this training job.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Only list what would go; delete nothing."
        )

    def handle(self, *args: Any, job: str | None, dry_run: bool, **options: Any) -> None:
        with command_errors():
            if job is not None:
                validate_segment(job, field="--job", store="internal")
            plan = plan_retention(job)
        if job is not None and not plan.jobs:
            raise CommandError(f"No training checkpoints of job {job!r} in the database.")
        for job_plan in plan.jobs:
            self._show(job_plan)
        data: dict[str, Any] = {
            "dry_run": dry_run,
            "jobs": [plan_data(job_plan) for job_plan in plan.jobs],
            "planned_bytes_freed": plan.bytes_freed,
        }
        if dry_run:
            self.emit(data, [self._planned_summary(plan)])
            return
        with command_errors():
            result = apply_retention(plan)
        for item in result.deleted:
            self.note(f"deleted {_row_text(item.checkpoint, item.id)}")
        for spared in result.spared:
            self.note(self.style.WARNING(f"kept {_row_text(spared.checkpoint)}: {spared.reason}"))
        summary = (
            f"Deleted {len(result.deleted)} checkpoint(s) of {len(result.jobs)} job(s), "
            f"freeing {size_text(result.bytes_freed)}."
            if plan.jobs
            else "No training checkpoints in the database."
        )
        if result.spared:
            summary += f" {len(result.spared)} planned checkpoint(s) were kept (see above)."
        self.emit({**data, **result_data(result)}, [self.style.SUCCESS(summary)])

    def _show(self, job: JobPlan) -> None:
        self.note(f"Job {job.job_id!r}: {job.policy.describe()} [{job.policy.source}]")
        if job.skipped:
            self.note(self.style.WARNING(f"  {job.skipped}."))
        for kept in job.kept:
            self.note(f"  keep   {_row_text(kept.checkpoint)}: {', '.join(kept.reasons)}")
        for row in job.delete:
            self.note(f"  delete {_row_text(row)}")
        if job.delete:
            self.note(f"  {len(job.delete)} to delete, freeing {size_text(job.bytes_freed)}.")

    @staticmethod
    def _planned_summary(plan: RetentionPlan) -> str:
        if not plan.jobs:
            return "No training checkpoints in the database."
        jobs = sum(1 for job in plan.jobs if job.delete)
        return (
            f"Dry run: {len(plan.delete)} checkpoint(s) of {jobs} job(s) would be deleted, "
            f"freeing {size_text(plan.bytes_freed)}; nothing was deleted."
        )

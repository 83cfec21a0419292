"""Start, list, show and resume long storage jobs (``dual_storage_app.jobs``).

The jobs app is imported only when the command runs, so ``dual_storage_app`` works
without it; without it in ``INSTALLED_APPS`` this command says what to add.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from dual_storage_app.management._common import (
    JSON_FLAG,
    StorageCommand,
    command_errors,
    format_size,
    positive_int,
)
from dual_storage_app.verification import OUTCOMES

if TYPE_CHECKING:
    from dual_storage_app.jobs.models import StorageJob

JOBS_APP = "dual_storage_app.jobs"
JOB_KINDS = ("verify", "adopt", "usage-scan", "retention", "migrate")

# The options of `start` that each kind takes (each the name of a job parameter).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "verify": ("kinds", "quick", "batch_size"),
    "adopt": ("kinds", "prefix", "dry_run", "batch_size"),
    "usage-scan": ("kinds",),
    "retention": ("job_ids", "dry_run"),
    "migrate": ("name", "rules", "buckets", "delete_source", "keep_rows", "workers", "batch_size"),
}
_FLAGS = {
    "kinds": "--kind",
    "quick": "--quick",
    "prefix": "--prefix",
    "dry_run": "--dry-run",
    "batch_size": "--batch-size",
    "job_ids": "--job-id",
    "name": "--name",
    "rules": "--rules",
    "buckets": "--bucket",
    "delete_source": "--delete-source",
    "keep_rows": "--keep-rows",
    "workers": "--workers",
}


class Command(StorageCommand):
    help = (
        "Long storage jobs on Django's task framework: start one (verify, adopt, usage-scan, "
        "retention, migrate), enqueued for the task workers or run here with --now; list "
        "them; show one's progress and report; resume one whose workers died."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        start = actions.add_parser("start", help="Start a job.")
        start.add_argument("job_kind", choices=JOB_KINDS, metavar="KIND", help=", ".join(JOB_KINDS))
        start.add_argument(
            "--now", action="store_true", help="Run every batch in this process, then report."
        )
        self.add_kinds_option(
            start, help_text="verify, adopt, usage-scan: only this artifact kind (repeatable)."
        )
        start.add_argument("--quick", action="store_true", help="verify: HEAD only.")
        start.add_argument("--prefix", help="adopt: only keys starting with this.")
        start.add_argument(
            "--dry-run", action="store_true", help="adopt, retention: report, change nothing."
        )
        start.add_argument(
            "--job-id",
            dest="job_ids",
            action="append",
            help="retention: only this training job (repeatable; default: every job).",
        )
        start.add_argument(
            "--batch-size",
            type=positive_int,
            help="verify, adopt, migrate: items per batch (200).",
        )
        start.add_argument("--name", help="migrate: the migration's name (legacy).")
        start.add_argument("--rules", help="migrate: a preset (legacy, datasets) or a JSON file.")
        start.add_argument(
            "--bucket", dest="buckets", action="append", help="migrate: a source bucket."
        )
        start.add_argument(
            "--delete-source",
            action="store_true",
            help="migrate: delete each source once copied, verified and recorded.",
        )
        start.add_argument(
            "--keep-rows",
            action="store_true",
            help="migrate: leave rows naming another bucket (a provider swap).",
        )
        start.add_argument(
            "--workers", type=positive_int, help="migrate: objects copied at once per worker (8)."
        )
        start.add_argument(
            "--lease",
            dest="lease_seconds",
            type=positive_int,
            default=None,
            help="Seconds a batch stays claimed without a heartbeat (60).",
        )
        start.add_argument(
            "--max-attempts", type=positive_int, default=None, help="Runs of a batch (3)."
        )
        listing = actions.add_parser("list", help="The latest jobs.")
        listing.add_argument("--limit", type=positive_int, default=20, help="How many (20).")
        show = actions.add_parser("show", help="A job's progress, batches and report.")
        show.add_argument("job_id", type=positive_int, metavar="ID")
        resume = actions.add_parser(
            "resume", help="Re-enqueue a job's pending batches and those whose lease expired."
        )
        resume.add_argument("job_id", type=positive_int, metavar="ID")
        resume.add_argument("--now", action="store_true", help="Run them in this process.")
        for sub in (start, listing, show, resume):
            # --json after the action too; SUPPRESS keeps the top-level value otherwise.
            sub.add_argument(JSON_FLAG, action="store_true", default=argparse.SUPPRESS)
            if self._json_in_argv and parser.called_from_command_line:
                sub.error = partial(self._usage_error, sub)  # type: ignore[method-assign]

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if not apps.is_installed(JOBS_APP):
            raise CommandError(
                f"dualstorage_jobs needs the jobs app: add {JOBS_APP!r} and a task backend "
                "(TASKS; with django_tasks_db: 'django_tasks_db', and 'django_tasks' on "
                "Django 5.2) to INSTALLED_APPS, then migrate."
            )
        try:
            with command_errors():
                getattr(self, f"_{action}")(**options)
        except ImproperlyConfigured as exc:  # the task framework or backend is missing
            raise CommandError(str(exc)) from exc

    # -- actions ------------------------------------------------------------------------

    def _start(self, *, job_kind: str, now: bool, **options: Any) -> None:
        from dual_storage_app.jobs import runner
        from dual_storage_app.jobs._tasks_api import TaskException

        params = self._params(job_kind, options)
        limits = {
            name: options[name]
            for name in ("lease_seconds", "max_attempts")
            if options.get(name) is not None
        }
        try:
            job = runner.start_job(job_kind, params, now=now, **limits)
        except TaskException as exc:
            raise CommandError(f"The task backend refused the job's tasks: {exc}") from exc
        if now:
            lines = [f"Ran {job} here: {job.status}.", *self._summary(job)]
        elif job.is_finished:
            lines = [f"{job}: nothing to do; {job.status}.", *self._summary(job)]
        else:
            lines = [
                f"Started {job}: {job.batches_total} batch(es), {job.items_total} item(s), "
                "enqueued for the task workers (manage.py db_worker with the database backend).",
                f"Follow it with: manage.py dualstorage_jobs show {job.pk}",
            ]
        self.emit(runner.describe(job), lines)
        self._fail_if_failed(job)

    def _list(self, *, limit: int, **options: Any) -> None:
        from dual_storage_app.jobs import runner
        from dual_storage_app.jobs.models import StorageJob

        jobs = list(runner.with_progress(StorageJob.objects.all())[:limit])
        lines = [
            f"#{job.pk:<5} {job.kind:<11} {job.status:<8} "
            f"batches {getattr(job, 'batches_done', 0)}/{job.batches_total}  "
            f"items {getattr(job, 'items_done', None) or 0}/{job.items_total}  "
            f"created {job.created_at:%Y-%m-%d %H:%M:%S}"
            + (f"  finished {job.finished_at:%Y-%m-%d %H:%M:%S}" if job.finished_at else "")
            for job in jobs
        ] or ["No storage jobs yet."]
        self.emit({"jobs": [runner.describe(job, report=False) for job in jobs]}, lines)

    def _show(self, *, job_id: int, **options: Any) -> None:
        from dual_storage_app.jobs import runner

        job = runner.get_job(job_id)
        data = runner.describe(job)
        progress = data["progress"]
        batches = progress["batches"]
        lines = [
            f"{job}: {job.status}",
            f"  created {job.created_at:%Y-%m-%d %H:%M:%S}"
            + (f", started {job.started_at:%H:%M:%S}" if job.started_at else "")
            + (f", finished {job.finished_at:%H:%M:%S}" if job.finished_at else ""),
            f"  batches: {batches['done']} done, {batches['running']} running, "
            f"{batches['pending']} pending, {batches['failed']} failed of {batches['total']} "
            f"({batches['rerun']} run more than once)",
            f"  items: {progress['items_done']} of {progress['items_total']}",
            *(
                f"  batch {batch['index']}: {batch['status']} on {batch['worker'] or '-'}"
                + (f" ({batch['error']})" if batch["error"] else "")
                for batch in data["batches"]
                if batch["status"] in ("running", "failed")
            ),
            *self._summary(job),
        ]
        self.emit(data, lines)

    def _resume(self, *, job_id: int, now: bool, **options: Any) -> None:
        from dual_storage_app.jobs import runner

        resumed = runner.resume_job(job_id, now=now)
        job = resumed.job
        lines = [
            f"{job}: released {resumed.released} batch(es) whose lease had expired"
            + (f" ({resumed.failed} out of runs, failed)" if resumed.failed else "")
            + (
                f"; ran {resumed.ran} batch run(s) here"
                if now
                else f"; enqueued {resumed.enqueued} pending batch(es)"
            )
            + f"; {job.status}.",
            *self._summary(job),
        ]
        self.emit(
            {
                "job": runner.describe(job),
                "released": resumed.released,
                "failed": resumed.failed,
                "enqueued": resumed.enqueued,
                "ran": resumed.ran,
            },
            lines,
        )
        self._fail_if_failed(job)

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _params(job_kind: str, options: dict[str, Any]) -> dict[str, Any]:
        """The job's parameters from the options given; an option the kind does not
        take is refused, naming it."""
        params: dict[str, Any] = {}
        for name, flag in _FLAGS.items():
            value = options.get(name)
            if value is None or value is False:
                continue
            if name not in _OPTIONS[job_kind]:
                raise CommandError(f"{flag} does not apply to a {job_kind} job.")
            params[name] = value
        return params

    @staticmethod
    def _summary(job: StorageJob) -> list[str]:
        """The report in a few lines (the whole of it is in --json)."""
        report = job.report
        if not report:
            return []
        if job.kind == "verify":
            counts = report["counts"]
            # In OUTCOMES' order: PostgreSQL's jsonb keeps keys in its own order.
            named = [name for name in OUTCOMES if name in counts]
            return [
                f"  checked {report['checked']}: "
                + ", ".join(f"{counts[name]} {name}" for name in named),
                *(
                    f"  {p['kind']} #{p['id']} {p['key']}: {p['problem']}"
                    for p in report["problems"]
                ),
            ]
        if job.kind == "adopt":
            verb = "would adopt" if report["dry_run"] else "adopted"
            return [
                f"  {verb} {len(report['adopted'])} object(s), {format_size(report['bytes'])}; "
                f"{report['already_recorded']} already had a row; "
                f"{len(report['skipped'])} skipped."
            ]
        if job.kind == "usage-scan":
            return [
                f"  {entry['kind']}: {entry['scanned_objects']} object(s), "
                f"{format_size(entry['scanned_bytes'] or 0)} in {entry['bucket']}; "
                f"{entry['objects']} row(s) (difference {entry['difference']})"
                for entry in report["kinds"]
                if entry.get("scanned_objects") is not None
            ]
        if job.kind == "migrate":
            states = ", ".join(f"{n} {state}" for state, n in report["states"].items() if n)
            outcomes = ", ".join(f"{n} {what}" for what, n in report["outcomes"].items())
            return [
                f"  {outcomes or 'nothing to do'}; {format_size(report['bytes_copied'])} copied",
                f"  journal {report['name']!r}: {states}",
                *(f"  {e['bucket']}/{e['key']}: {e['error']}" for e in report["errors"]),
            ]
        verb = "would delete" if report["dry_run"] else "deleted"
        return [
            f"  {len(report['training_jobs'])} training job(s): {verb} {report['deleted']} "
            f"checkpoint(s), {format_size(report['bytes_freed'])}; {report['spared']} spared."
        ]

    @staticmethod
    def _fail_if_failed(job: StorageJob) -> None:
        if job.status == "failed":
            failures = (job.report or {}).get("failed_batches", [])
            detail = "; ".join(f"batch {f['index']}: {f['error']}" for f in failures)
            raise CommandError(f"{job} failed: {detail or 'see its batches'}.")

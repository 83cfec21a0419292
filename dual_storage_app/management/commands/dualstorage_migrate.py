"""Move a legacy single-bucket store (or an old external provider) into the dual layout,
verified and resumable: ``--plan`` (the default) lists what goes where, ``--apply``
copies, verifies, records and journals every object (:mod:`dual_storage_app.moving`)."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app.management._common import (
    StorageCommand,
    command_errors,
    positive_int,
    size_text,
)
from dual_storage_app.moving.engine import (
    DEFAULT_WORKERS,
    MigrationPlan,
    finish_swap,
    journal_counts,
    plan_migration,
    run_migration,
    write_journal,
)
from dual_storage_app.moving.rules import PRESETS, load_rules
from dual_storage_app.moving.source import load_source, migration_settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def migration_name(text: str) -> str:
    if not _NAME.match(text):
        raise ValueError(text)
    return text


class Command(StorageCommand):
    help = (
        "Migrate the objects of a legacy single-bucket store (AWS_S3_ENDPOINT_URL, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_BUCKET_DATASETS, or "
        "settings.DUAL_STORAGE_MIGRATION) into the dual layout, or the datasets of an old "
        "external provider into the new one (--rules datasets). --plan (the default) "
        "lists what goes where with counts, bytes and the monthly saving. --apply copies "
        "each object (server-side on one server, streamed across servers), verifies its "
        "SHA-256 end to end, creates its artifact row and journals it, so a run stopped "
        "at any point resumes without copying anything twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--plan", action="store_true", help="List what would move (default).")
        mode.add_argument("--apply", action="store_true", help="Copy, verify, record, journal.")
        mode.add_argument(
            "--status", action="store_true", help="Show the journal's counts per state."
        )
        mode.add_argument(
            "--finish-swap",
            action="store_true",
            help="After switching the external configuration: point the rows of the "
            "swapped datasets at their new bucket.",
        )
        parser.add_argument(
            "--bucket",
            dest="buckets",
            action="append",
            help="A source bucket (repeatable; default: the configured source buckets).",
        )
        parser.add_argument(
            "--rules",
            help=f"A preset ({', '.join(PRESETS)}) or a JSON file of rules "
            "(default: settings.DUAL_STORAGE_MIGRATION['RULES'], else 'legacy').",
        )
        parser.add_argument(
            "--name",
            type=migration_name,
            default="legacy",
            help="The migration's name in the journal (default: legacy).",
        )
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=DEFAULT_WORKERS,
            help=f"Objects copied at once (default {DEFAULT_WORKERS}).",
        )
        parser.add_argument(
            "--delete-source",
            action="store_true",
            help="Delete each source object once its copy is verified and its row exists.",
        )
        parser.add_argument(
            "--keep-rows",
            action="store_true",
            help="Leave an existing row that names another bucket as it is (a provider "
            "swap before the switch; --finish-swap updates them after it).",
        )
        parser.add_argument(
            "--show", type=positive_int, default=20, help="Conflicts and errors listed (20)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        if options["status"]:
            counts = journal_counts(name)
            lines = [f"{state:<15} {count}" for state, count in counts.items()]
            self.emit({"migration": name, "states": counts}, [f"Migration {name!r}:", *lines])
            return
        if options["finish_swap"]:
            changed = finish_swap(name)
            self.emit(
                {"migration": name, "rows_updated": changed},
                [self.style.SUCCESS(f"{changed} row(s) now name their new bucket.")],
            )
            return
        with command_errors():
            rules = load_rules(options["rules"], migration_settings().get("RULES"))
            source = load_source(options["buckets"] or ())
            plan = plan_migration(source, rules)
        summary = plan.summary()
        if not options["apply"]:
            self.emit(
                {"migration": name, "plan": summary},
                self._plan_lines(plan, summary, options["show"]),
            )
            return
        journal = write_journal(name, plan)
        self.note(
            f"Journal {name!r}: {journal['added']} object(s) added, "
            f"{journal['replanned']} re-planned."
        )
        with command_errors():
            report = run_migration(
                name,
                source,
                workers=options["workers"],
                delete_source=options["delete_source"],
                keep_rows=options["keep_rows"],
                progress=lambda done: self.note(f"  {done} object(s) handled"),
            )
        counts = journal_counts(name)
        data = {
            "migration": name,
            "plan": summary,
            "journal": journal,
            "run": report.as_dict(),
            "states": counts,
        }
        outcomes = (
            ", ".join(f"{count} {what}" for what, count in report.outcomes.items())
            or "nothing to do"
        )
        lines = [
            f"Run: {outcomes}; {size_text(report.bytes_copied)} copied in {report.seconds:.1f} s.",
            "Journal: " + ", ".join(f"{count} {state}" for state, count in counts.items() if count),
        ]
        lines += [
            self.style.ERROR(f"  {error['bucket']}/{error['key']}: {error['error']}")
            for error in report.errors[: options["show"]]
        ]
        self.emit(data, lines)
        unfinished = counts["failed"] + counts["conflict"]
        if unfinished:
            raise CommandError(
                f"{unfinished} object(s) did not move (failed or in conflict); see above. "
                "Run --apply again after fixing the cause: the journal resumes."
            )

    def _plan_lines(self, plan: MigrationPlan, summary: dict[str, Any], show: int) -> list[str]:
        lines = [f"Source: {summary['source']}", "Rules:"]
        lines += [f"  {rule}" for rule in summary["rules"]]
        lines.append("Plan:")
        for kind, entry in summary["kinds"].items():
            lines.append(
                f"  {kind:<11} {entry['objects']:>8} object(s) {size_text(entry['bytes']):>12}"
                f"  -> {entry['store']} store, bucket {entry['bucket']}"
            )
        left = summary["left_alone"]
        lines.append(f"  left alone  {left['objects']:>8} object(s) {size_text(left['bytes']):>12}")
        if summary["conflict_count"]:
            lines.append(self.style.WARNING(f"Conflicts: {summary['conflict_count']}"))
            lines += [
                f"  {item['bucket']}/{item['key']}: {item['why']}"
                for item in summary["conflicts"][:show]
            ]
        cost = summary["cost"]
        once = cost["one_time_usd"]
        lines.append(
            f"Storage per month: ${cost['before_usd_month']:.2f} before, "
            f"${cost['after_usd_month']:.2f} after, saving ${cost['saving_usd_month']:.2f}; "
            f"moving costs ${once['total']:.2f} once (source reads ${once['source_reads']:.2f}, "
            f"egress ${once['source_egress']:.2f}, writes ${once['target_writes']:.2f}, "
            f"read-back ${once['read_back']:.2f}) ({cost['prices']})."
        )
        lines.append("Nothing was changed; run with --apply to migrate.")
        return lines

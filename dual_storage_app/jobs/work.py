"""What each kind of job does: check its parameters, plan its batches, run one batch, and
merge the batches' results into the job's report.

Every kind calls the app's own code for the work itself: verify the check of
:mod:`dual_storage_app.verification` (``dualstorage_verify``'s), adopt the rules of
:mod:`dual_storage_app.adoption` (``dualstorage_adopt``'s), usage-scan the per-kind step
of :mod:`dual_storage_app.usage`, retention the planner and ``apply_retention`` of
:mod:`dual_storage_app.retention`.

A batch's run must be safe to repeat: its result is kept only if its claim still holds
when it is written (:mod:`.engine`), and a re-run after a worker died finds the effects
of the first run (rows adopted, checkpoints deleted) and reports them once. A run reports
progress by calling ``progress(items_done)``, which renews its lease (or raises
:class:`~.engine.LeaseLost` when another worker has taken the batch over).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from ..adoption import PUBLISHED, adopt_object, known_frameworks, reason_to_skip
from ..client import dual_storage
from ..exceptions import InvalidArgument
from ..keys import validate_prefix
from ..kinds import KINDS, ArtifactKind
from ..models import ARTIFACT_MODELS
from ..moving.engine import (
    DEFAULT_WORKERS,
    journal_counts,
    open_entry_ids,
    plan_migration,
    run_migration,
    write_journal,
)
from ..moving.rules import load_rules
from ..moving.source import load_source, migration_settings
from ..owned_keys import OwnedKeys
from ..retention import JobPlan, RetentionPlan, apply_retention, plan_jobs
from ..usage import GROWTH_DAYS, kind_usage, usage_report
from ..verification import OUTCOMES, check_artifact
from .models import JobKind, StorageJob

Progress = Callable[[int], None]
Params = dict[str, Any]
Result = dict[str, Any]

DEFAULT_BATCH_SIZE = 200
MAX_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class BatchPlan:
    """One batch to create: its share of the work and how many items that is."""

    params: Params
    items: int


@dataclass(frozen=True)
class Plan:
    """A job's batches, and what planning found besides them (kept on the job)."""

    batches: list[BatchPlan]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """One kind of job. ``atomic``: the batch's run and its completion share one
    transaction, so its changes are kept only with its result (retention's deletions)."""

    kind: JobKind
    clean: Callable[[Mapping[str, Any]], Params]
    plan: Callable[[Params], Plan]
    run: Callable[[StorageJob, Params, Progress], Result]
    merge: Callable[[StorageJob, Sequence[Result]], dict[str, Any]]
    atomic: bool = False


# -- parameters ----------------------------------------------------------------------------


def _only_known(kind: str, params: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidArgument(
            f"Unknown parameter(s) for a {kind} job: {', '.join(unknown)}; "
            f"use {', '.join(sorted(known)) or 'none'}."
        )


def _kinds(params: Mapping[str, Any]) -> list[ArtifactKind]:
    kinds = params.get("kinds") or list(KINDS)
    if isinstance(kinds, str) or not isinstance(kinds, list | tuple):
        raise InvalidArgument(f"kinds must be a list of artifact kinds, not {kinds!r}.")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise InvalidArgument(
            f"Unknown artifact kind(s) {', '.join(map(repr, unknown))}; use {', '.join(KINDS)}."
        )
    return [kind for kind in KINDS if kind in kinds]  # registry order, once each


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be true or false, not {value!r}.")
    return value


def _batch_size(params: Mapping[str, Any]) -> int:
    size = params.get("batch_size", DEFAULT_BATCH_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise InvalidArgument(f"batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}.")
    return size


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _model_manager(kind: ArtifactKind) -> Any:
    return ARTIFACT_MODELS[kind]._default_manager


# -- verify --------------------------------------------------------------------------------


def clean_verify(params: Mapping[str, Any]) -> Params:
    _only_known("verify", params, ("kinds", "quick", "batch_size"))
    return {
        "kinds": _kinds(params),
        "quick": _flag(params, "quick"),
        "batch_size": _batch_size(params),
    }


def plan_verify(params: Params) -> Plan:
    """Batches of ``batch_size`` rows of one kind, each a range of primary keys."""
    batches: list[BatchPlan] = []
    rows: dict[str, int] = {}
    for kind in params["kinds"]:
        pks = list(_model_manager(kind).order_by("pk").values_list("pk", flat=True))
        rows[kind] = len(pks)
        for chunk in _chunks(pks, params["batch_size"]):
            batches.append(
                BatchPlan({"kind": kind, "first": chunk[0], "last": chunk[-1]}, len(chunk))
            )
    return Plan(batches, {"rows": rows})


def run_verify(job: StorageJob, batch: Params, progress: Progress) -> Result:
    """Check every row of the batch's primary-key range (rows deleted since the job was
    planned are not reported; rows are never added inside a range)."""
    kind = cast(ArtifactKind, batch["kind"])
    rows = _model_manager(kind).filter(pk__gte=batch["first"], pk__lte=batch["last"])
    ids: dict[str, list[int]] = {outcome: [] for outcome in OUTCOMES}
    problems: list[dict[str, Any]] = []
    for done, row in enumerate(rows.order_by("pk").iterator(), start=1):
        verdict = check_artifact(row, quick=job.params.get("quick", False))
        ids[verdict.outcome].append(row.pk)
        if verdict.problem is not None:
            problems.append(
                {
                    "kind": kind,
                    "id": row.pk,
                    "key": row.key,
                    "outcome": verdict.outcome,
                    "problem": verdict.problem,
                }
            )
        progress(done)
    return {"kind": kind, "checked": sum(map(len, ids.values())), "ids": ids, "problems": problems}


def merge_verify(job: StorageJob, results: Sequence[Result]) -> dict[str, Any]:
    """Counts by outcome, the problems, and every artifact checked by id (per kind, per
    outcome): each appears once, since the batches' ranges do not overlap."""
    artifacts: dict[str, dict[str, list[int]]] = {}
    problems: list[dict[str, Any]] = []
    for result in results:
        by_outcome = artifacts.setdefault(result["kind"], {outcome: [] for outcome in OUTCOMES})
        for outcome, ids in result["ids"].items():
            by_outcome[outcome].extend(ids)
        problems.extend(result["problems"])
    for by_outcome in artifacts.values():
        for ids in by_outcome.values():
            ids.sort()
    counts = {
        outcome: sum(len(by_outcome[outcome]) for by_outcome in artifacts.values())
        for outcome in OUTCOMES
    }
    order = {kind: position for position, kind in enumerate(KINDS)}
    problems.sort(key=lambda problem: (order.get(problem["kind"], 0), problem["id"]))
    return {
        "quick": job.params.get("quick", False),
        "checked": sum(counts.values()),
        "counts": counts,
        "problems": problems,
        "artifacts": {kind: artifacts[kind] for kind in KINDS if kind in artifacts},
    }


# -- adopt ---------------------------------------------------------------------------------


def clean_adopt(params: Mapping[str, Any]) -> Params:
    _only_known("adopt", params, ("kinds", "prefix", "dry_run", "batch_size"))
    prefix = params.get("prefix", "") or ""
    if not isinstance(prefix, str):
        raise InvalidArgument(f"prefix must be text, not {prefix!r}.")
    return {
        "kinds": _kinds(params),
        "prefix": validate_prefix(prefix),
        "dry_run": _flag(params, "dry_run"),
        "batch_size": _batch_size(params),
    }


def plan_adopt(params: Params) -> Plan:
    """List each bucket; keys without a row are batched (a kind's schemas all in one
    batch, since one framework's keys must be judged in order); keys with one are
    counted as already recorded."""
    batches: list[BatchPlan] = []
    recorded: dict[str, int] = {}
    for kind in params["kinds"]:
        store, bucket = dual_storage.locate(kind)
        rows = set(_model_manager(kind).values_list("file", flat=True))
        keys: list[list[Any]] = []
        recorded[kind] = 0
        for info in store.list(bucket, params["prefix"]):
            if info.key in rows:
                recorded[kind] += 1
            else:
                keys.append([info.key, info.size])
        size = len(keys) if kind == "schemas" else params["batch_size"]
        for chunk in _chunks(keys, max(size, 1)):
            batches.append(BatchPlan({"kind": kind, "keys": list(chunk)}, len(chunk)))
    return Plan(batches, {"already_recorded": recorded})


def run_adopt(job: StorageJob, batch: Params, progress: Progress) -> Result:
    """Adopt each key of the batch that still has no row. A key whose row was made since
    the job was created (by an earlier run of this batch, most likely) is reported as
    adopted again, with that row; one whose row is older was already recorded."""
    kind = cast(ArtifactKind, batch["kind"])
    store, bucket = dual_storage.locate(kind)
    keys = [str(key) for key, _ in batch["keys"]]
    existing = {
        entry["file"]: entry
        for entry in _model_manager(kind)
        .filter(file__in=keys)
        .values("file", "pk", "size", "sha256", "created_at")
    }
    frameworks = known_frameworks(kind)
    owned = OwnedKeys.load(kind)
    adopted: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    recorded = gone = 0
    for done, (key, size) in enumerate(batch["keys"], start=1):
        row = existing.get(key)
        if row is not None:
            if row["created_at"] >= job.created_at:
                adopted.append(
                    {
                        "kind": kind,
                        "key": key,
                        "size": row["size"],
                        "sha256": row["sha256"],
                        "id": row["pk"],
                    }
                )
            else:
                recorded += 1
        elif (reason := reason_to_skip(kind, key, frameworks, owned)) is not None:
            if reason == PUBLISHED:
                recorded += 1
            else:
                skipped.append({"kind": kind, "key": key, "reason": reason})
        elif job.params.get("dry_run"):
            adopted.append({"kind": kind, "key": key, "size": size})
        else:
            artifact = adopt_object(kind, store, bucket, key)
            if artifact is None:  # deleted since the listing
                gone += 1
            else:
                adopted.append(
                    {
                        "kind": kind,
                        "key": key,
                        "size": artifact.size,
                        "sha256": artifact.sha256,
                        "id": artifact.pk,
                    }
                )
                if kind == "schemas":
                    frameworks.add(getattr(artifact, "framework", ""))
        progress(done)
    return {
        "kind": kind,
        "adopted": adopted,
        "skipped": skipped,
        "already_recorded": recorded,
        "gone": gone,
    }


def merge_adopt(job: StorageJob, results: Sequence[Result]) -> dict[str, Any]:
    """What ``dualstorage_adopt --json`` reports, for the whole job."""
    order = {kind: position for position, kind in enumerate(KINDS)}
    adopted = sorted(
        (entry for result in results for entry in result["adopted"]),
        key=lambda entry: (order.get(entry["kind"], 0), entry["key"]),
    )
    skipped = sorted(
        (entry for result in results for entry in result["skipped"]),
        key=lambda entry: (order.get(entry["kind"], 0), entry["key"]),
    )
    planned = sum(job.plan.get("already_recorded", {}).values())
    return {
        "dry_run": job.params.get("dry_run", False),
        "adopted": adopted,
        "skipped": skipped,
        "already_recorded": planned + sum(result["already_recorded"] for result in results),
        "gone": sum(result["gone"] for result in results),
        "bytes": sum(int(entry["size"]) for entry in adopted),
    }


# -- usage-scan ----------------------------------------------------------------------------


def clean_usage(params: Mapping[str, Any]) -> Params:
    _only_known("usage-scan", params, ("kinds",))
    return {"kinds": _kinds(params)}


def plan_usage(params: Params) -> Plan:
    """One batch per artifact kind: its bucket's listing."""
    return Plan([BatchPlan({"kind": kind}, 1) for kind in params["kinds"]])


def run_usage(job: StorageJob, batch: Params, progress: Progress) -> Result:
    """The kind's catalog figures and its bucket's listing (count, bytes), taken together."""
    since = job.created_at - dt.timedelta(days=GROWTH_DAYS)
    usage = kind_usage(cast(ArtifactKind, batch["kind"]), since, True)
    progress(1)
    return {**vars(usage), "difference": usage.difference}


def merge_usage(job: StorageJob, results: Sequence[Result]) -> dict[str, Any]:
    """``usage_report()``'s document (costs and comparison from the catalog) with each
    scanned kind's listing and its difference from the catalog."""
    report = usage_report(scan=False, now=job.created_at).as_dict()
    scanned = {result["kind"]: result for result in results}
    report["kinds"] = [scanned.get(entry["kind"], entry) for entry in report["kinds"]]
    report["scanned"] = True
    report["scanned_kinds"] = [kind for kind in KINDS if kind in scanned]
    return report


# -- retention -----------------------------------------------------------------------------


def clean_retention(params: Mapping[str, Any]) -> Params:
    _only_known("retention", params, ("job_ids", "dry_run"))
    job_ids = params.get("job_ids")
    if job_ids is not None and (
        isinstance(job_ids, str)
        or not isinstance(job_ids, list | tuple)
        or not all(isinstance(job, str) for job in job_ids)
    ):
        raise InvalidArgument(f"job_ids must be a list of training job ids, not {job_ids!r}.")
    return {
        "job_ids": None if job_ids is None else sorted(set(job_ids)),
        "dry_run": _flag(params, "dry_run"),
    }


def plan_retention_job(params: Params) -> Plan:
    """One batch per training job with checkpoints (``InvalidKey`` for an id that could
    not be one)."""
    plan = plan_jobs(params["job_ids"])
    batches = [
        BatchPlan({"job_id": job.job_id}, len(job.kept) + len(job.delete)) for job in plan.jobs
    ]
    return Plan(batches, {"training_jobs": len(batches)})


def _job_plan_data(job: JobPlan) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "policy": job.policy.describe(),
        "policy_source": job.policy.source,
        "skipped": job.skipped,
        "kept": [
            {"id": kept.checkpoint.pk, "key": kept.checkpoint.key, "reasons": list(kept.reasons)}
            for kept in job.kept
        ],
    }


def run_retention(job: StorageJob, batch: Params, progress: Progress) -> Result:
    """Plan the training job again and, unless a dry run, apply it. Run in the same
    transaction as the batch's completion (``atomic``): the deletions are kept only with
    the result that reports them, so a re-run never loses or repeats one."""
    plan = plan_jobs([batch["job_id"]])
    planned = plan.jobs[0] if plan.jobs else None
    result: Result = {
        "job_id": batch["job_id"],
        "deleted": [],
        "spared": [],
        "bytes_freed": 0,
        **(_job_plan_data(planned) if planned else {"kept": [], "skipped": "no checkpoints"}),
    }
    if planned is None:
        return result
    if job.params.get("dry_run"):
        result["deleted"] = [
            {"id": row.pk, "key": row.key, "size": row.size} for row in planned.delete
        ]
        result["bytes_freed"] = planned.bytes_freed
    else:
        applied = apply_retention(RetentionPlan((planned,)))
        result["deleted"] = [
            {"id": item.id, "key": item.checkpoint.key, "size": item.checkpoint.size}
            for item in applied.deleted
        ]
        result["spared"] = [
            {"id": item.checkpoint.pk, "key": item.checkpoint.key, "reason": item.reason}
            for item in applied.spared
        ]
        result["bytes_freed"] = applied.bytes_freed
    progress(len(planned.kept) + len(planned.delete))
    return result


def merge_retention(job: StorageJob, results: Sequence[Result]) -> dict[str, Any]:
    jobs = sorted(results, key=lambda result: str(result["job_id"]))
    return {
        "dry_run": job.params.get("dry_run", False),
        "training_jobs": jobs,
        "deleted": sum(len(result["deleted"]) for result in jobs),
        "spared": sum(len(result["spared"]) for result in jobs),
        "bytes_freed": sum(int(result["bytes_freed"]) for result in jobs),
    }


# -- migrate -------------------------------------------------------------------------------

MAX_MIGRATION_WORKERS = 64


def clean_migrate(params: Mapping[str, Any]) -> Params:
    known = ("name", "rules", "buckets", "delete_source", "keep_rows", "workers", "batch_size")
    _only_known("migrate", params, known)
    name = params.get("name", "legacy")
    rules = params.get("rules")
    buckets = params.get("buckets") or []
    workers = params.get("workers", DEFAULT_WORKERS)
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"name must be the migration's name, not {name!r}.")
    if rules is not None and not isinstance(rules, str):
        raise InvalidArgument(f"rules must be a preset name or a file path, not {rules!r}.")
    if isinstance(buckets, str) or not all(isinstance(b, str) for b in buckets):
        raise InvalidArgument(f"buckets must be a list of bucket names, not {buckets!r}.")
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise InvalidArgument(f"workers must be a whole number, not {workers!r}.")
    if not 1 <= workers <= MAX_MIGRATION_WORKERS:
        raise InvalidArgument(f"workers must be from 1 to {MAX_MIGRATION_WORKERS}.")
    return {
        "name": name,
        "rules": rules,
        "buckets": list(buckets),
        "delete_source": _flag(params, "delete_source"),
        "keep_rows": _flag(params, "keep_rows"),
        "workers": workers,
        "batch_size": _batch_size(params),
    }


def plan_migrate(params: Params) -> Plan:
    """List the source, journal what is new, and batch the journal rows with work left
    (each batch a range of their primary keys)."""
    rules = load_rules(params["rules"], migration_settings().get("RULES"))
    source = load_source(params["buckets"])
    plan = plan_migration(source, rules)
    journal = write_journal(params["name"], plan)
    ids = open_entry_ids(params["name"], delete_source=params["delete_source"])
    batches = [
        BatchPlan({"first": chunk[0], "last": chunk[-1]}, len(chunk))
        for chunk in _chunks(ids, params["batch_size"])
    ]
    return Plan(batches, {"plan": plan.summary(), "journal": journal})


def run_migrate(job: StorageJob, batch: Params, progress: Progress) -> Result:
    """Move the batch's journal rows forward (a re-run finds them where the first run
    left them: copies already made are verified, not made again)."""
    params = job.params
    report = run_migration(
        params["name"],
        load_source(params["buckets"]),
        workers=params["workers"],
        delete_source=params["delete_source"],
        keep_rows=params["keep_rows"],
        first=batch["first"],
        last=batch["last"],
        progress=progress,
    )
    return report.as_dict()


def merge_migrate(job: StorageJob, results: Sequence[Result]) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for result in results:
        for outcome, count in result["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    return {
        "name": job.params["name"],
        "outcomes": dict(sorted(outcomes.items())),
        "bytes_copied": sum(int(result["bytes_copied"]) for result in results),
        "errors": [error for result in results for error in result["errors"]][:100],
        "states": journal_counts(job.params["name"]),
    }


# -- the registry ----------------------------------------------------------------------------


SPECS: dict[str, JobSpec] = {
    spec.kind.value: spec
    for spec in (
        JobSpec(JobKind.VERIFY, clean_verify, plan_verify, run_verify, merge_verify),
        JobSpec(JobKind.ADOPT, clean_adopt, plan_adopt, run_adopt, merge_adopt),
        JobSpec(JobKind.USAGE_SCAN, clean_usage, plan_usage, run_usage, merge_usage),
        JobSpec(JobKind.MIGRATE, clean_migrate, plan_migrate, run_migrate, merge_migrate),
        JobSpec(
            JobKind.RETENTION,
            clean_retention,
            plan_retention_job,
            run_retention,
            merge_retention,
            atomic=True,
        ),
    )
}


def spec_for(kind: str) -> JobSpec:
    """The spec of job ``kind``; ``InvalidArgument`` names the known kinds."""
    try:
        return SPECS[kind]
    except KeyError:
        raise InvalidArgument(
            f"Unknown job kind {kind!r}; use one of {', '.join(SPECS)}."
        ) from None

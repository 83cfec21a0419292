"""A migration: plan it from a listing of the source, journal it, run it until done.

``plan_migration`` lists the source buckets and maps each key through the rules (what
goes where, counts, bytes, conflicts, the monthly saving). ``write_journal`` adds the
plan's objects to the journal (:mod:`.journal`) once: a second plan of the same source
adds only new objects and never resets one already copied. ``run_migration`` then takes
journal rows under a lease and moves each forward, with the copies in a thread pool and
every database write in the calling thread:

* ``pending``/``failed`` -> ``copied``: :func:`~.copying.copy_verified` (server-side,
  streamed or in place; a copy found from an earlier, killed run is verified, not
  copied again);
* ``copied`` -> ``recorded``: the artifact row is created (or checked: a row that
  records other bytes is a conflict);
* ``recorded`` -> ``source deleted``, only with ``delete_source``, only while the row
  exists and the source still has the ETag that was copied.

Run by ``manage.py dualstorage_migrate --apply`` in one process, and by the ``migrate``
job of :mod:`dual_storage_app.jobs` across task workers (each batch a range of rows).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..adoption import PUBLISHED, known_frameworks, reason_to_skip
from ..catalog import register, schema_framework
from ..client import dual_storage
from ..exceptions import DualStorageError, InvalidKey, ObjectExists
from ..kinds import KINDS, ArtifactKind, spec_for
from ..models import ARTIFACT_MODELS
from ..store import Store, TransferResult
from ..store.transfer import guess_content_type
from ..usage import GB, upload_requests
from .copying import CopyOutcome, ObjectRef, copy_verified, delete_source, is_same_object
from .journal import EntryState, MigrationEntry
from .rules import Rule, map_key
from .source import MigrationSource

logger = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=5)
DEFAULT_WORKERS = 8
MAX_ERRORS_SHOWN = 20


PUBLISHED_NOTE = "the published copy of a schema row"


def _rows(kind: ArtifactKind) -> Any:
    """The default manager of ``kind``'s artifact model."""
    return ARTIFACT_MODELS[kind]._default_manager


class Targets:
    """Where each kind lands: its configured store and bucket, except during a provider
    swap, when the external store's kinds land on the new external store."""

    def __init__(self, source: MigrationSource) -> None:
        self.swap_config = source.swap_target
        self.swap_store = Store(source.swap_target) if source.swap_target else None

    @property
    def is_swap(self) -> bool:
        return self.swap_store is not None

    def locate(self, kind: ArtifactKind) -> tuple[Store, str]:
        store, bucket = dual_storage.locate(kind)
        if self.swap_store is not None and self.swap_config and store.name == "external":
            return self.swap_store, self.swap_config.buckets.get(kind, bucket)
        return store, bucket


# -- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedObject:
    """One source object and where the rules send it."""

    bucket: str
    key: str
    size: int
    etag: str
    kind: ArtifactKind | None  # None: unmapped, skipped or in conflict
    target_bucket: str = ""
    target_key: str = ""
    state: EntryState = EntryState.PENDING
    note: str = ""


@dataclass
class MigrationPlan:
    """What a migration would do."""

    source: MigrationSource
    rules: tuple[Rule, ...]
    targets: Targets
    objects: list[PlannedObject] = field(default_factory=list)

    def by_state(self, state: EntryState) -> list[PlannedObject]:
        return [item for item in self.objects if item.state == state]

    def summary(self) -> dict[str, Any]:
        """Counts and bytes per kind (with its store and bucket), what is left alone or
        in conflict, and the monthly storage saving."""
        kinds: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            items = [i for i in self.objects if i.kind == kind and i.state == EntryState.PENDING]
            store, bucket = self.targets.locate(kind)
            kinds[kind] = {
                "store": store.name,
                "bucket": bucket,
                "objects": len(items),
                "bytes": sum(i.size for i in items),
            }
        left = self.by_state(EntryState.SKIPPED)
        conflicts = self.by_state(EntryState.CONFLICT)
        return {
            "source": self.source.describe(),
            "rules": [rule.describe() for rule in self.rules],
            "kinds": kinds,
            "left_alone": {"objects": len(left), "bytes": sum(i.size for i in left)},
            "conflicts": [
                {"bucket": i.bucket, "key": i.key, "why": i.note} for i in conflicts[:100]
            ],
            "conflict_count": len(conflicts),
            "cost": migration_cost(self),
        }


def migration_cost(plan: MigrationPlan) -> dict[str, Any]:
    """The usage report's cost model applied to the plan, in US dollars: storage per month
    before (every planned byte on the source's provider, at its prices) and after (each
    kind at its target store's prices), and what moving costs once: the source's reads
    (Class B) and egress, the targets' writes (Class A: a PUT, or a multipart upload's
    parts plus its create and complete) and the read-back of every copy (Class B)."""
    source_prices = plan.source.config.provider.prices
    moving = [item for item in plan.objects if item.kind is not None]
    before = sum(item.size for item in moving) / GB * source_prices.storage_gb_month
    after = writes = read_back = 0.0
    for item in moving:
        store, _ = plan.targets.locate(item.kind)  # type: ignore[arg-type]
        prices = store.config.prices
        after += item.size / GB * prices.storage_gb_month
        writes += upload_requests(item.size) / 1e6 * prices.class_a_per_million
        read_back += 1 / 1e6 * prices.class_b_per_million
    reads = len(moving) / 1e6 * source_prices.class_b_per_million
    egress = sum(item.size for item in moving) / GB * source_prices.egress_gb
    return {
        "before_usd_month": before,
        "after_usd_month": after,
        "saving_usd_month": before - after,
        "one_time_usd": {
            "source_reads": reads,
            "source_egress": egress,
            "target_writes": writes,
            "read_back": read_back,
            "total": reads + egress + writes + read_back,
        },
        "prices": (
            f"source: the {plan.source.config.provider.name} profile's list prices "
            f"(${source_prices.storage_gb_month}/GB-month, ${source_prices.egress_gb}/GB "
            "egress); targets: each store's prices (dualstorage_usage says where each "
            "came from)"
        ),
    }


def plan_migration(source: MigrationSource, rules: Sequence[Rule]) -> MigrationPlan:
    """List every source bucket and map each object (no write anywhere)."""
    plan = MigrationPlan(source, tuple(rules), Targets(source))
    store = source.store()
    for bucket in source.buckets:
        for info in store.list(bucket):
            plan.objects.append(
                _planned(bucket, info.key, info.size, info.etag, rules, plan.targets)
            )
    targets = Counter((i.kind, i.target_key) for i in plan.objects if i.kind is not None)
    for index, item in enumerate(plan.objects):
        if item.kind is not None and targets[(item.kind, item.target_key)] > 1:
            plan.objects[index] = PlannedObject(
                item.bucket,
                item.key,
                item.size,
                item.etag,
                None,
                item.target_bucket,
                item.target_key,
                EntryState.CONFLICT,
                f"another source object also maps to {item.kind} key {item.target_key!r}",
            )
    return plan


def _planned(
    bucket: str, key: str, size: int, etag: str, rules: Sequence[Rule], targets: Targets
) -> PlannedObject:
    if key.endswith("/"):
        return PlannedObject(
            bucket, key, size, etag, None, state=EntryState.SKIPPED, note="a folder marker"
        )
    try:
        mapped = map_key(rules, bucket, key)
    except InvalidKey as exc:
        return PlannedObject(
            bucket, key, size, etag, None, state=EntryState.CONFLICT, note=str(exc)
        )
    if mapped is None:
        return PlannedObject(
            bucket, key, size, etag, None, state=EntryState.SKIPPED, note="no rule matches"
        )
    if mapped.kind is None:
        return PlannedObject(
            bucket,
            key,
            size,
            etag,
            None,
            state=EntryState.SKIPPED,
            note=f"rule {mapped.rule.match!r}",
        )
    _, target_bucket = targets.locate(mapped.kind)
    return PlannedObject(bucket, key, size, etag, mapped.kind, target_bucket, mapped.target_key)


# -- the journal ----------------------------------------------------------------------------


REPLANNED_STATES = (EntryState.PENDING, EntryState.FAILED, EntryState.CONFLICT, EntryState.SKIPPED)
_PLANNED_FIELDS = ("size", "source_etag", "kind", "target_bucket", "target_key", "state", "error")


def write_journal(name: str, plan: MigrationPlan) -> dict[str, int]:
    """Add the plan's objects to migration ``name``'s journal. An object journaled before
    that has not been copied yet (pending, failed, in conflict, left alone) and that no
    worker holds takes the plan's mapping and state (new rules, a conflict whose cause was
    fixed, a source that changed); one copied or recorded keeps its state. Returns how
    many rows were added and re-planned."""
    existing = {
        (row.source_bucket, row.source_key): row
        for row in MigrationEntry.objects.filter(migration=name)
    }
    endpoint = plan.source.config.endpoint_url
    now = timezone.now()
    new, replanned = [], []
    for item in plan.objects:
        planned = {
            "size": item.size,
            "source_etag": item.etag,
            "kind": item.kind or "",
            "target_bucket": item.target_bucket,
            "target_key": item.target_key,
            "state": item.state,
            "error": item.note,
        }
        row = existing.get((item.bucket, item.key))
        if row is None:
            new.append(
                MigrationEntry(
                    migration=name,
                    source_endpoint=endpoint,
                    source_bucket=item.bucket,
                    source_key=item.key,
                    **planned,
                )
            )
            continue
        held = row.lease_until is not None and row.lease_until > now
        if held or row.state not in REPLANNED_STATES:
            continue
        if any(getattr(row, field) != value for field, value in planned.items()):
            for field, value in planned.items():
                setattr(row, field, value)
            replanned.append(row)
    with transaction.atomic():
        MigrationEntry.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
        MigrationEntry.objects.bulk_update(replanned, _PLANNED_FIELDS, batch_size=500)
    return {"added": len(new), "replanned": len(replanned)}


def journal_counts(name: str) -> dict[str, int]:
    """Rows of migration ``name`` per state."""
    counts = Counter(MigrationEntry.objects.filter(migration=name).values_list("state", flat=True))
    return {state.value: counts.get(state.value, 0) for state in EntryState}


# -- running -------------------------------------------------------------------------------


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _release_dead_workers(name: str) -> None:
    """Free the leases of this host's workers that no longer run (a SIGKILLed run)."""
    host = socket.gethostname()
    held = (
        MigrationEntry.objects.filter(migration=name, lease_until__gt=timezone.now())
        .values_list("worker", flat=True)
        .distinct()
    )
    for worker in held:
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            MigrationEntry.objects.filter(migration=name, worker=worker).update(lease_until=None)
        except PermissionError:
            pass  # alive, another user's


def _claim(ids: Sequence[int], worker: str) -> list[MigrationEntry]:
    """Take the rows of ``ids`` that nobody holds, with one UPDATE; return those taken
    (told apart from rows another worker took by this claim's own lease time)."""
    now = timezone.now()
    lease_until = now + LEASE
    MigrationEntry.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now), pk__in=ids
    ).update(lease_until=lease_until, worker=worker)
    return list(
        MigrationEntry.objects.filter(pk__in=ids, worker=worker, lease_until=lease_until).order_by(
            "pk"
        )
    )


@dataclass
class RunReport:
    """What one run did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    bytes_copied: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def add_error(self, entry: MigrationEntry, message: str) -> None:
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append(
                {"bucket": entry.source_bucket, "key": entry.source_key, "error": message}
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcomes": dict(sorted(self.outcomes.items())),
            "bytes_copied": self.bytes_copied,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


class _Runner:
    """Moves claimed rows forward; store work in a pool, database work here."""

    def __init__(
        self, source: MigrationSource, *, workers: int, delete_source: bool, keep_rows: bool
    ) -> None:
        self.source = source
        self.source_store: Store = source.store()
        self.workers = workers
        self.delete_source = delete_source
        self.targets = Targets(source)
        self.keep_rows = keep_rows or self.targets.is_swap  # the application still reads the old
        self.report = RunReport()
        self.frameworks = known_frameworks("schemas")

    def refs(self, entry: MigrationEntry) -> tuple[ObjectRef, ObjectRef]:
        target_store, _ = self.targets.locate(entry.kind)  # type: ignore[arg-type]
        return (
            ObjectRef(self.source_store, entry.source_bucket, entry.source_key),
            ObjectRef(target_store, entry.target_bucket, entry.target_key),
        )

    # Store work (pool threads) ----------------------------------------------------------

    def copy(self, entry: MigrationEntry) -> CopyOutcome:
        source, target = self.refs(entry)
        return copy_verified(
            source,
            target,
            source_etag=entry.source_etag,
            size=entry.size,
            interrupted=entry.attempts > 0,
        )

    def remove_source(self, entry: MigrationEntry) -> None:
        source, _ = self.refs(entry)
        delete_source(source, entry.source_etag)

    # Database work (this thread) --------------------------------------------------------

    def copied(self, entry: MigrationEntry, outcome: CopyOutcome) -> None:
        result = outcome.target
        entry.state, entry.method = EntryState.COPIED, outcome.method
        entry.sha256, entry.target_etag, entry.error = result.sha256, result.etag, ""
        entry.save(
            update_fields=["state", "method", "sha256", "target_etag", "error", "updated_at"]
        )
        self.report.outcomes[outcome.method] += 1
        if outcome.method in ("server-side", "streamed"):
            self.report.bytes_copied += result.size

    def record(self, entry: MigrationEntry) -> None:
        """Create the artifact row of a copied object (or check the one there)."""
        kind: ArtifactKind = entry.kind  # type: ignore[assignment]
        reason = reason_to_skip(kind, entry.target_key, self.frameworks)
        note = ""
        if reason == PUBLISHED:
            note = PUBLISHED_NOTE
        elif reason is not None:
            raise ObjectExists(f"Copied, but it gets no row: {reason}.")
        else:
            row = _rows(kind).filter(file=entry.target_key).first()
            if row is not None and row.sha256 and row.sha256 != entry.sha256:
                raise ObjectExists(
                    f"The {kind} row of {entry.target_key!r} records SHA-256 "
                    f"{row.sha256[:12]}..., not the copy's {entry.sha256[:12]}...; left as it is."
                )
            if row is None or (row.bucket != entry.target_bucket and not self.keep_rows):
                target_store, _ = self.targets.locate(kind)
                register(
                    kind,
                    TransferResult(
                        target_store.name,
                        entry.target_bucket,
                        entry.target_key,
                        entry.size,
                        entry.sha256,
                        entry.target_etag,
                        guess_content_type(entry.target_key),
                    ),
                )
            if kind == "schemas":
                self.frameworks.add(schema_framework(entry.target_key))
        entry.state, entry.error = EntryState.RECORDED, note
        entry.save(update_fields=["state", "error", "updated_at"])
        self.report.outcomes["recorded"] += 1

    def row_exists(self, entry: MigrationEntry) -> bool:
        kind: ArtifactKind = entry.kind  # type: ignore[assignment]
        if entry.error == PUBLISHED_NOTE:
            return True
        return bool(_rows(kind).filter(file=entry.target_key).exists())

    def failed(self, entry: MigrationEntry, exc: BaseException) -> None:
        state = EntryState.CONFLICT if isinstance(exc, ObjectExists) else EntryState.FAILED
        message = str(exc) if isinstance(exc, DualStorageError) else f"{type(exc).__name__}: {exc}"
        entry.state, entry.error = state, message[:2000]
        entry.save(update_fields=["state", "error", "updated_at"])
        self.report.outcomes[state.value] += 1
        self.report.add_error(entry, message)
        logger.warning("Migration of %s/%s: %s", entry.source_bucket, entry.source_key, message)

    def release(self, entries: Iterable[MigrationEntry]) -> None:
        MigrationEntry.objects.filter(pk__in=[e.pk for e in entries]).update(lease_until=None)

    # One claimed chunk ------------------------------------------------------------------

    def start(self, pool: ThreadPoolExecutor, entries: list[MigrationEntry]) -> _Started:
        """Count an attempt for each row still to copy and start their copies."""
        copying = [e for e in entries if e.state in (EntryState.PENDING, EntryState.FAILED)]
        MigrationEntry.objects.filter(pk__in=[e.pk for e in copying]).update(
            attempts=F("attempts") + 1
        )
        return _Started(entries, [(entry, pool.submit(self.copy, entry)) for entry in copying])

    def finish(self, pool: ThreadPoolExecutor, started: _Started) -> None:
        """Record the chunk's copies, delete its sources if asked, give up its leases."""
        try:
            self._finish(pool, started)
        finally:
            self.release(started.entries)

    def _finish(self, pool: ThreadPoolExecutor, started: _Started) -> None:
        outcomes: list[tuple[MigrationEntry, CopyOutcome | Exception]] = []
        for entry, future in started.copies:
            try:
                outcomes.append((entry, future.result()))
            except Exception as exc:  # one object's failure never stops the run
                outcomes.append((entry, exc))
        # The chunk's database work is one transaction (one commit, not four per object).
        # A run killed before it commits leaves copies that the next run finds by their
        # source token and verifies, without copying them again.
        with transaction.atomic():
            for entry, outcome in outcomes:
                if isinstance(outcome, CopyOutcome):
                    self.copied(entry, outcome)
                else:
                    self.failed(entry, outcome)
            for entry in started.entries:
                if entry.state == EntryState.COPIED:
                    try:
                        self.record(entry)
                    except Exception as exc:
                        self.failed(entry, exc)
        if self.delete_source:  # only once the rows are committed
            deletable = [
                e
                for e in started.entries
                if e.state == EntryState.RECORDED
                and not is_same_object(*self.refs(e))
                and self.row_exists(e)
            ]
            removals = [(e, pool.submit(self.remove_source, e)) for e in deletable]
            for entry, removal in removals:
                try:
                    removal.result()
                except Exception as exc:
                    self.failed(entry, exc)
                    continue
                entry.state = EntryState.SOURCE_DELETED
                entry.save(update_fields=["state", "updated_at"])
                self.report.outcomes["source deleted"] += 1


@dataclass(frozen=True)
class _Started:
    """A claimed chunk whose copies are under way."""

    entries: list[MigrationEntry]
    copies: list[tuple[MigrationEntry, Future[CopyOutcome]]]


def open_entry_ids(
    name: str, *, delete_source: bool, first: int | None = None, last: int | None = None
) -> list[int]:
    """Rows of migration ``name`` a run has work for (in a primary-key range, if given)."""
    states = [EntryState.PENDING, EntryState.COPIED, EntryState.FAILED]
    if delete_source:
        states.append(EntryState.RECORDED)
    rows = MigrationEntry.objects.filter(migration=name, state__in=states)
    if first is not None:
        rows = rows.filter(pk__gte=first)
    if last is not None:
        rows = rows.filter(pk__lte=last)
    return list(rows.order_by("pk").values_list("pk", flat=True))


def run_migration(
    name: str,
    source: MigrationSource,
    *,
    workers: int = DEFAULT_WORKERS,
    delete_source: bool = False,
    keep_rows: bool = False,
    first: int | None = None,
    last: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunReport:
    """Move every open row of migration ``name`` (in ``first..last``, if given) as far as
    it goes. ``keep_rows``: an existing row naming another bucket is left as it is (a
    provider swap, before the switch). ``progress(done)`` is called after each batch."""
    started = time.monotonic()
    _release_dead_workers(name)
    runner = _Runner(source, workers=workers, delete_source=delete_source, keep_rows=keep_rows)
    worker = _worker_name()
    ids = open_entry_ids(name, delete_source=delete_source, first=first, last=last)
    done = 0
    chunk = max(workers * 8, 32)
    # Pipelined: the next chunk's copies run while this chunk's rows are written.
    open_chunks: list[_Started] = []
    with ThreadPoolExecutor(workers) as pool:
        try:
            for first_id in range(0, len(ids), chunk):
                entries = _claim(ids[first_id : first_id + chunk], worker)
                open_chunks.append(runner.start(pool, entries))
                while len(open_chunks) > 1 or (open_chunks and first_id + chunk >= len(ids)):
                    finished = open_chunks.pop(0)
                    runner.finish(pool, finished)
                    done += len(finished.entries)
                    if progress is not None:
                        progress(done)
        finally:
            for started_chunk in open_chunks:  # stopped early (LeaseLost): give rows back
                runner.release(started_chunk.entries)
    runner.report.seconds = time.monotonic() - started
    return runner.report


def finish_swap(name: str) -> int:
    """After a provider swap's configuration switch: point the rows of migration
    ``name``'s recorded objects at their new bucket; return how many rows changed."""
    changed = 0
    targets: dict[str, list[str]] = defaultdict(list)
    for kind, bucket, key in MigrationEntry.objects.filter(
        migration=name, state__in=(EntryState.RECORDED, EntryState.SOURCE_DELETED)
    ).values_list("kind", "target_bucket", "target_key"):
        targets[f"{kind}\n{bucket}"].append(key)
    for group, keys in targets.items():
        kind, bucket = group.split("\n")
        spec_for(kind)
        manager: Any = ARTIFACT_MODELS[kind]._default_manager  # type: ignore[index]
        for start in range(0, len(keys), 500):
            changed += (
                manager.filter(file__in=keys[start : start + 500])
                .exclude(bucket=bucket)
                .update(bucket=bucket)
            )
    return changed

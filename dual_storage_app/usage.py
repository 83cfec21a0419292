"""Usage and cost, live: what each store, bucket and artifact kind holds, how it grew,
what it costs a month, and the seed's comparison computed from the project's own data.

Counts and bytes come from the catalog (the artifact rows); ``scan=True`` also lists each
bucket and shows the difference (objects without rows, or rows without objects). Costs
use each store's :class:`~.config.providers.Prices` (the provider profile's list prices,
or the ``*_STORAGE_PRICE_*`` settings), and every figure says which prices it used.

Storage is priced per GB-month with GB = 2**30 bytes, as the providers bill. Class A
requests (writes) are estimated from the uploads of the last 30 days (one PUT, or a
multipart upload's parts plus its create and complete); Class B requests (reads) and
egress from the link audit: each link handed out in the last 30 days counted as one
download of its object (an estimate: a link may be used twice, or never).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .client import dual_storage
from .config.providers import Prices
from .kinds import KINDS, REGISTRY, ArtifactKind, StoreName
from .models import ARTIFACT_MODELS, Dataset, IssuedLink
from .store.transfer import PART_SIZE

GB = 2**30
GROWTH_DAYS = 30


@dataclass(frozen=True)
class KindUsage:
    """One artifact kind: where it lives, what the catalog holds and how it grew."""

    kind: ArtifactKind
    store: StoreName
    bucket: str
    objects: int
    bytes: int
    added_objects: int  # rows created in the last 30 days (still present)
    added_bytes: int
    writes: int  # estimated Class A requests of those uploads
    scanned_objects: int | None = None  # from the bucket's listing (scan=True)
    scanned_bytes: int | None = None

    @property
    def difference(self) -> int | None:
        """Objects in the bucket minus rows in the catalog (``None`` without a scan)."""
        return None if self.scanned_objects is None else self.scanned_objects - self.objects


@dataclass(frozen=True)
class StoreCost:
    """One store's monthly cost at its prices."""

    store: StoreName
    provider: str
    bytes: int
    storage: float  # US dollars a month for the bytes held
    writes: float  # US dollars a month for the estimated Class A requests
    prices: Prices
    price_origins: dict[str, str]
    links: int = 0  # links handed out in the last 30 days (the link audit)
    link_bytes: int = 0  # the size of their objects: one download each
    reads: float = 0.0  # US dollars a month: one Class B request per link
    egress: float = 0.0  # US dollars a month: one download of each link's object

    @property
    def total(self) -> float:
        return self.storage + self.writes + self.reads + self.egress


@dataclass(frozen=True)
class UsageReport:
    """Everything ``dualstorage_usage`` and the admin's usage page show."""

    generated_at: dt.datetime
    kinds: list[KindUsage]
    stores: dict[StoreName, StoreCost]
    # The seed's comparison: every artifact on the external store vs the dual layout.
    all_external: float
    dual: float
    scanned: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def saving(self) -> float:
        return self.all_external - self.dual

    @property
    def saving_percent(self) -> float:
        return 100.0 * self.saving / self.all_external if self.all_external else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``)."""
        return {
            "generated_at": self.generated_at.isoformat(),
            "scanned": self.scanned,
            "kinds": [{**vars(kind), "difference": kind.difference} for kind in self.kinds],
            "stores": {
                name: {
                    "provider": cost.provider,
                    "bytes": cost.bytes,
                    "storage_per_month": round(cost.storage, 4),
                    "writes_per_month": round(cost.writes, 4),
                    "links_30_days": cost.links,
                    "link_bytes_30_days": cost.link_bytes,
                    "reads_per_month": round(cost.reads, 4),
                    "egress_per_month": round(cost.egress, 4),
                    "total_per_month": round(cost.total, 4),
                    "prices": vars(cost.prices),
                    "price_origins": cost.price_origins,
                }
                for name, cost in self.stores.items()
            },
            "comparison": {
                "all_on_external_per_month": round(self.all_external, 4),
                "dual_per_month": round(self.dual, 4),
                "saving_per_month": round(self.saving, 4),
                "saving_percent": round(self.saving_percent, 1),
            },
            "notes": self.notes,
        }


def upload_requests(size: int) -> int:
    """Class A requests of one upload: a PUT, or a multipart upload's parts plus its
    create and complete."""
    return 1 if size < PART_SIZE else math.ceil(size / PART_SIZE) + 2


def kind_usage(kind: ArtifactKind, since: dt.datetime, scan: bool) -> KindUsage:
    """One kind's figures from the catalog (rows created since ``since`` as its growth),
    and with ``scan`` from its bucket's listing (the usage-scan job runs one per batch)."""
    store, bucket = dual_storage.locate(kind)
    manager: Any = ARTIFACT_MODELS[kind]._default_manager
    totals = manager.aggregate(objects=Count("pk"), bytes=Sum("size"))
    recent = manager.filter(created_at__gte=since)
    sizes = list(recent.values_list("size", flat=True))
    scanned_objects = scanned_bytes = None
    if scan:
        scanned_objects = scanned_bytes = 0
        for info in store.list(bucket):
            scanned_objects += 1
            scanned_bytes += info.size
    return KindUsage(
        kind=kind,
        store=REGISTRY[kind].store,
        bucket=bucket,
        objects=totals["objects"] or 0,
        bytes=totals["bytes"] or 0,
        added_objects=len(sizes),
        added_bytes=sum(sizes),
        writes=sum(upload_requests(size) for size in sizes),
        scanned_objects=scanned_objects,
        scanned_bytes=scanned_bytes,
    )


def _links(store: StoreName, since: dt.datetime) -> tuple[int, int]:
    """Links to ``store`` handed out since ``since``, and the bytes of their objects
    (matched to the dataset rows by key), from the link audit."""
    sizes = Dataset.objects.filter(file=OuterRef("key")).values("size")[:1]
    links = IssuedLink.objects.filter(store=store, issued_at__gte=since)
    totals = links.annotate(size=Subquery(sizes)).aggregate(links=Count("pk"), bytes=Sum("size"))
    return totals["links"] or 0, totals["bytes"] or 0


def _store_cost(store: StoreName, kinds: list[KindUsage], since: dt.datetime) -> StoreCost:
    config = dual_storage.config.store(store)
    prices = config.prices
    held = sum(k.bytes for k in kinds if k.store == store)
    writes = sum(k.writes for k in kinds if k.store == store)
    links, link_bytes = _links(store, since)
    return StoreCost(
        store=store,
        provider=config.provider.name,
        bytes=held,
        storage=held / GB * prices.storage_gb_month,
        writes=writes / 1e6 * prices.class_a_per_million,
        prices=prices,
        price_origins=dict(config.price_origins),
        links=links,
        link_bytes=link_bytes,
        reads=links / 1e6 * prices.class_b_per_million,
        egress=link_bytes / GB * prices.egress_gb,
    )


def usage_report(*, scan: bool = False, now: dt.datetime | None = None) -> UsageReport:
    """Usage and monthly cost of both stores (``scan``: also list every bucket)."""
    now = now or timezone.now()
    since = now - dt.timedelta(days=GROWTH_DAYS)
    kinds = [kind_usage(kind, since, scan) for kind in KINDS]
    stores: dict[StoreName, StoreCost] = {
        name: _store_cost(name, kinds, since) for name in ("internal", "external")
    }
    external = dual_storage.config.external.prices
    total_bytes = sum(k.bytes for k in kinds)
    total_writes = sum(k.writes for k in kinds)
    # The links' reads and egress are the same in both layouts: datasets are external.
    traffic = stores["external"].reads + stores["external"].egress
    all_external = (
        total_bytes / GB * external.storage_gb_month
        + total_writes / 1e6 * external.class_a_per_million
        + traffic
    )
    notes = [
        "Storage is priced per GB-month (GB = 2**30 bytes); Class A requests are estimated "
        f"from the uploads of the last {GROWTH_DAYS} days.",
        f"Reads (Class B) and egress are estimated from the link audit: each link handed out "
        f"in the last {GROWTH_DAYS} days counted as one download of its object"
        + ("." if dual_storage.config.link_audit else " (LINK_AUDIT is off: none counted)."),
    ]
    return UsageReport(
        generated_at=now,
        kinds=kinds,
        stores=stores,
        all_external=all_external,
        dual=sum(cost.total for cost in stores.values()),
        scanned=scan,
        notes=notes,
    )


def growth_series(
    days: int = GROWTH_DAYS, *, now: dt.datetime | None = None
) -> dict[ArtifactKind, list[tuple[dt.date, int]]]:
    """Bytes held by each kind at the end of each of the last ``days`` days, from the
    catalog (rows still present, by the day they were created)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min))
    series: dict[ArtifactKind, list[tuple[dt.date, int]]] = {}
    for kind in KINDS:
        manager: Any = ARTIFACT_MODELS[kind]._default_manager
        before = manager.filter(created_at__lt=start).aggregate(total=Sum("size"))["total"] or 0
        per_day = {
            entry["day"]: entry["total"] or 0
            for entry in manager.filter(created_at__gte=start)
            .annotate(day=TruncDate("created_at"))
            .values("day")
            .annotate(total=Sum("size"))
        }
        held, points = before, []
        for offset in range(days):
            day = first + dt.timedelta(days=offset)
            held += per_day.get(day, 0)
            points.append((day, held))
        series[kind] = points
    return series

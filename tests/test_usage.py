"""``usage.py`` and ``usage_chart.py`` on the catalog alone (no store is asked without
``scan``): the seed's cost comparison from rows, growth, prices and their origins, the
Class A estimate, and the server-drawn SVG."""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.models import ARTIFACT_MODELS, Artifact, IssuedLink
from dual_storage_app.store.transfer import PART_SIZE
from dual_storage_app.usage import GB, growth_series, upload_requests, usage_report
from dual_storage_app.usage_chart import bytes_chart
from tests.helpers import MOTO_SETTINGS

pytestmark = pytest.mark.django_db

SEED_PRICES = {
    **MOTO_SETTINGS,
    "INTERNAL_STORAGE_PROVIDER": "minio",  # in the backend's cluster: $0
    "EXTERNAL_STORAGE_PROVIDER": "r2",
}


def _row(kind: str, key: str, size: int, days_ago: float = 40) -> Artifact:
    model: Any = ARTIFACT_MODELS[kind]  # type: ignore[index]
    extra = {"job_id": "7"} if kind == "checkpoints" else {}
    extra |= {"framework": key} if kind == "schemas" else {}
    row = model(name=key, file=key, size=size, sha256="0" * 64, bucket="b", **extra)
    row.save()
    created = timezone.now() - dt.timedelta(days=days_ago)
    model.objects.filter(pk=row.pk).update(created_at=created)
    return row  # type: ignore[no-any-return]


def test_the_seeds_comparison_from_the_catalog(settings: SettingsWrapper) -> None:
    # The seed: datasets 100 GB, weights 10 GB, checkpoints 50 GB, schemas 1 MB on R2 at
    # $0.015: $2.40 a month all on R2, $1.50 with the dual layout (MinIO costs $0).
    settings.DUAL_STORAGE = SEED_PRICES
    _row("datasets", "datasets/a.zip", 100 * GB)
    _row("weights", "w.pth", 10 * GB)
    _row("checkpoints", "jobs/7/c.pth", 50 * GB)
    _row("schemas", "fw", 2**20)
    report = usage_report()
    assert round(report.all_external, 2) == 2.40
    assert round(report.dual, 2) == 1.50
    assert round(report.saving, 2) == 0.90 and int(report.saving_percent) == 37  # 37.5
    assert report.stores["internal"].storage == 0 and report.stores["internal"].provider == "minio"
    external = report.stores["external"]
    assert external.prices.storage_gb_month == 0.015
    assert external.price_origins["storage_gb_month"] == "the r2 profile's list price"
    by_kind = {k.kind: k for k in report.kinds}
    assert (by_kind["checkpoints"].objects, by_kind["checkpoints"].bytes) == (1, 50 * GB)
    assert by_kind["datasets"].added_bytes == 0  # created 40 days ago
    assert report.as_dict()["comparison"]["saving_percent"] == 37.5


def test_prices_from_settings_win_and_are_named(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {
        **SEED_PRICES,
        "INTERNAL_STORAGE_PRICE_GB_MONTH": "0.01",
        "EXTERNAL_STORAGE_PRICE_CLASS_A": "5",
    }
    _row("weights", "w.pth", 100 * GB)
    _row("datasets", "recent.zip", 3 * PART_SIZE, days_ago=1)  # one multipart upload: 5 writes
    report = usage_report()
    internal, external = report.stores["internal"], report.stores["external"]
    assert round(internal.storage, 4) == 1.0
    assert "INTERNAL_STORAGE_PRICE_GB_MONTH" in internal.price_origins["storage_gb_month"]
    assert external.prices.class_a_per_million == 5.0
    assert external.price_origins["class_a_per_million"].startswith("settings.DUAL_STORAGE")
    assert external.writes == pytest.approx(5 / 1e6 * 5.0)
    datasets = next(k for k in report.kinds if k.kind == "datasets")
    assert (datasets.added_objects, datasets.added_bytes, datasets.writes) == (1, 3 * PART_SIZE, 5)


def test_upload_requests_count_a_put_or_the_parts() -> None:
    assert upload_requests(0) == upload_requests(PART_SIZE - 1) == 1
    assert upload_requests(PART_SIZE) == 3  # one part, create, complete
    assert upload_requests(10 * PART_SIZE + 1) == 13


def test_growth_series_is_bytes_held_at_the_end_of_each_day(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = SEED_PRICES
    _row("weights", "old.pth", 100, days_ago=60)
    _row("weights", "mid.pth", 20, days_ago=10)
    _row("weights", "new.pth", 3, days_ago=0)
    series = growth_series(30)
    weights = series["weights"]
    assert len(weights) == 30 and weights[-1][0] == timezone.localdate()
    assert weights[0][1] == 100 and weights[-1][1] == 123
    assert [b for _, b in weights] == sorted(b for _, b in weights)  # never shrinks here
    assert {b for _, b in series["datasets"]} == {0}


def test_the_chart_is_a_self_contained_svg_with_escaped_labels() -> None:
    day = dt.date(2026, 12, 1)
    points = [(day + dt.timedelta(days=i), i * GB) for i in range(30)]
    svg = str(bytes_chart({"weights": points, "<script>": [(day, 0)] * 30}))
    root = ET.fromstring(svg)  # noqa: S314 - our own output, well-formed XML
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "29.0" in svg and "GB" in svg  # the last point's label
    assert "2026-12-01" in svg and "2026-12-30" in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_reads_and_egress_come_from_the_link_audit(settings: SettingsWrapper) -> None:
    # AWS S3 charges egress: ten links to a 2 GB dataset count as ten downloads of it.
    settings.DUAL_STORAGE = {**SEED_PRICES, "EXTERNAL_STORAGE_PROVIDER": "aws"}
    dataset = _row("datasets", "datasets/big.zip", 2 * GB)
    now = timezone.now()
    for days_ago in [*range(10), 45]:  # the one 45 days ago is outside the window
        issued = now - dt.timedelta(days=days_ago)
        IssuedLink.objects.create(
            issued_at=issued,
            expires_at=issued + dt.timedelta(hours=1),
            via="client",
            actor="process test",
            store="external",
            bucket="b",
            key=dataset.key,
        )
    external = usage_report().stores["external"]
    assert (external.links, external.link_bytes) == (10, 20 * GB)
    assert external.egress == pytest.approx(20 * 0.09)
    assert external.reads == pytest.approx(10 / 1e6 * 0.40)
    assert external.total == pytest.approx(external.storage + external.reads + external.egress)

"""``dualstorage_usage`` on the real servers: the catalog's figures, ``--scan`` listing the
buckets and showing objects without rows, the prices it used, JSON and text alike."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset, ModelWeight
from tests.helpers import SCREENSHOTS, log_in_to_admin, run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


def test_usage_reports_the_catalog_and_with_scan_the_stores(
    dual_storage_buckets: DualStorageClient, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = {**settings.DUAL_STORAGE, "EXTERNAL_STORAGE_PRICE_GB_MONTH": "0.015"}
    for name, size in (("a.pth", 3000), ("b.pth", 5000)):
        weight = ModelWeight(name=name)
        weight.file.save(name, ContentFile(b"w" * size))
    dataset = Dataset(name="d")
    dataset.file.save("d.zip", ContentFile(b"d" * 1000))
    # An object without a row: written by a process without the catalog.
    worker = DualStorageClient(overrides={**settings.DUAL_STORAGE, "RECORD_CATALOG": "false"})
    worker.upload_dataset(file_obj=io.BytesIO(b"x" * 700), dataset_key="loose.zip")

    report = run_json("dualstorage_usage")
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert (kinds["weights"]["objects"], kinds["weights"]["bytes"]) == (2, 8000)
    assert kinds["weights"]["added_bytes"] == 8000 and kinds["weights"]["writes"] == 2
    assert kinds["datasets"]["bytes"] == 1000 and kinds["datasets"]["scanned_objects"] is None
    external = report["stores"]["external"]
    assert external["prices"]["storage_gb_month"] == 0.015
    assert "EXTERNAL_STORAGE_PRICE_GB_MONTH" in external["price_origins"]["storage_gb_month"]
    assert report["stores"]["internal"]["provider"] == "minio"
    assert report["comparison"]["all_on_external_per_month"] == round(9000 / 2**30 * 0.015, 4)

    scanned = run_json("dualstorage_usage", "--scan")
    kinds = {k["kind"]: k for k in scanned["kinds"]}
    assert (kinds["datasets"]["scanned_objects"], kinds["datasets"]["scanned_bytes"]) == (2, 1700)
    assert kinds["datasets"]["difference"] == 1 and kinds["weights"]["difference"] == 0

    text = run("dualstorage_usage", "--scan")
    assert "weights" in text and "7.8 KB" in text and "+1 obj" in text
    assert "external (minio):" in text and "settings.DUAL_STORAGE" in text
    assert "All on the external store:" in text and "saving" in text


def test_the_admin_usage_page_shows_the_table_costs_and_chart(
    dual_storage_buckets: DualStorageClient,
    admin_client: Client,
    django_user_model: Any,
) -> None:
    weight = ModelWeight(name="w")
    weight.file.save("w.pth", ContentFile(b"w" * 4096))
    page = reverse("admin:dual_storage_app_storageusage_changelist")
    response = admin_client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and "<polyline" in html and "<script" not in html.split("<svg")[1]
    assert 'id="usage-kinds"' in html
    report = response.context["report"]
    assert {k.kind: k.objects for k in report.kinds}["weights"] == 1
    assert "All on the external store" in html and "Prices used" in html
    scanned = admin_client.get(page, {"scan": "1"})
    assert scanned.context["report"].scanned and "Difference" in scanned.content.decode()
    # Users without the view permission get no page.
    user = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    admin_client.force_login(user)
    assert admin_client.get(page).status_code == 403


@pytest.mark.browser
def test_the_usage_page_in_a_real_browser(
    browser: Any,
    live_server: Any,
    dual_storage_buckets: DualStorageClient,
    admin_user: Any,
) -> None:
    for days_ago, size in ((20, 300_000), (8, 900_000), (0, 1_500_000)):
        dataset = Dataset(name=f"d{days_ago}")
        dataset.file.save(f"d{days_ago}.zip", ContentFile(b"d" * size))
        created = timezone.now() - dt.timedelta(days=days_ago)
        Dataset.objects.filter(pk=dataset.pk).update(created_at=created)
    weight = ModelWeight(name="w")
    weight.file.save("w.pth", ContentFile(b"w" * 700_000))
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.click("text=Usage and cost")
    page.wait_for_selector("svg.dual-storage-usage-chart")
    assert page.locator("svg.dual-storage-usage-chart polyline").count() == 4
    legend = page.locator("svg.dual-storage-usage-chart text").all_text_contents()
    assert any(label.startswith("datasets (2.6") for label in legend), legend
    assert "All on the external store" in page.inner_text("#usage-comparison")
    page.screenshot(path=str(SCREENSHOTS / "usage-01-page.png"), full_page=True)
    # The link audit's list: a link handed out through the view shows who and from where.
    first = Dataset.objects.order_by("pk").first()
    assert first is not None
    link = live_server.url + reverse("dual_storage_app:dataset-link", args=[first.pk])
    assert context.request.get(link, max_redirects=0).status == 302  # the browser's session
    page.goto(live_server.url + reverse("admin:index"))
    page.click("text=Issued links")
    page.click("text=link view")  # the "by path" filter
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "admin" in rows.first.inner_text() and "127.0.0.1" in rows.first.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "usage-02-issued-links.png"), full_page=True)
    context.close()

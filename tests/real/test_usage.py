"""``dualstorage_usage`` on the real servers: the catalog's figures, ``--scan`` listing the
buckets and showing objects without rows, the prices it used, JSON and text alike."""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset, ModelWeight
from tests.helpers import run, run_json

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

"""Storage jobs on the real servers give the answers of the commands they are built from:
a verify job finds what ``dualstorage_verify`` finds, an adopt job adopts what
``dualstorage_adopt`` would, a usage scan lists what ``usage_report(scan=True)`` lists."""

from __future__ import annotations

import io
import json
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.jobs.runner import start_job
from dual_storage_app.models import Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.usage import usage_report
from tests.helpers import run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


def test_a_verify_job_finds_what_dualstorage_verify_finds(
    dual_storage_buckets: DualStorageClient,
) -> None:
    rows = [ModelWeight(name=f"w{i}") for i in range(4)] + [Dataset(name="d")]
    for i, row in enumerate(rows):
        row.file.save(f"f{i}.bin", ContentFile(b"bytes %d" % i))
    weights, weights_bucket = dual_storage_buckets.locate("weights")
    weights.delete(weights_bucket, rows[1].key)  # the store only: the row stays
    store, bucket = dual_storage_buckets.locate("datasets")
    store.client.put_object(Bucket=bucket, Key=rows[4].key, Body=b"tampered")

    out = StringIO()
    with pytest.raises(CommandError):
        call_command("dualstorage_verify", "--json", stdout=out)
    command = json.loads(out.getvalue())

    job = start_job("verify", {"batch_size": 2}, now=True)
    assert job.report is not None
    assert job.report["checked"] == command["checked"] == 5
    assert [(p["kind"], p["id"], p["key"], p["problem"]) for p in job.report["problems"]] == [
        (p["kind"], p["id"], p["key"], p["problem"]) for p in command["problems"]
    ]
    assert job.report["counts"] == {
        "intact": 3,
        "changed": 1,
        "missing": 1,
        "unreadable": 0,
        "verifying": 0,
    }


def test_an_adopt_job_adopts_what_dualstorage_adopt_would(
    dual_storage_buckets: DualStorageClient, settings: SettingsWrapper
) -> None:
    worker = DualStorageClient(overrides={**settings.DUAL_STORAGE, "RECORD_CATALOG": "false"})
    objects = {
        ("weights", "resnet50.pth"): b"weights",
        ("checkpoints", "jobs/7/checkpoint_epoch_3.pth"): b"checkpoint",
        ("datasets", "datasets/a.zip"): b"zip",
        ("schemas", "ultralytics.json"): b'{"type": "object"}',
    }
    for (kind, key), data in objects.items():
        store, bucket = worker.locate(kind)  # type: ignore[arg-type]
        store.upload(bucket, key, io.BytesIO(data))
    store, bucket = worker.locate("weights")
    store.client.put_object(Bucket=bucket, Key="folder/", Body=b"")

    planned = run_json("dualstorage_adopt", "--dry-run")
    job = start_job("adopt", {"batch_size": 1}, now=True)
    report = job.report
    assert report is not None
    assert sorted((e["kind"], e["key"]) for e in report["adopted"]) == sorted(
        (e["kind"], e["key"]) for e in planned["adopted"]
    )
    assert report["skipped"] == planned["skipped"]
    assert report["bytes"] == planned["bytes"]
    checkpoint = TrainingCheckpoint.objects.get()
    assert (checkpoint.job_id, checkpoint.epoch) == ("7", 3)
    assert run_json("dualstorage_adopt")["already_recorded"] == 4  # nothing left to adopt


def test_a_usage_scan_job_lists_what_the_usage_report_lists(
    dual_storage_buckets: DualStorageClient,
) -> None:
    dual_storage_buckets.upload_dataset(file_obj=io.BytesIO(b"12345"), dataset_key="d/a.zip")
    ModelWeight(name="w").file.save("w.bin", ContentFile(b"123"))
    store, bucket = dual_storage_buckets.locate("weights")
    store.client.put_object(Bucket=bucket, Key="no-row.bin", Body=b"1")

    job = start_job("usage-scan", now=True)
    assert job.report is not None
    expected = usage_report(scan=True).as_dict()["kinds"]
    assert [
        (k["kind"], k["objects"], k["scanned_objects"], k["scanned_bytes"], k["difference"])
        for k in job.report["kinds"]
    ] == [
        (k["kind"], k["objects"], k["scanned_objects"], k["scanned_bytes"], k["difference"])
        for k in expected
    ]
    weights = job.report["kinds"][0]
    assert (weights["objects"], weights["scanned_objects"], weights["difference"]) == (1, 2, 1)

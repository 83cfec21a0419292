"""One catalog (issue 12, part 1): every write through the client records or updates the
artifact row of its bucket and key, on the real servers, with the default settings (the
shipped plugin's buckets; ``RECORD_CATALOG`` unset); off with ``RECORD_CATALOG=false``;
nothing recorded by a process without Django; a failed record keeps the object.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import CatalogError
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.testing.pair import S3Servers
from tests.helpers import REPO_ROOT, run_json, sha256, sha256_file

pytestmark = pytest.mark.real_s3


@pytest.mark.django_db(transaction=True)
def test_client_writes_record_their_rows(
    dual_storage_buckets: DualStorageClient, tmp_path: Path
) -> None:
    client = dual_storage_buckets
    weight = tmp_path / "resnet50.pth"
    weight.write_bytes(b"weights v1" * 1000)
    result = client.upload_weight(file_path=weight, weight_key="resnet50.pth")
    row = ModelWeight.objects.get()
    assert (row.key, row.name, row.bucket) == ("resnet50.pth", "resnet50.pth", result.bucket)
    assert (row.size, row.sha256, row.etag) == (10_000, sha256_file(weight), result.etag)
    assert row.content_type == result.content_type and row.content_type

    # A second write of the key updates its row: one row, the new bytes' figures.
    weight.write_bytes(b"weights v2!" * 1000)
    client.upload_weight(file_path=weight, weight_key="resnet50.pth")
    assert ModelWeight.objects.get().sha256 == sha256_file(weight)

    checkpoint = tmp_path / "c.pth"
    checkpoint.write_bytes(b"checkpoint")
    client.upload_checkpoint(
        file_path=checkpoint, checkpoint_key="jobs/123/checkpoint_epoch_10.pth"
    )
    saved = TrainingCheckpoint.objects.get()
    assert (saved.job_id, saved.epoch, saved.name) == ("123", 10, "checkpoint_epoch_10.pth")
    assert saved.sha256 == sha256(b"checkpoint")

    client.upload_dataset(file_obj=io.BytesIO(b"zip bytes"), dataset_key="datasets/abc.zip")
    dataset = Dataset.objects.get()
    assert (dataset.key, dataset.size, dataset.sha256) == (
        "datasets/abc.zip",
        9,
        sha256(b"zip bytes"),
    )

    # verify --orphans finds every object the client wrote in the catalog.
    report = run_json("dualstorage_verify", "--orphans")
    assert report["problems"] == [] and report["checked"] == 3

    client.delete("weights", "resnet50.pth")
    assert not ModelWeight.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_upload_schema_is_the_admins_version(dual_storage_buckets: DualStorageClient) -> None:
    # The admin and get_schema() show one version: upload_schema goes through the row.
    client = dual_storage_buckets
    client.upload_schema("ultralytics", b'{"v": 1}')
    row = ConfigSchema.objects.get(framework="ultralytics")
    assert row.sha256 == sha256(b'{"v": 1}')
    assert client.get_schema("ultralytics") == b'{"v": 1}'
    result = client.upload_schema("ultralytics", '{"v": 2}')
    assert result.key == "ultralytics.json" and result.sha256 == sha256(b'{"v": 2}')
    row = ConfigSchema.objects.get(framework="ultralytics")
    assert row.sha256 == sha256(b'{"v": 2}')
    assert client.get_schema("ultralytics") == b'{"v": 2}'
    # One version object (the replaced one went after commit) and the publication.
    keys = sorted(info.key for info in client.list_objects("schemas"))
    assert keys == sorted([row.key, "ultralytics.json"])


@pytest.mark.django_db(transaction=True)
def test_record_catalog_false_records_nothing(
    dual_storage_buckets: DualStorageClient, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.DUAL_STORAGE = {**settings.DUAL_STORAGE, "RECORD_CATALOG": "false"}
    weight = tmp_path / "w.pth"
    weight.write_bytes(b"w")
    dual_storage_buckets.upload_weight(file_path=weight, weight_key="w.pth")
    dual_storage_buckets.upload_schema("fw", b"{}")
    assert dual_storage_buckets.catalog() is None
    assert not ModelWeight.objects.exists() and not ConfigSchema.objects.exists()
    assert dual_storage_buckets.get_schema("fw") == b"{}"


def test_a_failed_record_keeps_the_object_and_says_so(
    dual_storage_buckets: DualStorageClient, tmp_path: Path
) -> None:
    # No database access in this test: the record fails as a real database error would.
    weight = tmp_path / "w.pth"
    weight.write_bytes(b"kept")
    with pytest.raises(CatalogError) as caught:
        dual_storage_buckets.upload_weight(file_path=weight, weight_key="kept.pth")
    message = str(caught.value)
    assert "'kept.pth'" in message and "could not record its row" in message
    assert "dualstorage_adopt" in message and caught.value.key == "kept.pth"
    assert dual_storage_buckets.head("weights", "kept.pth").size == 4


def test_a_process_without_django_records_nothing(
    dual_storage_servers: S3Servers, tmp_path: Path
) -> None:
    # A training worker with only the seed's environment: the upload works, no catalog.
    weight = tmp_path / "w.pth"
    weight.write_bytes(b"worker")
    internal, external = dual_storage_servers
    environment = {
        key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"
    }
    environment.update(
        INTERNAL_STORAGE_ENDPOINT=internal.endpoint_url,
        INTERNAL_STORAGE_ACCESS_KEY=internal.access_key,
        INTERNAL_STORAGE_SECRET_KEY=internal.secret_key,
        EXTERNAL_STORAGE_ENDPOINT=external.endpoint_url,
        EXTERNAL_STORAGE_ACCESS_KEY=external.access_key,
        EXTERNAL_STORAGE_SECRET_KEY=external.secret_key,
        INTERNAL_BUCKET_WEIGHTS="worker-weights",
    )
    script = (
        "import sys\n"
        "from dual_storage_app.client import dual_storage\n"
        "dual_storage.create_buckets()\n"
        "result = dual_storage.upload_weight(file_path=sys.argv[1], weight_key='w.pth')\n"
        "print(result.size, dual_storage.catalog())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(weight)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["6", "None"]
    internal.delete_bucket("worker-weights")


class Rollback(Exception):
    """Raised to roll back a test's transaction."""


@pytest.mark.django_db(transaction=True)
def test_a_rollback_keeps_rows_and_objects_in_step(
    dual_storage_buckets: DualStorageClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = dual_storage_buckets
    weight = tmp_path / "w.pth"
    weight.write_bytes(b"first")
    client.upload_weight(file_path=weight, weight_key="kept.pth")
    client.upload_schema("fw", b'{"v": 1}')
    weight.write_bytes(b"second!")
    with pytest.raises(Rollback), transaction.atomic():
        client.upload_weight(file_path=weight, weight_key="new.pth")  # a new row
        client.upload_weight(file_path=weight, weight_key="kept.pth")  # an updated row
        client.upload_schema("fw", b'{"v": 2}')
        assert client.get_schema("fw") == b'{"v": 2}'  # seen at once, inside the transaction
        raise Rollback
    # The new row went, and its object with it: no object without a row.
    assert not client.exists("weights", "new.pth")
    assert list(ModelWeight.objects.values_list("file", flat=True)) == ["kept.pth"]
    # The store write could not be taken back: the row still describes the first bytes,
    # the error log names the key, and verify reports the row as changed.
    assert ModelWeight.objects.get().sha256 == sha256(b"first")
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(
        "kept.pth" in message and "Accept the stored content" in message for message in logged
    )
    problems = _verify_problems()
    assert [(p["key"], p["problem"].split(" (")[0]) for p in problems] == [
        ("kept.pth", "changed in the store")
    ]
    # The schema row is back at version 1, and so is what get_schema() serves.
    assert ConfigSchema.objects.get().sha256 == sha256(b'{"v": 1}')
    assert client.get_schema("fw") == b'{"v": 1}'


def _verify_problems() -> list[dict[str, str]]:
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("dualstorage_verify", "--kind", "weights", "--json", stdout=out)
    problems: list[dict[str, str]] = json.loads(out.getvalue())["problems"]
    return problems

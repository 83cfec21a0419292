"""Promotion and copies between kinds on the real servers: a checkpoint becomes a model
weight by a verified server-side copy (command and admin action); a dataset is copied to
the internal store by a streamed one; a corrupted source, a taken key and a source
without a row are refused with nothing left behind."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError
from django.test import Client

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.moving.copying import SOURCE_METADATA
from dual_storage_app.moving.journal import MigrationEntry
from tests.helpers import SCREENSHOTS, changelist, levels, log_in_to_admin, run_json, sha256

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]

CHECKPOINT = b"epoch ten" * 5000
KEY = "jobs/42/checkpoint_epoch_10.pth"


@pytest.fixture
def checkpoint(dual_storage_buckets: DualStorageClient, tmp_path: Path) -> TrainingCheckpoint:
    (tmp_path / "ckpt.pth").write_bytes(CHECKPOINT)
    dual_storage_buckets.upload_checkpoint(file_path=tmp_path / "ckpt.pth", checkpoint_key=KEY)
    return TrainingCheckpoint.objects.get(file=KEY)


def test_promote_command_copies_server_side_and_records_the_weight(
    checkpoint: TrainingCheckpoint, dual_storage_buckets: DualStorageClient
) -> None:
    result = run_json("dualstorage_promote", KEY, "best/yolo-42.pth")
    weight = ModelWeight.objects.get(pk=result["id"])
    assert weight.key == "best/yolo-42.pth"
    assert weight.sha256 == sha256(CHECKPOINT) == result["sha256"]
    store, bucket = dual_storage_buckets.locate("weights")
    head = store.client.head_object(Bucket=bucket, Key="best/yolo-42.pth")
    assert SOURCE_METADATA in head["Metadata"]  # written by CopyObject, not uploaded
    assert store.get_bytes(bucket, "best/yolo-42.pth") == CHECKPOINT
    with pytest.raises(CommandError, match="already has key"):
        run_json("dualstorage_promote", KEY, "best/yolo-42.pth")


def test_a_corrupted_checkpoint_is_not_promoted(
    checkpoint: TrainingCheckpoint, dual_storage_buckets: DualStorageClient
) -> None:
    store, bucket = dual_storage_buckets.locate("checkpoints")
    store.client.put_object(Bucket=bucket, Key=KEY, Body=b"overwritten out of band")
    with pytest.raises(CommandError, match="SHA-256"):
        run_json("dualstorage_promote", KEY)
    weights, weights_bucket = dual_storage_buckets.locate("weights")
    assert not weights.exists(weights_bucket, KEY)  # the bad copy was deleted
    assert not ModelWeight.objects.exists()


def test_copy_command_streams_a_dataset_to_the_internal_store(
    dual_storage_buckets: DualStorageClient,
) -> None:
    dual_storage_buckets.upload_dataset(file_obj=io.BytesIO(b"d" * 4096), dataset_key="d/x.bin")
    assert Dataset.objects.filter(file="d/x.bin").exists()
    result = run_json("dualstorage_copy", "datasets", "d/x.bin", "weights", "from-data.bin")
    assert result["method"] == "streamed"  # two servers
    assert ModelWeight.objects.get(file="from-data.bin").sha256 == sha256(b"d" * 4096)
    with pytest.raises(CommandError, match="No weights row"):
        run_json("dualstorage_copy", "weights", "missing.bin", "datasets", "x.bin")


def test_admin_promote_action(
    checkpoint: TrainingCheckpoint, admin_client: Client, dual_storage_buckets: DualStorageClient
) -> None:
    data = {"action": "promote", "_selected_action": [checkpoint.pk]}
    response = admin_client.post(changelist(TrainingCheckpoint), data, follow=True)
    assert [text for _, text in levels(response)] == [
        f"Promoted {KEY} to model weight #{ModelWeight.objects.get(file=KEY).pk} "
        "(43.9\xa0KB, SHA-256 verified)."
    ]
    again = admin_client.post(changelist(TrainingCheckpoint), data, follow=True)
    [(level, text)] = levels(again)
    assert level == 40 and text.startswith(f"{KEY} was not promoted")


@pytest.mark.browser
def test_promote_and_the_migration_journal_in_a_real_browser(
    browser: Any,
    live_server: Any,
    checkpoint: TrainingCheckpoint,
    admin_user: Any,
    dual_storage_buckets: DualStorageClient,
) -> None:
    MigrationEntry.objects.create(
        migration="legacy",
        source_endpoint="http://127.0.0.1:1",
        source_bucket="legacy",
        source_key="weights/resnet50.pth",
        size=3000,
        kind="weights",
        target_bucket="model-weights",
        target_key="resnet50.pth",
        state="recorded",
        method="streamed",
    )
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)

    page.goto(f"{live_server.url}{changelist(TrainingCheckpoint)}")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "promote")
    with page.expect_navigation():
        page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    page.screenshot(path=str(SCREENSHOTS / "promote-01-done.png"), full_page=True)
    message = page.inner_text("ul.messagelist").replace("\xa0", " ")
    assert f"Promoted {KEY} to model weight" in message and "SHA-256 verified" in message
    assert ModelWeight.objects.get(file=KEY).sha256 == sha256(CHECKPOINT)

    page.goto(f"{live_server.url}{changelist(MigrationEntry)}")
    page.wait_for_selector("#result_list")
    page.screenshot(path=str(SCREENSHOTS / "migration-journal.png"), full_page=True)
    row = page.inner_text("#result_list tbody tr")
    assert "weights/resnet50.pth" in row and "resnet50.pth" in row and "recorded" in row
    assert page.locator(".object-tools a.addlink").count() == 0  # written by runs only
    context.close()

"""``dualstorage_migrate`` on the real servers: a legacy single bucket (on the external
server) moves into the dual layout (multipart copies and the full volume are in
``test_migrate_proof.py``). Datasets go server-side (same server), weights,
checkpoints and schemas are streamed to the internal server; every object lands with a
row and the source's SHA-256; a second --apply copies nothing; --delete-source removes a
source only after its row exists; a target holding other bytes is a conflict, never
overwritten."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.jobs.runner import start_job
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.moving.copying import SOURCE_METADATA
from dual_storage_app.moving.journal import MigrationEntry
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.helpers import run, run_command, run_json, sha256
from tests.http import fetch

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]

LEGACY: dict[str, bytes] = {
    "weights/resnet50.pth": b"w" * 3000,
    "models/yolo.safetensors": b"y" * 100,
    "checkpoints/jobs/7/checkpoint_epoch_3.pth": b"c" * 2000,
    "jobs/8/checkpoint_epoch_1.pth": b"d" * 10,
    "schemas/ultralytics.json": b'{"type": "object"}',
    "datasets/abc-123.zip": b"z" * 5000,
    "coco/annotations.json": b"{}",
    "big/train.tar": bytes(range(256)) * (MiB // 256),
}
EXPECTED = {
    "weights/resnet50.pth": ("weights", "resnet50.pth"),
    "models/yolo.safetensors": ("weights", "yolo.safetensors"),
    "checkpoints/jobs/7/checkpoint_epoch_3.pth": ("checkpoints", "jobs/7/checkpoint_epoch_3.pth"),
    "jobs/8/checkpoint_epoch_1.pth": ("checkpoints", "jobs/8/checkpoint_epoch_1.pth"),
    "schemas/ultralytics.json": ("schemas", "ultralytics.json"),
    "datasets/abc-123.zip": ("datasets", "datasets/abc-123.zip"),
    "coco/annotations.json": ("datasets", "coco/annotations.json"),
    "big/train.tar": ("datasets", "big/train.tar"),
}
MODELS: dict[str, Any] = {
    "weights": ModelWeight,
    "checkpoints": TrainingCheckpoint,
    "schemas": ConfigSchema,
    "datasets": Dataset,
}


@pytest.fixture
def legacy_bucket(
    s3_servers: dict[str, LocalS3Server],
    dual_storage_buckets: DualStorageClient,
    settings: SettingsWrapper,
) -> Iterator[str]:
    """A legacy bucket on the external server, filled, and named as the source."""
    server = s3_servers["external"]
    bucket = f"legacy-{uuid.uuid4().hex[:10]}"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    for key, data in LEGACY.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    settings.DUAL_STORAGE_MIGRATION = {
        "SOURCE_ENDPOINT": server.endpoint_url,
        "SOURCE_ACCESS_KEY": server.access_key,
        "SOURCE_SECRET_KEY": server.secret_key,
        "SOURCE_BUCKETS": [bucket],
    }
    try:
        yield bucket
    finally:
        server.delete_bucket(bucket)


def _stored(client: DualStorageClient, kind: str, key: str) -> bytes:
    store, bucket = client.locate(kind)  # type: ignore[arg-type]
    return store.get_bytes(bucket, key)


def test_new_rules_re_plan_what_was_not_copied(legacy_bucket: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"match": "big/**", "skip": true}, {"match": "**", "kind": "datasets"}]')
    first = run_json("dualstorage_migrate", "--apply", "--rules", str(rules), "--name", "r")
    assert first["states"]["skipped"] == 1 and first["states"]["recorded"] == 7
    second = run_json("dualstorage_migrate", "--apply", "--rules", "datasets", "--name", "r")
    assert second["journal"] == {"added": 0, "replanned": 1}  # only the skipped one
    assert second["states"]["recorded"] == 8


def test_plan_lists_what_goes_where_and_changes_nothing(legacy_bucket: str) -> None:
    plan = run_json("dualstorage_migrate")["plan"]
    objects = {kind: entry["objects"] for kind, entry in plan["kinds"].items()}
    assert objects == {"weights": 2, "checkpoints": 2, "schemas": 1, "datasets": 3}
    assert plan["kinds"]["datasets"]["bytes"] == 5000 + 2 + len(LEGACY["big/train.tar"])
    assert plan["cost"]["after_usd_month"] == 0.0  # both targets are priced $0 (minio)
    text = run("dualstorage_migrate")
    assert "weights            2 object(s)" in text and "-> internal store" in text
    assert "Storage per month: $0.00 before" in text and "moving costs $0.00 once" in text
    assert "Nothing was changed; run with --apply to migrate." in text
    assert MigrationEntry.objects.count() == 0
    assert ModelWeight.objects.count() == 0


def test_the_plan_prices_the_move_with_the_usage_cost_model(
    legacy_bucket: str, settings: SettingsWrapper
) -> None:
    """A legacy bucket on R2 (its profile's list prices): $0.015 per GB-month of storage
    before, and Class B reads to copy it out; the two targets cost $0 (minio)."""
    settings.DUAL_STORAGE_MIGRATION = {
        **settings.DUAL_STORAGE_MIGRATION,
        "SOURCE_PROVIDER": "r2",
        "SOURCE_REGION": "us-east-1",
    }
    cost = run_json("dualstorage_migrate")["plan"]["cost"]
    total = sum(len(data) for data in LEGACY.values())
    assert cost["before_usd_month"] == pytest.approx(total / 2**30 * 0.015)
    assert cost["saving_usd_month"] == pytest.approx(cost["before_usd_month"])
    assert cost["one_time_usd"] == pytest.approx(
        {
            "source_reads": 8 / 1e6 * 0.36,
            "source_egress": 0.0,  # R2's egress is free
            "target_writes": 0.0,
            "read_back": 0.0,
            "total": 8 / 1e6 * 0.36,
        }
    )
    assert "r2 profile" in cost["prices"]
    assert MigrationEntry.objects.count() == 0
    assert ModelWeight.objects.count() == 0


def test_apply_moves_every_object_once_with_its_row(
    legacy_bucket: str, dual_storage_buckets: DualStorageClient
) -> None:
    first = run_json("dualstorage_migrate", "--apply")
    outcomes = first["run"]["outcomes"]
    assert outcomes["server-side"] == 3  # the datasets: same server, same identity
    assert outcomes["streamed"] == 5  # everything bound for the internal server
    assert outcomes["recorded"] == 8
    assert first["states"]["recorded"] == 8
    for source_key, (kind, key) in EXPECTED.items():
        assert _stored(dual_storage_buckets, kind, key) == LEGACY[source_key]
        row = MODELS[kind].objects.get(file=key)
        assert row.sha256 == sha256(LEGACY[source_key]), key
        assert row.size == len(LEGACY[source_key])
    assert TrainingCheckpoint.objects.get(file="jobs/7/checkpoint_epoch_3.pth").job_id == "7"
    weights, weights_bucket = dual_storage_buckets.locate("weights")  # tagged in its one PUT
    assert weights.recorded_sha256(weights_bucket, "resnet50.pth") == sha256(
        LEGACY["weights/resnet50.pth"]
    )
    assert ConfigSchema.objects.get(file="ultralytics.json").framework == "ultralytics"

    second = run_json("dualstorage_migrate", "--apply")
    assert second["journal"] == {"added": 0, "replanned": 0}
    assert second["run"]["outcomes"] == {}
    assert second["run"]["bytes_copied"] == 0


def test_a_copy_found_from_a_killed_run_is_verified_not_copied(
    legacy_bucket: str, dual_storage_buckets: DualStorageClient
) -> None:
    """The journal says pending, but the copy exists with our source token (the run died
    after the copy): it is verified and recorded, not copied again."""
    run_json("dualstorage_migrate", "--apply")
    MigrationEntry.objects.update(state="pending", sha256="", target_etag="")
    ModelWeight.objects.all().delete()  # rows deleted with their objects...
    store, bucket = dual_storage_buckets.locate("datasets")
    assert store.client.head_object(Bucket=bucket, Key="datasets/abc-123.zip")["Metadata"][
        SOURCE_METADATA
    ]
    again = run_json("dualstorage_migrate", "--apply")
    assert again["run"]["outcomes"]["found"] == 6  # datasets and checkpoints, schemas
    assert again["run"]["outcomes"]["streamed"] == 2  # the weights' objects went with rows
    assert again["states"]["recorded"] == 8


def test_delete_source_only_after_the_row_exists(
    legacy_bucket: str, s3_servers: dict[str, LocalS3Server]
) -> None:
    result = run_json("dualstorage_migrate", "--apply", "--delete-source")
    assert result["states"]["source-deleted"] == 8
    client = s3_servers["external"].client()
    assert client.list_objects_v2(Bucket=legacy_bucket).get("KeyCount") == 0
    assert Dataset.objects.count() == 3 and ModelWeight.objects.count() == 2


def test_a_target_with_other_bytes_is_a_conflict_and_kept(
    legacy_bucket: str, dual_storage_buckets: DualStorageClient
) -> None:
    store, bucket = dual_storage_buckets.locate("weights")
    store.client.put_object(Bucket=bucket, Key="resnet50.pth", Body=b"other bytes")
    output = run_command("dualstorage_migrate", "--apply")
    assert "did not move" in output
    assert store.get_bytes(bucket, "resnet50.pth") == b"other bytes"
    entry = MigrationEntry.objects.get(source_key="weights/resnet50.pth")
    assert entry.state == "conflict" and "other bytes" in entry.error
    assert not ModelWeight.objects.filter(file="resnet50.pth").exists()
    with pytest.raises(CommandError):
        run_json("dualstorage_migrate", "--apply")
    store.delete(bucket, "resnet50.pth")  # the cause removed: the next run moves it
    fixed = run_json("dualstorage_migrate", "--apply")
    assert fixed["journal"]["replanned"] == 1
    assert fixed["states"]["recorded"] == 8
    assert store.get_bytes(bucket, "resnet50.pth") == LEGACY["weights/resnet50.pth"]


def test_a_migrate_job_moves_what_the_command_would(
    legacy_bucket: str, dual_storage_buckets: DualStorageClient
) -> None:
    job = start_job("migrate", {"batch_size": 3, "workers": 2}, now=True)
    assert job.status == "done", job.report
    assert job.batches_total == 3  # 8 journal rows, 3 per batch
    report: dict[str, Any] = job.report or {}
    assert report["states"]["recorded"] == 8
    assert report["outcomes"] == {"recorded": 8, "server-side": 3, "streamed": 5}
    for source_key, (kind, key) in EXPECTED.items():
        assert MODELS[kind].objects.get(file=key).sha256 == sha256(LEGACY[source_key])
    again = start_job("migrate", {}, now=True)
    assert again.batches_total == 0 and (again.report or {})["outcomes"] == {}


def test_a_provider_swap_copies_beside_the_running_configuration(
    s3_servers: dict[str, LocalS3Server],
    dual_storage_buckets: DualStorageClient,
    settings: SettingsWrapper,
    tmp_path: Path,
) -> None:
    """TARGET_* names the new provider while the application keeps the old one: links
    issued before the switch keep working, rows move with --finish-swap after it."""
    data = {f"datasets/{n}.zip": bytes([n]) * (1000 + n) for n in range(3)}
    for key, body in data.items():
        dual_storage_buckets.upload_dataset(file_obj=io.BytesIO(body), dataset_key=key)
    old_link = dual_storage_buckets.generate_dataset_presigned_url(dataset_key="datasets/1.zip")
    old = s3_servers["external"]
    _, old_bucket = dual_storage_buckets.locate("datasets")
    with LocalS3Server(
        data_dir=tmp_path / "new", s3_port=free_port_pair(), secret_key="new-provider-secret"
    ) as new:
        new.client().create_bucket(Bucket="new-datasets")
        settings.DUAL_STORAGE_MIGRATION = {
            "SOURCE_ENDPOINT": old.endpoint_url,
            "SOURCE_ACCESS_KEY": old.access_key,
            "SOURCE_SECRET_KEY": old.secret_key,
            "SOURCE_BUCKETS": [old_bucket],
            "TARGET_ENDPOINT": new.endpoint_url,
            "TARGET_ACCESS_KEY": new.access_key,
            "TARGET_SECRET_KEY": new.secret_key,
            "TARGET_BUCKET": "new-datasets",
        }
        swap = ("dualstorage_migrate", "--rules", "datasets", "--name", "swap")
        result = run_json(*swap, "--apply")
        assert result["run"]["outcomes"] == {"streamed": 3, "recorded": 3}
        assert set(Dataset.objects.values_list("bucket", flat=True)) == {old_bucket}
        for key, body in data.items():
            assert new.client().get_object(Bucket="new-datasets", Key=key)["Body"].read() == body
        assert fetch(old_link) == data["datasets/1.zip"]  # the application still reads the old

        settings.DUAL_STORAGE = {
            **settings.DUAL_STORAGE,
            "EXTERNAL_STORAGE_ENDPOINT": new.endpoint_url,
            "EXTERNAL_STORAGE_ACCESS_KEY": new.access_key,
            "EXTERNAL_STORAGE_SECRET_KEY": new.secret_key,
            "EXTERNAL_BUCKET_DATASETS": "new-datasets",
        }
        del settings.DUAL_STORAGE_MIGRATION["TARGET_ENDPOINT"]
        with pytest.raises(CommandError, match="needs all of"):
            run_json(*swap, "--apply")
        assert run_json(*swap, "--finish-swap")["rows_updated"] == 3
        assert set(Dataset.objects.values_list("bucket", flat=True)) == {"new-datasets"}
        new_link = dual_storage_buckets.generate_dataset_presigned_url(dataset_key="datasets/1.zip")
        assert new_link.startswith(new.endpoint_url)
        assert fetch(new_link) == fetch(old_link) == data["datasets/1.zip"]

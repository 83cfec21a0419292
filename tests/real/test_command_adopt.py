"""``dualstorage_adopt`` on the real servers: objects written without a row (a process
without Django, another tool) get one, measured by one read; a second run adopts nothing;
--dry-run changes nothing; folder markers are reported, not adopted."""

from __future__ import annotations

import io
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from tests.helpers import run, run_json, sha256

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]

OBJECTS: dict[tuple[ArtifactKind, str], bytes] = {
    ("weights", "resnet50.pth"): b"weights" * 300,
    ("checkpoints", "jobs/7/checkpoint_epoch_3.pth"): b"checkpoint",
    ("datasets", "datasets/a.zip"): b"zip",
    ("schemas", "ultralytics.json"): b'{"type": "object"}',
}


def _write_without_rows(settings: SettingsWrapper) -> DualStorageClient:
    """What a training worker without Django leaves behind: objects, no rows."""
    worker = DualStorageClient(overrides={**settings.DUAL_STORAGE, "RECORD_CATALOG": "false"})
    for (kind, key), data in OBJECTS.items():
        store, bucket = worker.locate(kind)
        store.upload(bucket, key, io.BytesIO(data))
    store, bucket = worker.locate("weights")
    store.client.put_object(Bucket=bucket, Key="folder/", Body=b"")  # a folder marker
    return worker


def _orphans() -> list[str]:
    """The keys ``dualstorage_verify --orphans`` reports (it exits non-zero for them)."""
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("dualstorage_verify", "--orphans", "--json", stdout=out)
    return sorted(p["key"] for p in json.loads(out.getvalue())["problems"])


def test_adopt_registers_objects_without_rows_once(
    dual_storage_buckets: DualStorageClient, settings: SettingsWrapper
) -> None:
    _write_without_rows(settings)
    assert _orphans() == [
        "datasets/a.zip",
        "folder/",
        "jobs/7/checkpoint_epoch_3.pth",
        "resnet50.pth",
    ]

    planned = run_json("dualstorage_adopt", "--dry-run")
    assert sorted((e["kind"], e["key"]) for e in planned["adopted"]) == sorted(OBJECTS)
    assert planned["bytes"] == sum(len(data) for data in OBJECTS.values())
    assert planned["skipped"] == [
        {"kind": "weights", "key": "folder/", "reason": "a folder marker"}
    ]
    assert not ModelWeight.objects.exists() and not ConfigSchema.objects.exists()

    # Stopped after one kind, then run again: it resumes with the rest.
    first = run_json("dualstorage_adopt", "--kind", "weights")
    assert [e["key"] for e in first["adopted"]] == ["resnet50.pth"]
    out = run("dualstorage_adopt")
    assert "Adopted 3 object(s)" in out and "1 already had a row; 1 skipped." in out

    weight = ModelWeight.objects.get()
    assert (weight.key, weight.sha256) == (
        "resnet50.pth",
        sha256(OBJECTS["weights", "resnet50.pth"]),
    )
    assert weight.size == 2100 and weight.etag
    checkpoint = TrainingCheckpoint.objects.get()
    assert (checkpoint.job_id, checkpoint.epoch) == ("7", 3)
    assert Dataset.objects.get().sha256 == sha256(b"zip")
    schema = ConfigSchema.objects.get()
    assert (schema.framework, schema.key) == ("ultralytics", "ultralytics.json")

    again = run_json("dualstorage_adopt")
    assert again["adopted"] == [] and again["already_recorded"] == 4
    assert _orphans() == ["folder/"]

"""``dualstorage_list`` on the real servers: rows and objects, errors as CommandError."""

from __future__ import annotations

import pytest
from django.core.management import CommandError
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import ModelWeight
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import MakeFile, real_settings, run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


def test_list_shows_rows_and_objects(real_storage: DualStorageClient, make_file: MakeFile) -> None:
    keys = []
    for epoch in range(3):
        path = str(make_file(f"e{epoch}.pth", 2048 + epoch))
        options = ["--job-id", "list-job", "--epoch", str(epoch)]
        keys.append(run_json("dualstorage_upload", "checkpoints", path, *options)["key"])
    out = run("dualstorage_list", "checkpoints")
    assert "3 checkpoints row(s)." in out and all(key in out for key in keys)
    assert "2.0 KB" in out and ModelWeight.objects.count() == 0

    data = run_json("dualstorage_list", "checkpoints", "--limit", "2")
    assert data["source"] == "database" and len(data["items"]) == 2
    assert [item["key"] for item in data["items"]] == keys[:0:-1]  # newest first
    assert run_json("dualstorage_list", "checkpoints", "--prefix", "jobs/other/")["items"] == []

    stored = run_json("dualstorage_list", "checkpoints", "--store", "--prefix", "jobs/list-job/")
    assert stored["bucket"] == "training-checkpoints"
    assert sorted(item["key"] for item in stored["items"]) == sorted(keys)
    assert {item["size"] for item in stored["items"]} == {2048, 2049, 2050}
    out = run("dualstorage_list", "checkpoints", "--store", "--prefix", "jobs/list-job/")
    assert "3 object(s) in internal/training-checkpoints." in out


def test_list_errors_are_command_errors(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers, INTERNAL_BUCKET_WEIGHTS="no-such-bucket")
    with pytest.raises(CommandError, match="bucket does not exist"):
        run("dualstorage_list", "weights", "--store")
    with pytest.raises(CommandError, match="not a positive number"):
        run("dualstorage_list", "weights", "--limit", "0")

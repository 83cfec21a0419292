"""``dualstorage_list`` on the real servers: rows and objects, how many there are in all
beyond --limit (counted across pages), errors as CommandError."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import CommandError
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset, ModelWeight
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import MakeFile, make, real_settings, record_api_calls, run, run_json

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


def test_a_limited_list_of_rows_says_first_n_of_m(real_storage: DualStorageClient) -> None:
    for index in range(3):
        make(Dataset, b"rows %d" % index)
    assert "first 2 of 3 datasets row(s)." in run("dualstorage_list", "datasets", "--limit", "2")
    assert "\n3 datasets row(s)." in run("dualstorage_list", "datasets", "--limit", "3")
    limited = run_json("dualstorage_list", "datasets", "--limit", "2")
    assert (len(limited["items"]), limited["total"], limited["truncated"]) == (2, 3, True)
    whole = run_json("dualstorage_list", "datasets", "--limit", "3")
    assert (len(whole["items"]), whole["total"], whole["truncated"]) == (3, 3, False)


def test_a_limited_list_of_a_bucket_counts_every_page(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """1,001 objects are two pages of ListObjectsV2: --limit 3 shows three and counts
    all, page by page (both pages asked for, none of the objects kept)."""
    store, bucket = real_storage.locate("datasets")
    keys = [f"{unique_key}/{index:04d}" for index in range(1001)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: store.client.put_object(Bucket=bucket, Key=key, Body=b""), keys))
    args = ["dualstorage_list", "datasets", "--store", "--prefix", f"{unique_key}/", "--limit", "3"]

    calls = record_api_calls(real_storage)
    out = run(*args)
    assert "first 3 of 1001 object(s) in external/training-datasets." in out
    assert calls.count("ListObjectsV2") == 2
    data = run_json(*args)
    assert [item["key"] for item in data["items"]] == keys[:3]
    assert (data["total"], data["truncated"]) == (1001, True)
    whole = run_json(*args[:-1], "1001")
    assert (len(whole["items"]), whole["total"], whole["truncated"]) == (1001, 1001, False)

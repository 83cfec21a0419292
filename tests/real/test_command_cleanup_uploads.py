"""``dualstorage_cleanup_uploads`` on the real servers: dry run, age limit, aborts, and
store failures as CommandErrors without secrets. Its formats, without a server:
``tests/test_command_cleanup_uploads.py``.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.testing.pair import EXTERNAL_SECRET, INTERNAL_SECRET
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import real_settings, run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


def start_upload(client: DualStorageClient, kind: str, key: str) -> str:
    """An incomplete multipart upload at ``key`` holding one part; its upload id."""
    store, bucket = client.locate(kind)  # type: ignore[arg-type]
    upload_id = store.client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    store.client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"half a checkpoint"
    )
    return upload_id


def open_uploads(client: DualStorageClient, kind: str, prefix: str) -> list[str]:
    store, bucket = client.locate(kind)  # type: ignore[arg-type]
    response = store.client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["UploadId"] for upload in response.get("Uploads", [])]


def mine(report: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """The report's entries for keys under ``prefix``, by upload id."""
    return {u["upload_id"]: u for u in report["uploads"] if u["key"].startswith(prefix)}


def test_dry_run_and_age_limit_keep_uploads_then_zero_aborts_them(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    internal_id = start_upload(real_storage, "checkpoints", f"{unique_key}/epoch1.pth")
    external_id = start_upload(real_storage, "datasets", f"{unique_key}/big.zip")

    # --dry-run: listed (store, bucket, key, upload id, age), nothing aborted.
    report = run_json("dualstorage_cleanup_uploads", "--dry-run", "--older-than", "0")
    found = mine(report, unique_key)
    assert set(found) == {internal_id, external_id}
    assert found[internal_id] | {"initiated": None} == {
        "store": "internal",
        "bucket": "training-checkpoints",
        "key": f"{unique_key}/epoch1.pth",
        "upload_id": internal_id,
        "initiated": None,
        "age_seconds": found[internal_id]["age_seconds"],
        "action": "would abort",
    }
    assert found[external_id]["store"] == "external"
    assert found[external_id]["bucket"] == "training-datasets"
    assert 0 <= found[internal_id]["age_seconds"] < 600
    assert report["dry_run"] is True and report["errors"] == []
    assert open_uploads(real_storage, "checkpoints", unique_key) == [internal_id]
    assert open_uploads(real_storage, "datasets", unique_key) == [external_id]

    # Younger than the limit (default 24h, or an explicit one): kept.
    for args in ((), ("--older-than", "2d")):
        report = run_json("dualstorage_cleanup_uploads", *args)
        assert {u["action"] for u in mine(report, unique_key).values()} == {"kept"}
    assert open_uploads(real_storage, "checkpoints", unique_key) == [internal_id]

    text = run("dualstorage_cleanup_uploads", "--dry-run", "--older-than", "0s")
    assert f"would abort  internal  training-checkpoints  {unique_key}/epoch1.pth" in text
    assert f"upload {internal_id}  age " in text and "Dry run:" in text

    # --older-than 0: every incomplete upload is aborted.
    report = run_json("dualstorage_cleanup_uploads", "--older-than", "0")
    assert {u["action"] for u in mine(report, unique_key).values()} == {"aborted"}
    assert report["aborted"] >= 2
    assert open_uploads(real_storage, "checkpoints", unique_key) == []
    assert open_uploads(real_storage, "datasets", unique_key) == []
    assert mine(run_json("dualstorage_cleanup_uploads", "--older-than", "0"), unique_key) == {}


def test_a_store_failure_is_a_command_error_without_secrets(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers, INTERNAL_STORAGE_SECRET_KEY="bad-secret-q")
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("dualstorage_cleanup_uploads", "--json", stdout=out)
    message = str(caught.value)
    assert "internal store" in message and s3_servers["internal"].endpoint_url in message
    assert "list multipart uploads" in message
    # The external store was still listed, and its report printed.
    report = json.loads(out.getvalue())
    assert report["errors"] and all("internal store" in e for e in report["errors"])
    for secret in ("bad-secret-q", INTERNAL_SECRET, EXTERNAL_SECRET):
        assert secret not in message and secret not in out.getvalue()

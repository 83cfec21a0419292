"""The legacy variables (``AWS_*``) configuring both stores, proven on the real servers.

Resolution without a server: ``tests/test_config.py``.
"""

from __future__ import annotations

import io

import pytest

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.testing.server import LocalS3Server

pytestmark = pytest.mark.real_s3


def test_legacy_variables_configure_both_stores(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    external = s3_servers["external"]
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", external.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", external.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", external.secret_key)
    monkeypatch.setenv("S3_BUCKET_DATASETS", "legacy-datasets")
    monkeypatch.setenv("RECORD_CATALOG", "false")  # configuration only: no database here
    client = DualStorageClient()
    assert client.config.legacy_names == (
        "AWS_ACCESS_KEY_ID",
        "AWS_S3_ENDPOINT_URL",
        "AWS_SECRET_ACCESS_KEY",
        "S3_BUCKET_DATASETS",
    )
    client.create_buckets()
    assert client.exists("datasets", "legacy/never-written") is False
    assert "legacy-datasets" in {b["Name"] for b in external.client().list_buckets()["Buckets"]}
    client.upload_dataset(file_obj=io.BytesIO(b"legacy"), dataset_key="legacy/a.zip")
    raw = external.client()
    body = raw.get_object(Bucket="legacy-datasets", Key="legacy/a.zip")["Body"]
    assert body.read() == b"legacy"
    # Internal artifacts land on the same (legacy) server.
    client.upload_schema("legacy", b"{}")
    assert client.internal.config.endpoint_url == external.endpoint_url


def test_new_variables_win_over_legacy(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    internal, external = s3_servers["internal"], s3_servers["external"]
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", external.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", external.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", external.secret_key)
    monkeypatch.setenv("INTERNAL_STORAGE_ENDPOINT", internal.endpoint_url)
    monkeypatch.setenv("INTERNAL_STORAGE_ACCESS_KEY", internal.access_key)
    monkeypatch.setenv("INTERNAL_STORAGE_SECRET_KEY", internal.secret_key)
    monkeypatch.setenv("RECORD_CATALOG", "false")  # configuration only: no database here
    dual_storage.reset()
    dual_storage.upload_schema("new-wins", b'{"new": true}')
    raw_internal = internal.client()
    body = raw_internal.get_object(Bucket="config-schemas", Key="new-wins.json")["Body"]
    assert body.read() == b'{"new": true}'
    assert dual_storage.config.external.endpoint_url == external.endpoint_url
    assert dual_storage.config.legacy_names == (
        "AWS_ACCESS_KEY_ID",
        "AWS_S3_ENDPOINT_URL",
        "AWS_SECRET_ACCESS_KEY",
    )

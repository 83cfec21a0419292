"""Presigned dataset URLs on the real server: right host, right bytes, expiry enforced."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.exceptions import InvalidArgument
from dual_storage_app.testing.server import LocalS3Server
from tests.conftest import real_settings
from tests.http import fetch, refusal_status

pytestmark = pytest.mark.real_s3
MakeFile = Callable[..., Path]


def test_presigned_url_downloads_the_bytes(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    key = f"datasets/{unique_key} abc+1.zip"
    real_storage.upload_dataset(file_obj=io.BytesIO(b"dataset bytes"), dataset_key=key)
    url = real_storage.generate_dataset_presigned_url(dataset_key=key, expiration=60)
    assert fetch(url) == b"dataset bytes"
    assert "X-Amz-Expires=60" in url


def test_presigned_url_is_signed_for_the_public_endpoint(
    s3_servers: dict[str, LocalS3Server],
    _real_buckets: None,
    settings: SettingsWrapper,
    unique_key: str,
) -> None:
    external = s3_servers["external"]
    public = f"http://localhost:{external.s3_port}"  # same server, the name a browser uses
    settings.DUAL_STORAGE = real_settings(s3_servers, EXTERNAL_STORAGE_PUBLIC_ENDPOINT=public)
    key = f"{unique_key}/public.zip"
    dual_storage.upload_dataset(file_obj=io.BytesIO(b"public"), dataset_key=key)
    url = dual_storage.generate_dataset_presigned_url(dataset_key=key, expiration=60)
    assert urlsplit(url).netloc == f"localhost:{external.s3_port}"
    assert fetch(url) == b"public"  # signed for that Host, not rewritten after signing
    # The private endpoint's host never appears in the link.
    assert s3_servers["internal"].endpoint_url not in url
    assert "127.0.0.1" not in url


def test_expired_url_is_refused(real_storage: DualStorageClient, unique_key: str) -> None:
    key = f"{unique_key}/expiring.zip"
    real_storage.upload_dataset(file_obj=io.BytesIO(b"soon gone"), dataset_key=key)
    url = real_storage.generate_dataset_presigned_url(dataset_key=key, expiration=1)
    time.sleep(2.2)
    assert refusal_status(url) == 403


def test_tampered_url_is_refused(real_storage: DualStorageClient, unique_key: str) -> None:
    key = f"{unique_key}/a.zip"
    real_storage.upload_dataset(file_obj=io.BytesIO(b"a"), dataset_key=key)
    url = real_storage.generate_dataset_presigned_url(dataset_key=key, expiration=60)
    assert refusal_status(url.replace("/a.zip", "/b.zip")) == 403


@pytest.mark.parametrize("expiration", [0, -1, 604_801, 10**9])
def test_expiry_bounds(real_storage: DualStorageClient, expiration: int) -> None:
    with pytest.raises(InvalidArgument, match="1 to 604800 seconds"):
        real_storage.generate_dataset_presigned_url(dataset_key="d.zip", expiration=expiration)


def test_objects_are_private_to_anonymous_clients(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    make_file: MakeFile,
    unique_key: str,
) -> None:
    dataset_key = f"{unique_key}/private.zip"
    real_storage.upload_dataset(file_obj=io.BytesIO(b"private"), dataset_key=dataset_key)
    weight_key = f"{unique_key}/w.pth"
    real_storage.upload_weight(file_path=make_file("w.pth", 10), weight_key=weight_key)
    for url in (
        f"{s3_servers['external'].endpoint_url}/training-datasets/{dataset_key}",
        f"{s3_servers['internal'].endpoint_url}/model-weights/{weight_key}",
    ):
        assert refusal_status(url) == 403

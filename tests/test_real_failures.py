"""Wrong credentials and unreachable stores: clear errors, no secret, bounded time."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import pytest

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import AccessDenied, StorageUnavailable
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.conftest import EXTERNAL_SECRET, INTERNAL_SECRET, real_settings

pytestmark = pytest.mark.real_s3
WRONG_SECRET = "wrong-secret-Hx93kQ"


def test_wrong_secret_is_refused_and_named(
    s3_servers: dict[str, LocalS3Server],
    _real_buckets: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # botocore DEBUG included
    client = DualStorageClient(
        overrides=real_settings(s3_servers, INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET)
    )
    with pytest.raises(AccessDenied) as caught:
        client.get_schema("ultralytics")
    message = str(caught.value)
    assert "internal store" in message and s3_servers["internal"].endpoint_url in message
    assert "SignatureDoesNotMatch" in message
    assert "INTERNAL_STORAGE_ACCESS_KEY" in message
    rendered = message + repr(caught.value) + repr(client) + caplog.text
    for secret in (WRONG_SECRET, INTERNAL_SECRET, EXTERNAL_SECRET):
        assert secret not in rendered
    # The external store, with its own right keys, still works.
    client.upload_dataset(file_obj=io.BytesIO(b"ok"), dataset_key="failures/ok")


def test_keys_of_one_store_do_not_open_the_other(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None
) -> None:
    internal = s3_servers["internal"]
    crossed = real_settings(
        s3_servers,
        EXTERNAL_STORAGE_ACCESS_KEY=internal.access_key,
        EXTERNAL_STORAGE_SECRET_KEY=internal.secret_key,
    )
    with pytest.raises(AccessDenied, match="external store"):
        DualStorageClient(overrides=crossed).upload_dataset(
            file_obj=io.BytesIO(b"x"), dataset_key="failures/crossed"
        )


def test_unreachable_endpoint_fails_fast_with_a_clear_error(
    s3_servers: dict[str, LocalS3Server], tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port_pair()}"  # nothing listens there
    client = DualStorageClient(
        overrides=real_settings(s3_servers, EXTERNAL_STORAGE_ENDPOINT=closed)
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        client.download_dataset(dataset_key="d.zip", dest_path=tmp_path / "d.zip")
    assert time.monotonic() - started < 30
    assert "external store" in str(caught.value) and closed in str(caught.value)
    assert "unreachable" in str(caught.value)
    assert not (tmp_path / "d.zip").exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_bucket_is_reported_as_such(s3_servers: dict[str, LocalS3Server]) -> None:
    client = DualStorageClient(
        overrides=real_settings(s3_servers, INTERNAL_BUCKET_SCHEMAS="no-such-bucket-here")
    )
    with pytest.raises(FileNotFoundError, match="bucket does not exist"):
        client.get_schema("ultralytics")

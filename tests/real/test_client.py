"""The client's API (``DualStorageClient``) on the real servers: round trips of every
kind, listing, errors that name store, bucket and key, threads sharing one client, and
clear errors from a wrong secret, an unreachable endpoint or a missing bucket.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import AccessDenied, InvalidKey, ObjectNotFound, StorageUnavailable
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.pair import EXTERNAL_SECRET, INTERNAL_SECRET
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.helpers import WRONG_SECRET, MakeFile, real_settings, sha256_file
from tests.http import fetch

pytestmark = pytest.mark.real_s3


def test_weight_round_trip_multipart(
    real_storage: DualStorageClient, make_file: MakeFile, tmp_path: Path, unique_key: str
) -> None:
    source = make_file("resnet50.pth", 40 * MiB + 123)  # above the 16 MiB multipart threshold
    uploaded = real_storage.upload_weight(file_path=source, weight_key=f"{unique_key}/resnet50.pth")
    assert uploaded.size == source.stat().st_size
    assert uploaded.sha256 == sha256_file(source)
    assert uploaded.etag.endswith("-3")  # three 16 MiB parts: it really was multipart
    assert (uploaded.store, uploaded.bucket) == ("internal", "model-weights")

    dest = tmp_path / "out" / "resnet50.pth"
    downloaded = real_storage.download_weight(
        weight_key=f"{unique_key}/resnet50.pth", dest_path=dest
    )
    assert downloaded.sha256 == uploaded.sha256
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["resnet50.pth"]  # no temp file left


def test_checkpoint_round_trip(
    real_storage: DualStorageClient, make_file: MakeFile, tmp_path: Path, unique_key: str
) -> None:
    source = make_file("ckpt.pth", 3 * MiB, seed=7)
    key = f"jobs/123/{unique_key}/checkpoint_epoch_10.pth"
    result = real_storage.upload_checkpoint(file_path=source, checkpoint_key=key)
    assert result.bucket == "training-checkpoints"
    dest = tmp_path / "c.pth"
    real_storage.download_checkpoint(checkpoint_key=key, dest_path=dest)
    assert sha256_file(dest) == result.sha256 == sha256_file(source)


def test_schema_round_trip(real_storage: DualStorageClient, unique_key: str) -> None:
    name = unique_key.replace("/", "-")
    result = real_storage.upload_schema(name, b'{"type": "object"}')
    assert result.key == f"{name}.json"
    assert result.content_type == "application/json"
    assert real_storage.get_schema(name) == b'{"type": "object"}'
    assert real_storage.head("schemas", f"{name}.json").content_type == "application/json"


def test_dataset_round_trip_from_file_object(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    payload = bytes(range(256)) * 40_000  # ~10 MB
    key = f"datasets/{unique_key}.zip"
    result = real_storage.upload_dataset(file_obj=io.BytesIO(payload), dataset_key=key)
    assert (result.store, result.bucket, result.size) == (
        "external",
        "training-datasets",
        len(payload),
    )
    assert result.content_type == "application/zip"
    dest = tmp_path / "dataset.zip"
    real_storage.download_dataset(dataset_key=key, dest_path=dest)
    assert dest.read_bytes() == payload


def test_empty_object_round_trip(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    result = real_storage.upload_dataset(
        file_obj=io.BytesIO(b""), dataset_key=f"{unique_key}/empty"
    )
    assert result.size == 0
    assert result.sha256 == hashlib.sha256(b"").hexdigest()
    dest = tmp_path / "empty"
    real_storage.download_dataset(dataset_key=f"{unique_key}/empty", dest_path=dest)
    assert dest.read_bytes() == b""


def test_exists_head_list_delete(real_storage: DualStorageClient, unique_key: str) -> None:
    for name in ("a.pth", "b.pth", "sub/c.pth"):
        real_storage.upload_dataset(
            file_obj=io.BytesIO(name.encode()), dataset_key=f"{unique_key}/{name}"
        )
    assert real_storage.exists("datasets", f"{unique_key}/a.pth")
    assert not real_storage.exists("datasets", f"{unique_key}/missing.pth")
    listed = sorted(
        info.key for info in real_storage.list_objects("datasets", prefix=f"{unique_key}/")
    )
    assert listed == [f"{unique_key}/a.pth", f"{unique_key}/b.pth", f"{unique_key}/sub/c.pth"]
    assert real_storage.head("datasets", f"{unique_key}/a.pth").size == len(b"a.pth")

    real_storage.delete("datasets", f"{unique_key}/a.pth")
    assert not real_storage.exists("datasets", f"{unique_key}/a.pth")
    real_storage.delete("datasets", f"{unique_key}/a.pth")  # deleting twice is not an error


def test_listing_pages_beyond_one_thousand(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    store, bucket = real_storage.locate("schemas")
    client = store.client
    for index in range(1005):
        client.put_object(Bucket=bucket, Key=f"{unique_key}/{index:05d}", Body=b"x")
    keys = [info.key for info in real_storage.list_objects("schemas", prefix=f"{unique_key}/")]
    assert len(keys) == 1005
    assert keys[0].endswith("00000") and keys[-1].endswith("01004")


def test_stores_are_separate_servers(
    real_storage: DualStorageClient, s3_servers: dict[str, LocalS3Server], unique_key: str
) -> None:
    real_storage.upload_dataset(file_obj=io.BytesIO(b"d"), dataset_key=f"{unique_key}/d")
    real_storage.upload_schema(unique_key.replace("/", "-"), b"{}")
    assert real_storage.external.config.endpoint_url == s3_servers["external"].endpoint_url
    assert real_storage.internal.config.endpoint_url == s3_servers["internal"].endpoint_url
    internal_buckets = {b["Name"] for b in real_storage.internal.client.list_buckets()["Buckets"]}
    external_buckets = {b["Name"] for b in real_storage.external.client.list_buckets()["Buckets"]}
    assert {"model-weights", "training-checkpoints", "config-schemas"} <= internal_buckets
    assert "training-datasets" not in internal_buckets
    assert "training-datasets" in external_buckets
    assert not external_buckets & {"model-weights", "training-checkpoints", "config-schemas"}


def test_missing_object_errors_name_store_bucket_key(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        real_storage.get_schema(unique_key.replace("/", "-"))
    message = str(caught.value)
    assert "internal store" in message and "config-schemas" in message
    assert caught.value.store == "internal" and caught.value.bucket == "config-schemas"
    assert isinstance(caught.value, FileNotFoundError)

    with pytest.raises(ObjectNotFound, match="training-datasets"):
        real_storage.download_dataset(
            dataset_key=f"{unique_key}/nope.zip", dest_path=tmp_path / "x"
        )
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_download_keeps_existing_destination(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"previous good copy")
    with pytest.raises(ObjectNotFound):
        real_storage.download_weight(weight_key=f"{unique_key}/missing.pth", dest_path=dest)
    assert dest.read_bytes() == b"previous good copy"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pth"]


@pytest.mark.parametrize(
    "bad_key", ["", "../etc/passwd", "/abs.pth", "a//b", "a/./b", "nul\x00.pth", "a\\b", "x" * 1025]
)
def test_bad_keys_refused_before_any_request(
    real_storage: DualStorageClient, make_file: MakeFile, tmp_path: Path, bad_key: str
) -> None:
    source = make_file("w.pth", 10)
    with pytest.raises(InvalidKey):
        real_storage.upload_weight(file_path=source, weight_key=bad_key)
    with pytest.raises(InvalidKey):
        real_storage.download_weight(weight_key=bad_key, dest_path=tmp_path / "d")
    with pytest.raises(InvalidKey):
        real_storage.generate_dataset_presigned_url(dataset_key=bad_key)
    assert not (tmp_path / "d").exists()


def test_keys_with_special_characters_round_trip(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    key = f"{unique_key}/my data+set %20 #1 ?v=2 données.zip"
    real_storage.upload_dataset(file_obj=io.BytesIO(b"special"), dataset_key=key)
    assert [i.key for i in real_storage.list_objects("datasets", prefix=f"{unique_key}/")] == [key]
    real_storage.download_dataset(dataset_key=key, dest_path=tmp_path / "s")
    assert (tmp_path / "s").read_bytes() == b"special"


# -- threads -----------------------------------------------------------------------------


def test_one_client_shared_by_threads(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, tmp_path: Path, unique_key: str
) -> None:
    real_storage = DualStorageClient(overrides=real_settings(s3_servers))  # no client built yet
    errors: list[BaseException] = []
    client_ids: set[int] = set()
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        try:
            start.wait()  # all threads ask for the lazily built client at once
            client_ids.add(id(real_storage.external.client))
            payload = f"payload-{index}".encode() * 1000
            key = f"{unique_key}/t{index}"
            real_storage.upload_dataset(file_obj=io.BytesIO(payload), dataset_key=key)
            dest = tmp_path / f"t{index}"
            real_storage.download_dataset(dataset_key=key, dest_path=dest)
            assert dest.read_bytes() == payload
            assert real_storage.generate_dataset_presigned_url(dataset_key=key, expiration=60)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert client_ids == {id(real_storage.external.client)}  # one boto3 client, shared


@pytest.mark.django_db(transaction=True)
def test_sixteen_threads_share_one_client(
    direct: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    rng = random.Random(16)  # noqa: S311 - sizes only
    sizes = [rng.randint(MiB, 3 * MiB) for _ in range(16)]
    start = threading.Barrier(16)

    def work(index: int) -> None:
        data = os.urandom(sizes[index])
        want = hashlib.sha256(data).hexdigest()
        source = tmp_path / f"src-{index}"
        source.write_bytes(data)
        weight, dataset = f"{unique_key}/w{index}.pth", f"{unique_key}/d{index}.zip"
        start.wait(30)
        assert direct.upload_weight(file_path=source, weight_key=weight).sha256 == want
        with source.open("rb") as handle:
            assert direct.upload_dataset(file_obj=handle, dataset_key=dataset).sha256 == want
        url = direct.generate_dataset_presigned_url(dataset_key=dataset, expiration=300)
        assert hashlib.sha256(fetch(url)).hexdigest() == want
        for kind, key in (("weights", weight), ("datasets", dataset)):
            dest = tmp_path / f"{kind}-{index}"
            downloaded = (
                direct.download_weight(weight_key=key, dest_path=dest)
                if kind == "weights"
                else direct.download_dataset(dataset_key=key, dest_path=dest)
            )
            assert downloaded.sha256 == want == sha256_file(dest)

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(work, i) for i in range(16)]:
            future.result()
    assert len(list(direct.list_objects("weights", unique_key))) == 16
    assert len(list(direct.list_objects("datasets", unique_key))) == 16


# -- wrong credentials and unreachable stores: clear errors, no secret, bounded time -----


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

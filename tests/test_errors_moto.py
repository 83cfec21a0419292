"""The client and the Django storages against moto: round trips, errors, and refusals."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from moto import mock_aws
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.exceptions import (
    DualStorageError,
    InvalidArgument,
    InvalidKey,
    NoPublicURL,
    ObjectNotFound,
)
from dual_storage_app.storages import (
    ExternalStorage,
    InternalStorage,
    datasets_storage,
    weights_storage,
)
from dual_storage_app.store.transfer import MAX_PRESIGN_SECONDS

ACCESS_KEY = "moto-access-AKID77"
SECRET_KEY = "moto-secret-123"
ENDPOINT = "https://s3.us-east-1.amazonaws.com"
MOTO_SETTINGS: dict[str, str | None] = {
    "INTERNAL_STORAGE_ENDPOINT": ENDPOINT,
    "INTERNAL_STORAGE_ACCESS_KEY": ACCESS_KEY,
    "INTERNAL_STORAGE_SECRET_KEY": SECRET_KEY,
    "INTERNAL_STORAGE_REGION": "us-east-1",
    "EXTERNAL_STORAGE_ENDPOINT": ENDPOINT,
    "EXTERNAL_STORAGE_ACCESS_KEY": ACCESS_KEY,
    "EXTERNAL_STORAGE_SECRET_KEY": SECRET_KEY,
    "EXTERNAL_STORAGE_REGION": "us-east-1",
}
BAD_KEY = "../x"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def client(aws: None) -> DualStorageClient:
    storage_client = DualStorageClient(overrides=MOTO_SETTINGS)
    created = storage_client.create_buckets()
    assert created == {
        "model-weights": True,
        "training-checkpoints": True,
        "config-schemas": True,
        "training-datasets": True,
    }
    return storage_client


@pytest.fixture
def configured(aws: None, settings: SettingsWrapper) -> DualStorageClient:
    """``settings.DUAL_STORAGE`` (and so the lazy ``dual_storage``) pointed at moto."""
    settings.DUAL_STORAGE = MOTO_SETTINGS
    dual_storage.create_buckets()
    return dual_storage


def record_api_calls(storage_client: DualStorageClient) -> list[str]:
    """Every S3 API call either store's boto3 client makes from now on."""
    calls: list[str] = []

    def record(model: Any, **kwargs: Any) -> None:
        calls.append(model.name)

    for store in (storage_client.internal, storage_client.external):
        store.client.meta.events.register("before-call.s3", record)
    return calls


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- round trips ---------------------------------------------------------------------


def test_create_buckets_is_idempotent(client: DualStorageClient) -> None:
    assert set(client.create_buckets().values()) == {False}


def test_weight_round_trip(client: DualStorageClient, tmp_path: Path) -> None:
    data = b"weights" * 1000
    source = tmp_path / "resnet50.pth"
    source.write_bytes(data)
    uploaded = client.upload_weight(file_path=source, weight_key="resnet50.pth")
    assert (uploaded.store, uploaded.bucket, uploaded.key) == (
        "internal",
        "model-weights",
        "resnet50.pth",
    )
    assert uploaded.size == len(data)
    assert uploaded.sha256 == sha256(data)
    assert uploaded.etag
    dest = tmp_path / "out" / "resnet50.pth"
    downloaded = client.download_weight(weight_key="resnet50.pth", dest_path=dest)
    assert dest.read_bytes() == data
    assert downloaded.sha256 == uploaded.sha256
    assert downloaded.size == len(data)


def test_checkpoint_round_trip(client: DualStorageClient, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    source = tmp_path / "ckpt.pth"
    source.write_bytes(data)
    key = "jobs/123/checkpoint_epoch_10.pth"
    uploaded = client.upload_checkpoint(file_path=source, checkpoint_key=key)
    assert uploaded.bucket == "training-checkpoints"
    assert uploaded.sha256 == sha256(data)
    dest = tmp_path / "c.pth"
    client.download_checkpoint(checkpoint_key=key, dest_path=str(dest))
    assert dest.read_bytes() == data
    assert client.exists("checkpoints", key)
    assert not client.exists("weights", key)  # kinds live in their own buckets


@pytest.mark.parametrize("schema", [b'{"type": "object"}', '{"title": "données"}'])
def test_schema_round_trip(client: DualStorageClient, schema: bytes | str) -> None:
    uploaded = client.upload_schema("ultralytics", schema)
    assert uploaded.key == "ultralytics.json"
    assert uploaded.bucket == "config-schemas"
    assert uploaded.content_type == "application/json"
    expected = schema.encode("utf-8") if isinstance(schema, str) else schema
    assert client.get_schema("ultralytics") == expected
    assert client.head("schemas", "ultralytics.json").content_type == "application/json"


@pytest.mark.parametrize("framework", ["", "a/b", "../x"])
def test_schema_name_with_a_slash_is_refused(client: DualStorageClient, framework: str) -> None:
    calls = record_api_calls(client)
    with pytest.raises(InvalidKey):  # one exception type for every bad name
        client.upload_schema(framework, b"{}")
    assert calls == []


def test_dataset_round_trip(client: DualStorageClient, tmp_path: Path) -> None:
    data = b"PK\x03\x04" + b"z" * 5000
    uploaded = client.upload_dataset(file_obj=io.BytesIO(data), dataset_key="datasets/abc-123.zip")
    assert (uploaded.store, uploaded.bucket) == ("external", "training-datasets")
    assert uploaded.content_type == "application/zip"
    assert uploaded.sha256 == sha256(data)
    dest = tmp_path / "dataset.zip"
    client.download_dataset(dataset_key="datasets/abc-123.zip", dest_path=dest)
    assert dest.read_bytes() == data


def test_exists_head_delete(client: DualStorageClient) -> None:
    key = "données/é.zip"
    assert not client.exists("datasets", key)
    client.upload_dataset(io.BytesIO(b"12345"), key)
    assert client.exists("datasets", key)
    info = client.head("datasets", key)
    assert (info.store, info.bucket, info.key, info.size) == (
        "external",
        "training-datasets",
        key,
        5,
    )
    assert info.etag and '"' not in info.etag
    client.delete("datasets", key)
    assert not client.exists("datasets", key)
    client.delete("datasets", key)  # deleting a missing object is not an error
    assert not client.exists("datasets", key)


def test_list_objects_with_prefix(client: DualStorageClient) -> None:
    for key in ("datasets/a.zip", "datasets/b.zip", "datasets-old/c.zip", "other/d.zip"):
        client.upload_dataset(io.BytesIO(key.encode()), key)
    listed = list(client.list_objects("datasets", prefix="datasets/"))
    assert [o.key for o in listed] == ["datasets/a.zip", "datasets/b.zip"]
    assert all(o.bucket == "training-datasets" and o.store == "external" for o in listed)
    assert [o.size for o in listed] == [len(b"datasets/a.zip"), len(b"datasets/b.zip")]
    assert len(list(client.list_objects("datasets"))) == 4
    assert list(client.list_objects("weights")) == []


def test_presigned_url_names_bucket_key_and_expiry(client: DualStorageClient) -> None:
    client.upload_dataset(io.BytesIO(b"data"), "datasets/abc 123.zip")
    calls = record_api_calls(client)
    url = client.generate_dataset_presigned_url(dataset_key="datasets/abc 123.zip", expiration=900)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert "training-datasets" in url
    assert parts.path.endswith("/datasets/abc%20123.zip")
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Signature"]
    assert SECRET_KEY not in url
    assert calls == []  # signing makes no request


@pytest.mark.parametrize("expiration", [1, 3600, MAX_PRESIGN_SECONDS])
def test_presign_expiry_bounds_are_accepted(client: DualStorageClient, expiration: int) -> None:
    assert MAX_PRESIGN_SECONDS == 604800
    url = client.generate_dataset_presigned_url("datasets/a.zip", expiration=expiration)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(expiration)]


@pytest.mark.parametrize("expiration", [0, -1, 604801, True, False, 1.5, "3600", None])
def test_presign_expiry_out_of_range_or_wrong_type_is_refused(
    client: DualStorageClient, expiration: Any
) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        client.generate_dataset_presigned_url("datasets/a.zip", expiration=expiration)
    assert isinstance(excinfo.value, ValueError)
    assert "expiration" in str(excinfo.value)


# -- missing objects -----------------------------------------------------------------

MissingCall = Callable[[DualStorageClient, Path], object]
MISSING_CALLS: list[tuple[str, MissingCall, str, str, str]] = [
    (
        "download_weight",
        lambda c, d: c.download_weight("nope.pth", d),
        "internal",
        "model-weights",
        "nope.pth",
    ),
    (
        "download_checkpoint",
        lambda c, d: c.download_checkpoint("jobs/1/nope.pth", d),
        "internal",
        "training-checkpoints",
        "jobs/1/nope.pth",
    ),
    (
        "get_schema",
        lambda c, d: c.get_schema("nope"),
        "internal",
        "config-schemas",
        "nope.json",
    ),
    (
        "download_dataset",
        lambda c, d: c.download_dataset("datasets/nope.zip", d),
        "external",
        "training-datasets",
        "datasets/nope.zip",
    ),
    (
        "head",
        lambda c, d: c.head("weights", "nope.pth"),
        "internal",
        "model-weights",
        "nope.pth",
    ),
]


@pytest.mark.parametrize(
    ("call", "store", "bucket", "key"),
    [case[1:] for case in MISSING_CALLS],
    ids=[case[0] for case in MISSING_CALLS],
)
def test_missing_object_raises_object_not_found(
    client: DualStorageClient,
    tmp_path: Path,
    call: MissingCall,
    store: str,
    bucket: str,
    key: str,
) -> None:
    with pytest.raises(ObjectNotFound) as excinfo:
        call(client, tmp_path / "dest.bin")
    error = excinfo.value
    assert isinstance(error, FileNotFoundError)
    assert isinstance(error, DualStorageError)
    message = str(error)
    assert f"{store} store" in message
    assert repr(bucket) in message
    assert repr(key) in message
    assert SECRET_KEY not in message
    assert ACCESS_KEY not in message
    assert (error.store, error.bucket, error.key) == (store, bucket, key)


def test_missing_bucket_is_reported_as_such(aws: None) -> None:
    storage_client = DualStorageClient(
        overrides={**MOTO_SETTINGS, "INTERNAL_BUCKET_SCHEMAS": "no-such-schemas"}
    )
    with pytest.raises(ObjectNotFound) as excinfo:
        storage_client.get_schema("ultralytics")
    assert "bucket does not exist" in str(excinfo.value)
    assert "'no-such-schemas'" in str(excinfo.value)
    assert SECRET_KEY not in str(excinfo.value)


def test_failed_download_leaves_no_file(client: DualStorageClient, tmp_path: Path) -> None:
    dest_dir = tmp_path / "downloads"
    dest_dir.mkdir()
    dest = dest_dir / "model.pth"
    with pytest.raises(ObjectNotFound):
        client.download_weight("nope.pth", dest)
    assert not dest.exists()
    assert list(dest_dir.iterdir()) == []  # no temporary file left behind either


def test_failed_download_keeps_an_existing_destination(
    client: DualStorageClient, tmp_path: Path
) -> None:
    dest = tmp_path / "dataset.zip"
    dest.write_bytes(b"previous good copy")
    with pytest.raises(ObjectNotFound):
        client.download_dataset("datasets/nope.zip", dest)
    assert dest.read_bytes() == b"previous good copy"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset.zip"]


# -- invalid keys are refused before any request -------------------------------------

InvalidCall = Callable[[DualStorageClient, Path], object]
INVALID_KEY_CALLS: list[tuple[str, InvalidCall]] = [
    ("upload_weight", lambda c, p: c.upload_weight(p / "missing-file.pth", BAD_KEY)),
    ("download_weight", lambda c, p: c.download_weight(BAD_KEY, p / "dest")),
    ("upload_checkpoint", lambda c, p: c.upload_checkpoint(p / "missing-file.pth", BAD_KEY)),
    ("download_checkpoint", lambda c, p: c.download_checkpoint(BAD_KEY, p / "dest")),
    ("upload_schema", lambda c, p: c.upload_schema("bad\x00name", b"{}")),
    ("get_schema", lambda c, p: c.get_schema("bad\u202ename")),
    ("upload_dataset", lambda c, p: c.upload_dataset(io.BytesIO(b"x"), BAD_KEY)),
    ("download_dataset", lambda c, p: c.download_dataset(BAD_KEY, p / "dest")),
    ("presign", lambda c, p: c.generate_dataset_presigned_url(BAD_KEY)),
    ("exists", lambda c, p: c.exists("weights", BAD_KEY)),
    ("head", lambda c, p: c.head("checkpoints", BAD_KEY)),
    ("delete", lambda c, p: c.delete("datasets", BAD_KEY)),
    ("list_objects", lambda c, p: list(c.list_objects("datasets", prefix="../"))),
    ("absolute", lambda c, p: c.exists("weights", "/etc/passwd")),
    ("nul", lambda c, p: c.head("weights", "a\x00b")),
]


@pytest.mark.parametrize(
    "call", [case[1] for case in INVALID_KEY_CALLS], ids=[case[0] for case in INVALID_KEY_CALLS]
)
def test_invalid_key_is_refused_before_any_request(
    client: DualStorageClient, tmp_path: Path, call: InvalidCall
) -> None:
    calls = record_api_calls(client)
    with pytest.raises(InvalidKey) as excinfo:
        call(client, tmp_path)
    assert calls == []
    assert excinfo.value.store in ("internal", "external")
    assert SECRET_KEY not in str(excinfo.value)
    assert not (tmp_path / "dest").exists()


# -- reprs -------------------------------------------------------------------------


def test_client_repr_has_no_secret(client: DualStorageClient) -> None:
    text = repr(client)
    assert SECRET_KEY not in text
    assert ACCESS_KEY not in text
    assert "internal" in text and "external" in text
    assert SECRET_KEY not in repr(client.config)
    assert SECRET_KEY not in repr(client.internal) + repr(client.external)


def test_lazy_client_repr_has_no_secret(configured: DualStorageClient) -> None:
    assert configured is dual_storage
    text = repr(dual_storage)
    assert "unconfigured" not in text  # the fixture has built the real client
    assert ENDPOINT in text
    assert SECRET_KEY not in text
    assert ACCESS_KEY not in text


def test_lazy_client_repr_before_use(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = MOTO_SETTINGS
    assert repr(dual_storage) == "<lazy dual_storage: unconfigured>"


# -- Django storages ---------------------------------------------------------------


def test_internal_storage_has_no_url(configured: DualStorageClient) -> None:
    for kind in ("weights", "checkpoints", "schemas"):
        storage = InternalStorage(kind=kind)
        with pytest.raises(NoPublicURL) as excinfo:
            storage.url("resnet50.pth")
        assert "internal" in str(excinfo.value)
        assert excinfo.value.store == "internal"


def test_internal_storage_refuses_url_even_for_a_bad_key(configured: DualStorageClient) -> None:
    with pytest.raises(DualStorageError):
        weights_storage().url(BAD_KEY)


def test_external_storage_url_is_presigned(configured: DualStorageClient) -> None:
    storage = datasets_storage()
    assert storage.bucket_name == "training-datasets"
    calls = record_api_calls(configured)
    url = storage.url("datasets/abc-123.zip")
    query = parse_qs(urlsplit(url).query)
    assert "training-datasets" in url
    assert "datasets/abc-123.zip" in url
    assert query["X-Amz-Signature"]
    assert query["X-Amz-Expires"] == [str(storage.querystring_expire)]
    assert SECRET_KEY not in url
    assert calls == []
    short = parse_qs(urlsplit(storage.url("datasets/abc-123.zip", expire=60)).query)
    assert short["X-Amz-Expires"] == ["60"]


def test_external_storage_url_refuses_bad_expiry(configured: DualStorageClient) -> None:
    with pytest.raises(InvalidArgument):
        ExternalStorage().url("datasets/a.zip", expire=604801)


def test_storage_bound_to_the_wrong_store_is_refused(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = MOTO_SETTINGS
    with pytest.raises(DualStorageError, match="not 'datasets'"):
        InternalStorage(kind="datasets")
    with pytest.raises(DualStorageError, match="not 'weights'"):
        ExternalStorage(kind="weights")


def test_storage_round_trip(configured: DualStorageClient) -> None:
    storage = InternalStorage(kind="checkpoints")
    name = storage.save("jobs/7/epoch_1.pth", ContentFile(b"checkpoint-bytes"))
    assert name == "jobs/7/epoch_1.pth"
    assert storage.exists(name)
    assert storage.size(name) == len(b"checkpoint-bytes")
    with storage.open(name, "rb") as handle:
        assert handle.read() == b"checkpoint-bytes"
    storage.delete(name)
    assert not storage.exists(name)


StorageCall = Callable[[Any], object]
STORAGE_CALLS: list[tuple[str, StorageCall]] = [
    ("save", lambda s: s.save(BAD_KEY, ContentFile(b"x"))),
    ("open", lambda s: s.open(BAD_KEY)),
    ("exists", lambda s: s.exists(BAD_KEY)),
    ("delete", lambda s: s.delete(BAD_KEY)),
    ("size", lambda s: s.size(BAD_KEY)),
]


@pytest.mark.parametrize(
    "call", [case[1] for case in STORAGE_CALLS], ids=[case[0] for case in STORAGE_CALLS]
)
@pytest.mark.parametrize("storage_class", [InternalStorage, ExternalStorage])
def test_storages_refuse_path_traversal_with_invalid_key(
    configured: DualStorageClient, storage_class: type[Any], call: StorageCall
) -> None:
    storage = storage_class()
    calls = record_api_calls(configured)
    with pytest.raises(InvalidKey) as excinfo:
        call(storage)
    assert excinfo.value.key == BAD_KEY
    assert excinfo.value.bucket == storage.bucket_name
    assert calls == []


def test_external_storage_url_refuses_path_traversal(configured: DualStorageClient) -> None:
    with pytest.raises(InvalidKey) as excinfo:
        datasets_storage().url(BAD_KEY)
    assert excinfo.value.store == "external"
    assert excinfo.value.bucket == "training-datasets"


@pytest.mark.parametrize("name", ["a/./b.bin", "a//b.bin", "a\x00b.bin", "dir/"])
def test_storages_refuse_keys_django_would_clean(configured: DualStorageClient, name: str) -> None:
    storage = weights_storage()
    with pytest.raises(InvalidKey):
        storage.save(name, ContentFile(b"x"))
    assert list(configured.list_objects("weights")) == []


def test_storages_refuse_listdir_of_a_traversal_path(configured: DualStorageClient) -> None:
    with pytest.raises(InvalidKey):
        weights_storage().listdir(BAD_KEY)


@pytest.mark.parametrize("mode", ["wb", "ab", "rb+", "w"])
def test_storages_open_read_only(configured: DualStorageClient, mode: str) -> None:
    calls = record_api_calls(configured)
    with pytest.raises(ValueError, match="read-only"):
        datasets_storage().open("datasets/a.zip", mode)
    assert calls == []


def test_api_call_recorder_sees_real_requests(client: DualStorageClient) -> None:
    """Positive control for the "no request was sent" assertions above."""
    calls = record_api_calls(client)
    assert not client.exists("weights", "resnet50.pth")
    client.delete("datasets", "datasets/a.zip")
    assert calls == ["HeadObject", "DeleteObject"]

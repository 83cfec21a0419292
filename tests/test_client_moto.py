"""The client (``DualStorageClient``) against moto: round trips, errors, refusals, reprs."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.exceptions import DualStorageError, InvalidKey, ObjectNotFound
from tests.helpers import (
    BAD_KEY,
    MOTO_ACCESS_KEY,
    MOTO_ENDPOINT,
    MOTO_SECRET_KEY,
    MOTO_SETTINGS,
    record_api_calls,
    sha256,
)

# -- round trips -------------------------------------------------------------------------


def test_create_buckets_is_idempotent(moto_storage: DualStorageClient) -> None:
    assert set(moto_storage.create_buckets().values()) == {False}


def test_weight_round_trip(moto_storage: DualStorageClient, tmp_path: Path) -> None:
    data = b"weights" * 1000
    source = tmp_path / "resnet50.pth"
    source.write_bytes(data)
    uploaded = moto_storage.upload_weight(file_path=source, weight_key="resnet50.pth")
    assert (uploaded.store, uploaded.bucket, uploaded.key) == (
        "internal",
        "model-weights",
        "resnet50.pth",
    )
    assert uploaded.size == len(data)
    assert uploaded.sha256 == sha256(data)
    assert uploaded.etag
    dest = tmp_path / "out" / "resnet50.pth"
    downloaded = moto_storage.download_weight(weight_key="resnet50.pth", dest_path=dest)
    assert dest.read_bytes() == data
    assert downloaded.sha256 == uploaded.sha256
    assert downloaded.size == len(data)


def test_checkpoint_round_trip(moto_storage: DualStorageClient, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    source = tmp_path / "ckpt.pth"
    source.write_bytes(data)
    key = "jobs/123/checkpoint_epoch_10.pth"
    uploaded = moto_storage.upload_checkpoint(file_path=source, checkpoint_key=key)
    assert uploaded.bucket == "training-checkpoints"
    assert uploaded.sha256 == sha256(data)
    dest = tmp_path / "c.pth"
    moto_storage.download_checkpoint(checkpoint_key=key, dest_path=str(dest))
    assert dest.read_bytes() == data
    assert moto_storage.exists("checkpoints", key)
    assert not moto_storage.exists("weights", key)  # kinds live in their own buckets


@pytest.mark.parametrize("schema", [b'{"type": "object"}', '{"title": "données"}'])
def test_schema_round_trip(moto_storage: DualStorageClient, schema: bytes | str) -> None:
    uploaded = moto_storage.upload_schema("ultralytics", schema)
    assert uploaded.key == "ultralytics.json"
    assert uploaded.bucket == "config-schemas"
    assert uploaded.content_type == "application/json"
    expected = schema.encode("utf-8") if isinstance(schema, str) else schema
    assert moto_storage.get_schema("ultralytics") == expected
    assert moto_storage.head("schemas", "ultralytics.json").content_type == "application/json"


@pytest.mark.parametrize("framework", ["", "a/b", "../x"])
def test_schema_name_with_a_slash_is_refused(
    moto_storage: DualStorageClient, framework: str
) -> None:
    calls = record_api_calls(moto_storage)
    with pytest.raises(InvalidKey):  # one exception type for every bad name
        moto_storage.upload_schema(framework, b"{}")
    assert calls == []


def test_dataset_round_trip(moto_storage: DualStorageClient, tmp_path: Path) -> None:
    data = b"PK\x03\x04" + b"z" * 5000
    uploaded = moto_storage.upload_dataset(
        file_obj=io.BytesIO(data), dataset_key="datasets/abc-123.zip"
    )
    assert (uploaded.store, uploaded.bucket) == ("external", "training-datasets")
    assert uploaded.content_type == "application/zip"
    assert uploaded.sha256 == sha256(data)
    dest = tmp_path / "dataset.zip"
    moto_storage.download_dataset(dataset_key="datasets/abc-123.zip", dest_path=dest)
    assert dest.read_bytes() == data


def test_exists_head_delete(moto_storage: DualStorageClient) -> None:
    key = "données/é.zip"
    assert not moto_storage.exists("datasets", key)
    moto_storage.upload_dataset(io.BytesIO(b"12345"), key)
    assert moto_storage.exists("datasets", key)
    info = moto_storage.head("datasets", key)
    assert (info.store, info.bucket, info.key, info.size) == (
        "external",
        "training-datasets",
        key,
        5,
    )
    assert info.etag and '"' not in info.etag
    moto_storage.delete("datasets", key)
    assert not moto_storage.exists("datasets", key)
    moto_storage.delete("datasets", key)  # deleting a missing object is not an error
    assert not moto_storage.exists("datasets", key)


def test_list_objects_with_prefix(moto_storage: DualStorageClient) -> None:
    for key in ("datasets/a.zip", "datasets/b.zip", "datasets-old/c.zip", "other/d.zip"):
        moto_storage.upload_dataset(io.BytesIO(key.encode()), key)
    listed = list(moto_storage.list_objects("datasets", prefix="datasets/"))
    assert [o.key for o in listed] == ["datasets/a.zip", "datasets/b.zip"]
    assert all(o.bucket == "training-datasets" and o.store == "external" for o in listed)
    assert [o.size for o in listed] == [len(b"datasets/a.zip"), len(b"datasets/b.zip")]
    assert len(list(moto_storage.list_objects("datasets"))) == 4
    assert list(moto_storage.list_objects("weights")) == []


# -- errors ------------------------------------------------------------------------------


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
    moto_storage: DualStorageClient,
    tmp_path: Path,
    call: MissingCall,
    store: str,
    bucket: str,
    key: str,
) -> None:
    with pytest.raises(ObjectNotFound) as excinfo:
        call(moto_storage, tmp_path / "dest.bin")
    error = excinfo.value
    assert isinstance(error, FileNotFoundError)
    assert isinstance(error, DualStorageError)
    message = str(error)
    assert f"{store} store" in message
    assert repr(bucket) in message
    assert repr(key) in message
    assert MOTO_SECRET_KEY not in message
    assert MOTO_ACCESS_KEY not in message
    assert (error.store, error.bucket, error.key) == (store, bucket, key)


def test_missing_bucket_is_reported_as_such(aws: None) -> None:
    storage_client = DualStorageClient(
        overrides={**MOTO_SETTINGS, "INTERNAL_BUCKET_SCHEMAS": "no-such-schemas"}
    )
    with pytest.raises(ObjectNotFound) as excinfo:
        storage_client.get_schema("ultralytics")
    assert "bucket does not exist" in str(excinfo.value)
    assert "'no-such-schemas'" in str(excinfo.value)
    assert MOTO_SECRET_KEY not in str(excinfo.value)


def test_failed_download_leaves_no_file(moto_storage: DualStorageClient, tmp_path: Path) -> None:
    dest_dir = tmp_path / "downloads"
    dest_dir.mkdir()
    dest = dest_dir / "model.pth"
    with pytest.raises(ObjectNotFound):
        moto_storage.download_weight("nope.pth", dest)
    assert not dest.exists()
    assert list(dest_dir.iterdir()) == []  # no temporary file left behind either


def test_failed_download_keeps_an_existing_destination(
    moto_storage: DualStorageClient, tmp_path: Path
) -> None:
    dest = tmp_path / "dataset.zip"
    dest.write_bytes(b"previous good copy")
    with pytest.raises(ObjectNotFound):
        moto_storage.download_dataset("datasets/nope.zip", dest)
    assert dest.read_bytes() == b"previous good copy"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset.zip"]


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
    moto_storage: DualStorageClient, tmp_path: Path, call: InvalidCall
) -> None:
    calls = record_api_calls(moto_storage)
    with pytest.raises(InvalidKey) as excinfo:
        call(moto_storage, tmp_path)
    assert calls == []
    assert excinfo.value.store in ("internal", "external")
    assert MOTO_SECRET_KEY not in str(excinfo.value)
    assert not (tmp_path / "dest").exists()


# -- reprs -------------------------------------------------------------------------------


def test_client_repr_has_no_secret(moto_storage: DualStorageClient) -> None:
    text = repr(moto_storage)
    assert MOTO_SECRET_KEY not in text
    assert MOTO_ACCESS_KEY not in text
    assert "internal" in text and "external" in text
    assert MOTO_SECRET_KEY not in repr(moto_storage.config)
    assert MOTO_SECRET_KEY not in repr(moto_storage.internal) + repr(moto_storage.external)


def test_lazy_client_repr_has_no_secret(moto_configured: DualStorageClient) -> None:
    assert moto_configured is dual_storage
    text = repr(dual_storage)
    assert "unconfigured" not in text  # the fixture has built the real moto_storage
    assert MOTO_ENDPOINT in text
    assert MOTO_SECRET_KEY not in text
    assert MOTO_ACCESS_KEY not in text


def test_lazy_client_repr_before_use(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = MOTO_SETTINGS
    assert repr(dual_storage) == "<lazy dual_storage: unconfigured>"


# -- the recorder the refusal tests rely on ----------------------------------------------


def test_api_call_recorder_sees_real_requests(moto_storage: DualStorageClient) -> None:
    """Positive control for the "no request was sent" assertions above."""
    calls = record_api_calls(moto_storage)
    assert not moto_storage.exists("weights", "resnet50.pth")
    moto_storage.delete("datasets", "datasets/a.zip")
    assert calls == ["HeadObject", "DeleteObject"]

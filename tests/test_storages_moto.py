"""The Django storages (``InternalStorage``, ``ExternalStorage``) against moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import (
    ConfigurationError,
    DualStorageError,
    InvalidArgument,
    InvalidKey,
    NoPublicURL,
)
from dual_storage_app.storages import (
    ExternalStorage,
    InternalStorage,
    datasets_storage,
    weights_storage,
)
from tests.helpers import BAD_KEY, MOTO_SECRET_KEY, MOTO_SETTINGS, record_api_calls


def test_internal_storage_has_no_url(moto_configured: DualStorageClient) -> None:
    for kind in ("weights", "checkpoints", "schemas"):
        storage = InternalStorage(kind=kind)
        with pytest.raises(NoPublicURL) as excinfo:
            storage.url("resnet50.pth")
        assert "internal" in str(excinfo.value)
        assert excinfo.value.store == "internal"


def test_internal_storage_refuses_url_even_for_a_bad_key(
    moto_configured: DualStorageClient,
) -> None:
    with pytest.raises(DualStorageError):
        weights_storage().url(BAD_KEY)


def test_external_storage_url_is_presigned(moto_configured: DualStorageClient) -> None:
    storage = datasets_storage()
    assert storage.bucket_name == "training-datasets"
    calls = record_api_calls(moto_configured)
    url = storage.url("datasets/abc-123.zip")
    query = parse_qs(urlsplit(url).query)
    assert "training-datasets" in url
    assert "datasets/abc-123.zip" in url
    assert query["X-Amz-Signature"]
    assert query["X-Amz-Expires"] == [str(storage.querystring_expire)]
    assert MOTO_SECRET_KEY not in url
    assert calls == []
    short = parse_qs(urlsplit(storage.url("datasets/abc-123.zip", expire=60)).query)
    assert short["X-Amz-Expires"] == ["60"]


def test_external_storage_url_refuses_bad_expiry(moto_configured: DualStorageClient) -> None:
    with pytest.raises(InvalidArgument):
        ExternalStorage().url("datasets/a.zip", expire=604801)


def test_storage_bound_to_the_wrong_store_is_refused(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = MOTO_SETTINGS
    with pytest.raises(ConfigurationError, match="not 'datasets'"):
        InternalStorage(kind="datasets")
    with pytest.raises(ConfigurationError, match="not 'weights'"):
        ExternalStorage(kind="weights")


def test_storage_round_trip(moto_configured: DualStorageClient) -> None:
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
    moto_configured: DualStorageClient, storage_class: type[Any], call: StorageCall
) -> None:
    storage = storage_class()
    calls = record_api_calls(moto_configured)
    with pytest.raises(InvalidKey) as excinfo:
        call(storage)
    assert excinfo.value.key == BAD_KEY
    assert excinfo.value.bucket == storage.bucket_name
    assert calls == []


def test_external_storage_url_refuses_path_traversal(moto_configured: DualStorageClient) -> None:
    with pytest.raises(InvalidKey) as excinfo:
        datasets_storage().url(BAD_KEY)
    assert excinfo.value.store == "external"
    assert excinfo.value.bucket == "training-datasets"


@pytest.mark.parametrize("name", ["a/./b.bin", "a//b.bin", "a\x00b.bin", "dir/"])
def test_storages_refuse_keys_django_would_clean(
    moto_configured: DualStorageClient, name: str
) -> None:
    storage = weights_storage()
    with pytest.raises(InvalidKey):
        storage.save(name, ContentFile(b"x"))
    assert list(moto_configured.list_objects("weights")) == []


def test_storages_refuse_listdir_of_a_traversal_path(moto_configured: DualStorageClient) -> None:
    with pytest.raises(InvalidKey):
        weights_storage().listdir(BAD_KEY)


@pytest.mark.parametrize("mode", ["wb", "ab", "rb+", "w"])
def test_storages_open_read_only(moto_configured: DualStorageClient, mode: str) -> None:
    calls = record_api_calls(moto_configured)
    with pytest.raises(ValueError, match="read-only"):
        datasets_storage().open("datasets/a.zip", mode)
    assert calls == []

"""The Django storages and ``FileField`` on the real servers: streamed saves, unique
names, no URL for internal files, presigned dataset URLs, names refused rather than
cleaned. Without a server: ``tests/test_storages_moto.py``.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import InvalidKey, NoPublicURL
from dual_storage_app.keys import validate_key
from dual_storage_app.storages import ExternalStorage, InternalStorage
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import HOSTILE_KEYS
from tests.http import fetch
from tests.testapp.models import Upload

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


def test_filefield_save_streams_to_the_internal_bucket(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    upload = Upload()
    upload.weight.save(f"{unique_key}.pth", ContentFile(b"weights" * 1000), save=True)
    name = upload.weight.name
    assert name is not None and name.startswith("weights/")
    assert real_storage.head("weights", name).size == 7000
    with upload.weight.open("rb") as handle:
        assert handle.read() == b"weights" * 1000
    assert upload.weight.size == 7000


def test_two_saves_of_one_name_never_overwrite(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    first, second = Upload(), Upload()
    first.weight.save(f"{unique_key}.pth", ContentFile(b"first"), save=False)
    second.weight.save(f"{unique_key}.pth", ContentFile(b"second"), save=False)
    assert first.weight.name and second.weight.name
    assert first.weight.name != second.weight.name
    assert real_storage.internal.get_bytes("model-weights", first.weight.name) == b"first"
    assert real_storage.internal.get_bytes("model-weights", second.weight.name) == b"second"


def test_internal_files_have_no_url(real_storage: DualStorageClient, unique_key: str) -> None:
    upload = Upload()
    upload.weight.save(f"{unique_key}.pth", ContentFile(b"w"), save=False)
    with pytest.raises(NoPublicURL, match="internal store"):
        _ = upload.weight.url


def test_dataset_url_is_presigned_and_serves_the_bytes(
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
    unique_key: str,
) -> None:
    public = f"http://localhost:{s3_servers['external'].s3_port}"
    settings.DUAL_STORAGE = {**settings.DUAL_STORAGE, "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": public}
    upload = Upload()
    upload.dataset.save(f"{unique_key}.zip", ContentFile(b"zip bytes"), save=False)
    url = upload.dataset.url
    assert urlsplit(url).netloc == urlsplit(public).netloc
    assert "X-Amz-Signature=" in url
    assert fetch(url) == b"zip bytes"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/abs", "a//b", "nul\x00", "a\\b"])
def test_storage_refuses_bad_names_instead_of_cleaning_them(
    real_storage: DualStorageClient, bad: str
) -> None:
    internal, external = InternalStorage(kind="weights"), ExternalStorage()
    for storage in (internal, external):
        with pytest.raises(InvalidKey):
            storage.save(bad, ContentFile(b"x"))
        with pytest.raises(InvalidKey):
            storage.open(bad)
        with pytest.raises(InvalidKey):
            storage.exists(bad)
        with pytest.raises(InvalidKey):
            storage.delete(bad)
    with pytest.raises(InvalidKey):
        external.url(bad)
    # Nothing was written under the cleaned name django-storages would have used.
    assert not real_storage.exists("weights", "etc/passwd")
    assert not real_storage.exists("datasets", "etc/passwd")


def test_storage_delete_and_exists(real_storage: DualStorageClient, unique_key: str) -> None:
    storage = ExternalStorage()
    name = storage.save(f"{unique_key}/d.zip", io.BytesIO(b"d"))
    assert name == f"{unique_key}/d.zip"
    assert storage.exists(name)
    storage.delete(name)
    assert not storage.exists(name)


def test_storages_alias(real_storage: DualStorageClient, settings: SettingsWrapper) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "checkpoints": {
            "BACKEND": "dual_storage_app.storages.InternalStorage",
            "OPTIONS": {"kind": "checkpoints"},
        },
    }
    storage = storages["checkpoints"]
    assert isinstance(storage, InternalStorage)
    assert storage.bucket_name == "training-checkpoints"


def test_storage_kind_must_belong_to_its_store(real_storage: DualStorageClient) -> None:
    with pytest.raises(Exception, match="not 'datasets'"):
        InternalStorage(kind="datasets")


def test_admin_file_widget_renders_an_internal_file_without_a_link(
    real_storage: DualStorageClient, s3_servers: dict[str, LocalS3Server], unique_key: str
) -> None:
    from django import forms

    class UploadForm(forms.ModelForm):  # type: ignore[type-arg]
        class Meta:
            model = Upload
            fields = ("weight", "dataset")

    upload = Upload()
    upload.weight.save(f"{unique_key}.pth", ContentFile(b"w"), save=False)
    upload.dataset.save(f"{unique_key}.zip", ContentFile(b"d"), save=False)
    html = UploadForm(instance=upload).as_p()
    assert s3_servers["internal"].endpoint_url not in html
    assert f"/model-weights/{upload.weight.name}" not in html
    assert "X-Amz-Signature" in html  # the dataset gets its presigned link


@pytest.mark.parametrize("name", HOSTILE_KEYS)
def test_plain_filefield_never_stores_under_a_cleaned_alias(
    name: str, real_storage: DualStorageClient
) -> None:
    """A user's own ``FileField(storage=datasets_storage, upload_to="datasets/")``: the
    name is refused, or stored under a valid key below ``datasets/`` that holds exactly
    these bytes (Django's generated names are suggestions, made unique)."""
    upload = Upload()
    payload = b"plain filefield " + name.encode()
    try:
        upload.dataset.save(name, ContentFile(payload), save=False)
    except SuspiciousFileOperation:  # InvalidKey is one too
        return
    key = upload.dataset.name
    assert key is not None and validate_key(key) == key and key.startswith("datasets/")
    assert real_storage.external.get_bytes("training-datasets", key) == payload

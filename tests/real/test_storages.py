"""The Django storages and ``FileField`` on the real servers: streamed saves, unique
names, no URL for internal files, presigned dataset URLs, names refused rather than
cleaned. Without a server: ``tests/test_storages_moto.py``.
"""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import (
    ConfigurationError,
    InvalidArgument,
    InvalidKey,
    NoPublicURL,
)
from dual_storage_app.keys import validate_key
from dual_storage_app.storages import (
    ExternalStorage,
    InternalStorage,
    datasets_storage,
    weights_storage,
)
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


# -- the S3Storage contract (issue 10, §4) ------------------------------------------------

CONTRACT_STORAGES: dict[str, Callable[..., Any]] = {
    "internal": lambda **options: InternalStorage(kind="weights", **options),
    "external": lambda **options: ExternalStorage(**options),
}


def _raw(s3_servers: dict[str, LocalS3Server], storage: Any) -> Any:
    """A boto3 client of the storage's own server, for looking behind the storage."""
    return s3_servers[storage.store_name].client()


@pytest.mark.parametrize("store", sorted(CONTRACT_STORAGES))
def test_connection_bucket_and_bucket_name_are_the_configured_store(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    unique_key: str,
    store: str,
) -> None:
    storage = CONTRACT_STORAGES[store]()
    engine, bucket = real_storage.locate(storage.kind)
    assert storage.bucket_name == bucket
    assert storage.connection.meta.client.meta.endpoint_url == s3_servers[store].endpoint_url
    assert storage.connection.meta.client is engine.client  # one pool, one set of credentials
    assert storage.bucket.name == bucket
    name = storage.save(f"{unique_key}/c.bin", ContentFile(b"through the engine"))
    # Third-party code (django-s3-file-field) uses the resource: it reaches the same object.
    assert storage.bucket.Object(name).get()["Body"].read() == b"through the engine"
    for thread_connection in _in_another_thread(lambda: storage.connection):
        assert thread_connection is not storage.connection  # resources are per thread
        assert thread_connection.meta.client is engine.client


def _in_another_thread(call: Any) -> list[Any]:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(call()))
    thread.start()
    thread.join()
    return results


@pytest.mark.parametrize("store", sorted(CONTRACT_STORAGES))
def test_a_replaced_connection_carries_the_storage_requests(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    unique_key: str,
    store: str,
) -> None:
    """What a user's test does with ``mock.patch`` of ``connection``: here a real resource
    of the same server whose client records every request, so nothing is faked."""
    storage = CONTRACT_STORAGES[store]()
    resource = boto3.resource(
        "s3",
        endpoint_url=s3_servers[store].endpoint_url,
        aws_access_key_id=s3_servers[store].access_key,
        aws_secret_access_key=s3_servers[store].secret_key,
        region_name="us-east-1",
    )
    operations: list[str] = []
    resource.meta.client.meta.events.register(
        "before-call.s3", lambda model, **_: operations.append(model.name)
    )
    storage._connections.connection = resource
    name = storage.save(f"{unique_key}/m.bin", ContentFile(b"mocked"))
    assert storage.exists(name)
    with storage.open(name) as handle:
        assert handle.read() == b"mocked"
    assert storage.listdir(unique_key) == ([], ["m.bin"])
    storage.delete(name)
    assert {"PutObject", "HeadObject", "GetObject", "ListObjectsV2", "DeleteObject"} <= set(
        operations
    )


@pytest.mark.parametrize("store", sorted(CONTRACT_STORAGES))
def test_open_r_is_text_with_universal_newlines_and_rb_refuses_writes(
    real_storage: DualStorageClient, unique_key: str, store: str
) -> None:
    storage = CONTRACT_STORAGES[store]()
    name = storage.save(f"{unique_key}/n.txt", io.BytesIO(b"line1\nline2\r\nmore\rtext \xc3\xa9"))
    with storage.open(name, "r") as text:
        assert text.readlines() == ["line1\n", "line2\n", "more\n", "text \u00e9"]
    with storage.open(name, "rb") as binary:
        assert binary.read() == b"line1\nline2\r\nmore\rtext \xc3\xa9"
        with pytest.raises(io.UnsupportedOperation):
            binary.write(b"lost")
    with storage.open(name) as default, pytest.raises(io.UnsupportedOperation):
        default.write(b"lost")
    with storage.open(name, "r") as text, pytest.raises(io.UnsupportedOperation):
        text.write("lost")


def test_listdir_skips_the_folder_marker(
    real_storage: DualStorageClient, s3_servers: dict[str, LocalS3Server], unique_key: str
) -> None:
    storage = ExternalStorage()
    _raw(s3_servers, storage).put_object(
        Bucket=storage.bucket_name, Key=f"{unique_key}/dir/", Body=b""
    )
    storage.save(f"{unique_key}/dir/f.zip", ContentFile(b"f"))
    assert storage.listdir(f"{unique_key}/dir") == ([], ["f.zip"])
    assert storage.listdir(f"{unique_key}/dir/") == ([], ["f.zip"])
    assert storage.listdir(unique_key) == (["dir"], [])


SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}


@pytest.mark.parametrize("source", ["option", "setting", "method"])
def test_object_parameters_reach_the_store(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    settings: SettingsWrapper,
    unique_key: str,
    source: str,
) -> None:
    parameters = {
        "CacheControl": "max-age=60",
        "ContentDisposition": "attachment",
        "Metadata": {"origin": source},
        **SSE_C,
    }

    class PerObject(ExternalStorage):
        def get_object_parameters(self, name: str) -> dict[str, Any]:
            return {**parameters, "Metadata": {"origin": name.rsplit("/", 1)[-1]}}

    if source == "option":
        storage: ExternalStorage = ExternalStorage(object_parameters=parameters)
    elif source == "setting":
        settings.AWS_S3_OBJECT_PARAMETERS = parameters
        storage = ExternalStorage()
    else:
        storage = PerObject()
    name = storage.save(f"{unique_key}/method", ContentFile(b"p"))
    head = _raw(s3_servers, storage).head_object(Bucket=storage.bucket_name, Key=name, **SSE_C)
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == "attachment"
    assert head["Metadata"] == {"origin": source}
    assert head["SSECustomerAlgorithm"] == "AES256"
    # exists() and size() send the SSE-C key a HEAD of such an object needs.
    assert storage.exists(name)
    assert storage.size(name) == 1
    # open() sends it with every GET of the verified download (it could not read it back).
    with storage.open(name, "rb") as handle:
        assert handle.read() == b"p"


def test_acl_parameters_stay_refused(real_storage: DualStorageClient, unique_key: str) -> None:
    with pytest.raises(ConfigurationError, match="ACL"):
        ExternalStorage(object_parameters={"ACL": "public-read"})

    class Public(ExternalStorage):
        def get_object_parameters(self, name: str) -> dict[str, Any]:
            return {"ACL": "public-read"}

    with pytest.raises(InvalidArgument, match="ACL"):
        Public().save(f"{unique_key}/acl.zip", ContentFile(b"x"))
    assert not ExternalStorage().exists(f"{unique_key}/acl.zip")


@pytest.mark.parametrize("store", sorted(CONTRACT_STORAGES))
def test_gzip_compresses_listed_types_and_open_decompresses(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    unique_key: str,
    store: str,
) -> None:
    storage = CONTRACT_STORAGES[store](gzip=True)
    css = b"body { color: red }\n" * 100
    name = storage.save(f"{unique_key}/a.css", ContentFile(css))
    response = _raw(s3_servers, storage).get_object(Bucket=storage.bucket_name, Key=name)
    assert response["ContentEncoding"] == "gzip"
    assert response["ContentType"] == "text/css"
    assert gzip.decompress(response["Body"].read()) == css
    with storage.open(name, "rb") as handle:
        assert handle.read() == css
    plain = storage.save(f"{unique_key}/a.bin", ContentFile(b"not compressed"))
    response = _raw(s3_servers, storage).get_object(Bucket=storage.bucket_name, Key=plain)
    assert "ContentEncoding" not in response
    assert response["Body"].read() == b"not compressed"


def test_gz_names_keep_their_content_encoding(
    real_storage: DualStorageClient, s3_servers: dict[str, LocalS3Server], unique_key: str
) -> None:
    storage = ExternalStorage()
    packed = gzip.compress(b"tar bytes")
    name = storage.save(f"{unique_key}/data.tar.gz", ContentFile(packed))
    head = _raw(s3_servers, storage).head_object(Bucket=storage.bucket_name, Key=name)
    assert (head["ContentType"], head.get("ContentEncoding")) == ("application/x-tar", "gzip")
    with storage.open(name, "rb") as handle:  # gzip off: the stored bytes, as S3Storage
        assert handle.read() == packed


class OverwritingStorage(ExternalStorage):
    file_overwrite = True


@pytest.mark.parametrize("how", ["class attribute", "setting"])
def test_file_overwrite_follows_s3storage_precedence(
    real_storage: DualStorageClient, settings: SettingsWrapper, unique_key: str, how: str
) -> None:
    name = f"{unique_key}/o.zip"
    if how == "setting":
        settings.AWS_S3_FILE_OVERWRITE = True
        storage: ExternalStorage = ExternalStorage()
    else:
        storage = OverwritingStorage()
    assert storage.save(name, ContentFile(b"1")) == name
    assert storage.save(name, ContentFile(b"2")) == name
    assert real_storage.external.get_bytes("training-datasets", name) == b"2"
    # The constructor option wins over both, and the default stays "never overwrite".
    for keeping in (
        OverwritingStorage(file_overwrite=False),
        ExternalStorage(file_overwrite=False),
    ):
        assert keeping.save(name, ContentFile(b"3")) != name
    del settings.AWS_S3_FILE_OVERWRITE
    assert ExternalStorage().save(name, ContentFile(b"4")) != name


class LocatedStorage(InternalStorage):
    location = "media"


@pytest.mark.parametrize("how", ["option", "class attribute", "setting"])
def test_location_is_refused_wherever_it_is_set(
    real_storage: DualStorageClient, settings: SettingsWrapper, how: str
) -> None:
    with pytest.raises(ConfigurationError, match="location"):
        if how == "option":
            InternalStorage(location="media")
        elif how == "class attribute":
            LocatedStorage()
        else:
            settings.AWS_LOCATION = "media"
            InternalStorage()
    # An explicit empty location is accepted, and the app's own storages never take one.
    settings.AWS_LOCATION = "media"
    assert InternalStorage(location="").location == ""
    assert weights_storage().location == "" and datasets_storage().location == ""


class CustomDomainStorage(ExternalStorage):
    custom_domain = "cdn.example.com"


@pytest.mark.parametrize("how", ["option", "class attribute", "setting"])
def test_custom_domain_is_refused_wherever_it_is_set(
    real_storage: DualStorageClient, settings: SettingsWrapper, unique_key: str, how: str
) -> None:
    # S3Storage would serve url() from that domain; ours presign on the public endpoint, so
    # a custom domain set anywhere is refused rather than silently ignored.
    with pytest.raises(ConfigurationError, match="custom_domain"):
        if how == "option":
            ExternalStorage(custom_domain="cdn.example.com")
        elif how == "class attribute":
            CustomDomainStorage()
        else:
            settings.AWS_S3_CUSTOM_DOMAIN = "cdn.example.com"
            ExternalStorage()
    # A project that sets it for its other S3 storages still builds ours: the callables
    # pass None, as may a STORAGES alias.
    settings.AWS_S3_CUSTOM_DOMAIN = "cdn.example.com"
    storage = datasets_storage()
    assert ExternalStorage(custom_domain=None).custom_domain is None
    name = storage.save(f"{unique_key}/cdn.zip", ContentFile(b"z"))
    assert "cdn.example.com" not in storage.url(name)
    assert fetch(storage.url(name)) == b"z"


def test_url_parameters_accepted_as_s3storage_accepts_them(
    public_endpoint: str, unique_key: str
) -> None:
    storage = ExternalStorage()
    name = storage.save(f"{unique_key}/v.zip", ContentFile(b"versioned"))
    url = storage.url(name, parameters={"VersionId": "null", "ResponseCacheControl": "no-cache"})
    assert "versionId=null" in url and "response-cache-control=no-cache" in url
    for refused, why in [
        ("SSECustomerKey", "header"),
        ("IfMatch", "header"),
        ("Range", "header"),
        ("Bucket", "bucket"),
    ]:
        with pytest.raises(InvalidArgument, match=f"{refused}.*{why}"):
            storage.url(name, parameters={refused: "x"})

"""Presigned URLs on the real servers: they serve the bytes, are signed for the public
endpoint (every way of getting one: client, storage, field, admin action, link view,
command, change form), expire, refuse tampering, cannot be retargeted, and bad expiries
are refused everywhere before anything is signed. Without a server:
``tests/test_presign.py``.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError
from django.test import Client
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.exceptions import InvalidArgument
from dual_storage_app.models import Dataset
from dual_storage_app.storages import ExternalStorage
from dual_storage_app.store.transfer import MAX_PRESIGN_SECONDS
from dual_storage_app.testing.server import LocalS3Server
from tests.botocore_clock import frozen_botocore_clock
from tests.helpers import (
    StartedRequests,
    admin_url,
    make,
    private_endpoints,
    real_settings,
    run_command,
    run_with_stderr,
)
from tests.http import fetch, refusal_status

pytestmark = pytest.mark.real_s3


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


@pytest.mark.parametrize("with_public_endpoint", [False, True])
def test_real_server_serves_fast_urls_and_refuses_bad_ones(
    real_storage: DualStorageClient,
    request: pytest.FixtureRequest,
    unique_key: str,
    with_public_endpoint: bool,
) -> None:
    if with_public_endpoint:
        request.getfixturevalue("public_endpoint")
    store, bucket = real_storage.locate("datasets")
    assert store._link_signer().fast_path(bucket)
    key = f"{unique_key}/a b+c~d%e#f?g=h&i/日本語 ü.zip"
    real_storage.upload_dataset(io.BytesIO(b"fast bytes"), key)

    url = store.presign_get(bucket, key, 60)
    assert fetch(url) == b"fast bytes"
    disposition = {"ResponseContentDisposition": "attachment; filename=x.zip"}
    assert fetch(store.presign_get(bucket, key, 60, extra=disposition)) == b"fast bytes"
    assert fetch(ExternalStorage().url(key)) == b"fast bytes"
    assert fetch(ExternalStorage().url(key, parameters=disposition, expire=30)) == b"fast bytes"
    if with_public_endpoint:
        assert urlsplit(url).hostname == "localhost"

    head, signature = url.rsplit("=", 1)
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert refusal_status(f"{head}={flipped}") == 403

    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    an_hour_ago = now - datetime.timedelta(hours=1)
    with frozen_botocore_clock(an_hour_ago):
        expired = store.presign_get(bucket, key, 60)
    assert "X-Amz-Expires=60" in expired
    assert refusal_status(expired) == 403


def test_presign_parameters_cannot_retarget_the_link(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    store, bucket = real_storage.locate("datasets")
    key = f"{unique_key}/d.zip"
    with pytest.raises(InvalidArgument) as refused:
        store.presign_get(bucket, key, 60, extra={"Bucket": "model-weights", "Key": "x"})
    # Each refused parameter is named with its reason.
    assert "Bucket (the bucket and key are the storage's own)" in str(refused.value)
    assert "Key (the bucket and key are the storage's own)" in str(refused.value)
    url = store.presign_get(
        bucket, key, 60, extra={"ResponseContentDisposition": "attachment; filename=d.zip"}
    )
    assert f"/{bucket}/{unique_key}/d.zip?" in url
    assert "response-content-disposition=attachment" in url


# -- presigned URLs use the public endpoint ----------------------------------------------


@pytest.mark.django_db
def test_every_presigned_url_uses_the_public_endpoint(
    public_endpoint: str,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    data = b"dataset for a browser"
    dataset = make(Dataset, data)
    urls: dict[str, str] = {
        "client": dual_storage.generate_dataset_presigned_url(dataset.key, 60),
        "storage.url": ExternalStorage().url(dataset.key),
        "FieldFile.url": dataset.file.url,
    }
    result = admin_client.post(
        admin_url(Dataset, "changelist"),
        {
            "action": "create_presigned_links",
            "_selected_action": [dataset.pk],
            "expires": "60",
            "apply": "1",
        },
    )
    urls["admin action"] = {link.dataset: link.url for link in result.context["links"]}[dataset]
    link = admin_client.get(reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk}))
    assert link.status_code == 302
    urls["dataset-link view"] = link["Location"]
    command = json.loads(run_command("dualstorage_presign", "--id", str(dataset.pk), "--json"))
    urls["presign command"] = command["url"]
    change = admin_client.get(admin_url(Dataset, "change", dataset.pk)).content.decode()
    hrefs = re.findall(r'href="(https?://[^"]+)"', change)
    assert hrefs, "the change form links the dataset"
    urls["change form"] = hrefs[0].replace("&amp;", "&")
    public = urlsplit(public_endpoint)
    for label, url in urls.items():
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == (public.scheme, public.netloc), label
        assert "X-Amz-Signature=" in url, label
        for endpoint in private_endpoints(s3_servers):
            assert endpoint not in url, label
        assert fetch(url) == data, label


# -- presign expiry ----------------------------------------------------------------------


BAD_EXPIRIES: list[Any] = [0, -1, MAX_PRESIGN_SECONDS + 1, 1.5, True]


@pytest.fixture
def dataset_key(real_storage: DualStorageClient, unique_key: str) -> str:
    key = f"{unique_key}/expiry.zip"
    real_storage.upload_dataset(io.BytesIO(b"expiry"), key)
    return key


@pytest.mark.parametrize("expires", BAD_EXPIRIES, ids=repr)
def test_bad_expiry_is_refused_by_client_and_storage(
    expires: Any, real_storage: DualStorageClient, dataset_key: str
) -> None:
    log = StartedRequests().watch(real_storage)
    problem = r"1 to 604800 seconds|must be an int number of seconds"
    with pytest.raises(InvalidArgument, match=problem) as caught:
        real_storage.generate_dataset_presigned_url(dataset_key, expires)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidArgument, match=problem):
        real_storage.external.presign_get("training-datasets", dataset_key, expires)
    with pytest.raises(InvalidArgument, match=problem):
        ExternalStorage().url(dataset_key, expire=expires)
    log.assert_nothing()


@pytest.mark.django_db
@pytest.mark.parametrize("expires", BAD_EXPIRIES, ids=repr)
def test_bad_expiry_is_refused_by_the_presign_command(
    expires: Any, real_storage: DualStorageClient, dataset_key: str
) -> None:
    with pytest.raises(CommandError, match=r"604800|invalid int value"):
        run_with_stderr("dualstorage_presign", "--key", dataset_key, f"--expires={expires}")


@pytest.mark.django_db
@pytest.mark.parametrize("expires", BAD_EXPIRIES, ids=repr)
def test_bad_expiry_is_refused_by_the_admin_form_and_the_link_view(
    expires: Any, real_storage: DualStorageClient, admin_client: Client
) -> None:
    dataset = Dataset(name="expiry")
    dataset.file.save("expiry.zip", ContentFile(b"expiry"))
    page = admin_client.post(
        reverse("admin:dual_storage_app_dataset_changelist"),
        {
            "action": "create_presigned_links",
            "_selected_action": [dataset.pk],
            "expires": str(expires),
            "apply": "1",
        },
    )
    assert page.status_code == 200
    assert "links" not in page.context and page.context["form"].errors["expires"]
    assert b"X-Amz-Signature" not in page.content
    link = reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk})
    assert admin_client.get(link, {"expires": str(expires)}).status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("expires", [1, MAX_PRESIGN_SECONDS])
def test_expiry_bounds_are_accepted_everywhere(
    expires: int, real_storage: DualStorageClient, dataset_key: str, admin_client: Client
) -> None:
    marker = f"X-Amz-Expires={expires}&"
    assert marker in real_storage.generate_dataset_presigned_url(dataset_key, expires) + "&"
    assert marker in ExternalStorage().url(dataset_key, expire=expires) + "&"
    assert (
        marker
        in run_with_stderr("dualstorage_presign", "--key", dataset_key, f"--expires={expires}")
        + "&"
    )

"""The download and dataset-link views on the real servers: exact bytes for staff with
permission, the login for anonymous users, 403 without permission, 404 for other kinds
and traversal, 502 without secrets on a store failure, streaming under ASGI.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Artifact, ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import (
    assert_nothing_private,
    assert_page_is_clean,
    download_url,
    make,
    real_settings,
)
from tests.http import fetch

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


def link_url(pk: int) -> str:
    return reverse("dual_storage_app:dataset-link", kwargs={"pk": pk})


def body(response: Any) -> bytes:
    """The whole streamed body; consuming it closes the response."""
    return b"".join(response.streaming_content)


def user_client(django_user_model: Any, *, staff: bool, perms: tuple[str, ...] = ()) -> Client:
    user = django_user_model.objects.create_user(
        username=f"u-{uuid.uuid4().hex[:8]}", password="pw", is_staff=staff
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client = Client()
    client.force_login(user)
    return client


def test_staff_with_permission_gets_the_exact_bytes(
    real_storage: DualStorageClient, django_user_model: Any
) -> None:
    data = bytes(range(256)) * (10 * 1024) + b"tail"  # 2.5 MiB: several 1 MiB chunks
    weight = make(ModelWeight, data, "resnet 50.pth")
    client = user_client(django_user_model, staff=True, perms=("view_modelweight",))
    response = client.get(download_url("weights", weight.pk))
    assert response.status_code == 200 and response.streaming
    chunks = list(response.streaming_content)  # type: ignore[attr-defined]
    assert len(chunks) == 3 and len(chunks[0]) == MiB
    assert b"".join(chunks) == data
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == weight.sha256
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Disposition"] == 'attachment; filename="resnet_50.pth"'
    assert response["ETag"] == f'"{weight.etag}"'
    assert "private" in response["Cache-Control"]
    assert "Location" not in response


@pytest.mark.parametrize(
    ("model", "kind", "fields"),
    [
        (TrainingCheckpoint, "checkpoints", {"job_id": "42", "epoch": 1}),
        (ConfigSchema, "schemas", {"framework": "view-test"}),
    ],
)
def test_superuser_downloads_every_internal_kind(
    model: type[Artifact],
    kind: str,
    fields: dict[str, Any],
    real_storage: DualStorageClient,
    admin_client: Client,
) -> None:
    artifact = make(model, b'{"a": 1}', "schema.json", **fields)
    response = admin_client.get(download_url(kind, artifact.pk))
    assert response.status_code == 200 and body(response) == b'{"a": 1}'
    assert response["Content-Type"] == "application/json"


def test_anonymous_is_sent_to_the_admin_login(real_storage: DualStorageClient) -> None:
    weight = make(ModelWeight, b"w")
    url = download_url("weights", weight.pk)
    for target in (url, link_url(1)):
        response = Client().get(target)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('admin:login')}?next={quote(target)}"


def test_anonymous_is_sent_to_the_project_login_url(
    real_storage: DualStorageClient, settings: SettingsWrapper
) -> None:
    settings.LOGIN_URL = "/accounts/sign-in/"
    response = Client().get(download_url("weights", 1))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/sign-in/?next=")


@pytest.mark.parametrize(
    ("staff", "perms"),
    [(False, ()), (True, ()), (False, ("view_modelweight",)), (True, ("view_dataset",))],
)
def test_download_needs_staff_and_view_permission(
    staff: bool, perms: tuple[str, ...], real_storage: DualStorageClient, django_user_model: Any
) -> None:
    weight = make(ModelWeight, b"secret weights")
    client = user_client(django_user_model, staff=staff, perms=perms)
    response = client.get(download_url("weights", weight.pk))
    assert response.status_code == 403
    assert b"secret weights" not in response.content


@pytest.mark.parametrize("kind", ["datasets", "nope", "weights/../datasets"])
def test_download_of_datasets_or_unknown_kinds_is_404(
    kind: str, real_storage: DualStorageClient, admin_client: Client
) -> None:
    dataset = make(Dataset, b"d")
    url = f"/storage/{kind}/{dataset.pk}/download/"
    assert admin_client.get(url).status_code == 404


def test_download_of_a_missing_row_is_404(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    assert admin_client.get(download_url("weights", 999_999)).status_code == 404


def test_download_of_a_missing_object_is_a_clear_404(
    real_storage: DualStorageClient, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    weight = make(ModelWeight, b"gone soon")
    real_storage.delete("weights", weight.key)
    response = admin_client.get(download_url("weights", weight.pk))
    assert response.status_code == 404
    text = response.content.decode()
    assert weight.key in text and "model-weights" in text and "missing" in text
    assert_nothing_private(response.content, s3_servers)


def test_download_only_answers_get(real_storage: DualStorageClient, admin_client: Client) -> None:
    weight = make(ModelWeight, b"w")
    assert admin_client.post(download_url("weights", weight.pk)).status_code == 405


def test_dataset_link_redirects_to_a_working_presigned_url(
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
    django_user_model: Any,
) -> None:
    public = f"http://localhost:{s3_servers['external'].s3_port}"
    settings.DUAL_STORAGE = real_settings(s3_servers, EXTERNAL_STORAGE_PUBLIC_ENDPOINT=public)
    dataset = make(Dataset, b"dataset for the browser", "data.zip")
    client = user_client(django_user_model, staff=False, perms=("view_dataset",))
    response = client.get(link_url(dataset.pk))
    assert response.status_code == 302
    location = response["Location"]
    assert urlsplit(location).netloc == urlsplit(public).netloc
    assert "X-Amz-Expires=3600" in location
    assert fetch(location) == b"dataset for the browser"
    short = client.get(link_url(dataset.pk), {"expires": "60"})
    assert short.status_code == 302 and "X-Amz-Expires=60" in short["Location"]


@pytest.mark.parametrize("expires", ["0", "604801", "-5", "1.5", "soon"])
def test_dataset_link_refuses_a_bad_expiry(
    expires: str, real_storage: DualStorageClient, admin_client: Client
) -> None:
    dataset = make(Dataset, b"d")
    response = admin_client.get(link_url(dataset.pk), {"expires": expires})
    assert response.status_code == 400
    assert b"604800" in response.content


def test_dataset_link_needs_view_permission_and_a_row(
    real_storage: DualStorageClient, admin_client: Client, django_user_model: Any
) -> None:
    dataset = make(Dataset, b"d")
    refused = user_client(django_user_model, staff=True, perms=("view_modelweight",))
    assert refused.get(link_url(dataset.pk)).status_code == 403
    assert admin_client.get(link_url(999_999)).status_code == 404


def test_store_failure_is_a_502_without_endpoint_or_secret(
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
    admin_client: Client,
) -> None:
    weight = make(ModelWeight, b"w")
    wrong = real_settings(s3_servers, INTERNAL_STORAGE_SECRET_KEY="wrong-secret-Hx93kQ")
    settings.DUAL_STORAGE = wrong
    response = admin_client.get(download_url("weights", weight.pk))
    assert response.status_code == 502
    assert b"refused" in response.content and weight.key.encode() in response.content
    assert b"wrong-secret-Hx93kQ" not in response.content
    assert_nothing_private(response.content, s3_servers)


def test_asgi_download_streams_without_buffering(
    real_storage: DualStorageClient, admin_user: Any
) -> None:
    """Under ASGI the view hands Django an async iterator (no 'must consume synchronous
    iterators' warning, which the suite turns into an error, and no whole-body buffer)."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    data = bytes(range(256)) * (12 * 1024)  # 3 MiB
    weight = make(ModelWeight, data, "asgi.pth")
    client = AsyncClient()
    client.force_login(admin_user)

    async def fetch_body() -> tuple[int, bool, bytes]:
        response: Any = await client.get(download_url("weights", weight.pk))
        content = b"".join([chunk async for chunk in response.streaming_content])
        return response.status_code, response.is_async, content

    status, is_async, content = async_to_sync(fetch_body)()
    assert status == 200 and is_async
    assert content == data


def test_view_only_staff_can_open_an_internal_change_page(
    real_storage: DualStorageClient, django_user_model: Any
) -> None:
    weight = make(ModelWeight, b"view only", "v.pth")
    client = user_client(django_user_model, staff=True, perms=("view_modelweight",))
    response = client.get(reverse("admin:dual_storage_app_modelweight_change", args=[weight.pk]))
    assert response.status_code == 200
    assert weight.key in response.content.decode()
    changelist = client.get(reverse("admin:dual_storage_app_modelweight_changelist"))
    assert b'value="download"' in changelist.content
    assert b'value="verify_integrity"' not in changelist.content  # needs change permission


# -- anonymous users, users without permission, hostile paths ----------------------------


def test_views_refuse_anonymous_users_and_users_without_permission(
    real_storage: DualStorageClient,
    django_user_model: Any,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    weight, dataset = make(ModelWeight, b"private weights"), make(Dataset, b"dataset")
    download = reverse("dual_storage_app:artifact-download", args=["weights", weight.pk])
    link = reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk})
    for url in (download, link):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{reverse('admin:login')}?next={quote(url)}"

    def user(staff: bool, *perms: str) -> Client:
        account = django_user_model.objects.create_user(
            username=f"u-{uuid.uuid4().hex[:8]}", password="pw", is_staff=staff
        )
        account.user_permissions.add(*Permission.objects.filter(codename__in=perms))
        client = Client()
        client.force_login(account)
        return client

    refused: list[tuple[Client, str]] = [
        (user(False), download),
        (user(True), download),
        (user(False, "view_modelweight"), download),  # permission, but not staff
        (user(True, "view_dataset"), download),  # another model's permission
        (user(False), link),
        (user(True), link),
        (user(True, "view_modelweight"), link),
    ]
    for client, url in refused:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Location" not in response
        assert b"private weights" not in response.content
        assert_page_is_clean(response.content, s3_servers, url, internal=True)


def test_views_answer_404_to_a_kind_with_traversal(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    weight = ModelWeight(name="w")
    weight.file.save("w.pth", ContentFile(b"weights"))
    dataset = Dataset(name="d")
    dataset.file.save("d.zip", ContentFile(b"dataset"))
    response: Any = admin_client.get(f"/storage/weights/{weight.pk}/download/")
    assert response.status_code == 200  # the control: this kind and id do download
    # Reading the whole body closes the response (the test client's wrapper does, with
    # the database connection kept: a second close() would close it on PostgreSQL).
    assert body(response) == b"weights"
    hostile_kinds = [
        "..",
        ".",
        "%2e%2e",
        "weights%2F..%2Fdatasets",
        "weights/../datasets",
        "..%2Fweights",
        "weights%00",
        "weights%5C..%5Cdatasets",
        "WEIGHTS",
        "weights%E2%80%8B",  # weights + zero-width space
        "datasets",
    ]
    for kind in hostile_kinds:
        for pk in (weight.pk, dataset.pk):
            response = admin_client.get(f"/storage/{kind}/{pk}/download/")
            assert response.status_code == 404, kind
    for path in (
        f"/storage/../weights/{weight.pk}/download/",
        f"/storage/datasets/..%2F{dataset.pk}/link/",
        f"/storage/datasets/{dataset.pk}%00/link/",
    ):
        assert admin_client.get(path).status_code == 404, path


def test_a_misconfiguration_during_a_request_is_a_503_naming_the_problem(
    real_storage: DualStorageClient,
    admin_client: Client,
    settings: SettingsWrapper,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    """Not a 500 (link view) or a 502 (download view): a 503 that names the check ids
    and sends the operator to ``manage.py check``, without the endpoint or a secret."""
    weight, dataset = make(ModelWeight, b"w"), make(Dataset, b"d")
    broken = {**real_settings(s3_servers), "INTERNAL_STORAGE_ENDPOINT": "ftp://127.0.0.1:1"}
    broken.pop("EXTERNAL_STORAGE_SECRET_KEY")
    settings.DUAL_STORAGE = broken
    for url in (download_url(weight.kind, weight.pk), link_url(dataset.pk)):
        response = admin_client.get(url)
        assert response.status_code == 503, url
        text = response.content.decode()
        assert "dual_storage_app.E002" in text and "dual_storage_app.E003" in text
        assert "manage.py check" in text
        assert "ftp://" not in text and "127.0.0.1" not in text
        assert_nothing_private(response.content, s3_servers)

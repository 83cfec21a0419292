"""The link audit on the real servers: every presigned link handed to a person is recorded
(who, which dataset and key, until when, when, from where) by every path that hands one
out, never with its URL; ``ExternalStorage.url()`` in batches; ``LINK_AUDIT=false``; the
retention of the records."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.audit import BATCH_SIZE, IssuedLink, audit
from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset
from dual_storage_app.storages import datasets_storage
from tests.helpers import run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


@pytest.fixture
def dataset(dual_storage_buckets: DualStorageClient) -> Dataset:
    row = Dataset(name="coco")
    row.file.save("coco.zip", ContentFile(b"zip bytes"))
    IssuedLink.objects.all().delete()
    return row


def _end_of_request() -> None:
    """Django's request_finished, as the test client sends it: without closing the
    database connection (PostgreSQL's would end the test's transaction)."""
    request_finished.disconnect(close_old_connections)
    try:
        request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)


def _no_url_kept(url: str) -> None:
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    for record in IssuedLink.objects.values():
        assert signature not in " ".join(str(value) for value in record.values())


def test_the_client_records_the_process(
    dual_storage_buckets: DualStorageClient, dataset: Dataset
) -> None:
    before = timezone.now().replace(microsecond=0)
    url = dual_storage_buckets.generate_dataset_presigned_url(dataset.key, expiration=600)
    record = IssuedLink.objects.get()
    assert (record.via, record.key, record.bucket, record.store) == (
        "client",
        dataset.key,
        dataset.bucket,
        "external",
    )
    assert record.actor.startswith("process ") and " pid " in record.actor
    assert record.user_id is None and record.remote_addr is None
    assert before <= record.issued_at <= timezone.now()
    assert record.expires_at - record.issued_at == dt.timedelta(seconds=600)
    _no_url_kept(url)


def test_the_link_view_records_the_user_and_address(
    dataset: Dataset, admin_user: User, client: Client
) -> None:
    client.force_login(admin_user)
    response = client.get(
        reverse("dual_storage_app:dataset-link", args=[dataset.pk]) + "?expires=120",
        REMOTE_ADDR="192.0.2.7",
    )
    assert response.status_code == 302
    record = IssuedLink.objects.get()
    assert (record.via, record.user_id, record.actor) == ("view", admin_user.pk, "admin")
    assert (record.remote_addr, record.dataset_id) == ("192.0.2.7", dataset.pk)
    assert record.expires_at - record.issued_at == dt.timedelta(seconds=120)
    _no_url_kept(response["Location"])


def test_the_command_records_itself(dataset: Dataset) -> None:
    out = run_json("dualstorage_presign", "--id", str(dataset.pk), "--expires", "60")
    record = IssuedLink.objects.get()
    assert record.via == "command" and record.actor.startswith("dualstorage_presign: process")
    assert record.dataset_id == dataset.pk
    _no_url_kept(out["url"])


def test_storage_urls_are_recorded_in_batches(dataset: Dataset) -> None:
    storage = datasets_storage()
    count = BATCH_SIZE * 2 + 7
    urls = [storage.url(dataset.key) for _ in range(count)]
    assert IssuedLink.objects.count() == BATCH_SIZE * 2  # two full batches written
    _end_of_request()  # the end of the request writes the rest
    assert IssuedLink.objects.filter(via="storage").count() == count
    _no_url_kept(urls[-1])
    # The exit hook writes whatever a thread left waiting.
    storage.url(dataset.key)
    audit.flush_all()
    assert IssuedLink.objects.count() == count + 1


def test_link_audit_off_records_nothing(
    dual_storage_buckets: DualStorageClient, dataset: Dataset, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = {**settings.DUAL_STORAGE, "LINK_AUDIT": "false"}
    dual_storage_buckets.generate_dataset_presigned_url(dataset.key)
    datasets_storage().url(dataset.key)
    _end_of_request()
    run("dualstorage_presign", "--id", str(dataset.pk))
    assert not IssuedLink.objects.exists()


def test_old_records_are_purged_and_listed(
    dual_storage_buckets: DualStorageClient, dataset: Dataset, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = {**settings.DUAL_STORAGE, "LINK_AUDIT_DAYS": "30"}
    for _ in range(3):
        dual_storage_buckets.generate_dataset_presigned_url(dataset.key)
    old = timezone.now() - dt.timedelta(days=31)
    oldest = IssuedLink.objects.order_by("pk").first()
    assert oldest is not None
    IssuedLink.objects.filter(pk=oldest.pk).update(issued_at=old)
    listed = run_json("dualstorage_audit", "--limit", "2")
    assert listed["total"] == 3 and listed["truncated"] and len(listed["records"]) == 2
    assert "X-Amz" not in str(listed)
    assert run_json("dualstorage_audit", "--purge") == {"purged": 1, "kept_days": 30}
    assert IssuedLink.objects.count() == 2


def test_the_admin_action_records_each_link_and_the_audit_list_filters(
    dataset: Dataset, admin_user: User, client: Client
) -> None:
    client.force_login(admin_user)
    changelist = reverse("admin:dual_storage_app_dataset_changelist")
    page = client.post(
        changelist,
        {
            "action": "create_presigned_links",
            "_selected_action": [dataset.pk],
            "expires": "300",
            "apply": "1",
        },
        REMOTE_ADDR="198.51.100.4",
    )
    assert page.status_code == 200
    record = IssuedLink.objects.get()  # written by the end of the request
    assert (record.via, record.user_id, record.remote_addr) == (
        "admin",
        admin_user.pk,
        "198.51.100.4",
    )
    assert record.expires_at - record.issued_at == dt.timedelta(seconds=300)
    assert "X-Amz-Signature" not in str(IssuedLink.objects.values().get())

    audit_list = reverse("admin:dual_storage_app_issuedlink_changelist")
    listed = client.get(audit_list, {"via__exact": "admin", "q": "coco"})
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1
    assert b"198.51.100.4" in listed.content and b"X-Amz" not in listed.content
    assert client.get(audit_list, {"via__exact": "view"}).context["cl"].result_count == 0
    assert client.get(reverse("admin:dual_storage_app_issuedlink_add")).status_code == 403

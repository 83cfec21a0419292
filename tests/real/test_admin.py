"""The admin on the real servers: changelists, the change form, the actions (presign,
download, verify, refresh), search, and pages that show no secret and no private
endpoint. Uploads through the add form: ``test_admin_uploads.py``.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Artifact, ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.helpers import (
    ALL_MODELS,
    HOSTILE_KEYS,
    INTERNAL_MODELS,
    WRONG_SECRET,
    admin_url,
    assert_nothing_private,
    assert_page_is_clean,
    changelist,
    levels,
    make,
    real_settings,
)
from tests.http import fetch

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


def act(client: Client, model: type[Artifact], action: str, *rows: Artifact, **extra: Any) -> Any:
    """POST ``action`` on ``rows`` from the changelist (``follow=True`` to see messages)."""
    follow = extra.pop("follow", False)
    data = {"action": action, "_selected_action": [row.pk for row in rows], **extra}
    return client.post(changelist(model), data, follow=follow)


@pytest.mark.parametrize("model", [ModelWeight, TrainingCheckpoint, ConfigSchema, Dataset])
def test_changelist_shows_size_and_short_hash(
    model: type[Artifact],
    real_storage: DualStorageClient,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    artifact = make(model, b"x" * 3000)
    response = admin_client.get(changelist(model))
    assert response.status_code == 200
    text = response.content.decode()
    assert artifact.name in text and artifact.bucket in text
    assert filesizeformat(3000) in text  # "2.9 KB"
    assert f">{artifact.sha256[:12]}<" in text
    assert artifact.store_name in text
    assert_nothing_private(response.content, s3_servers)
    found = admin_client.get(changelist(model), {"q": artifact.sha256})
    assert artifact.name in found.content.decode()
    missing = admin_client.get(changelist(model), {"q": "no-such-artifact"})
    assert artifact.name not in missing.content.decode()
    change_url = reverse(
        f"admin:dual_storage_app_{model._meta.model_name}_change", args=[artifact.pk]
    )
    change = admin_client.get(change_url)
    assert change.status_code == 200 and artifact.sha256 in change.content.decode()
    assert_nothing_private(change.content, s3_servers)


@pytest.mark.parametrize("model", [ModelWeight, Dataset])
def test_changelist_cost_does_not_grow_with_the_table(
    model: type[Artifact], real_storage: DualStorageClient, admin_client: Client
) -> None:
    """The page reads its 100 rows through the created_at index and counts; no query
    walks every row's date (a date hierarchy's SELECT DISTINCT: 505 of 747 ms a page at
    100,000 rows in bench.scale). The date filter is offered instead."""
    make(model, b"row")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(changelist(model))
    assert response.status_code == 200
    # SQLite's django_datetime_trunc, PostgreSQL's DATE_TRUNC: a date hierarchy's scan.
    assert not [q["sql"] for q in queries if "TRUNC" in q["sql"].upper()]
    field: Any = model._meta.get_field("created_at")
    assert field.db_index
    page = response.content.decode()
    today = re.search(r'href="(\?created_at__gte=[^"]+)"[^>]*>Today<', page)
    assert today is not None, "the created_at filter offers Today"
    filtered = admin_client.get(changelist(model) + html.unescape(today.group(1)))
    assert filtered.status_code == 200 and filtered.context["cl"].result_count == 1


def test_checkpoint_list_has_job_columns_and_filter(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    checkpoint = make(TrainingCheckpoint, b"ckpt", epoch=7)
    make(TrainingCheckpoint, b"other")
    response = admin_client.get(changelist(TrainingCheckpoint), {"job_id": checkpoint.job_id})
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [checkpoint.pk]
    assert checkpoint.job_id in response.content.decode()


def test_change_form_edit_keeps_the_file(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    dataset = make(Dataset, b"dataset")
    url = reverse("admin:dual_storage_app_dataset_change", args=[dataset.pk])
    response = admin_client.post(url, {"name": "renamed", "description": "d"})
    assert response.status_code == 302, response.content
    dataset.refresh_from_db()
    assert dataset.name == "renamed" and dataset.size == len(b"dataset")
    assert real_storage.exists("datasets", dataset.key)


# -- actions -----------------------------------------------------------------------------


def test_actions_offered_per_store(real_storage: DualStorageClient, admin_client: Client) -> None:
    def choices(model: type[Artifact]) -> set[str]:
        form = admin_client.get(changelist(model)).context["action_form"]
        return {name for name, _ in form.fields["action"].choices if name}

    assert choices(Dataset) >= {"create_presigned_links", "verify_integrity", "refresh_metadata"}
    assert "download" not in choices(Dataset)
    for model in (ModelWeight, TrainingCheckpoint, ConfigSchema):
        assert {"download", "verify_integrity", "refresh_metadata"} <= choices(model)
        assert "create_presigned_links" not in choices(model)


def test_presign_action_shows_working_links_and_expiry(
    public_endpoint: str, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    first, second = make(Dataset, b"first dataset"), make(Dataset, b"second")
    page = act(admin_client, Dataset, "create_presigned_links", first, second)
    assert page.status_code == 200
    assert "dual_storage_app/admin/presign_form.html" in [t.name for t in page.templates]
    assert page.context["form"]["expires"].value() == 3600
    assert first.key in page.content.decode()

    before = timezone.now()
    result = act(
        admin_client, Dataset, "create_presigned_links", first, second, expires="120", apply="1"
    )
    assert result.status_code == 200
    links = {link.dataset: link.url for link in result.context["links"]}
    assert set(links) == {first, second}
    expires_at = result.context["expires_at"]
    assert timezone.is_aware(expires_at)
    assert before + timedelta(seconds=119) <= expires_at <= timezone.now() + timedelta(seconds=121)
    local = timezone.localtime(expires_at)  # shown in the active time zone, with its offset
    assert f'<time datetime="{local.isoformat()}">' in result.content.decode()
    assert local.strftime("%Y-%m-%d %H:%M:%S %Z") in result.content.decode()
    for dataset, url in links.items():
        assert urlsplit(url).netloc == urlsplit(public_endpoint).netloc
        assert "X-Amz-Expires=120" in url
        assert url.replace("&", "&amp;") in result.content.decode()
        assert fetch(url) == (b"first dataset" if dataset == first else b"second")
    assert_nothing_private(result.content, s3_servers)
    assert (messages.SUCCESS, "Created 2 presigned links.") in levels(result)


@pytest.mark.parametrize("expires", ["0", "604801", "soon"])
def test_presign_action_rejects_out_of_range_expiry(
    expires: str, real_storage: DualStorageClient, admin_client: Client
) -> None:
    dataset = make(Dataset, b"d")
    page = act(admin_client, Dataset, "create_presigned_links", dataset, expires=expires, apply="1")
    assert page.status_code == 200
    assert "links" not in page.context
    assert page.context["form"].errors["expires"]
    assert b"errorlist" in page.content


def test_download_action_redirects_to_the_stream_view(
    real_storage: DualStorageClient, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    data = b"checkpoint bytes" * 1000
    checkpoint = make(TrainingCheckpoint, data)
    response = act(admin_client, TrainingCheckpoint, "download", checkpoint)
    stream_url = reverse("dual_storage_app:artifact-download", args=["checkpoints", checkpoint.pk])
    back_to = quote(changelist(TrainingCheckpoint), safe="")
    assert response.status_code == 302 and response["Location"] == f"{stream_url}?next={back_to}"
    download = admin_client.get(response["Location"])
    assert b"".join(download.streaming_content) == data  # type: ignore[attr-defined]


def test_download_action_wants_exactly_one_row(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    weights = make(ModelWeight, b"a"), make(ModelWeight, b"b")
    response = act(admin_client, ModelWeight, "download", *weights, follow=True)
    assert response.redirect_chain[-1][0] == changelist(ModelWeight)
    assert levels(response) == [
        (messages.ERROR, "Select exactly one item to download (2 are selected).")
    ]


def test_verify_reports_intact_rows(real_storage: DualStorageClient, admin_client: Client) -> None:
    rows = make(ModelWeight, b"w" * 70_000), make(ModelWeight, b"v")
    response = act(admin_client, ModelWeight, "verify_integrity", *rows, follow=True)
    # One summary, no banner per row.
    assert levels(response) == [
        (
            messages.SUCCESS,
            "Verified 2 artifacts: 2 intact, 0 changed, 0 missing, 0 unreadable.",
        )
    ]


@pytest.mark.parametrize("model", [ConfigSchema, Dataset])
def test_verify_reports_tampered_and_missing_objects(
    model: type[Artifact],
    real_storage: DualStorageClient,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    intact, tampered, missing = (make(model, b"%d" % i * 100) for i in range(3))
    store, bucket = real_storage.locate(model.kind)
    store.client.put_object(Bucket=bucket, Key=tampered.key, Body=b"X" * 300)
    store.delete(bucket, missing.key)
    response = act(admin_client, model, "verify_integrity", intact, tampered, missing, follow=True)
    reported = levels(response)
    # The summary first, then each failure; nothing for the intact row.
    assert reported[0] == (
        messages.ERROR,
        "Verified 3 artifacts: 1 intact, 1 changed, 1 missing, 0 unreadable.",
    )
    assert len(reported) == 3
    by_row = {
        row.pk: [(lvl, t) for lvl, t in reported[1:] if row.name in t]
        for row in (intact, tampered, missing)
    }
    assert by_row[intact.pk] == []
    assert [lvl for lvl, _ in by_row[tampered.pk]] == [messages.ERROR]
    assert tampered.sha256[:12] in by_row[tampered.pk][0][1]
    assert [lvl for lvl, _ in by_row[missing.pk]] == [messages.ERROR]
    assert missing.key in by_row[missing.pk][0][1] and "no object" in by_row[missing.pk][0][1]
    assert_nothing_private(response.content, s3_servers)


def test_refresh_reports_changed_content_leaves_the_row_and_reports_missing(
    real_storage: DualStorageClient, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    same, changed, missing = (make(TrainingCheckpoint, b"c" * 10) for _ in range(3))
    recorded = (changed.size, changed.sha256, changed.etag)
    store, bucket = real_storage.locate("checkpoints")
    store.client.put_object(Bucket=bucket, Key=changed.key, Body=b"longer" * 100)
    store.delete(bucket, missing.key)
    response = act(
        admin_client, TrainingCheckpoint, "refresh_metadata", same, changed, missing, follow=True
    )
    changed.refresh_from_db()
    same.refresh_from_db()
    # Changed content is reported, never copied into the row.
    assert (changed.size, changed.sha256, changed.etag) == recorded and same.size == 10
    reported = levels(response)
    assert any(
        lvl == messages.ERROR
        and changed.name in t
        and "size 10 → 600" in t
        and "the row was left as it was" in t
        for lvl, t in reported
    )
    # ...so the quick check still finds it (and the missing one).
    with pytest.raises(CommandError, match=r"2 artifact problem"):
        call_command("dualstorage_verify", "--kind", "checkpoints", "--quick", stdout=StringIO())
    assert any(lvl == messages.ERROR and missing.key in t for lvl, t in reported)
    assert (messages.SUCCESS, "1 artifact matches the store.") in reported
    assert_nothing_private(response.content, s3_servers)


def test_accepting_the_stored_content_rehashes_it_and_quick_verify_passes_again(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    row = make(ModelWeight, b"old bytes")
    store, bucket = real_storage.locate("weights")
    new = b"new bytes, accepted on purpose" * 10
    store.client.put_object(Bucket=bucket, Key=row.key, Body=new)
    response = act(admin_client, ModelWeight, "accept_stored_content", row, follow=True)
    row.refresh_from_db()
    assert (row.size, row.sha256) == (len(new), hashlib.sha256(new).hexdigest())
    assert row.etag == store.head(bucket, row.key).etag
    assert any(
        lvl == messages.WARNING and "now records the stored content" in t
        for lvl, t in levels(response)
    )
    call_command("dualstorage_verify", "--kind", "weights", "--quick", stdout=StringIO())
    again = act(admin_client, ModelWeight, "accept_stored_content", row, follow=True)
    assert (messages.INFO, f"{row} already records its content.") in levels(again)


def test_verify_reports_an_unreachable_store(
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
    admin_client: Client,
) -> None:
    weight = make(ModelWeight, b"w")
    closed = f"http://127.0.0.1:{free_port_pair()}"  # nothing listens there
    settings.DUAL_STORAGE = real_settings(s3_servers, INTERNAL_STORAGE_ENDPOINT=closed)
    response = act(admin_client, ModelWeight, "verify_integrity", weight)
    assert response.status_code == 302
    reported = levels(admin_client.get(response["Location"]))
    assert reported[0] == (
        messages.ERROR,
        "Verified 1 artifact: 0 intact, 0 changed, 0 missing, 1 unreadable.",
    )
    assert len(reported) == 2 and reported[1][0] == messages.ERROR
    assert "could not be reached" in reported[1][1] and weight.key in reported[1][1]
    assert closed not in reported[1][1]


# -- search ------------------------------------------------------------------------------


NUL_REFUSED = "Search terms and filters cannot contain a NUL character; they were cleared."


@pytest.mark.parametrize("text", HOSTILE_KEYS)
def test_admin_search_with_hostile_text_does_not_crash(
    text: str, real_storage: DualStorageClient, admin_client: Client
) -> None:
    """Also on PostgreSQL, which cannot compare text with a NUL character: such a search
    (or filter) goes back to the plain list with a message, never a 500."""
    artifact = Dataset(name="findable")
    artifact.file.save("findable.zip", ContentFile(b"d"))
    for model in ("dataset", "modelweight", "trainingcheckpoint", "configschema"):
        url = reverse(f"admin:dual_storage_app_{model}_changelist")
        queries = [{"q": text}, {"content_type": text}]
        if model == "trainingcheckpoint":
            queries.append({"job_id": text})
        for query in queries:
            response = admin_client.get(url, query)
            if "\x00" not in text:
                assert response.status_code in (200, 302), (model, query)
                continue
            assert (response.status_code, response["Location"]) == (302, url), (model, query)
            shown = levels(admin_client.get(url))
            assert shown == [(messages.ERROR, NUL_REFUSED)], shown


# -- pages show no secret and no private endpoint ----------------------------------------


def test_admin_pages_show_no_secret_and_no_private_endpoint(
    public_endpoint: str,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
    django_user_model: Any,
) -> None:
    rows = {model: make(model, b"admin page " + model.kind.encode()) for model in ALL_MODELS}
    viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    view_only = Client()
    view_only.force_login(viewer)
    pages: list[tuple[Client, str, bool]] = [(admin_client, reverse("admin:index"), False)]
    pages.append((admin_client, reverse("admin:app_list", args=["dual_storage_app"]), False))
    for model, row in rows.items():
        internal = model in INTERNAL_MODELS
        for client in (admin_client, view_only):
            pages += [
                (client, admin_url(model, "changelist"), internal),
                (client, admin_url(model, "change", row.pk), internal),
                (client, admin_url(model, "history", row.pk), internal),
            ]
        pages += [
            (admin_client, admin_url(model, "add"), internal),
            (admin_client, admin_url(model, "delete", row.pk), internal),
            (admin_client, admin_url(model, "changelist") + f"?q={quote(row.key)}", internal),
        ]
    for client, url, internal in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_page_is_clean(response.content, s3_servers, url, internal=internal)

    dataset = rows[Dataset]
    action = {"action": "create_presigned_links", "_selected_action": [dataset.pk]}
    form = admin_client.post(admin_url(Dataset, "changelist"), action)
    assert_page_is_clean(form.content, s3_servers, "presign form", internal=True)
    result = admin_client.post(
        admin_url(Dataset, "changelist"), {**action, "expires": "60", "apply": "1"}
    )
    assert result.status_code == 200 and b"X-Amz-Signature" in result.content
    assert_page_is_clean(result.content, s3_servers, "presign result", internal=False)
    for model in INTERNAL_MODELS:  # the download action: a redirect into Django, no URL
        response = admin_client.post(
            admin_url(model, "changelist"),
            {"action": "download", "_selected_action": [rows[model].pk]},
        )
        assert response.status_code == 302
        stream_url = reverse(
            "dual_storage_app:artifact-download", args=[model.kind, rows[model].pk]
        )
        assert (
            response["Location"]
            == f"{stream_url}?next={quote(admin_url(model, 'changelist'), safe='')}"
        )


def test_admin_store_failures_show_no_secret(
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
    admin_client: Client,
) -> None:
    rows = [make(model, b"x") for model in ALL_MODELS]
    settings.DUAL_STORAGE = real_settings(
        s3_servers,
        INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
        EXTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
    )
    for row in rows:
        model = type(row)
        for action in ("verify_integrity", "refresh_metadata"):
            response = admin_client.post(
                admin_url(model, "changelist"),
                {"action": action, "_selected_action": [row.pk]},
                follow=True,
            )
            assert response.status_code == 200
            text = " ".join(str(m) for m in response.context["messages"])
            assert "refused" in text, text
            assert_page_is_clean(response.content, s3_servers, action, internal=True)
    upload = admin_client.post(
        admin_url(ModelWeight, "add"),
        {"name": "denied", "framework": "", "file": ContentFile(b"w", name="w.pth")},
        follow=True,
    )
    assert_page_is_clean(upload.content, s3_servers, "failed add form", internal=True)

"""Nothing dangerous is served from our links or our origin: every presigned link is an
attachment unless inline is asked for a type that runs nothing; a browser never gets
HTML, SVG or XML to render from the public endpoint; the browser's claimed type is never
stored; link redirects are not cached; no link reaches a log; the admin's presign action
is capped."""

from __future__ import annotations

import io
import logging
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib import messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from dual_storage_app import _admin_actions
from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset
from dual_storage_app.storages import ExternalStorage
from dual_storage_app.store.disposition import content_disposition
from tests.helpers import changelist, levels, make

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]

HOSTILE = {
    "evil.html": b"<script>alert(document.domain)</script>",
    "evil.svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    "evil.xml": b'<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml"/>',
    "evil.js": b"alert(1)",
}


def served(url: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers a browser gets for ``url`` (loopback only)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), {k.lower(): v for k, v in response.headers.items()}


def assert_safe_download(url: str, filename: str, data: bytes) -> None:
    body, headers = served(url)
    assert body == data
    assert headers["content-disposition"].startswith("attachment;"), headers
    assert f'filename="{filename}"' in headers["content-disposition"]
    kind = headers["content-type"]
    assert not any(word in kind for word in ("html", "svg", "xml", "javascript")), kind


def every_link(client: DualStorageClient, dataset: Dataset, web: Client) -> dict[str, str]:
    """The same dataset's link from each entry point that hands links out."""
    store, bucket = dataset.location()
    out = io.StringIO()
    call_command("dualstorage_presign", "--id", str(dataset.pk), "--json", stdout=out)
    import json

    page = web.post(
        changelist(Dataset),
        {
            "action": "create_presigned_links",
            "_selected_action": [dataset.pk],
            "expires": "60",
            "apply": "1",
        },
    )
    view = web.get(reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk}))
    return {
        "client": client.generate_dataset_presigned_url(dataset_key=dataset.key),
        "storage url()": ExternalStorage().url(dataset.key),
        "FileField url": dataset.file.url,
        "store": store.presign_get(bucket, dataset.key, 60),
        "command": json.loads(out.getvalue())["url"],
        "admin action": {link.dataset: link.url for link in page.context["links"]}[dataset],
        "link view": view["Location"],
    }


@pytest.mark.parametrize("filename", sorted(HOSTILE))
def test_every_link_to_a_hostile_dataset_is_a_safe_attachment(
    filename: str, public_endpoint: str, admin_client: Client
) -> None:
    dataset = make(Dataset, HOSTILE[filename], filename=filename)
    from dual_storage_app.client import dual_storage

    links = every_link(dual_storage, dataset, admin_client)
    assert len(links) == 7
    for where, url in links.items():
        query = parse_qs(urlsplit(url).query)
        assert query["response-content-disposition"][0].startswith("attachment"), where
        assert_safe_download(url, filename, HOSTILE[filename])


def test_inline_is_granted_only_to_types_that_run_nothing(public_endpoint: str) -> None:
    from dual_storage_app.client import dual_storage

    picture = make(Dataset, b"\x89PNG fake", filename="preview.png")
    url = dual_storage.generate_dataset_presigned_url(dataset_key=picture.key, inline=True)
    _, headers = served(url)
    assert headers["content-disposition"].startswith("inline;")
    assert headers["content-type"] == "image/png"
    page = make(Dataset, HOSTILE["evil.html"], filename="evil.html")
    url = dual_storage.generate_dataset_presigned_url(dataset_key=page.key, inline=True)
    assert_safe_download(url, "evil.html", HOSTILE["evil.html"])  # inline refused
    # A caller's own inline disposition or HTML type through the storage's url() as well.
    for parameters in (
        {"ResponseContentDisposition": "inline"},
        {"ResponseContentType": "text/html"},
    ):
        assert_safe_download(
            ExternalStorage().url(page.key, parameters=parameters),
            "evil.html",
            HOSTILE["evil.html"],
        )


def test_a_plain_dataset_link_downloads_under_its_name(public_endpoint: str) -> None:
    from dual_storage_app.client import dual_storage

    dataset = make(Dataset, b"PK zip bytes", filename="coco 8 (v2)  é.zip")
    body, headers = served(dual_storage.generate_dataset_presigned_url(dataset_key=dataset.key))
    assert body == b"PK zip bytes"
    name = dataset.key.rsplit("/", 1)[1]
    assert "é" in name and "(" not in name  # the model's safe, readable segment
    assert headers["content-disposition"] == content_disposition("attachment", name)
    fallback, exact = name.replace("é", "_"), name.replace("é", "%C3%A9")
    assert headers["content-disposition"] == (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"
    )
    assert headers["content-type"] == "application/zip"  # the stored type, not an override


def test_storages_store_the_type_of_the_name_not_the_browsers(
    real_storage: DualStorageClient,
) -> None:
    claimed = SimpleUploadedFile(
        "notes.bin", b"<script>alert(1)</script>", content_type="text/html"
    )
    name = ExternalStorage().save("uploads/notes.bin", claimed)
    assert real_storage.head("datasets", name).content_type == "application/octet-stream"
    claimed = SimpleUploadedFile("w.pth", b"weights", content_type="text/html")
    from dual_storage_app.storages import InternalStorage

    name = InternalStorage().save("uploads/w.pth", claimed)
    assert real_storage.head("weights", name).content_type == "application/octet-stream"


def test_the_link_view_redirect_is_never_cached(public_endpoint: str, admin_client: Client) -> None:
    dataset = make(Dataset, b"d")
    response = admin_client.get(reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk}))
    assert response.status_code == 302
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= cache_control


def test_no_presigned_link_reaches_a_log(
    public_endpoint: str, admin_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at DEBUG (the template logger included), handing out links
    through the admin, the view, the command and the client logs no signature."""
    dataset = make(Dataset, b"d", filename="d.zip")
    from dual_storage_app.client import dual_storage

    with caplog.at_level(logging.DEBUG):
        logging.getLogger("django.template").setLevel(logging.DEBUG)
        links = every_link(dual_storage, dataset, admin_client)
        page = admin_client.post(
            changelist(Dataset),
            {"action": "create_presigned_links", "_selected_action": [dataset.pk]},
        )
        assert page.status_code == 200
    logged = "\n".join(
        record.getMessage() + (record.exc_text or "") + repr(record.args)
        for record in caplog.records
    )
    caplog.handler.format  # noqa: B018 - the handler formatted every record above
    assert all(urlsplit(url).query not in logged for url in links.values())
    assert "X-Amz-Signature" not in logged
    assert "csrf" not in logged.lower()


def test_the_presign_action_refuses_too_many_rows_at_once(
    public_endpoint: str, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_admin_actions, "MAX_LINKS_PER_ACTION", 3)
    rows = [make(Dataset, b"d") for _ in range(4)]
    response = admin_client.post(
        changelist(Dataset),
        {
            "action": "create_presigned_links",
            "_selected_action": [row.pk for row in rows],
            "expires": "60",
            "apply": "1",
        },
        follow=True,
    )
    assert "links" not in response.context
    assert (
        messages.ERROR,
        "Select at most 3 datasets to presign at once (4 are selected); "
        "filter the list, or use manage.py dualstorage_presign for scripts.",
    ) in levels(response)
    page: Any = admin_client.post(
        changelist(Dataset),
        {
            "action": "create_presigned_links",
            "_selected_action": [r.pk for r in rows[:3]],
            "expires": "60",
            "apply": "1",
        },
    )
    assert len(page.context["links"]) == 3

"""Nothing unverified is served by the stream-through download (the view, the admin's
Download action and the change page's link all end there): an object replaced out of band
is refused before the first byte, stored bytes that do not hash to the row's SHA-256 cut
the answer short, and HEAD and single ranges let a large download resume."""

from __future__ import annotations

import hashlib
import html
import io
import logging
import os
import re
from typing import Any

import pytest
from django.contrib import messages
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import IntegrityError
from dual_storage_app.models import ModelWeight
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import changelist, download_url, levels

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]
SIZE = 3 * MiB + 5  # four 1 MiB chunks


@pytest.fixture
def weight(real_storage: DualStorageClient) -> ModelWeight:
    row = ModelWeight(name="w", framework="torch")
    row.file.save("w.pth", ContentFile(os.urandom(SIZE)))
    return row


def stored(servers: dict[str, LocalS3Server]) -> Any:
    """A raw boto3 client of the internal server (to change objects out of band)."""
    return servers["internal"].client()


def consume(response: Any) -> tuple[bytes, BaseException | None]:
    """The bytes a client received before the answer ended, and why it ended early."""
    received = bytearray()
    try:
        for chunk in response.streaming_content:
            received += chunk
    except Exception as exc:
        return bytes(received), exc
    return bytes(received), None


def original(row: ModelWeight, servers: dict[str, LocalS3Server]) -> bytes:
    raw = stored(servers)
    return bytes(raw.get_object(Bucket=row.bucket, Key=row.key)["Body"].read())


def test_an_intact_object_streams_whole_with_its_headers(
    weight: ModelWeight, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    response = admin_client.get(download_url(weight.kind, weight.pk))
    received, error = consume(response)
    assert error is None and response.status_code == 200
    assert hashlib.sha256(received).hexdigest() == weight.sha256 and len(received) == SIZE
    assert response["Content-Length"] == str(SIZE)
    assert response["ETag"] == f'"{weight.etag}"' and response["Accept-Ranges"] == "bytes"


def test_an_object_overwritten_out_of_band_is_refused_before_the_first_byte(
    weight: ModelWeight,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The overwrite clears the SHA-256 tag and changes the ETag: If-Match refuses it."""
    stored(s3_servers).put_object(
        Bucket=weight.bucket, Key=weight.key, Body=io.BytesIO(b"replaced by someone else")
    )
    with caplog.at_level(logging.ERROR):
        response = admin_client.get(download_url(weight.kind, weight.pk))
    assert response.status_code == 502
    assert not getattr(response, "streaming", False)
    assert b"replaced by someone else" not in response.content
    assert b"no longer holds the bytes its row recorded" in response.content
    assert any(weight.key in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    # The admin's Download action ends in the same view, and a refusal comes back to the
    # admin page as an error message.
    action = admin_client.post(
        changelist(ModelWeight),
        {"action": "download", "_selected_action": [weight.pk]},
        follow=True,
    )
    assert action.status_code == 200 and b"replaced by someone else" not in action.content
    assert action.redirect_chain[-1][0] == changelist(ModelWeight)
    assert [(level, text) for level, text in levels(action) if weight.key in text] == [
        (
            messages.ERROR,
            f"Cannot download {weight}: the object at key {weight.key!r} in bucket "
            f"{weight.bucket!r} on the internal store no longer holds the bytes its row "
            "recorded.",
        )
    ]


def test_a_sha256_tag_that_is_not_the_rows_is_refused(
    weight: ModelWeight, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    stored(s3_servers).put_object_tagging(
        Bucket=weight.bucket,
        Key=weight.key,
        Tagging={"TagSet": [{"Key": "sha256", "Value": "0" * 64}]},
    )
    response = admin_client.get(download_url(weight.kind, weight.pk))
    assert response.status_code == 502 and not getattr(response, "streaming", False)


def test_bytes_that_do_not_hash_to_the_row_cut_the_answer_short(
    weight: ModelWeight,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Same ETag, no tag to compare, but the row says other bytes: the last chunk is
    never sent, so the client gets fewer bytes than Content-Length, never a whole body."""
    stored(s3_servers).delete_object_tagging(Bucket=weight.bucket, Key=weight.key)
    ModelWeight.objects.filter(pk=weight.pk).update(sha256="f" * 64)
    with caplog.at_level(logging.ERROR):
        response = admin_client.get(download_url(weight.kind, weight.pk))
        received, error = consume(response)
    assert response.status_code == 200 and response["Content-Length"] == str(SIZE)
    assert isinstance(error, IntegrityError)
    assert len(received) < SIZE
    assert received == original(weight, s3_servers)[: len(received)]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(weight.bucket in m and weight.key in m and "cut short" in m for m in logged)


def test_head_answers_the_headers_and_no_body(weight: ModelWeight, admin_client: Client) -> None:
    response = admin_client.head(download_url(weight.kind, weight.pk))
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Length"] == str(SIZE)
    assert response["ETag"] == f'"{weight.etag}"'
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"].startswith("attachment;")


def test_a_download_resumes_with_a_range(
    weight: ModelWeight, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    data = original(weight, s3_servers)
    url = download_url(weight.kind, weight.pk)
    first = admin_client.get(url, headers={"Range": "bytes=0-1048575"})
    head, _ = consume(first)
    assert first.status_code == 206 and first["Content-Range"] == f"bytes 0-1048575/{SIZE}"
    rest = admin_client.get(url, headers={"Range": "bytes=1048576-", "If-Range": first["ETag"]})
    tail, error = consume(rest)
    assert error is None and rest.status_code == 206
    assert rest["Content-Range"] == f"bytes 1048576-{SIZE - 1}/{SIZE}"
    assert rest["Content-Length"] == str(SIZE - MiB)
    assert head + tail == data


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=-10", 206, slice(SIZE - 10, SIZE)),
        ("bytes=10-19", 206, slice(10, 20)),
        ("bytes=0-0,5-6", 200, slice(0, SIZE)),  # several ranges: the whole object
        ("bytes=20-10", 200, slice(0, SIZE)),  # not a valid range: ignored
    ],
)
def test_single_ranges_are_served_and_others_get_the_whole_object(
    header: str,
    status: int,
    expected: slice,
    weight: ModelWeight,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    response = admin_client.get(download_url(weight.kind, weight.pk), headers={"Range": header})
    received, error = consume(response)
    assert (response.status_code, error) == (status, None)
    assert received == original(weight, s3_servers)[expected]


def test_a_range_past_the_end_is_416_and_if_range_on_another_etag_gets_everything(
    weight: ModelWeight, admin_client: Client
) -> None:
    url = download_url(weight.kind, weight.pk)
    beyond = admin_client.get(url, headers={"Range": f"bytes={SIZE}-"})
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{SIZE}"
    stale = admin_client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other-etag"'})
    received, error = consume(stale)
    assert stale.status_code == 200 and error is None and len(received) == SIZE


def test_a_range_of_an_object_replaced_out_of_band_is_refused(
    weight: ModelWeight, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    """A resumed download never mixes versions: If-Match pins the range to the row."""
    raw = stored(s3_servers)
    raw.put_object(Bucket=weight.bucket, Key=weight.key, Body=io.BytesIO(os.urandom(SIZE)))
    response = admin_client.get(
        download_url(weight.kind, weight.pk), headers={"Range": "bytes=0-9"}
    )
    assert response.status_code == 502


def test_a_missing_object_downloaded_from_the_admin_is_an_error_on_that_page(
    weight: ModelWeight, admin_client: Client, real_storage: DualStorageClient
) -> None:
    """The change page's link carries the page to come back to: the failure is an admin
    message there, not a plain-text 404 outside the admin."""
    change_page = reverse("admin:dual_storage_app_modelweight_change", args=[weight.pk])
    page = admin_client.get(change_page)
    link = re.search(rb'href="(/storage/weights/\d+/download/\?next=[^"]+)"', page.content)
    assert link is not None
    store, bucket = real_storage.locate("weights")
    store.delete(bucket, weight.key)
    response = admin_client.get(html.unescape(link.group(1).decode()), follow=True)
    assert response.redirect_chain[-1][0] == change_page
    assert response.status_code == 200 and b'id="content"' in response.content  # the admin
    assert levels(response) == [
        (
            messages.ERROR,
            f"Cannot download {weight}: no object at key {weight.key!r} in bucket "
            f"{weight.bucket!r} on the internal store.",
        )
    ]
    # Without a page to return to (a script, a bookmark): the plain 404 as before.
    assert admin_client.get(download_url(weight.kind, weight.pk)).status_code == 404
    # A `next` off this site is never followed.
    elsewhere = admin_client.get(
        download_url(weight.kind, weight.pk) + "?next=https://evil.example/"
    )
    assert elsewhere.status_code == 404

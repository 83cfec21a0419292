"""Uploads through the admin's add form on the real servers: hash, size and uploader
recorded, large files streamed from the temporary upload file, store failures shown as
messages, and hostile file names stored under safe generated keys.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib import messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset, ModelWeight
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import (
    NFC_NAME,
    NFD_NAME,
    assert_generated_key,
    assert_nothing_private,
    levels,
    real_settings,
)

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


def test_add_form_upload_records_hash_size_and_uploader(
    real_storage: DualStorageClient,
    admin_client: Client,
    admin_user: Any,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    data = b"\x00weights\xff" * 20_000
    url = reverse("admin:dual_storage_app_modelweight_add")
    form = admin_client.get(url)
    assert form.status_code == 200 and b'enctype="multipart/form-data"' in form.content
    upload = SimpleUploadedFile("resnet 50.pth", data, content_type="application/octet-stream")
    response = admin_client.post(url, {"name": "resnet50", "framework": "torch", "file": upload})
    assert response.status_code == 302, response.content
    weight = ModelWeight.objects.get(name="resnet50")
    assert weight.sha256 == hashlib.sha256(data).hexdigest() and weight.size == len(data)
    assert weight.uploaded_by == admin_user and weight.bucket == "model-weights"
    assert real_storage.head("weights", weight.key).size == len(data)
    assert real_storage.internal.get_bytes("model-weights", weight.key) == data
    change = admin_client.get(
        reverse("admin:dual_storage_app_modelweight_change", args=[weight.pk])
    )
    text = change.content.decode()
    assert weight.sha256 in text and weight.key in text
    assert reverse("dual_storage_app:artifact-download", args=["weights", weight.pk]) in text
    assert 'name="sha256"' not in text and 'name="size"' not in text  # read-only
    assert_nothing_private(change.content, s3_servers)


def test_large_admin_upload_streams_from_the_temporary_upload_file(
    real_storage: DualStorageClient,
    admin_client: Client,
    settings: SettingsWrapper,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above FILE_UPLOAD_MAX_MEMORY_SIZE Django spools the upload to a temp file; the
    model streams from that file in parts (multipart), never from one bytes object."""
    from django.core.files.uploadedfile import TemporaryUploadedFile

    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    data = os.urandom(20 * MiB)  # above the 16 MiB multipart threshold
    seen: list[type] = []
    store, _ = real_storage.locate("weights")
    real_upload = store.upload

    def spy(bucket: str, key: str, source: Any, **kwargs: Any) -> Any:
        seen.append(type(source))
        return real_upload(bucket, key, source, **kwargs)

    monkeypatch.setattr(store, "upload", spy)
    upload = SimpleUploadedFile("big.pth", data)
    url = reverse("admin:dual_storage_app_modelweight_add")
    response = admin_client.post(url, {"name": "big", "framework": "", "file": upload})
    assert response.status_code == 302
    weight = ModelWeight.objects.get(name="big")
    assert seen == [TemporaryUploadedFile]
    assert weight.sha256 == hashlib.sha256(data).hexdigest()
    assert weight.etag.endswith("-2")  # two parts: streamed multipart


def test_store_failure_on_the_add_form_is_an_error_message(
    s3_servers: dict[str, LocalS3Server],
    _real_buckets: None,
    admin_client: Client,
    settings: SettingsWrapper,
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers, INTERNAL_STORAGE_SECRET_KEY="bad-secret-1")
    url = reverse("admin:dual_storage_app_modelweight_add")
    upload = SimpleUploadedFile("w.pth", b"weights")
    response = admin_client.post(url, {"name": "nope", "framework": "", "file": upload})
    assert response.status_code == 302 and response["Location"] == url
    shown = admin_client.get(url)
    errors = [text for level, text in levels(shown) if level == messages.ERROR]
    assert len(errors) == 1 and errors[0].startswith("The file was not stored: access to key")
    assert not ModelWeight.objects.filter(name="nope").exists()
    assert_nothing_private(shown.content, s3_servers)
    assert b"bad-secret-1" not in shown.content


# -- hostile file names ------------------------------------------------------------------


def multipart_upload(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body whose file name arrives exactly as given (RFC 5987 ``filename*``),
    as a hostile client would send it: Django's test client would strip the path first."""
    boundary = f"hostile-{uuid.uuid4().hex}"
    body = b""
    for name, value in fields.items():
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f"filename*=UTF-8''{quote(filename, safe='')}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# (file name as sent, what the admin must do): "stored" under a safe generated key, or
# "not a file" when Django's upload parser drops a name with nothing left of it.
ADMIN_FILE_NAMES = [
    pytest.param("../../etc/passwd", "stored", id="traversal"),
    pytest.param("a/../b.pth", "stored", id="inner-parent-dir"),
    pytest.param("/abs.pth", "stored", id="leading-slash"),
    pytest.param("a//b.pth", "stored", id="empty-segment"),
    pytest.param("./a.pth", "stored", id="dot-segment"),
    pytest.param("C:\\Windows\\evil.pth", "stored", id="windows-path"),
    pytest.param("nul\x00.pth", "stored", id="NUL"),
    pytest.param("new\nline.pth", "stored", id="LF"),
    pytest.param("car\rriage.pth", "stored", id="CR"),
    pytest.param("esc\x1b[31m.pth", "stored", id="ESC"),
    pytest.param("del\x7f.pth", "stored", id="DEL"),
    pytest.param("zero\u200bwidth.pth", "stored", id="ZWSP"),
    pytest.param("\ufeffbom.pth", "stored", id="BOM"),
    pytest.param("evil\u202egnp.exe", "stored", id="bidi-RLO"),
    pytest.param(NFD_NAME + ".pth", "stored", id="NFD"),
    pytest.param(NFC_NAME + ".pth", "stored", id="NFC"),
    pytest.param("s" * 252 + ".pth", "stored", id="256-byte-name"),
    pytest.param("日本語" * 30 + ".pth", "stored", id="274-byte-multibyte-name"),
    pytest.param("\U0001f642", "stored", id="emoji-only"),
    pytest.param("()", "stored", id="punctuation-only"),
    pytest.param("//", "not a file", id="slashes-only"),
    pytest.param("..", "not a file", id="dotdot"),
    pytest.param(".", "not a file", id="dot"),
    pytest.param("\u200b", "not a file", id="ZWSP-only"),
]


@pytest.mark.parametrize(("filename", "outcome"), ADMIN_FILE_NAMES)
def test_admin_upload_of_a_hostile_file_name_gets_a_safe_key(
    filename: str, outcome: str, real_storage: DualStorageClient, admin_client: Client
) -> None:
    url = reverse("admin:dual_storage_app_dataset_add")
    changelist = reverse("admin:dual_storage_app_dataset_changelist")
    payloads = [b"one " + filename.encode(), b"two " + filename.encode()]
    for index, payload in enumerate(payloads):
        body, content_type = multipart_upload({"name": f"n{index}"}, filename, payload)
        response = admin_client.post(url, body, content_type=content_type)
        if outcome == "not a file":
            assert response.status_code == 200  # the form again, with its error
            assert response.context["adminform"].form.errors["file"]
            assert not Dataset.objects.exists()
            return
        assert response.status_code == 302, response.content[-300:]
        shown = [str(m) for m in admin_client.get(response["Location"]).context["messages"]]
        assert response["Location"] == changelist, shown  # not back to the add form
    rows = list(Dataset.objects.order_by("pk"))
    assert [row.name for row in rows] == ["n0", "n1"]
    bases = {assert_generated_key(row.key, "datasets") for row in rows}
    assert len(bases) == 1  # both uploads sanitised the name alike ...
    assert rows[0].key != rows[1].key  # ... and still got two keys
    for row, payload in zip(rows, payloads, strict=True):
        assert real_storage.external.get_bytes("training-datasets", row.key) == payload
        assert row.sha256 == hashlib.sha256(payload).hexdigest()


def test_admin_nfc_and_nfd_file_names_never_share_a_key(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    url = reverse("admin:dual_storage_app_dataset_add")
    for index, name in enumerate((NFC_NAME + ".zip", NFD_NAME + ".zip")):
        body, content_type = multipart_upload({"name": f"n{index}"}, name, name.encode())
        assert admin_client.post(url, body, content_type=content_type).status_code == 302
    nfc_row, nfd_row = Dataset.objects.order_by("pk")
    assert nfc_row.key != nfd_row.key
    assert assert_generated_key(nfc_row.key, "datasets") == NFC_NAME + ".zip"
    assert_generated_key(nfd_row.key, "datasets")
    assert (
        real_storage.external.get_bytes("training-datasets", nfc_row.key)
        == (NFC_NAME + ".zip").encode()
    )

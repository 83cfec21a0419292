"""How many requests each operation sends to the real S3 server, and which.

Every request goes through a counting proxy (:mod:`tests.requestlog`) in front of the
session's SeaweedFS servers and is named by its S3 operation; each test expects an exact
multiset, so a needless request (a HEAD before or after a PUT, a tagging read when the
row already knows the hash, a per-row request on a list page) fails the test by name.

The targets: a save is the upload and one PutObjectTagging (the SHA-256), nothing else;
a download whose row knows size and SHA-256 is GETs only (one, or one per 16 MiB range),
and without a row it adds only the tagging read (no HEAD: the first ranged GET gives the
size); the stream-through download reads the SHA-256 tag (checked against the row
before the first byte) and sends one GET; an admin list page and the dataset link send
nothing; one ListObjectsV2 page lists up to 1,000 objects.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.files.base import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import dual_storage
from dual_storage_app.models import Artifact, Dataset, ModelWeight
from dual_storage_app.store.transfer import PART_SIZE, MiB
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import MakeFile, changelist, download_url, real_settings, sha256_file
from tests.requestlog import (
    COMPLETE_MULTIPART,
    CREATE_MULTIPART,
    GET_OBJECT,
    GET_TAGGING,
    LIST_OBJECTS_V2,
    PUT_OBJECT,
    PUT_TAGGING,
    UPLOAD_PART,
    CountingProxy,
    Name,
    Recording,
    RequestLog,
    expect,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


SMALL = 1 * MiB
MULTIPART = 40 * MiB  # 16 MiB parts: 3 parts
PARTS = -(-MULTIPART // PART_SIZE)
ROWS = 50
SIZES = [pytest.param(SMALL, id="1MiB"), pytest.param(MULTIPART, id="40MiB-multipart")]
MODELS = [pytest.param(ModelWeight, id="weight"), pytest.param(Dataset, id="dataset")]


@pytest.fixture
def log(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> Iterator[RequestLog]:
    """Point the app (``dual_storage``, storages, views, commands) at counting proxies."""
    internal = CountingProxy("internal", ("127.0.0.1", s3_servers["internal"].s3_port))
    external = CountingProxy("external", ("127.0.0.1", s3_servers["external"].s3_port))
    internal.start()
    external.start()
    settings.DUAL_STORAGE = real_settings(
        s3_servers,
        INTERNAL_STORAGE_ENDPOINT=internal.url,
        EXTERNAL_STORAGE_ENDPOINT=external.url,
    )
    try:
        yield RequestLog(internal, external)
    finally:
        dual_storage.internal.client.close()
        dual_storage.external.client.close()
        internal.stop()
        external.stop()


def store_of(model: type[Artifact]) -> str:
    return "external" if model is Dataset else "internal"


def on(model: type[Artifact], *names: Name) -> dict[str, list[Name]]:
    """``expect()`` keywords: ``names`` on ``model``'s store, nothing on the other one."""
    return {store_of(model): list(names)}


def save_artifact(model: type[Artifact], path: Path) -> Artifact:
    """A new row of ``model`` whose file is ``path``, saved (and so uploaded)."""
    artifact = model(name=f"{model.kind}-{uuid.uuid4().hex[:8]}")
    with path.open("rb") as handle:
        artifact.file.save(path.name, File(handle, name=path.name))
    return artifact


def stream_body(response: Any) -> bytes:
    """The whole body of a streaming response; closing it closes the S3 body."""
    try:
        return b"".join(response.streaming_content)
    finally:
        response.close()


def assert_ranged(sent: Recording, parts: int) -> None:
    """A multipart download reads ``parts`` distinct ranges, one GET each."""
    ranges = {r.range_header for r in sent.requests if r.name == GET_OBJECT}
    assert len(ranges) == parts and "" not in ranges, ranges


def put_objects(model: type[Artifact], keys: list[str], data: bytes) -> dict[str, str]:
    """Put ``data`` at each key of ``model``'s bucket directly; ``{key: etag}``."""
    store, bucket = dual_storage.locate(model.kind)

    def put(key: str) -> tuple[str, str]:
        response = store.client.put_object(Bucket=bucket, Key=key, Body=data)
        return key, response["ETag"].strip('"')

    with ThreadPoolExecutor(16) as pool:
        return dict(pool.map(put, keys))


@pytest.mark.parametrize("model", MODELS)
def test_saving_a_small_file_sends_put_and_tagging(
    model: type[Artifact], log: RequestLog, make_file: MakeFile
) -> None:
    source = make_file("small.bin", SMALL)
    with log.recording() as sent:
        artifact = save_artifact(model, source)
    assert (artifact.size, artifact.sha256) == (SMALL, sha256_file(source))
    expect(sent, f"{model.__name__} save of 1 MiB", **on(model, PUT_OBJECT, PUT_TAGGING))


@pytest.mark.parametrize("model", MODELS)
def test_saving_a_multipart_file_sends_parts_and_tagging(
    model: type[Artifact], log: RequestLog, make_file: MakeFile
) -> None:
    source = make_file("large.bin", MULTIPART, seed=1)
    with log.recording() as sent:
        artifact = save_artifact(model, source)
    assert (artifact.size, artifact.sha256) == (MULTIPART, sha256_file(source))
    expect(
        sent,
        f"{model.__name__} save of 40 MiB ({PARTS} parts)",
        **on(
            model,
            CREATE_MULTIPART,
            *[UPLOAD_PART] * PARTS,
            COMPLETE_MULTIPART,
            PUT_TAGGING,
        ),
    )


def test_admin_add_form_upload_sends_put_and_tagging(log: RequestLog, admin_client: Client) -> None:
    data = bytes(range(256)) * (SMALL // 256)
    upload = SimpleUploadedFile("resnet.pth", data, content_type="application/octet-stream")
    with log.recording() as sent:
        response = admin_client.post(
            reverse("admin:dual_storage_app_modelweight_add"),
            {"name": "resnet", "framework": "torch", "file": upload},
        )
    assert response.status_code == 302, response.content
    assert ModelWeight.objects.get(name="resnet").sha256 == hashlib.sha256(data).hexdigest()
    expect(sent, "admin add form, 1 MiB weight", internal=[PUT_OBJECT, PUT_TAGGING])


@pytest.mark.parametrize("size", SIZES)
def test_streaming_view_sends_the_tag_read_and_one_get(
    size: int, log: RequestLog, admin_client: Client, make_file: MakeFile
) -> None:
    source = make_file("w.pth", size, seed=2)
    weight = save_artifact(ModelWeight, source)
    with log.recording() as sent:
        response = admin_client.get(download_url(weight.kind, weight.pk))
        body = stream_body(response)
    assert response.status_code == 200
    assert len(body) == size and hashlib.sha256(body).hexdigest() == weight.sha256
    # The SHA-256 tag is checked against the row before the first byte; one GET streams.
    expect(sent, f"stream-through download of {size} bytes", internal=[GET_TAGGING, GET_OBJECT])


def test_admin_download_action_then_stream_sends_the_tag_read_and_one_get(
    log: RequestLog, admin_client: Client, make_file: MakeFile
) -> None:
    weight = save_artifact(ModelWeight, make_file("w.pth", SMALL, seed=3))
    data = {"action": "download", "_selected_action": [weight.pk]}
    with log.recording() as sent:
        redirect = admin_client.post(changelist(ModelWeight), data)
        assert redirect.status_code == 302
        assert redirect["Location"].startswith(download_url(weight.kind, weight.pk) + "?next=")
        body = stream_body(admin_client.get(redirect["Location"]))
    assert hashlib.sha256(body).hexdigest() == weight.sha256
    expect(sent, "admin download action, then the stream", internal=[GET_TAGGING, GET_OBJECT])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("size", SIZES)
def test_download_command_with_known_size_and_hash_sends_only_gets(
    model: type[Artifact], size: int, log: RequestLog, make_file: MakeFile, tmp_path: Path
) -> None:
    """The row knows size and SHA-256: no HEAD for the size, no tagging read for the hash."""
    artifact = save_artifact(model, make_file("a.bin", size, seed=4))
    dest = tmp_path / "out.bin"
    with log.recording() as sent:
        call_command(
            "dualstorage_download",
            model.kind,
            "--id",
            str(artifact.pk),
            str(dest),
            stdout=StringIO(),
        )
    assert sha256_file(dest) == artifact.sha256
    gets = [GET_OBJECT] * (1 if size == SMALL else PARTS)
    expect(sent, f"dualstorage_download {model.kind} of {size} bytes", **on(model, *gets))
    if size > SMALL:
        assert_ranged(sent, PARTS)


@pytest.mark.parametrize("size", SIZES)
def test_client_download_without_known_hash_sends_tagging_and_gets(
    size: int, log: RequestLog, make_file: MakeFile, tmp_path: Path
) -> None:
    """No row: one tagging read (the SHA-256 recorded at upload), then the GETs. No HEAD:
    the first (ranged) GET's Content-Range tells s3transfer the size, because the stores
    set ``response_checksum_validation="when_required"``."""
    source = make_file("w.pth", size, seed=5)
    key = f"test/{uuid.uuid4().hex}/w.pth"
    dual_storage.upload_weight(file_path=source, weight_key=key)
    dest = tmp_path / "w.pth"
    with log.recording() as sent:
        result = dual_storage.download_weight(weight_key=key, dest_path=dest)
    assert result.sha256 == sha256_file(source) == sha256_file(dest)
    gets = [GET_OBJECT] * (1 if size == SMALL else PARTS)
    expect(sent, f"download_weight of {size} bytes", internal=[GET_TAGGING, *gets])
    if size > SMALL:
        assert_ranged(sent, PARTS)


@pytest.mark.parametrize("model", MODELS)
def test_changelist_of_50_rows_sends_no_request(
    model: type[Artifact], log: RequestLog, admin_client: Client
) -> None:
    data = b"row bytes"
    prefix = f"{model.kind}/{uuid.uuid4().hex[:12]}"
    keys = [f"{prefix}/{index:03d}.bin" for index in range(ROWS)]
    etags = put_objects(model, keys, data)
    _, bucket = dual_storage.locate(model.kind)
    known: dict[str, Any] = {
        "bucket": bucket,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": "application/octet-stream",
    }
    rows = [
        {**known, "name": f"row {index}", "file": key, "etag": etags[key]}
        for index, key in enumerate(keys)
    ]
    model._default_manager.bulk_create(model(**row) for row in rows)
    with log.recording() as sent:
        response = admin_client.get(changelist(model))
    assert response.status_code == 200
    assert response.context["cl"].result_count == ROWS
    assert len(response.context["cl"].result_list) == ROWS  # one page holds them all
    expect(sent, f"admin changelist of {ROWS} {model.__name__} rows")


def test_dataset_link_view_sends_no_request(
    log: RequestLog, admin_client: Client, make_file: MakeFile
) -> None:
    dataset = save_artifact(Dataset, make_file("d.zip", 1024))
    url = reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk})
    with log.recording() as sent:
        response = admin_client.get(url)
    assert response.status_code == 302 and "X-Amz-Signature=" in response["Location"]
    expect(sent, "dataset link (presigned redirect)")


def test_listing_1000_objects_is_one_page_and_1001_is_two(log: RequestLog) -> None:
    store, bucket = dual_storage.locate("weights")
    prefix = f"test/{uuid.uuid4().hex}/"
    keys = [f"{prefix}{index:04d}" for index in range(1001)]
    put_objects(ModelWeight, keys[:1000], b"x")
    try:
        with log.recording() as sent:
            listed = list(store.list(bucket, prefix))
        assert len(listed) == 1000
        expect(sent, "Store.list of 1,000 objects", internal=[LIST_OBJECTS_V2])

        put_objects(ModelWeight, keys[1000:], b"x")
        with log.recording() as sent:
            listed = list(store.list(bucket, prefix))
        assert len(listed) == 1001
        expect(sent, "Store.list of 1,001 objects", internal=[LIST_OBJECTS_V2] * 2)
    finally:  # 1,001 objects would only slow down whole-bucket listings elsewhere
        for start in range(0, len(keys), 1000):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start : start + 1000]]
            store.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

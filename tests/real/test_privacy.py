"""Private stays private, on the real servers: internal artifacts never get a URL (not
even from the store's own presigner), no object or bucket is ever public (no ACL is
sent, anonymous reads and listings are refused), and one store's keys do not open the
other store.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import Client

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import AccessDenied, NoPublicURL
from dual_storage_app.kinds import STORE_NAMES
from dual_storage_app.storages import ExternalStorage, InternalStorage
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import (
    ALL_MODELS,
    INTERNAL_MODELS,
    MakeFile,
    admin_url,
    assert_page_is_clean,
    make,
    real_settings,
)
from tests.http import refusal_status

pytestmark = pytest.mark.real_s3


@pytest.mark.django_db
def test_internal_artifacts_never_get_a_url(
    real_storage: DualStorageClient, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    for model in INTERNAL_MODELS:
        row = make(model, b"private " + model.kind.encode())
        with pytest.raises(NoPublicURL):
            _ = row.file.url
        with pytest.raises(NoPublicURL):
            InternalStorage(kind=model.kind).url(row.key)
        with pytest.raises(CommandError, match="never get a URL"):
            call_command("dualstorage_presign", "--kind", model.kind, "--id", str(row.pk))
        for page in (
            admin_url(model, "changelist"),
            admin_url(model, "change", row.pk),
            admin_url(model, "add"),
        ):
            response = admin_client.get(page)
            assert response.status_code == 200
            assert_page_is_clean(response.content, s3_servers, page, internal=True)


def test_the_internal_store_refuses_to_presign(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """The store-level primitive enforces the rule too: ``dual_storage.internal`` is a
    public attribute, and a presigned URL to the private store must never exist."""
    real_storage.upload_weight(Path(__file__), f"{unique_key}/private.py")
    with pytest.raises(NoPublicURL):
        real_storage.internal.presign_get("model-weights", f"{unique_key}/private.py", 60)


# -- objects are never public ------------------------------------------------------------


def test_objects_are_private_to_anonymous_clients(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    make_file: MakeFile,
    unique_key: str,
) -> None:
    dataset_key = f"{unique_key}/private.zip"
    real_storage.upload_dataset(file_obj=io.BytesIO(b"private"), dataset_key=dataset_key)
    weight_key = f"{unique_key}/w.pth"
    real_storage.upload_weight(file_path=make_file("w.pth", 10), weight_key=weight_key)
    for url in (
        f"{s3_servers['external'].endpoint_url}/training-datasets/{dataset_key}",
        f"{s3_servers['internal'].endpoint_url}/model-weights/{weight_key}",
    ):
        assert refusal_status(url) == 403


class SentRequests:
    """The parameters and headers of every request sent to either store."""

    def __init__(self, client: DualStorageClient) -> None:
        self.params: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        for store in (client.internal, client.external):
            events = store.client.meta.events
            events.register("before-call.s3", self._call)
            events.register("before-send.s3", self._send)

    def _call(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        self.params.append((model.name, params))

    def _send(self, request: Any, **kwargs: Any) -> None:
        self.headers.append({k.lower(): str(v) for k, v in request.headers.items()})


PUBLIC_GRANTEES = ("AllUsers", "AuthenticatedUsers")


@pytest.mark.django_db
def test_objects_are_never_public(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    big_file: Path,
    unique_key: str,
) -> None:
    sent = SentRequests(real_storage)
    real_storage.upload_weight(big_file, f"{unique_key}/multipart.bin")
    real_storage.upload_checkpoint(Path(__file__), f"{unique_key}/c.py")
    real_storage.upload_schema(unique_key.replace("/", "-"), b"{}")
    with big_file.open("rb") as handle:
        real_storage.upload_dataset(handle, f"{unique_key}/multipart.zip")
    real_storage.internal.copy("model-weights", f"{unique_key}/multipart.bin", f"{unique_key}/copy")
    InternalStorage(kind="weights").save(f"{unique_key}/storage.bin", ContentFile(b"s"))
    ExternalStorage().save(f"{unique_key}/storage.zip", ContentFile(b"s"))
    rows = [make(model, b"row") for model in ALL_MODELS]
    objects = [
        ("internal", "model-weights", f"{unique_key}/multipart.bin"),
        ("internal", "model-weights", f"{unique_key}/copy"),
        ("internal", "training-checkpoints", f"{unique_key}/c.py"),
        ("internal", "config-schemas", f"{unique_key.replace('/', '-')}.json"),
        ("external", "training-datasets", f"{unique_key}/multipart.zip"),
        ("internal", "model-weights", f"{unique_key}/storage.bin"),
        ("external", "training-datasets", f"{unique_key}/storage.zip"),
        *[(row.store_name, row.bucket, row.key) for row in rows],
    ]
    for store_name, bucket, key in objects:
        endpoint = s3_servers[store_name].endpoint_url
        assert refusal_status(f"{endpoint}/{bucket}/{quote(key)}") == 403, key
        store = real_storage.store(store_name)
        grants = store.client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        for grant in grants:
            grantee = grant["Grantee"]
            assert grantee.get("Type") == "CanonicalUser", (key, grant)
            assert not any(g in grantee.get("URI", "") for g in PUBLIC_GRANTEES), (key, grant)
    for name in STORE_NAMES:
        endpoint = s3_servers[name].endpoint_url
        for bucket in real_storage.config.store(name).buckets.values():
            assert refusal_status(f"{endpoint}/{bucket}") == 403  # no anonymous listing
            acl = real_storage.store(name).client.get_bucket_acl(Bucket=bucket)
            assert all("URI" not in g["Grantee"] for g in acl["Grants"]), bucket
    operations = {operation for operation, _ in sent.params}
    assert {"PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject"} <= operations
    for operation, params in sent.params:
        assert not {p for p in params if p == "ACL" or p.startswith("Grant")}, operation
    for headers in sent.headers:
        assert not [h for h in headers if h == "x-amz-acl" or h.startswith("x-amz-grant")]


# -- one store's keys do not open the other ----------------------------------------------


def test_keys_of_one_store_do_not_open_the_other(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None
) -> None:
    internal = s3_servers["internal"]
    crossed = real_settings(
        s3_servers,
        EXTERNAL_STORAGE_ACCESS_KEY=internal.access_key,
        EXTERNAL_STORAGE_SECRET_KEY=internal.secret_key,
    )
    with pytest.raises(AccessDenied, match="external store"):
        DualStorageClient(overrides=crossed).upload_dataset(
            file_obj=io.BytesIO(b"x"), dataset_key="failures/crossed"
        )

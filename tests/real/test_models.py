"""The artifact models on the real servers: what a save records, uploads undone by a
rollback, deletes only after commit, published schemas, content types; and the
migration, which freezes no endpoint, key or secret.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile, File
from django.core.management import call_command
from django.db import transaction
from django.db.migrations.writer import MigrationWriter

import dual_storage_app
from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import StorageUnavailable
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.storages import ExternalStorage, InternalStorage, weights_storage
from dual_storage_app.store import facade
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.pair import EXTERNAL_SECRET, INTERNAL_SECRET
from tests.helpers import SECRETS
from tests.testapp.models import Upload

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


class Boom(Exception):
    pass


def test_save_records_key_bucket_size_hash_etag(real_storage: DualStorageClient) -> None:
    data = b"weights " * 5000
    weight = ModelWeight(name="resnet50")
    weight.file.save("resnet50.pth", ContentFile(data), save=False)
    weight.save()
    weight.refresh_from_db()
    assert weight.key.startswith("weights/") and weight.key.endswith("/resnet50.pth")
    assert (weight.bucket, weight.size) == ("model-weights", len(data))
    assert weight.sha256 == hashlib.sha256(data).hexdigest()
    info = real_storage.head("weights", weight.key)
    assert weight.etag == info.etag and info.size == len(data)


def test_same_name_twice_gives_two_objects(real_storage: DualStorageClient) -> None:
    first = ModelWeight(name="a")
    first.file.save("same.pth", ContentFile(b"one"))
    second = ModelWeight(name="b")
    second.file.save("same.pth", ContentFile(b"two"))
    assert first.key != second.key
    assert real_storage.internal.get_bytes("model-weights", first.key) == b"one"
    assert real_storage.internal.get_bytes("model-weights", second.key) == b"two"


def test_rollback_removes_the_uploaded_object(real_storage: DualStorageClient) -> None:
    checkpoint = TrainingCheckpoint(name="ckpt", job_id="123", epoch=1)
    with pytest.raises(Boom), transaction.atomic():
        checkpoint.file.save("epoch1.pth", ContentFile(b"gpu days"))
        key = checkpoint.key
        assert real_storage.exists("checkpoints", key)
        raise Boom
    assert not real_storage.exists("checkpoints", key)
    assert not TrainingCheckpoint.objects.exists()


def test_savepoint_rollback_removes_only_its_upload(real_storage: DualStorageClient) -> None:
    with transaction.atomic():
        kept = Dataset(name="kept")
        kept.file.save("kept.zip", ContentFile(b"kept"))
        with pytest.raises(Boom), transaction.atomic():
            dropped = Dataset(name="dropped")
            dropped.file.save("dropped.zip", ContentFile(b"dropped"))
            raise Boom
    assert real_storage.exists("datasets", kept.key)
    assert not real_storage.exists("datasets", dropped.key)
    assert list(Dataset.objects.values_list("name", flat=True)) == ["kept"]


def test_delete_removes_the_object_only_after_commit(real_storage: DualStorageClient) -> None:
    dataset = Dataset(name="d")
    dataset.file.save("d.zip", ContentFile(b"d"))
    key = dataset.key
    with transaction.atomic():
        dataset.delete()
        assert real_storage.exists("datasets", key)  # not yet: the delete may roll back
    assert not real_storage.exists("datasets", key)


def test_rolled_back_delete_keeps_the_object(real_storage: DualStorageClient) -> None:
    dataset = Dataset(name="d")
    dataset.file.save("d.zip", ContentFile(b"d"))
    with pytest.raises(Boom), transaction.atomic():
        Dataset.objects.filter(pk=dataset.pk).delete()
        raise Boom
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert real_storage.exists("datasets", dataset.key)


def test_replacing_a_file_deletes_the_old_object_after_commit(
    real_storage: DualStorageClient,
) -> None:
    weight = ModelWeight(name="w")
    weight.file.save("v1.pth", ContentFile(b"v1"))
    old_key = weight.key
    weight.file.save("v2.pth", ContentFile(b"v2"))
    assert weight.key != old_key
    assert not real_storage.exists("weights", old_key)
    assert real_storage.internal.get_bytes("model-weights", weight.key) == b"v2"
    assert ModelWeight.objects.get(pk=weight.pk).sha256 == hashlib.sha256(b"v2").hexdigest()


def test_schema_is_published_for_get_schema(real_storage: DualStorageClient) -> None:
    schema = ConfigSchema(name="ultralytics", framework="yolo-test")
    schema.file.save("schema.json", ContentFile(b'{"v": 1}'))
    assert real_storage.get_schema("yolo-test") == b'{"v": 1}'
    schema.file.save("schema.json", ContentFile(b'{"v": 2}'))
    assert real_storage.get_schema("yolo-test") == b'{"v": 2}'
    schema.delete()
    assert not real_storage.exists("schemas", "yolo-test.json")


class FailingFile(io.RawIOBase):
    """A source that breaks after ``limit`` bytes, like a client that disconnects."""

    def __init__(self, limit: int) -> None:
        self.remaining = limit
        self.name = "interrupted.pth"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            raise OSError("client went away")
        size = self.remaining if size < 0 else min(size, self.remaining)
        self.remaining -= size
        return b"\0" * size


def test_interrupted_upload_publishes_nothing(real_storage: DualStorageClient) -> None:
    store, bucket = real_storage.locate("checkpoints")
    before = {info.key for info in real_storage.list_objects("checkpoints", prefix="jobs/cut/")}
    checkpoint = TrainingCheckpoint(name="cut", job_id="cut", epoch=3)
    with pytest.raises(OSError, match="client went away"):
        checkpoint.file.save("epoch3.pth", File(FailingFile(40 * MiB)))  # type: ignore[arg-type]  # 40 MiB: multipart
    assert not TrainingCheckpoint.objects.filter(job_id="cut").exists()
    after = {info.key for info in real_storage.list_objects("checkpoints", prefix="jobs/cut/")}
    assert after == before
    uploads = store.client.list_multipart_uploads(Bucket=bucket, Prefix="jobs/cut/")
    assert uploads.get("Uploads", []) == []  # the multipart upload was aborted


def test_a_failing_earlier_on_commit_callback_never_deletes_committed_objects(
    real_storage: DualStorageClient,
) -> None:
    def broker_down() -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError), transaction.atomic():
        transaction.on_commit(broker_down)  # registered first, not robust
        weight = ModelWeight(name="survivor")
        weight.file.save("survivor.pth", ContentFile(b"committed bytes"))
    # The transaction committed (the callback failed afterwards): row and object stay.
    assert ModelWeight.objects.filter(pk=weight.pk).exists()
    assert real_storage.internal.get_bytes("model-weights", weight.key) == b"committed bytes"


def test_a_failure_after_the_put_removes_the_object(
    real_storage: DualStorageClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_keys: list[str] = []

    def tag_fails(client: object, config: object, bucket: str, key: str, sha256: str) -> None:
        put_keys.append(key)
        assert real_storage.exists("weights", key)  # the object is there...
        raise StorageUnavailable("recording the SHA-256 failed after the PUT", store="internal")

    monkeypatch.setattr(facade, "record_sha256", tag_fails)
    with pytest.raises(StorageUnavailable):
        ModelWeight(name="orphan").file.save("orphan.pth", ContentFile(b"orphan"))
    monkeypatch.undo()
    assert len(put_keys) == 1
    assert not real_storage.exists("weights", put_keys[0])
    assert not ModelWeight.objects.filter(name="orphan").exists()


def test_renaming_a_schema_moves_its_published_copy(real_storage: DualStorageClient) -> None:
    schema = ConfigSchema(name="s", framework="old-fw")
    schema.file.save("s.json", ContentFile(b'{"s": 1}'))
    assert real_storage.get_schema("old-fw") == b'{"s": 1}'
    schema.framework = "new-fw"
    schema.save()
    assert real_storage.get_schema("new-fw") == b'{"s": 1}'
    assert not real_storage.exists("schemas", "old-fw.json")


def test_content_type_comes_from_the_key_not_the_client(real_storage: DualStorageClient) -> None:
    upload = ContentFile(b"<script>alert(1)</script>", name="x.zip")
    upload.content_type = "text/html"  # type: ignore[attr-defined]
    dataset = Dataset(name="typed")
    dataset.file.save("x.zip", upload)
    assert dataset.content_type == "application/zip"
    assert real_storage.head("datasets", dataset.key).content_type == "application/zip"


# -- the migration -----------------------------------------------------------------------


@pytest.mark.django_db
def test_migrations_freeze_no_endpoint_or_secret(real_storage: DualStorageClient) -> None:
    field = Upload._meta.get_field("weight")
    _, _, _, kwargs = field.deconstruct()
    assert kwargs["storage"] is weights_storage
    serialized, _ = MigrationWriter.serialize(kwargs["storage"])
    assert serialized == "dual_storage_app.storages.weights_storage"
    rendered = repr(InternalStorage()) + repr(ExternalStorage()) + serialized
    for secret in (INTERNAL_SECRET, EXTERNAL_SECRET, "127.0.0.1"):
        assert secret not in rendered


@pytest.mark.django_db
def test_migration_freezes_no_endpoint_key_or_secret(real_storage: DualStorageClient) -> None:
    path = Path(dual_storage_app.__file__).parent / "migrations" / "0001_initial.py"
    source = path.read_text()
    strings = [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    for forbidden in (
        *SECRETS,
        "minioadmin",
        "http://",
        "https://",
        "127.0.0.1",
        "localhost",
        "30900",
        "amazonaws",
        "r2.cloudflarestorage",
        "internal-access",
        "external-access",
    ):
        assert forbidden not in source, forbidden
    assert not [s for s in strings if re.search(r"(?i)secret|access.?key|endpoint", s)]
    # Storages are frozen as import paths of callables, never as configured instances.
    storages = set(re.findall(r"storage=([\w.]+)", source))
    assert storages == {
        f"dual_storage_app.storages.{kind}_storage"
        for kind in ("weights", "checkpoints", "schemas", "datasets")
    }
    out = StringIO()
    call_command("makemigrations", "dual_storage_app", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()

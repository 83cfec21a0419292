"""``upload_dataset_folder`` on the real servers: a folder of small files (nested, one
empty, one non-ASCII name) and one multipart file becomes a folder dataset whose
manifest lists ``sha256sum`` of every file, recorded as a browser's folder ends up, and
``download_dataset`` rebuilds it byte for byte; a rollback takes back row and files; an
existing dataset is never replaced; a bad name is refused before any request; a failure
midway leaves nothing of the call.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import InvalidArgument, InvalidKey, ObjectExists
from dual_storage_app.manifests import read_manifest
from dual_storage_app.models import Dataset, DatasetFile
from dual_storage_app.store.transfer import PART_SIZE
from tests.helpers import assert_no_secret, exception_text, record_api_calls

pytestmark = pytest.mark.real_s3


@pytest.fixture
def client(dual_storage_module_buckets: DualStorageClient) -> DualStorageClient:
    return dual_storage_module_buckets


@pytest.fixture
def no_catalog(settings: SettingsWrapper) -> None:
    """Tests of the transfer alone: the catalog off, so no database is needed."""
    settings.DUAL_STORAGE = {**settings.DUAL_STORAGE, "RECORD_CATALOG": "false"}


@pytest.fixture
def dataset_key() -> str:
    return f"folders/{uuid.uuid4().hex[:12]}/pets"


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def small_files(count: int = 48) -> dict[str, bytes]:
    """Small files in nested folders, one empty, one with a non-ASCII name."""
    files = {f"images/{i // 10}/{i:03d}.jpg": os.urandom(i * 131) for i in range(count)}
    files["labels/été.json"] = b'{"cat": 1}'
    files["empty.txt"] = b""
    return files


def stored_under(client: DualStorageClient, prefix: str) -> dict[str, bytes]:
    store, bucket = client.locate("datasets")
    return {info.key: store.get_bytes(bucket, info.key) for info in store.list(bucket, prefix)}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.django_db
def test_a_folder_round_trips_verified_and_recorded(
    client: DualStorageClient, tmp_path: Path, dataset_key: str
) -> None:
    files = {**small_files(), "big/train.bin": os.urandom(PART_SIZE + 1)}
    folder = write_folder(tmp_path / "pets", files)

    result = client.upload_dataset_folder(folder, dataset_key)

    manifest_key = dataset_key + ".manifest.json"
    store, bucket = client.locate("datasets")
    manifest = store.get_bytes(bucket, manifest_key)
    assert (result.key, result.bucket, result.content_type) == (
        manifest_key,
        bucket,
        "application/json",
    )
    assert result.size == sum(map(len, files.values()))
    assert result.sha256 == hashlib.sha256(manifest).hexdigest()
    listed = {e.path: (e.size, e.sha256) for e in read_manifest(manifest, manifest_key)}
    assert listed == {p: (len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()}
    keys = {info.key for info in store.list(bucket, dataset_key)}
    assert keys == {manifest_key} | {f"{dataset_key}/{p}" for p in files}

    # Recorded as a browser's folder ends up once read back.
    row = Dataset.objects.get(file=manifest_key)
    assert (row.status, row.file_count, row.size, row.sha256, row.bucket) == (
        Dataset.Status.READY,
        len(files),
        result.size,
        result.sha256,
        bucket,
    )
    assert row.is_folder and row.folder_prefix == dataset_key + "/"
    rows = {f.path: (f.size, f.sha256) for f in DatasetFile.objects.filter(dataset=row)}
    assert rows == listed

    downloaded = client.download_dataset(result.key, tmp_path / "copy")
    assert (downloaded.size, downloaded.sha256) == (result.size, result.sha256)
    assert tree(tmp_path / "copy") == files


class Rollback(Exception):
    """Raised to roll back a transaction."""


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_takes_the_folder_with_its_row(
    client: DualStorageClient, tmp_path: Path, dataset_key: str
) -> None:
    folder = write_folder(tmp_path / "pets", {"a.txt": b"a", "b/c.txt": b"c"})
    with pytest.raises(Rollback), transaction.atomic():
        result = client.upload_dataset_folder(folder, dataset_key)
        assert DatasetFile.objects.filter(dataset__file=result.key).count() == 2
        raise Rollback
    assert not Dataset.objects.exists() and not DatasetFile.objects.exists()
    assert stored_under(client, dataset_key) == {}


@pytest.mark.usefixtures("no_catalog")
def test_an_existing_dataset_is_never_replaced(
    client: DualStorageClient, tmp_path: Path, dataset_key: str
) -> None:
    first = write_folder(tmp_path / "first", {"a.txt": b"first", "b/c.txt": b"first c"})
    client.upload_dataset_folder(first, dataset_key)
    before = stored_under(client, dataset_key)

    second = write_folder(tmp_path / "second", {"a.txt": b"second", "new.txt": b"new"})
    with pytest.raises(ObjectExists) as refused:
        client.upload_dataset_folder(second, dataset_key)
    assert repr(dataset_key) in str(refused.value)
    assert stored_under(client, dataset_key) == before


@pytest.mark.usefixtures("no_catalog")
@pytest.mark.parametrize(
    ("case", "error", "named"),
    [
        ("a backslash in a name", InvalidKey, repr("zz\\b.txt")),
        ("a symlink leading outside", InvalidArgument, "'zz-link'"),
        ("a named pipe", InvalidArgument, "'zz-pipe'"),
        ("an empty folder", InvalidArgument, "holds no file"),
        ("not a directory", InvalidArgument, "not a directory"),
        ("a manifest's suffix", InvalidKey, "'x.manifest.json'"),
        ("an invalid dataset key", InvalidKey, "'../x'"),
    ],
)
def test_what_cannot_be_stored_is_refused_before_any_request(
    client: DualStorageClient,
    tmp_path: Path,
    dataset_key: str,
    case: str,
    error: type[Exception],
    named: str,
) -> None:
    folder = write_folder(tmp_path / "folder", {"a.txt": b"a", "images/b.jpg": b"b"})
    target: Path = folder
    key = dataset_key
    makers: dict[str, Callable[[], Any]] = {
        "a backslash in a name": lambda: (folder / "zz\\b.txt").write_bytes(b"x"),
        "a symlink leading outside": lambda: (folder / "zz-link").symlink_to(
            write_folder(tmp_path / "outside", {"secret.txt": b"s"}) / "secret.txt"
        ),
        "a named pipe": lambda: os.mkfifo(folder / "zz-pipe"),
    }
    if case in makers:
        makers[case]()
    elif case == "an empty folder":
        target = tmp_path / "empty"
        (target / "only" / "folders").mkdir(parents=True)
    elif case == "not a directory":
        target = folder / "a.txt"
    elif case == "a manifest's suffix":
        key = "x.manifest.json"
    elif case == "an invalid dataset key":
        key = "../x"
    calls = record_api_calls(client)

    with pytest.raises(error) as refused:
        client.upload_dataset_folder(target, key)

    assert named in str(refused.value)
    assert calls == []


@pytest.mark.usefixtures("no_catalog")
def test_a_failure_midway_leaves_nothing_of_the_call(
    client: DualStorageClient, tmp_path: Path, dataset_key: str
) -> None:
    files = {**small_files(), "big/train.bin": os.urandom(PART_SIZE + 1)}
    folder = write_folder(tmp_path / "pets", files)
    store, bucket = client.locate("datasets")
    taken = f"{dataset_key}/images/2/025.jpg"  # midway in the sorted list
    store.put_bytes(bucket, taken, b"someone else's")
    stored: list[str] = []

    def count_stored(http_response: Any, model: Any, **kwargs: Any) -> None:
        if model.name in ("PutObject", "CompleteMultipartUpload") and (
            http_response.status_code == 200
        ):
            stored.append(model.name)

    store.client.meta.events.register("after-call.s3", count_stored)
    try:
        with pytest.raises(ObjectExists) as refused:
            client.upload_dataset_folder(folder, dataset_key)
    finally:
        store.client.meta.events.unregister("after-call.s3", count_stored)

    message = str(refused.value)
    assert "'images/2/025.jpg'" in message and repr(dataset_key) in message
    assert_no_secret(exception_text(refused.value), "the refusal")
    assert stored, "other files were stored before the failure (and then deleted)"
    assert stored_under(client, dataset_key) == {taken: b"someone else's"}
    assert not [u for u in store.multipart_uploads(bucket) if u.key.startswith(dataset_key)]

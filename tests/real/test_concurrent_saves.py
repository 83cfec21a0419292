"""Concurrent ``storage.save()`` calls with one name never share a key (issue 10, §3).

Each thread saves its own bytes under the same name behind a barrier: every save must
come back with its own name, and every object must hold exactly the bytes of the thread
that got that name. Small files go up as one conditional PutObject (``If-None-Match: *``);
files above the multipart threshold reserve their name first with a conditional empty
PutObject, because SeaweedFS (like some other S3 servers) checks ``If-None-Match`` on
CompleteMultipartUpload without making it atomic. A lost race leaves no multipart upload.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile, File

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import ObjectExists
from dual_storage_app.storages import ExternalStorage, InternalStorage, _DualStorage
from dual_storage_app.store.transfer import PART_SIZE
from tests.helpers import random_file, sha256_file

pytestmark = pytest.mark.real_s3

STORAGES: dict[str, Callable[[], _DualStorage]] = {
    "internal": lambda: InternalStorage(kind="checkpoints"),
    "external": ExternalStorage,
}


def _race(storage: _DualStorage, name: str, contents: list[Any]) -> list[str]:
    """Save every content under ``name`` at once (one thread each, behind a barrier)."""
    barrier = threading.Barrier(len(contents))

    def save(content: Any) -> str:
        barrier.wait()
        return storage.save(name, content)

    with ThreadPoolExecutor(len(contents)) as pool:
        return list(pool.map(save, contents))


def _no_uploads_left(real_storage: DualStorageClient, storage: _DualStorage, prefix: str) -> None:
    store, bucket = real_storage.locate(storage.kind)
    left = [u.key for u in store.multipart_uploads(bucket) if u.key.startswith(prefix)]
    assert left == []


@pytest.mark.parametrize("store", sorted(STORAGES))
def test_eight_concurrent_saves_of_one_name_keep_all_eight_objects(
    real_storage: DualStorageClient, unique_key: str, store: str
) -> None:
    storage = STORAGES[store]()
    payloads = [f"thread {i} ".encode() * (1000 + i) for i in range(8)]
    names = _race(storage, f"{unique_key}/same.bin", [ContentFile(p) for p in payloads])
    assert len(set(names)) == 8, names
    assert f"{unique_key}/same.bin" in names
    location, bucket = real_storage.locate(storage.kind)
    for name, payload in zip(names, payloads, strict=True):
        assert location.get_bytes(bucket, name) == payload, name
    _no_uploads_left(real_storage, storage, unique_key)


@pytest.mark.parametrize("store", sorted(STORAGES))
def test_concurrent_saves_above_the_multipart_threshold_keep_every_object(
    real_storage: DualStorageClient, unique_key: str, tmp_path: Path, store: str
) -> None:
    storage = STORAGES[store]()
    paths = [random_file(tmp_path / f"big{i}.bin", PART_SIZE + 1 + i) for i in range(3)]
    handles = [path.open("rb") for path in paths]
    try:
        names = _race(storage, f"{unique_key}/same.bin", [File(h) for h in handles])
    finally:
        for handle in handles:
            handle.close()
    assert len(set(names)) == 3, names
    location, bucket = real_storage.locate(storage.kind)
    for name, path in zip(names, paths, strict=True):
        assert location.head(bucket, name).size == path.stat().st_size
        assert location.hash_object(bucket, name).sha256 == sha256_file(path), name
    _no_uploads_left(real_storage, storage, unique_key)


def test_a_lost_race_of_a_non_seekable_stream_is_retried_under_another_name(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """A stream that cannot be rewound loses the race before any of it is read (the name
    is reserved first), so the retry still has every byte to send."""

    class Stream:
        closed = False

        def __init__(self, data: bytes) -> None:
            self._data, self._offset, self.name = data, 0, "stream"

        def read(self, size: int = -1) -> bytes:
            end = len(self._data) if size < 0 else self._offset + size
            chunk, self._offset = self._data[self._offset : end], min(end, len(self._data))
            return chunk

        def seekable(self) -> bool:
            return False

    storage = ExternalStorage()
    name = f"{unique_key}/s.bin"
    first = storage.save(name, ContentFile(b"first"))
    # The second save checks the name while it is still free (as a concurrent save
    # would), so it reaches the store with the taken name and must lose there.
    checks: list[str] = []
    real_exists = storage.exists

    def exists_after_the_first_check(checked: str) -> bool:
        checks.append(checked)
        return len(checks) > 1 and real_exists(checked)

    storage.exists = exists_after_the_first_check  # type: ignore[method-assign,assignment]
    second = storage.save(name, File(Stream(b"second stream"), name="s.bin"))  # type: ignore[arg-type]
    assert first == name and second != name and checks[0] == name
    location, bucket = real_storage.locate("datasets")
    assert location.get_bytes(bucket, first) == b"first"
    assert location.get_bytes(bucket, second) == b"second stream"
    _no_uploads_left(real_storage, storage, unique_key)


@pytest.mark.parametrize("size", [10, PART_SIZE + 1], ids=["one-put", "reserved"])
def test_a_conditional_upload_never_replaces_an_object(
    real_storage: DualStorageClient, unique_key: str, tmp_path: Path, size: int
) -> None:
    store, bucket = real_storage.locate("weights")
    key = f"{unique_key}/taken.bin"
    store.upload(bucket, key, io.BytesIO(b"original"))
    path = random_file(tmp_path / "new.bin", size)
    with pytest.raises(ObjectExists) as excinfo:
        store.upload_file(bucket, key, path, if_absent=True)
    assert (excinfo.value.code, excinfo.value.status) == ("PreconditionFailed", 412)
    assert excinfo.value.key == key and "already taken" in str(excinfo.value)
    assert store.get_bytes(bucket, key) == b"original"
    assert [u for u in store.multipart_uploads(bucket) if u.key == key] == []
    free = store.upload_file(bucket, f"{unique_key}/free.bin", path, if_absent=True)
    assert free.sha256 == sha256_file(path) and free.size == size
    assert store.hash_object(bucket, free.key).sha256 == free.sha256


def test_a_failed_reserved_upload_leaves_nothing_under_the_name(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """A stream that breaks after its first part: the multipart upload is aborted and the
    name's placeholder deleted, so the name is free again."""

    class Breaking:
        def __init__(self) -> None:
            self.sent = 0

        def read(self, size: int = -1) -> bytes:
            if self.sent >= PART_SIZE:
                raise OSError("the source broke")
            self.sent += size
            return b"b" * size

    store, bucket = real_storage.locate("weights")
    key = f"{unique_key}/broken.bin"
    with pytest.raises(OSError, match="the source broke"):
        store.upload(bucket, key, Breaking(), if_absent=True)
    assert not store.exists(bucket, key)
    assert [u for u in store.multipart_uploads(bucket) if u.key == key] == []


def test_a_name_that_prefixes_other_keys_is_saved_under_a_free_name(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """SeaweedFS answers 412 to ``If-None-Match: *`` on ``q`` while ``q/inner`` exists
    (its filer holds a folder there) although HEAD finds no object: the save still
    succeeds, under the name or an alternative one, and leaves ``q/inner`` alone."""
    storage = InternalStorage(kind="weights")
    inner = storage.save(f"{unique_key}/q/inner.bin", ContentFile(b"inner"))
    name = storage.save(f"{unique_key}/q", ContentFile(b"outer"))
    assert name.startswith(f"{unique_key}/q")
    location, bucket = real_storage.locate("weights")
    assert location.get_bytes(bucket, name) == b"outer"
    assert location.get_bytes(bucket, inner) == b"inner"


class EverythingTaken(ExternalStorage):
    """A store (or a proxy in front of it) that reports every name as taken."""

    probes = 0

    def exists(self, name: str) -> bool:
        type(self).probes += 1
        return True


def test_a_store_that_reports_every_name_taken_ends_the_search(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    # Django's get_available_name loops until a name is free: here, for ever. Ours gives
    # up after 100 names with ObjectExists (NoFreeName), and save() does not retry it.
    outcome: list[BaseException | str] = []

    def save() -> None:
        try:
            outcome.append(EverythingTaken().save(f"{unique_key}/taken.zip", ContentFile(b"x")))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=save, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "get_available_name is still looking for a free name"
    error = outcome[0]
    assert isinstance(error, ObjectExists) and error.code == "NoFreeName"
    assert "after 100 tries" in str(error) and error.key is not None
    assert EverythingTaken.probes == 100
    assert list(real_storage.list_objects("datasets", prefix=f"{unique_key}/")) == []

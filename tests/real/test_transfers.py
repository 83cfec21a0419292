"""The transfer engine on the real server: bounded memory, ETag pinning, file modes,
the SHA-256 recorded at upload, files uploaded by path, and sizes at the multipart
threshold stored whole. Without a server: ``tests/test_transfers.py``.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile, File
from django.core.management import CommandError

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import IntegrityError
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.models import Dataset, ModelWeight
from dual_storage_app.storages import ExternalStorage
from dual_storage_app.store.transfer import PART_SIZE, MiB
from tests.helpers import run_with_stderr

pytestmark = pytest.mark.real_s3


# -- streaming ---------------------------------------------------------------------------


class GeneratedReader:
    """A forward-only stream of ``size`` bytes that exist only as they are read."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.block = bytes(range(256)) * (MiB // 256)

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        size = min(size, len(self.block))
        self.remaining -= size
        return self.block[:size]


def test_memory_stays_bounded_for_a_large_upload_and_download(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    size = 320 * MiB
    store, bucket = real_storage.locate("checkpoints")
    tracemalloc.start()
    try:
        result = store.upload(bucket, f"{unique_key}/big.pth", GeneratedReader(size))
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        downloaded = store.download(bucket, f"{unique_key}/big.pth", tmp_path / "big.pth")
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == downloaded.size == (tmp_path / "big.pth").stat().st_size == size
    assert downloaded.sha256 == result.sha256
    # 6 parts of 16 MiB may be buffered at once, never the whole 320 MiB.
    assert upload_peak < 130 * MiB, f"upload peak {upload_peak / MiB:.0f} MiB"
    assert download_peak < 130 * MiB, f"download peak {download_peak / MiB:.0f} MiB"
    real_storage.delete("checkpoints", f"{unique_key}/big.pth")


def test_object_replaced_mid_download_fails_and_writes_nothing(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    key = f"{unique_key}/changing.pth"
    original = os.urandom(40 * MiB)
    real_storage.upload_checkpoint(file_path=_write(tmp_path / "v1", original), checkpoint_key=key)
    store, bucket = real_storage.locate("checkpoints")
    calls: list[str] = []

    def replace_after_first_part(**kwargs: Any) -> None:
        calls.append("get")
        if len(calls) == 2:  # the first ranged GET went through; now change the object
            store.client.meta.events.unregister(
                "before-call.s3.GetObject", replace_after_first_part
            )
            store.client.put_object(Bucket=bucket, Key=key, Body=b"replaced")

    dest = tmp_path / "dest.pth"
    dest.write_bytes(b"previous")
    store.client.meta.events.register("before-call.s3.GetObject", replace_after_first_part)
    try:
        with pytest.raises(IntegrityError, match="changed"):
            real_storage.download_checkpoint(checkpoint_key=key, dest_path=dest)
    finally:
        store.client.meta.events.unregister("before-call.s3.GetObject", replace_after_first_part)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest.pth", "v1"]


def test_downloaded_file_gets_a_normal_mode(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    real_storage.upload_dataset(file_obj=io.BytesIO(b"mode"), dataset_key=f"{unique_key}/m")
    old_umask = os.umask(0o022)
    try:
        dest = tmp_path / "m"
        real_storage.download_dataset(dataset_key=f"{unique_key}/m", dest_path=dest)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~old_umask
    dest.chmod(0o640)
    real_storage.download_dataset(dataset_key=f"{unique_key}/m", dest_path=dest)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640  # an existing file keeps its mode


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_client_download_verifies_the_sha256_recorded_at_upload(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    key = f"{unique_key}/rot.pth"
    result = real_storage.upload_weight(
        file_path=_write(tmp_path / "src", b"good" * 1000), weight_key=key
    )
    store, bucket = real_storage.locate("weights")
    tags = store.client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "sha256", "Value": result.sha256}]
    # Bit rot: different bytes under the key, the recorded hash still there.
    store.client.put_object(Bucket=bucket, Key=key, Body=b"bad!" * 1000)
    store.client.put_object_tagging(
        Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "sha256", "Value": result.sha256}]}
    )
    dest = tmp_path / "dest.pth"
    dest.write_bytes(b"previous")
    with pytest.raises(IntegrityError, match="recorded at upload"):
        real_storage.download_weight(weight_key=key, dest_path=dest)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest.pth", "src"]


def test_an_overwrite_clears_the_recorded_hash(
    real_storage: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    key = f"{unique_key}/replaced.pth"
    real_storage.upload_weight(file_path=_write(tmp_path / "a", b"a"), weight_key=key)
    store, bucket = real_storage.locate("weights")
    store.client.put_object(Bucket=bucket, Key=key, Body=b"written by another tool")
    real_storage.download_weight(weight_key=key, dest_path=tmp_path / "b")  # no stale hash
    assert (tmp_path / "b").read_bytes() == b"written by another tool"


# -- files uploaded by path, empty objects -----------------------------------------------


@pytest.mark.parametrize("size", [3 * MiB, 40 * MiB], ids=["single-put", "multipart"])
def test_upload_by_path_records_hash_and_etag_of_the_stored_object(
    real_storage: DualStorageClient, make_file: Any, unique_key: str, size: int
) -> None:
    store, bucket = real_storage.locate("weights")
    path = make_file("w.pth", size, seed=size % 251)
    with path.open("rb") as source:
        result = store.upload(bucket, f"{unique_key}/w.pth", File(source))
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.size == size
    assert result.etag == store.head(bucket, f"{unique_key}/w.pth").etag
    assert real_storage.head("weights", f"{unique_key}/w.pth").size == size


def test_a_file_written_to_during_its_upload_is_refused_and_removed(
    real_storage: DualStorageClient,
    make_file: Any,
    unique_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, bucket = real_storage.locate("weights")
    path = make_file("growing.pth", 20 * MiB)
    real_upload_file = store.client.upload_file

    def upload_then_append(*args: Any, **kwargs: Any) -> None:
        real_upload_file(*args, **kwargs)
        with path.open("ab") as writer:  # another process appends as the upload ends
            writer.write(b"late bytes")

    monkeypatch.setattr(store.client, "upload_file", upload_then_append)
    with pytest.raises(IntegrityError, match="changed while it was uploaded") as caught:
        store.upload_file(bucket, f"{unique_key}/growing.pth", path)
    assert str(path) in str(caught.value)
    monkeypatch.undo()
    assert not real_storage.exists("weights", f"{unique_key}/growing.pth")


def test_an_empty_object_downloads_as_an_empty_verified_file(
    real_storage: DualStorageClient, unique_key: str, tmp_path: Path
) -> None:
    """A ranged GET of an empty object is 416; the download falls back to a plain GET."""
    store, bucket = real_storage.locate("weights")
    uploaded = store.upload(bucket, f"{unique_key}/empty.pth", io.BytesIO(b""))
    result = store.download(bucket, f"{unique_key}/empty.pth", tmp_path / "empty.pth")
    assert result.size == 0 == (tmp_path / "empty.pth").stat().st_size
    assert result.sha256 == uploaded.sha256 == hashlib.sha256(b"").hexdigest()


# -- sizes at the multipart threshold ----------------------------------------------------


@pytest.fixture(scope="module")
def edge_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Path]]:
    folder = tmp_path_factory.mktemp("edge-sizes")
    files: dict[int, Path] = {}
    for size in (0, PART_SIZE, PART_SIZE + 1):
        path = folder / f"{size}.bin"
        block = hashlib.sha256(str(size).encode()).digest() * 32768  # 1 MiB, not all zeros
        with path.open("wb") as handle:
            remaining = size
            while remaining:
                remaining -= handle.write(block[: min(remaining, len(block))])
        files[size] = path
    yield files


@pytest.mark.parametrize("size", [0, PART_SIZE, PART_SIZE + 1], ids=["empty", "16MiB", "16MiB+1"])
def test_edge_sizes_are_stored_whole(
    size: int,
    edge_files: dict[int, Path],
    real_storage: DualStorageClient,
    unique_key: str,
    tmp_path: Path,
) -> None:
    """Observed rule (s3transfer): a single PUT below the 16 MiB threshold, multipart from
    exactly the threshold (one part) and above (two parts for 16 MiB + 1 byte)."""
    source = edge_files[size]
    expected_sha = hashlib.sha256(source.read_bytes()).hexdigest()
    expected_parts = 0 if size < PART_SIZE else -(-size // PART_SIZE)
    with source.open("rb") as handle:
        uploads = [
            real_storage.upload_weight(source, f"{unique_key}/w.bin"),
            real_storage.upload_dataset(handle, f"{unique_key}/d.bin"),
        ]
    kinds: tuple[ArtifactKind, ...] = ("weights", "datasets")
    for result, kind in zip(uploads, kinds, strict=True):
        assert (result.size, result.sha256) == (size, expected_sha)
        info = real_storage.head(kind, result.key)
        assert info.size == size and info.etag == result.etag
        if expected_parts:
            assert info.etag.endswith(f"-{expected_parts}"), info.etag
        else:
            assert "-" not in info.etag
            assert info.etag == hashlib.md5(source.read_bytes()).hexdigest()  # noqa: S324
    dest = tmp_path / "back.bin"
    assert real_storage.download_dataset(f"{unique_key}/d.bin", dest).sha256 == expected_sha
    assert dest.stat().st_size == size
    assert real_storage.download_weight(f"{unique_key}/w.bin", dest).sha256 == expected_sha


@pytest.mark.django_db
def test_empty_file_through_storage_and_model_refused_by_the_command(
    real_storage: DualStorageClient, unique_key: str, tmp_path: Path
) -> None:
    """The storages and the model store an empty file whole (the S3Storage contract);
    the command refuses it as the admin's form does."""
    empty_sha = hashlib.sha256(b"").hexdigest()
    storage = ExternalStorage()
    assert storage.save(f"{unique_key}/empty.zip", ContentFile(b"")) == f"{unique_key}/empty.zip"
    assert storage.size(f"{unique_key}/empty.zip") == 0
    dataset = Dataset(name="empty")
    dataset.file.save("empty.zip", ContentFile(b""))
    assert (dataset.size, dataset.sha256) == (0, empty_sha)
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CommandError, match=r"The submitted file is empty\."):
        run_with_stderr("dualstorage_upload", "weights", str(path))
    assert not ModelWeight.objects.exists()

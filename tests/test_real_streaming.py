"""Streaming guarantees on the real server: bounded memory, ETag pinning, file modes."""

from __future__ import annotations

import io
import os
import stat
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import IntegrityError, InvalidArgument
from dual_storage_app.store.transfer import MiB

pytestmark = pytest.mark.real_s3


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


def test_presign_parameters_cannot_retarget_the_link(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    store, bucket = real_storage.locate("datasets")
    key = f"{unique_key}/d.zip"
    with pytest.raises(InvalidArgument, match="Bucket, Key"):
        store.presign_get(bucket, key, 60, extra={"Bucket": "model-weights", "Key": "x"})
    url = store.presign_get(
        bucket, key, 60, extra={"ResponseContentDisposition": "attachment; filename=d.zip"}
    )
    assert f"/{bucket}/{unique_key}/d.zip?" in url
    assert "response-content-disposition=attachment" in url


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

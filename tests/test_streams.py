"""The hashing reader, the atomic destination and the transfer policy, without a server."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from dual_storage_app.store.download import atomic_destination
from dual_storage_app.store.hashing import HashingReader
from dual_storage_app.store.transfer import MAX_PARTS, MiB, guess_content_type, transfer_config
from dual_storage_app.store.upload import source_size


def test_reader_fills_each_request_and_hashes_everything() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            n = min(3, size)  # at most 3 bytes a call
            chunk, self.data = self.data[:n], self.data[n:]
            return chunk

    reader = HashingReader(Trickle(b"0123456789"))
    assert reader.read(8) == b"01234567"  # equal-sized parts, as R2 wants
    assert reader.read(8) == b"89"
    assert reader.read(8) == b""
    assert reader.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert reader.size == 10


def test_atomic_destination_removes_the_temp_file_on_error(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError, match="boom"), atomic_destination(dest) as handle:
        handle.write(b"partial")
        raise ValueError("boom")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["dest"]


def test_atomic_destination_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError), atomic_destination(tmp_path):
        pass


def test_source_size_of_files_and_buffers(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    with path.open("rb") as handle:
        handle.read(10)
        assert source_size(handle) == 90
    buffer = io.BytesIO(b"y" * 50)
    assert source_size(buffer) == 50
    assert source_size(HashingReader(buffer)) is None  # forward-only: unknown


@pytest.mark.parametrize("size", [None, 1, 156 * 1024 * MiB, 157 * 1024 * MiB, 5 * 1024**4])
def test_part_size_keeps_within_ten_thousand_parts_and_bounded_memory(size: int | None) -> None:
    config = transfer_config(size)
    assert config.multipart_chunksize % MiB == 0
    assert config.multipart_chunksize >= 16 * MiB
    if size is not None:
        assert -(-size // config.multipart_chunksize) <= MAX_PARTS
    if config.multipart_chunksize <= 48 * MiB:
        in_memory = config.max_in_memory_upload_chunks * config.multipart_chunksize
        assert in_memory <= 96 * MiB
    assert config.preferred_transfer_client == "classic"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("m/resnet.pt", "application/octet-stream"),
        ("m/resnet.PTH", "application/octet-stream"),
        ("m/model.safetensors", "application/octet-stream"),
        ("s/ultralytics.json", "application/json"),
        ("d/set.zip", "application/zip"),
        ("noext", "application/octet-stream"),
    ],
)
def test_content_type_guess(key: str, expected: str) -> None:
    assert guess_content_type(key) == expected


def test_source_size_of_a_django_file_around_a_pipe_is_unknown() -> None:
    from django.core.files.base import File

    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

    assert source_size(File(Pipe())) is None  # type: ignore[arg-type]
    assert source_size(File(io.BytesIO(b"12345"))) == 5

"""The fast transfer paths: parallel hashing, files uploaded by path, ETags without HEAD."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.files.base import File
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from dual_storage_app._etags import ETagRecorder
from dual_storage_app._parallel_hash import OffsetWriter, PrefixHasher, hash_fd
from dual_storage_app._streams import local_file
from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import IntegrityError
from dual_storage_app.transfer import MiB

# -- PrefixHasher / OffsetWriter ---------------------------------------------------


def test_prefix_hasher_hashes_a_file_announced_in_steps(tmp_path: Path) -> None:
    data = os.urandom(9 * MiB + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    with path.open("rb") as source:
        hasher = PrefixHasher(source.fileno())
        for end in (1, MiB, 5 * MiB, 5 * MiB):  # repeated and growing announcements
            hasher.advance(end)
        assert hasher.finish(len(data)) == hashlib.sha256(data).hexdigest()


def test_prefix_hasher_reports_a_file_shorter_than_announced(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"12345")
    with path.open("rb") as source:
        hasher = PrefixHasher(source.fileno())
        with pytest.raises(OSError, match="short"):
            hasher.finish(10)


def test_prefix_hasher_can_be_abandoned_twice(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    with path.open("rb") as source:
        hasher = PrefixHasher(source.fileno())
        hasher.advance(50)
        hasher.abandon()
        hasher.abandon()
    assert not any(t.name == "dual-storage-hash" for t in threading.enumerate())


def _write_pieces(writer: OffsetWriter, pieces: list[tuple[int, bytes]]) -> None:
    for offset, piece in pieces:
        writer.seek(offset)
        writer.write(piece)


def test_offset_writer_hashes_out_of_order_parts_in_byte_order(tmp_path: Path) -> None:
    data = os.urandom(6 * MiB + 17)
    pieces = [(o, data[o : o + 256 * 1024]) for o in range(0, len(data), 256 * 1024)]
    random.Random(3).shuffle(pieces)  # noqa: S311 - test data order
    with (tmp_path / "f").open("w+b") as sink:
        writer = OffsetWriter(sink)
        _write_pieces(writer, pieces)
        assert writer.sha256 == hashlib.sha256(data).hexdigest()
        assert writer.size == len(data)
        writer.close()
    assert (tmp_path / "f").read_bytes() == data


def test_offset_writer_rehashes_a_range_written_twice(tmp_path: Path) -> None:
    """A retried range overwrites bytes the hasher may already have read."""
    data = os.urandom(2 * MiB)
    with (tmp_path / "f").open("w+b") as sink:
        writer = OffsetWriter(sink)
        _write_pieces(writer, [(0, b"\0" * MiB), (MiB, data[MiB:])])  # first try: bad
        _write_pieces(writer, [(0, data[:MiB])])  # the retry rewrites part 1
        assert writer.sha256 == hashlib.sha256(data).hexdigest()
        writer.close()


def test_offset_writer_with_a_gap_refuses_to_give_a_hash(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w+b") as sink:
        writer = OffsetWriter(sink)
        _write_pieces(writer, [(0, b"a" * 10), (20, b"b" * 10)])
        with pytest.raises(OSError, match="gap"):
            _ = writer.sha256


def test_hash_fd_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(5 * MiB + 1)
    (tmp_path / "f").write_bytes(data)
    with (tmp_path / "f").open("rb") as source:
        assert hash_fd(source.fileno(), len(data)) == hashlib.sha256(data).hexdigest()


# -- local_file: which sources go by path ------------------------------------------


def test_local_file_accepts_regular_files_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(b"w" * 1000)
    with path.open("rb") as plain:
        found = local_file(plain)
        assert found is not None
        assert (found.path, found.size) == (str(path), 1000)
        assert not found.changed()
    with path.open("rb") as wrapped:
        assert local_file(File(wrapped)) is not None
    upload = TemporaryUploadedFile("w.pth", "application/octet-stream", 3, None)
    upload.write(b"abc")
    upload.seek(0)
    try:
        found = local_file(upload)
        assert found is not None
        assert found.path == upload.temporary_file_path()
    finally:
        upload.close()


def test_local_file_refuses_streams_partial_reads_and_pipes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert local_file(io.BytesIO(b"abc")) is None
    assert local_file(SimpleUploadedFile("a.bin", b"abc")) is None
    with path.open("rb") as moved:
        moved.read(3)
        assert local_file(moved) is None  # only the rest would be uploaded
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as pipe, os.fdopen(write_end, "wb"):
        assert local_file(pipe) is None
    with path.open("rb") as renamed:
        path.rename(tmp_path / "elsewhere")
        assert local_file(renamed) is None  # its name no longer leads to it


def test_local_file_notices_a_write(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"before")
    with path.open("rb") as source:
        found = local_file(source)
        assert found is not None
        with path.open("ab") as appender:
            appender.write(b" and after")
        assert found.changed()


# -- ETagRecorder ------------------------------------------------------------------


def _fake_response(recorder: ETagRecorder, bucket: str, key: str, etag: str) -> None:
    context: dict[str, Any] = {}
    recorder._remember_target(params={"Bucket": bucket, "Key": key}, context=context)
    recorder._capture(parsed={"ETag": f'"{etag}"'}, context=context)


def test_etag_recorder_hands_each_upload_its_etag() -> None:
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    recorder = ETagRecorder(client)
    with recorder.waiting_for("b", "one") as one, recorder.waiting_for("b", "two") as two:
        _fake_response(recorder, "b", "two", "etag-two")
        _fake_response(recorder, "b", "one", "etag-one")
        _fake_response(recorder, "b", "nobody-waits", "etag-x")
    assert (one[0], two[0]) == ("etag-one", "etag-two")


def test_etag_recorder_gives_up_when_one_key_is_uploaded_twice_at_once() -> None:
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    recorder = ETagRecorder(client)
    with recorder.waiting_for("b", "k") as first:
        with recorder.waiting_for("b", "k") as second:
            _fake_response(recorder, "b", "k", "whose?")
        _fake_response(recorder, "b", "k", "whose now?")
    assert first[0] is None
    assert second[0] is None


# -- on the real server ------------------------------------------------------------


@pytest.mark.real_s3
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


@pytest.mark.real_s3
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

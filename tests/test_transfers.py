"""The transfer engine's parts, without a server: the hashing reader and parallel
hashing (``store/hashing.py``), the atomic destination (``store/download.py``), the
transfer policy (``store/transfer.py``), ranged downloads that resume
(``store/ranged_download.py``), files uploaded by path (``store/upload.py``), ETags without
HEAD (``store/etags.py``). On the real server: ``tests/real/test_transfers.py``.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from django.core.files.base import File
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from s3transfer.exceptions import RetriesExceededError

from dual_storage_app.config.loading import load_config
from dual_storage_app.exceptions import InvalidArgument, InvalidKey
from dual_storage_app.folder_upload import _ByteBudget
from dual_storage_app.store import Store
from dual_storage_app.store import download as download_module
from dual_storage_app.store.download import WRITE_BEHIND_STEP, WriteBehind, atomic_destination
from dual_storage_app.store.etags import ETagRecorder
from dual_storage_app.store.hashing import (
    HashingReader,
    PrefixHasher,
    hash_chunks,
    hash_fd,
    hash_file,
)
from dual_storage_app.store.ranged_download import RangedDownload
from dual_storage_app.store.transfer import MAX_PARTS, MiB, guess_content_type, transfer_config
from dual_storage_app.store.upload import regular_file_of, source_size
from tests.helpers import MOTO_SETTINGS

# -- HashingReader, the atomic destination, the transfer policy --------------------------


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


# -- PrefixHasher / OffsetWriter ---------------------------------------------------------


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


def test_hash_fd_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(5 * MiB + 1)
    (tmp_path / "f").write_bytes(data)
    with (tmp_path / "f").open("rb") as source:
        assert hash_fd(source.fileno(), len(data)) == hashlib.sha256(data).hexdigest()


def test_hash_file_and_hash_chunks_match_hashlib(tmp_path: Path) -> None:
    data = os.urandom(MiB + 5)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert hash_chunks(iter(chunks)) == (len(data), hashlib.sha256(data).hexdigest())
    assert hash_chunks([]) == (0, hashlib.sha256(b"").hexdigest())


# -- RangedDownload ----------------------------------------------------------------------


class _Body:
    """A response body that may end early (a connection cut mid-stream)."""

    def __init__(self, data: bytes, cut_after: int | None = None) -> None:
        self._data, self._cut_after, self._offset = data, cut_after, 0

    def read(self, amount: int) -> bytes:
        if self._cut_after is not None and self._offset >= self._cut_after:
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1", error="cut")
        end = self._offset + amount
        if self._cut_after is not None:
            end = min(end, self._cut_after)
        block = self._data[self._offset : end]
        self._offset += len(block)
        return block

    def close(self) -> None:
        pass


class _ScriptedClient:
    """get_object over ``data``; ``cuts`` maps a range start to a byte count after which
    that range's first response breaks; ``ignore_range`` answers 200 with everything."""

    def __init__(
        self, data: bytes, cuts: dict[int, int] | None = None, ignore_range: bool = False
    ) -> None:
        self.data, self.cuts, self.ignore_range = data, dict(cuts or {}), ignore_range
        self.calls: list[dict[str, Any]] = []

    def get_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.ignore_range or "Range" not in params:
            return {"Body": _Body(self.data), "ContentLength": len(self.data), "ETag": '"e"'}
        start, end = (int(n) for n in params["Range"].removeprefix("bytes=").split("-"))
        end = min(end, len(self.data) - 1)
        part = self.data[start : end + 1]
        return {
            "Body": _Body(part, self.cuts.pop(start, None)),
            "ContentRange": f"bytes {start}-{end}/{len(self.data)}",
            "ContentLength": len(part),
            "ETag": '"e"',
        }


def _ranged(
    client: _ScriptedClient,
    path: Path,
    attempts: int = 3,
    on_bytes: Callable[[int], None] = lambda _count: None,
) -> tuple[int, list[int]]:
    """Run a RangedDownload of 1 MiB parts into ``path``; its size and every contiguous
    end it reported."""
    heard: list[int] = []
    with path.open("w+b") as sink:
        size = RangedDownload(
            client,  # type: ignore[arg-type]
            "b",
            "k",
            sink.fileno(),
            part_size=MiB,
            threads=4,
            attempts=attempts,
            on_contiguous=heard.append,
            on_bytes=on_bytes,
        ).run()
    return size, heard


def test_ranged_download_writes_every_part_and_reports_the_complete_prefix(
    tmp_path: Path,
) -> None:
    data = os.urandom(5 * MiB + 3)
    client = _ScriptedClient(data)
    size, heard = _ranged(client, tmp_path / "f")
    assert size == len(data)
    assert (tmp_path / "f").read_bytes() == data
    assert heard == sorted(heard) and heard[-1] == len(data)
    assert len(client.calls) == 6  # one GET per part: no HEAD, no extra probe
    assert all(call.get("IfMatch") == '"e"' for call in client.calls[1:])


def test_ranged_download_reports_every_byte_written_once(tmp_path: Path) -> None:
    """``on_bytes`` (a progress bar) hears each block as it is written, also across a
    resumed range: the increments add up to the size, never more."""
    data = os.urandom(3 * MiB + 11)
    client = _ScriptedClient(data, cuts={MiB: 300_000})
    written: list[int] = []
    lock = threading.Lock()

    def on_bytes(count: int) -> None:
        with lock:
            written.append(count)

    size, _ = _ranged(client, tmp_path / "f", on_bytes=on_bytes)
    assert size == len(data) == sum(written)
    assert len(written) > 4 and all(count > 0 for count in written)


def test_read_into_refuses_a_sink_without_a_file_descriptor() -> None:
    """Downloads are ranged GETs written at their offsets into a real file; a BytesIO is
    refused before any request, with an error that says what to pass instead."""
    store = Store(load_config({**MOTO_SETTINGS}).internal)
    with pytest.raises(InvalidArgument, match=r"BytesIO: the sink must be a file"):
        store.read_into("model-weights", "w.pth", io.BytesIO())
    with pytest.raises(InvalidKey):  # the key is still checked first
        store.read_into("model-weights", "../w.pth", io.BytesIO())


def test_ranged_download_resumes_a_broken_stream_from_where_it_stopped(
    tmp_path: Path,
) -> None:
    data = os.urandom(3 * MiB)
    client = _ScriptedClient(data, cuts={MiB: 300_000})
    _ranged(client, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == data
    resumed = [c["Range"] for c in client.calls if c["Range"].startswith(f"bytes={MiB + 300_000}")]
    assert resumed == [f"bytes={MiB + 300_000}-{2 * MiB - 1}"]


def test_ranged_download_gives_up_after_its_attempts(tmp_path: Path) -> None:
    class AlwaysCut(_ScriptedClient):
        def get_object(self, **params: Any) -> dict[str, Any]:
            response = super().get_object(**params)
            response["Body"] = _Body(response["Body"].read(10**9), cut_after=0)
            return response

    with pytest.raises(RetriesExceededError):
        _ranged(AlwaysCut(os.urandom(2 * MiB)), tmp_path / "f", attempts=2)


def test_ranged_download_accepts_a_server_that_ignores_range(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    client = _ScriptedClient(data, ignore_range=True)
    size, heard = _ranged(client, tmp_path / "f")
    assert (size, heard) == (len(data), [len(data)])
    assert (tmp_path / "f").read_bytes() == data
    assert len(client.calls) == 1


# -- regular_file_of ---------------------------------------------------------------------


def test_regular_file_of_accepts_regular_files_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(b"w" * 1000)
    with path.open("rb") as plain:
        found = regular_file_of(plain)
        assert found is not None
        assert (found.path, found.size) == (str(path), 1000)
        assert not found.changed()
    with path.open("rb") as wrapped:
        assert regular_file_of(File(wrapped)) is not None
    upload = TemporaryUploadedFile("w.pth", "application/octet-stream", 3, None)
    upload.write(b"abc")
    upload.seek(0)
    try:
        found = regular_file_of(upload)
        assert found is not None
        assert found.path == upload.temporary_file_path()
    finally:
        upload.close()


def test_regular_file_of_refuses_streams_partial_reads_and_pipes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert regular_file_of(io.BytesIO(b"abc")) is None
    assert regular_file_of(SimpleUploadedFile("a.bin", b"abc")) is None
    with path.open("rb") as moved:
        moved.read(3)
        assert regular_file_of(moved) is None  # only the rest would be uploaded
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as pipe, os.fdopen(write_end, "wb"):
        assert regular_file_of(pipe) is None
    with path.open("rb") as renamed:
        path.rename(tmp_path / "elsewhere")
        assert regular_file_of(renamed) is None  # its name no longer leads to it


def test_regular_file_of_notices_a_write(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"before")
    with path.open("rb") as source:
        found = regular_file_of(source)
        assert found is not None
        with path.open("ab") as appender:
            appender.write(b" and after")
        assert found.changed()


# -- ETagRecorder ------------------------------------------------------------------------


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


def test_write_behind_flushes_every_step_while_a_download_runs_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[int] = []
    flushing = threading.Event()

    def fdatasync(fd: int) -> None:
        flushed.append(fd)
        flushing.set()

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    fd = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        flusher = WriteBehind(fd)
        flusher.advance(WRITE_BEHIND_STEP - 1)  # less than a step: nothing to flush yet
        assert not flushing.wait(0.2)
        flusher.advance(WRITE_BEHIND_STEP)
        assert flushing.wait(5)
        flusher.stop()
        flusher.stop()  # idempotent
        assert flushed == [fd]
        flusher.advance(3 * WRITE_BEHIND_STEP)  # after stop: ignored, no thread left
        assert flushed == [fd]
    finally:
        os.close(fd)


def test_a_folder_upload_holds_at_most_its_byte_budget_of_small_files_at_once() -> None:
    budget = _ByteBudget(64)
    entered = threading.Event()

    def second() -> None:
        with budget.claim(10):
            entered.set()

    with budget.claim(60):  # 4 bytes left: a claim of 10 waits
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.2)
    assert entered.wait(5)  # released: it goes
    thread.join()
    with budget.claim(1000):  # above the limit: takes the whole budget, does not hang
        pass


def test_ranged_download_asks_its_pace_before_each_block_and_waits_while_refused(
    tmp_path: Path,
) -> None:
    """``pace(end)`` is asked before every block; a refusal holds that block back and
    asks again, so a hasher can keep the writers within reach of it."""
    data = os.urandom(3 * MiB + 5)
    asked: list[int] = []
    refused_once: set[int] = set()
    lock = threading.Lock()

    def pace(end: int) -> bool:
        with lock:
            asked.append(end)
            if end not in refused_once:
                refused_once.add(end)
                return False  # every block is refused once, then allowed
            return True

    with (tmp_path / "f").open("w+b") as sink:
        size = RangedDownload(
            _ScriptedClient(data),  # type: ignore[arg-type]
            "b",
            "k",
            sink.fileno(),
            part_size=MiB,
            threads=4,
            attempts=1,
            on_contiguous=lambda _end: None,
            pace=pace,
        ).run()
    assert size == len(data) and (tmp_path / "f").read_bytes() == data
    block_ends = {min(start + MiB, len(data)) for start in range(0, len(data), MiB)}
    assert sorted(asked) == sorted([*block_ends, *block_ends])  # each asked twice


def test_a_hasher_lets_writers_on_only_within_its_window(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(3 * MiB))
    fd = os.open(path, os.O_RDONLY)
    try:
        hasher = PrefixHasher(fd)
        assert hasher.wait_for_room(MiB, MiB, timeout=1)  # nothing hashed, within reach
        assert not hasher.wait_for_room(2 * MiB + 1, MiB, timeout=0.1)  # too far ahead
        hasher.advance(2 * MiB)
        assert hasher.wait_for_room(3 * MiB, MiB, timeout=5)  # hashed to 2 MiB: room
        hasher.abandon()
        assert hasher.wait_for_room(100 * MiB, MiB, timeout=1)  # stopped: nobody waits
    finally:
        os.close(fd)


@pytest.mark.parametrize(("size", "threads_started"), [(1000, False), (16 * MiB + 1, True)])
def test_a_one_part_download_is_hashed_after_it_lands_with_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, threads_started: bool
) -> None:
    """A small object comes in one stream, in order: hashing it once it has landed
    costs less than starting a hasher thread (a folder's thousands of small files); a
    larger one is hashed by a thread that follows its parallel parts."""
    started: list[int] = []

    class CountedHasher(PrefixHasher):
        def __init__(self, fd: int) -> None:
            started.append(fd)
            super().__init__(fd)

    monkeypatch.setattr(download_module, "PrefixHasher", CountedHasher)
    data = os.urandom(size)
    with (tmp_path / "f").open("w+b") as sink:
        got = download_module.download_to_descriptor(
            _ScriptedClient(data),  # type: ignore[arg-type]
            "b",
            "k",
            sink,
            write_behind=True,
        )
    assert got == (size, hashlib.sha256(data).hexdigest())
    assert (tmp_path / "f").read_bytes() == data
    assert bool(started) is threads_started

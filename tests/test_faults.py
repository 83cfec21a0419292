"""Faults on the real S3 server: resets, 503 SlowDown, truncated and corrupted bodies,
a server killed mid-transfer, unreachable and black-hole endpoints, wrong secrets, and
16 threads at once. Nothing is lost, nothing is corrupted silently.

Faults are injected by :mod:`tests.faultproxy`, a loopback proxy between the client and
the session's SeaweedFS servers; what was stored is always checked directly against the
real server, never through the proxy. The kill cases use a server of their own.

Retries: the stores use botocore's ``standard`` retry mode with ``total_max_attempts``
5: 5 attempts in all (providers.py). ``standard``
retries connection errors, resets, timeouts, 5xx and throttling codes such as
``SlowDown``, with full-jitter exponential backoff (base 50 ms for transient errors,
1 s for throttling, capped at 20 s) and a client-wide retry quota, so a flapping store
costs a bounded number of requests and cannot set off a retry storm. ``legacy`` has no
quota and fewer retryable cases; ``adaptive`` adds client-side rate limiting tuned to
AWS's own throttling. s3transfer adds up to 5 attempts of its own for a download whose
body breaks mid-stream (botocore cannot retry a body it has already handed over).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.base import File
from django.core.management import call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.exceptions import (
    AccessDenied,
    DualStorageError,
    IntegrityError,
    StorageUnavailable,
)
from dual_storage_app.models import TrainingCheckpoint
from dual_storage_app.store import transfer
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.conftest import EXTERNAL_SECRET, INTERNAL_SECRET, real_settings
from tests.faultproxy import FaultProxy
from tests.http import fetch

# Every case is transactional (one needs it, for a model save): pytest-django then runs
# the module's cases together, so its module fixtures (a dedicated server, the black
# hole) are set up once even in a full run.
pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]

MAX_ATTEMPTS = 5  # botocore "standard", total_max_attempts=5 (providers.py)
# Attempts per ranged GET whose body breaks mid-stream (each resumes from the byte reached).
DOWNLOAD_ATTEMPTS = transfer.DOWNLOAD_ATTEMPTS
BLACK_HOLE_BOUND = 60.0  # seconds a caller may wait for a store that never answers
LONE_SECRET = "lone-secret-Pq7wX2"


# -- helpers -------------------------------------------------------------------------


def random_file(path: Path, size: int) -> Path:
    """``size`` random bytes: parts in the wrong order or place change the hash."""
    with path.open("wb") as handle:
        for offset in range(0, size, 4 * MiB):
            handle.write(os.urandom(min(4 * MiB, size - offset)))
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def stored_sha256(client: DualStorageClient, kind: str, key: str) -> str:
    """SHA-256 of the object as the server holds it (a plain GET, no app code)."""
    store, bucket = client.locate(kind)  # type: ignore[arg-type]
    body = store.client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    try:
        for chunk in body.iter_chunks(MiB):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


def object_get(bucket: str, key: str) -> Callable[[str, str], bool]:
    """Matches a GetObject of ``bucket/key`` (not GetObjectTagging, also a GET there)."""

    def matches(method: str, target: str) -> bool:
        parts = urlsplit(target)
        return method == "GET" and parts.path == f"/{bucket}/{key}" and "tagging" not in parts.query

    return matches


def close_clients(*clients: DualStorageClient) -> None:
    for client in clients:
        client.internal.client.close()
        client.external.client.close()


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def proxies(s3_servers: dict[str, LocalS3Server]) -> Iterator[dict[str, FaultProxy]]:
    """A fresh fault proxy in front of each session server."""
    internal = FaultProxy(("127.0.0.1", s3_servers["internal"].s3_port)).start()
    external = FaultProxy(("127.0.0.1", s3_servers["external"].s3_port)).start()
    try:
        yield {"internal": internal, "external": external}
    finally:
        internal.stop()
        external.stop()


@pytest.fixture
def direct(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None
) -> Iterator[DualStorageClient]:
    """A client talking to the real servers, bypassing the proxies."""
    client = DualStorageClient(overrides=real_settings(s3_servers))
    yield client
    close_clients(client)


@pytest.fixture
def proxied(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, proxies: dict[str, FaultProxy]
) -> Iterator[DualStorageClient]:
    """A client whose both stores are reached through the fault proxies."""
    client = DualStorageClient(
        overrides=real_settings(
            s3_servers,
            INTERNAL_STORAGE_ENDPOINT=proxies["internal"].url,
            EXTERNAL_STORAGE_ENDPOINT=proxies["external"].url,
        )
    )
    yield client
    close_clients(client)


# -- a reset mid-part and 30% 503 SlowDown: the transfer completes -----------------------


def test_upload_survives_a_reset_mid_part_and_30pc_slowdown(
    proxied: DualStorageClient,
    direct: DualStorageClient,
    proxies: dict[str, FaultProxy],
    tmp_path: Path,
    unique_key: str,
) -> None:
    source = random_file(tmp_path / "ckpt.pth", 40 * MiB)  # 3 parts of 16 MiB
    proxy = proxies["internal"]
    proxied.upload_checkpoint(file_path=source, checkpoint_key=f"{unique_key}/baseline.pth")
    baseline = len(proxy.requests())  # requests of one fault-free upload
    proxy.clear()

    reset = proxy.reset_after(
        5 * MiB, phase="request", method="PUT", path_contains="partNumber=2", times=1
    )
    # At most 3 refusals of one request: with the reset, 4 failures < 5 attempts, so
    # the outcome does not depend on the RNG (a request refused 6 times in a row by a
    # real 30% would fail: 0.3**6 = 0.07% per request).
    slowdown = proxy.slowdown(0.3, seed=4, max_per_request=3)
    started = time.monotonic()
    result = proxied.upload_checkpoint(file_path=source, checkpoint_key=f"{unique_key}/c.pth")
    elapsed = time.monotonic() - started

    assert result.sha256 == sha256_file(source) and result.size == 40 * MiB
    assert stored_sha256(direct, "checkpoints", f"{unique_key}/c.pth") == result.sha256
    assert reset.fired == 1 and len(proxy.requests("reset-request")) == 1
    refused = len(proxy.requests("slowdown"))
    total = len(proxy.requests())
    assert refused == slowdown.fired > 0
    assert total == baseline + refused + 1  # every failure cost exactly one retry
    assert total <= baseline * MAX_ATTEMPTS
    print(
        f"\nupload 40 MiB: {baseline} requests fault-free; with faults {total} "
        f"({refused} SlowDown, 1 reset) in {elapsed:.1f} s"
    )


def test_download_survives_a_reset_mid_body_and_30pc_slowdown(
    proxied: DualStorageClient,
    direct: DualStorageClient,
    proxies: dict[str, FaultProxy],
    tmp_path: Path,
    unique_key: str,
) -> None:
    source = random_file(tmp_path / "data.zip", 40 * MiB)
    key = f"{unique_key}/data.zip"
    with source.open("rb") as handle:
        uploaded = direct.upload_dataset(file_obj=handle, dataset_key=key)
    proxy = proxies["external"]
    proxied.download_dataset(dataset_key=key, dest_path=tmp_path / "baseline.zip")
    baseline = len(proxy.requests())
    proxy.clear()

    reset = proxy.reset_after(3 * MiB, where=object_get("training-datasets", key), times=1)
    slowdown = proxy.slowdown(0.3, seed=8, max_per_request=3)
    dest = tmp_path / "dest.zip"
    dest.write_bytes(b"previous")
    started = time.monotonic()
    result = proxied.download_dataset(dataset_key=key, dest_path=dest)
    elapsed = time.monotonic() - started

    assert result.sha256 == uploaded.sha256 == sha256_file(dest) == sha256_file(source)
    assert reset.fired == 1 and slowdown.fired > 0
    total = len(proxy.requests())
    assert total == baseline + slowdown.fired + 1
    assert total <= baseline * MAX_ATTEMPTS
    assert files_in(tmp_path) == ["baseline.zip", "data.zip", "dest.zip"]
    print(
        f"\ndownload 40 MiB: {baseline} requests fault-free; with faults {total} "
        f"({slowdown.fired} SlowDown, 1 reset) in {elapsed:.1f} s"
    )


# -- truncated and corrupted bodies: detected, nothing written ---------------------------


@pytest.fixture
def small_weight(direct: DualStorageClient, tmp_path: Path, unique_key: str) -> tuple[str, str]:
    """A 3 MiB weight uploaded directly (single PUT, SHA-256 tag recorded): key, hash."""
    source = random_file(tmp_path / "w.src", 3 * MiB)
    key = f"{unique_key}/w.pth"
    result = direct.upload_weight(file_path=source, weight_key=key)
    source.unlink()
    return key, result.sha256


def test_truncated_get_is_a_clear_error_and_writes_nothing(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    proxy = proxies["internal"]
    # 256 KiB per response: 3 MiB would need 12 resumed GETs, more than the attempts.
    truncate = proxy.truncate_after(256 * 1024, where=object_get("model-weights", key))
    store, bucket = proxied.locate("weights")
    fresh, existing = tmp_path / "fresh.pth", tmp_path / "existing.pth"
    existing.write_bytes(b"previous")
    for dest in (fresh, existing):
        with pytest.raises(DualStorageError) as caught:
            store.download(bucket, key, dest, expected_sha256=sha)
        assert isinstance(caught.value, (StorageUnavailable, IntegrityError))
        assert "internal store" in str(caught.value) and key in str(caught.value)
    assert not fresh.exists() and existing.read_bytes() == b"previous"
    assert files_in(tmp_path) == ["existing.pth"]
    # Each download resumed its broken body DOWNLOAD_ATTEMPTS times, then gave up.
    assert truncate.fired == 2 * DOWNLOAD_ATTEMPTS
    print(f"\ntruncated GET: {type(caught.value).__name__}: {caught.value}")


def test_a_truncation_once_is_retried_and_the_bytes_are_right(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    proxies["internal"].truncate_after(MiB, where=object_get("model-weights", key), times=1)
    result = proxied.download_weight(weight_key=key, dest_path=tmp_path / "w.pth")
    assert result.sha256 == sha == sha256_file(tmp_path / "w.pth")


def test_every_body_cut_short_still_completes_by_resuming(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    """Each GET breaks after 1 MiB; each retry asks only for the bytes still missing
    (``Range`` from the byte reached), so 3 MiB arrive in three GETs, verified."""
    key, sha = small_weight
    cut = proxies["internal"].truncate_after(MiB, where=object_get("model-weights", key))
    result = proxied.download_weight(weight_key=key, dest_path=tmp_path / "w.pth")
    assert result.sha256 == sha == sha256_file(tmp_path / "w.pth")
    # Three GETs, each cut at 1 MiB; the third asked for the last MiB only, so its cut
    # fell exactly at its end. (s3transfer restarts a range from its start: it never
    # gets past the first MiB and gives up after 5 attempts.)
    assert cut.fired == 3


def test_flipped_byte_is_an_integrity_error_and_writes_nothing(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    flip = proxies["internal"].flip_byte(2 * MiB + 5, where=object_get("model-weights", key))
    store, bucket = proxied.locate("weights")
    fresh, existing = tmp_path / "fresh.pth", tmp_path / "existing.pth"
    existing.write_bytes(b"previous")
    for dest in (fresh, existing):
        with pytest.raises(IntegrityError, match="SHA-256") as caught:
            store.download(bucket, key, dest, expected_sha256=sha)
        assert "internal store" in str(caught.value) and key in str(caught.value)
    assert not fresh.exists() and existing.read_bytes() == b"previous"
    assert files_in(tmp_path) == ["existing.pth"]
    assert flip.fired == 2


def test_client_download_detects_a_flipped_byte_against_the_recorded_sha256(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, _ = small_weight
    proxies["internal"].flip_byte(12345, where=object_get("model-weights", key))
    existing = tmp_path / "existing.pth"
    existing.write_bytes(b"previous")
    with pytest.raises(IntegrityError, match="recorded at upload"):
        proxied.download_weight(weight_key=key, dest_path=tmp_path / "fresh.pth")
    with pytest.raises(IntegrityError, match="recorded at upload"):
        proxied.download_weight(weight_key=key, dest_path=existing)
    assert existing.read_bytes() == b"previous"
    assert files_in(tmp_path) == ["existing.pth"]


def test_a_byte_flipped_on_a_retried_get_is_detected(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    proxy = proxies["internal"]
    get = object_get("model-weights", key)
    proxy.reset_after(2 * MiB, where=get, times=1)  # first GET breaks after 2 MiB...
    proxy.flip_byte(1000, where=get, skip=1, times=1)  # ...its retry carries a bad byte
    dest = tmp_path / "w.pth"
    try:
        proxied.download_weight(weight_key=key, dest_path=dest)
    except IntegrityError:
        assert not dest.exists()
        return
    corrupt = sha256_file(dest) != sha
    pytest.fail(f"download succeeded; file on disk {'corrupt' if corrupt else 'intact'}")


# -- a server of our own, killed mid-transfer ------------------------------------------------


@pytest.fixture(scope="module")
def lone_server(
    s3_servers: dict[str, LocalS3Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalS3Server]:
    """A dedicated SeaweedFS that the kill cases may SIGKILL and restart."""
    used = {server.s3_port for server in s3_servers.values()}
    server = LocalS3Server(
        data_dir=tmp_path_factory.mktemp("s3-killed"),
        s3_port=free_port_pair(used),
        access_key="lone-access",
        secret_key=LONE_SECRET,
    )
    server.start()
    try:
        client = DualStorageClient(overrides=lone_settings(server))
        client.create_buckets()
        close_clients(client)
        yield server
    finally:
        server.kill()


def lone_settings(server: LocalS3Server) -> dict[str, str]:
    return real_settings({"internal": server, "external": server})


def test_server_killed_during_a_multipart_upload_loses_nothing(
    lone_server: LocalS3Server, settings: SettingsWrapper, tmp_path: Path
) -> None:
    lone_server.start()
    settings.DUAL_STORAGE = lone_settings(lone_server)
    store, bucket = dual_storage.locate("checkpoints")
    part_two, killed = threading.Event(), threading.Event()

    def kill_when_part_two_starts() -> None:
        part_two.wait(60)
        lone_server.kill()
        killed.set()

    def on_upload_part(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("PartNumber") == 2:
            part_two.set()
            killed.wait(30)  # part 2 goes out once the server is gone

    killer = threading.Thread(target=kill_when_part_two_starts)
    killer.start()
    event = "before-parameter-build.s3.UploadPart"
    store.client.meta.events.register(event, on_upload_part)
    source = random_file(tmp_path / "epoch1.pth", 40 * MiB)
    checkpoint = TrainingCheckpoint(name="cut", job_id="killed", epoch=1)
    started = time.monotonic()
    try:
        with source.open("rb") as handle, pytest.raises(StorageUnavailable) as caught:
            checkpoint.file.save("epoch1.pth", File(handle))
    finally:
        part_two.set()
        killer.join()
        store.client.meta.events.unregister(event, on_upload_part)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert killed.is_set()
    assert "internal store" in message and lone_server.endpoint_url in message
    assert "training-checkpoints" in message and "unreachable" in message
    key = caught.value.key
    assert key is not None and key.startswith("jobs/killed/") and key in message
    assert LONE_SECRET not in message + repr(caught.value)
    assert not TrainingCheckpoint.objects.exists()

    lone_server.start()  # the same data directory and ports
    after = DualStorageClient(overrides=lone_settings(lone_server))
    store_after, _ = after.locate("checkpoints")
    assert list(after.list_objects("checkpoints", "jobs/killed/")) == []
    stale = store_after.client.list_multipart_uploads(Bucket=bucket, Prefix="jobs/killed/")
    assert [u["Key"] for u in stale.get("Uploads", [])] == [key]

    out = StringIO()
    call_command("dualstorage_cleanup_uploads", "--older-than", "0", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert [(u["store"], u["bucket"], u["key"], u["action"]) for u in report["uploads"]] == [
        ("internal", "training-checkpoints", key, "aborted")
    ]
    stale = store_after.client.list_multipart_uploads(Bucket=bucket, Prefix="jobs/killed/")
    assert stale.get("Uploads", []) == []
    close_clients(after)
    print(f"\nkilled mid-upload: StorageUnavailable after {elapsed:.1f} s: {message}")


def test_server_killed_during_a_download_writes_nothing(
    lone_server: LocalS3Server, tmp_path: Path
) -> None:
    lone_server.start()
    client = DualStorageClient(overrides=lone_settings(lone_server))
    store, _ = client.locate("weights")
    sources = {name: random_file(tmp_path / f"{name}.src", 40 * MiB) for name in ("a", "b")}
    for name, source in sources.items():
        client.upload_weight(file_path=source, weight_key=f"killed/{name}.pth")
    dests = {"a": tmp_path / "existing.pth", "b": tmp_path / "fresh.pth"}
    dests["a"].write_bytes(b"previous")

    # Hold every GET once its response head has arrived until both downloads have one;
    # then kill the server: both bodies break mid-stream.
    keys_by_thread: dict[int, str] = {}
    heads: set[str] = set()
    lock, killed = threading.Lock(), threading.Event()

    def before_get(params: dict[str, Any], **kwargs: Any) -> None:
        keys_by_thread[threading.get_ident()] = params["url_path"]

    def after_get(**kwargs: Any) -> None:
        with lock:
            heads.add(keys_by_thread[threading.get_ident()])
            kill_now = len(heads) == 2 and not killed.is_set()
            if kill_now:
                lone_server.kill()
                killed.set()
        killed.wait(30)

    store.client.meta.events.register("before-call.s3.GetObject", before_get)
    store.client.meta.events.register("after-call.s3.GetObject", after_get)

    def download(name: str) -> BaseException | None:
        try:
            client.download_weight(weight_key=f"killed/{name}.pth", dest_path=dests[name])
        except BaseException as exc:
            return exc
        return None

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(2) as pool:
            errors = list(pool.map(download, ("a", "b")))
    finally:
        killed.set()
        close_clients(client)
    elapsed = time.monotonic() - started
    for error in errors:
        assert isinstance(error, StorageUnavailable), error
        assert "internal store" in str(error) and lone_server.endpoint_url in str(error)
    assert dests["a"].read_bytes() == b"previous" and not dests["b"].exists()
    assert files_in(tmp_path) == ["a.src", "b.src", "existing.pth"]
    print(f"\nkilled mid-download: StorageUnavailable after {elapsed:.1f} s: {errors[0]}")


# -- unreachable, black-hole and wrong-secret stores ---------------------------------------


class BlackHole:
    """A download from an endpoint that accepts TCP connections and never answers.

    The listening socket is never ``accept()``-ed: the kernel completes the first
    handshake and queues it, the request sits unread, and later connections find the
    queue full (their SYNs are dropped). Started with the module so that its wait
    overlaps the other cases; :meth:`release` closes the socket (RST to the queue).
    """

    def __init__(self, servers: dict[str, LocalS3Server], dest: Path) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.endpoint = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.client = DualStorageClient(
            overrides=real_settings(servers, EXTERNAL_STORAGE_ENDPOINT=self.endpoint)
        )
        self.dest = dest
        self.error: BaseException | None = None
        self.elapsed: float | None = None
        self.released = False
        self._thread = threading.Thread(target=self._download)
        self._started = time.monotonic()
        self._thread.start()

    def _download(self) -> None:
        try:
            self.client.download_dataset(dataset_key="black/hole.zip", dest_path=self.dest)
        except BaseException as exc:
            self.error = exc
        finally:
            self.elapsed = time.monotonic() - self._started

    def wait(self, bound: float) -> None:
        """Wait until ``bound`` seconds after the start; then release the caller."""
        self._thread.join(max(0.0, self._started + bound - time.monotonic()))
        if self._thread.is_alive():
            self.release()
            self._thread.join()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.socket.close()

    def close(self) -> None:
        self.release()
        self._thread.join()
        close_clients(self.client)


@pytest.fixture(scope="module", autouse=True)
def black_hole(
    s3_servers: dict[str, LocalS3Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BlackHole]:
    hole = BlackHole(s3_servers, tmp_path_factory.mktemp("black-hole") / "hole.zip")
    try:
        yield hole
    finally:
        hole.close()


def test_unreachable_endpoint_is_a_clear_error_within_a_bound(
    s3_servers: dict[str, LocalS3Server], tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port_pair()}"  # nothing listens there
    client = DualStorageClient(
        overrides=real_settings(s3_servers, INTERNAL_STORAGE_ENDPOINT=closed)
    )
    source = random_file(tmp_path / "w.pth", 1024)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # both directions at once: one backoff's worth
        upload = pool.submit(client.upload_weight, file_path=source, weight_key="u/w.pth")
        download = pool.submit(client.download_weight, "u/w.pth", tmp_path / "d.pth")
        errors = [future.exception() for future in (upload, download)]
    elapsed = time.monotonic() - started
    close_clients(client)
    for error in errors:
        assert isinstance(error, StorageUnavailable), error
        message = str(error)
        assert "internal store" in message and closed in message and "unreachable" in message
        assert INTERNAL_SECRET not in message
    # Refused at once, six times, with at most 50 ms x (1 + 2 + 4 + 8 + 16) of backoff.
    assert elapsed < 20, f"{elapsed:.1f} s"
    assert files_in(tmp_path) == ["w.pth"]
    print(f"\nunreachable: StorageUnavailable after {elapsed:.1f} s: {errors[1]}")


def test_wrong_secret_is_access_denied_naming_the_store(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, tmp_path: Path
) -> None:
    wrong = "wrong-secret-Jd82nQ"
    client = DualStorageClient(
        overrides=real_settings(s3_servers, EXTERNAL_STORAGE_SECRET_KEY=wrong)
    )
    started = time.monotonic()
    with pytest.raises(AccessDenied) as caught:
        client.upload_dataset(file_obj=io.BytesIO(b"data"), dataset_key="denied/d.zip")
    assert time.monotonic() - started < 5  # refused, not retried
    with pytest.raises(AccessDenied):
        client.download_dataset(dataset_key="denied/d.zip", dest_path=tmp_path / "d.zip")
    close_clients(client)
    message = str(caught.value)
    assert "external store" in message and s3_servers["external"].endpoint_url in message
    assert "training-datasets" in message and "EXTERNAL_STORAGE_ACCESS_KEY" in message
    for secret in (wrong, EXTERNAL_SECRET, INTERNAL_SECRET):
        assert secret not in message and secret not in repr(caught.value)
    assert files_in(tmp_path) == []


# -- 16 threads, one client -------------------------------------------------------------


def test_sixteen_threads_share_one_client(
    direct: DualStorageClient, tmp_path: Path, unique_key: str
) -> None:
    rng = random.Random(16)  # noqa: S311 - sizes only
    sizes = [rng.randint(MiB, 3 * MiB) for _ in range(16)]
    start = threading.Barrier(16)

    def work(index: int) -> None:
        data = os.urandom(sizes[index])
        want = hashlib.sha256(data).hexdigest()
        source = tmp_path / f"src-{index}"
        source.write_bytes(data)
        weight, dataset = f"{unique_key}/w{index}.pth", f"{unique_key}/d{index}.zip"
        start.wait(30)
        assert direct.upload_weight(file_path=source, weight_key=weight).sha256 == want
        with source.open("rb") as handle:
            assert direct.upload_dataset(file_obj=handle, dataset_key=dataset).sha256 == want
        url = direct.generate_dataset_presigned_url(dataset_key=dataset, expiration=300)
        assert hashlib.sha256(fetch(url)).hexdigest() == want
        for kind, key in (("weights", weight), ("datasets", dataset)):
            dest = tmp_path / f"{kind}-{index}"
            downloaded = (
                direct.download_weight(weight_key=key, dest_path=dest)
                if kind == "weights"
                else direct.download_dataset(dataset_key=key, dest_path=dest)
            )
            assert downloaded.sha256 == want == sha256_file(dest)

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(work, i) for i in range(16)]:
            future.result()
    assert len(list(direct.list_objects("weights", unique_key))) == 16
    assert len(list(direct.list_objects("datasets", unique_key))) == 16


# -- the black hole, last: its download started with the module ---------------------------


def test_black_hole_fails_within_the_bound(black_hole: BlackHole) -> None:
    black_hole.wait(BLACK_HOLE_BOUND)
    assert not black_hole.released, f"still waiting after {BLACK_HOLE_BOUND:.0f} s"
    assert black_hole.elapsed is not None and black_hole.elapsed < BLACK_HOLE_BOUND


def test_black_hole_is_a_clear_error_and_writes_nothing(black_hole: BlackHole) -> None:
    black_hole.wait(BLACK_HOLE_BOUND)
    error = black_hole.error
    assert isinstance(error, StorageUnavailable), error
    assert "external store" in str(error) and black_hole.endpoint in str(error)
    assert list(black_hole.dest.parent.iterdir()) == []
    print(
        f"\nblack hole: {type(error).__name__} after {black_hole.elapsed:.1f} s"
        f"{' (released at the bound)' if black_hole.released else ''}: {error}"
    )

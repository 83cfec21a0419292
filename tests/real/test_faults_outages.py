"""Outages on the real S3 server: a server killed mid-transfer, unreachable and
black-hole endpoints, a wrong secret. Nothing is lost, nothing is written, every error
is clear and comes within a bound. The kill cases use a server of their own.

Retries: see ``test_faults_network.py``.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import File
from django.core.management import call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.exceptions import AccessDenied, StorageUnavailable
from dual_storage_app.models import TrainingCheckpoint
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.pair import EXTERNAL_SECRET, INTERNAL_SECRET
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.helpers import close_clients, files_in, random_file, real_settings

# Every case is transactional (one needs it, for a model save): pytest-django then runs
# the module's cases together, so its module fixtures are set up once even in a full run.
pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


BLACK_HOLE_BOUND = 60.0  # seconds a caller may wait for a store that never answers
LONE_SECRET = "lone-secret-Pq7wX2"


# -- a server of our own, killed mid-transfer --------------------------------------------


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


# -- unreachable, black-hole and wrong-secret stores -------------------------------------


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


# -- the black hole, last: its download started with the module --------------------------


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

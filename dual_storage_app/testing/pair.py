"""A pair of real S3 servers, one per store, and Django settings pointed at them.

The pieces behind the pytest plugin (:mod:`.plugin`), usable without pytest too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from django.test import override_settings

from ..client import DualStorageClient, dual_storage
from ..kinds import REGISTRY
from .server import LocalS3Server, find_weed, free_port_pair

# Throw-away credentials of throw-away servers on loopback; distinct, so a test sees a
# store refuse the other store's keys. Tests may search output for them (leak checks).
INTERNAL_ACCESS_KEY, INTERNAL_SECRET = "internal-access", "internal-secret-Zq8vN3xK"
EXTERNAL_ACCESS_KEY, EXTERNAL_SECRET = "external-access", "external-secret-Wm4pR7tY"


class S3Servers(NamedTuple):
    """The two servers: one per store, with different credentials."""

    internal: LocalS3Server
    external: LocalS3Server


def start_server_pair(internal_dir: Path, external_dir: Path) -> S3Servers:
    """Start both servers in parallel, keeping their data in the two folders
    (``FileNotFoundError`` when SeaweedFS's ``weed`` is not installed)."""
    find_weed()
    used: set[int] = set()
    servers = S3Servers(
        internal=LocalS3Server(
            data_dir=internal_dir,
            s3_port=free_port_pair(used),
            access_key=INTERNAL_ACCESS_KEY,
            secret_key=INTERNAL_SECRET,
        ),
        external=LocalS3Server(
            data_dir=external_dir,
            s3_port=free_port_pair(used),
            access_key=EXTERNAL_ACCESS_KEY,
            secret_key=EXTERNAL_SECRET,
        ),
    )
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(server.start) for server in servers]
    failures = [future.exception() for future in started if future.exception() is not None]
    if failures:
        for server in servers:
            server.kill()
        raise failures[0]  # type: ignore[misc]
    return servers


def store_settings(servers: S3Servers, **extra: str) -> dict[str, str]:
    """``DUAL_STORAGE`` settings that point both stores at ``servers``, plus ``extra``."""
    values = {}
    for name, server in (("INTERNAL", servers.internal), ("EXTERNAL", servers.external)):
        values[f"{name}_STORAGE_ENDPOINT"] = server.endpoint_url
        values[f"{name}_STORAGE_ACCESS_KEY"] = server.access_key
        values[f"{name}_STORAGE_SECRET_KEY"] = server.secret_key
    values.update(extra)
    return values


@contextmanager
def fresh_buckets(servers: S3Servers) -> Iterator[DualStorageClient]:
    """Create a new, empty bucket for every artifact kind, point ``DUAL_STORAGE`` at
    them while the block runs, then delete them with everything in them."""
    run = uuid.uuid4().hex[:10]
    buckets = {spec.bucket_setting: f"t{run}-{spec.kind}" for spec in REGISTRY.values()}
    values = store_settings(servers, **buckets)
    DualStorageClient(overrides=values).create_buckets()
    try:
        with override_settings(DUAL_STORAGE=values):
            yield dual_storage
    finally:
        for spec in REGISTRY.values():
            server = servers.internal if spec.is_internal else servers.external
            server.delete_bucket(buckets[spec.bucket_setting])

"""Where the bench's server is and how every contender reaches it."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dual_storage_app.testing.server import LocalS3Server, free_port_pair


@dataclass(frozen=True)
class Target:
    """Where the bench's server is and how to reach it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    workdir: Path
    region: str = "us-east-1"

    def overrides(self) -> dict[str, str | None]:
        """Settings for ``DualStorageClient(overrides=...)``: both stores on this server."""
        values: dict[str, str | None] = {}
        for store in ("INTERNAL", "EXTERNAL"):
            values[f"{store}_STORAGE_ENDPOINT"] = self.endpoint_url
            values[f"{store}_STORAGE_ACCESS_KEY"] = self.access_key
            values[f"{store}_STORAGE_SECRET_KEY"] = self.secret_key
        # The bench times transfers; a catalog row per upload is a database write that the
        # peers do not make (and the bench's database has no artifact tables).
        values["RECORD_CATALOG"] = "false"
        return values

    def cli_env(self) -> dict[str, str]:
        """Environment for CLI peers: keys, region, and no config files outside workdir."""
        home = self.workdir / "cli-home"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        env.update(
            HOME=str(home),
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
            AWS_CONFIG_FILE=str(home / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            RCLONE_CONFIG=str(home / "rclone.conf"),
            NO_PROXY="127.0.0.1,localhost",
        )
        return env


@contextmanager
def own_server(
    bucket: str, *, prefix: str, workdir: Path | None = None
) -> Iterator[tuple[LocalS3Server, Target]]:
    """A SeaweedFS of the bench's own on free loopback ports, in a temporary directory
    under ``workdir``, and the :class:`Target` of ``bucket`` on it; killed at the end
    (throw-away data: no ~15 s graceful stop), the directory removed."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=workdir) as tmp:
        root = Path(tmp)
        server = LocalS3Server(
            data_dir=root / "server",
            s3_port=free_port_pair(),
            access_key="bench-access",
            secret_key="bench-secret-key",
        )
        started = time.perf_counter()
        server.start()
        try:
            print(f"SeaweedFS on {server.endpoint_url} ({time.perf_counter() - started:.1f} s)")
            yield (
                server,
                Target(server.endpoint_url, server.access_key, server.secret_key, bucket, root),
            )
        finally:
            server.kill()

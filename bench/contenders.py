"""The contenders: our client, raw boto3 (default and tuned) and the S3 CLI peers.

Each contender uploads a local file to ``bucket/key`` and downloads ``bucket/key`` to a
local path. CLI peers get the endpoint and keys through flags and environment variables
only; any config file they might read points into the bench's temp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from dual_storage_app.client import DualStorageClient
from dual_storage_app.store import Store
from dual_storage_app.store.ranged_download import download_into

from .target import Target

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
OURS = "ours"
DIAGNOSTIC = "(diagnostic)"  # rows that explain a figure; no goal is judged on them
NOT_INSTALLED = "n/a (not installed)"


def raw_client(target: Target, max_pool_connections: int = 10) -> S3Client:
    """A plain boto3 client, with only the checksum setting S3-compatible stores need
    (and, for callers with more threads, a bigger connection pool than botocore's 10)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=target.endpoint_url,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        region_name=target.region,
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=max_pool_connections,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def our_store(target: Target, name: str = "internal") -> Store:
    client = DualStorageClient(overrides=target.overrides())
    return client.internal if name == "internal" else client.external


class Contender:
    """One way of moving a file; ``missing`` is set when it cannot run here."""

    name = "?"
    missing: str | None = None
    directions: tuple[str, ...] = ("upload", "download")

    def upload(self, source: Path, key: str) -> None:
        raise NotImplementedError

    def prepare_download(self, source: Path, key: str) -> None:
        """Called once before the download rounds (``key`` holds ``source``'s bytes)."""

    def cleanup(self) -> None:
        """Called after each timed upload, to keep the server's disk from filling."""

    def download(self, key: str, dest: Path) -> None:
        raise NotImplementedError


class Ours(Contender):
    """Store.upload_file / Store.download: SHA-256 hashed, tagged and verified."""

    name = OURS

    def __init__(self, target: Target) -> None:
        self.bucket = target.bucket
        self.store = our_store(target)

    def upload(self, source: Path, key: str) -> None:
        self.store.upload_file(self.bucket, key, source)

    def download(self, key: str, dest: Path) -> None:
        self.store.download(self.bucket, key, dest)


class OursWithoutHash(Contender):
    """Our download engine (parallel ranged GETs, ``pwrite``) with no SHA-256 and no
    verification: not a way to use the app, but the measure of what integrity costs."""

    name = f"{OURS} without SHA-256 {DIAGNOSTIC}"
    directions = ("download",)

    def __init__(self, target: Target) -> None:
        self.bucket = target.bucket
        self.store = our_store(target)

    def prepare_download(self, source: Path, key: str) -> None:
        if not self.store.exists(self.bucket, key):  # the warm-up's key, not the rounds'
            self.store.upload_file(self.bucket, key, source)

    def download(self, key: str, dest: Path) -> None:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            download_into(self.store.client, self.bucket, key, fd)
        finally:
            os.close(fd)


class RawBoto3(Contender):
    """boto3 ``upload_file`` / ``download_file`` with a given TransferConfig."""

    def __init__(self, target: Target, name: str, config: TransferConfig) -> None:
        self.name = name
        self.bucket = target.bucket
        self.client = raw_client(target)
        self.config = config

    def upload(self, source: Path, key: str) -> None:
        self.client.upload_file(str(source), self.bucket, key, Config=self.config)

    def download(self, key: str, dest: Path) -> None:
        self.client.download_file(self.bucket, key, str(dest), Config=self.config)


def venv_binary(name: str) -> Path | None:
    """``name`` in this interpreter's bin directory (where PyPI wheels put binaries)."""
    path = Path(sys.executable).parent / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


class Cli(Contender):
    """A CLI peer; subclasses build the command lines."""

    binary = "?"

    def __init__(self, target: Target) -> None:
        self.target = target
        self.path = venv_binary(self.binary)
        self.missing = None if self.path else NOT_INSTALLED
        self.env = target.cli_env()

    def url(self, key: str) -> str:
        return f"s3://{self.target.bucket}/{key}"

    def command(self, source: str, dest: str) -> list[str]:
        raise NotImplementedError

    def _run(self, source: str, dest: str) -> None:
        result = subprocess.run(
            self.command(source, dest), env=self.env, capture_output=True, check=False
        )
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"{self.name} exited with {result.returncode}: {stderr}")

    def upload(self, source: Path, key: str) -> None:
        self._run(str(source), self.url(key))

    def download(self, key: str, dest: Path) -> None:
        self._run(self.url(key), str(dest))


class S5cmd(Cli):
    name = binary = "s5cmd"

    def command(self, source: str, dest: str) -> list[str]:
        return [str(self.path), "--endpoint-url", self.target.endpoint_url, "cp", source, dest]


class AwsCli(Cli):
    name = "aws s3 cp"
    binary = "aws"

    def command(self, source: str, dest: str) -> list[str]:
        endpoint = self.target.endpoint_url
        return [str(self.path), "s3", "cp", source, dest, "--endpoint-url", endpoint]


class Rclone(Cli):
    """rclone with an on-the-fly ``:s3:`` remote configured by environment variables."""

    name = binary = "rclone"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.env.update(
            RCLONE_S3_PROVIDER="Other",
            RCLONE_S3_ACCESS_KEY_ID=target.access_key,
            RCLONE_S3_SECRET_ACCESS_KEY=target.secret_key,
            RCLONE_S3_ENDPOINT=target.endpoint_url,
            RCLONE_S3_REGION=target.region,
            RCLONE_S3_FORCE_PATH_STYLE="true",
        )

    def url(self, key: str) -> str:
        return f":s3:{self.target.bucket}/{key}"

    def command(self, source: str, dest: str) -> list[str]:
        return [str(self.path), "copyto", "--s3-no-check-bucket", source, dest]


def warm_up(contenders: list[Contender], workdir: Path) -> None:
    """One small untimed round trip per in-process contender: clients, service models
    and connection pools are built before the clock starts (as in a long-running
    server). CLI peers start cold on every run by nature; that cost is theirs."""
    source, dest = workdir / "warm-up", workdir / "warm-up-download"
    source.write_bytes(os.urandom(1024))
    for contender in contenders:
        if contender.missing is None and not isinstance(contender, Cli):
            key = f"bench/warm-up/{contender.name.replace(' ', '-')}"
            if "upload" in contender.directions:
                contender.upload(source, key)
                contender.cleanup()
            if "download" in contender.directions:
                contender.prepare_download(source, key)
                contender.download(key, dest)
                dest.unlink()
    source.unlink()

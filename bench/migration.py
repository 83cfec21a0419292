"""``--only migration``: copying a bucket from one S3 server to another, ours against peers.

A second SeaweedFS (server A, its own credentials) holds the source buckets; the bench's
server (B) holds the target, the external store's datasets bucket. Two cases: many
small objects (keys like ``datasets/shard-0042/img-000123.jpg``), timed as objects/s,
and one large object, timed as MB/s. Contenders:

* ours: the migration engine as ``dualstorage_migrate --apply --rules datasets`` runs it
  (plan from a listing, journal, streamed copy, read-back SHA-256 check of every copy,
  a ``Dataset`` row per object), in this process with Django set up by
  :mod:`bench.djangoenv`;
* ``rclone copy`` between two remotes configured by environment variables;
* s5cmd, which takes one ``--endpoint-url`` and one credential set per command (its
  ``cp s3://... s3://...`` is a server-side CopyObject on one endpoint), so it cannot
  copy between these servers in one command: it runs as a download from A into a local
  directory, then an upload of that directory to B, and, for the one large object, as
  ``s5cmd cat`` (A) piped into ``s5cmd pipe`` (B).

Each run starts on an empty target and is checked afterwards, untimed: the target must
list every source key at its size and nothing else, or the row is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig

from dual_storage_app.testing.server import LocalS3Server, free_port_pair

from .contenders import NOT_INSTALLED, OURS, MiB, raw_client, venv_binary
from .cpu import CpuMeter, CpuSample
from .djangoenv import bucket_names, configure
from .memory import seaweed_vacuum, write_test_file
from .report import Result, size_label
from .target import Target

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

    from dual_storage_app.moving.source import MigrationSource

KiB = 1024
OPERATION = "migrate"  # every row's operation starts with it (goals.py finds them by it)
SMALL_SIZE = 4 * KiB
FULL_FIGURES = (1000, 1024 * MiB)  # small objects, bytes of the large one
QUICK_FIGURES = (200, 64 * MiB)
SMALL_BUCKET, LARGE_BUCKET, WARM_UP_BUCKET = "migrate-small", "migrate-large", "migrate-warm-up"
LARGE_KEY = "datasets/large/train-000.tar"
VACUUM_FROM = 256 * MiB  # a smaller large object leaves too little to vacuum (~5 s each)

OURS_NAME = f"{OURS} engine: streamed + read-back SHA-256 + journal *"
RCLONE_NAME = "rclone copy src:<bucket> dst:<bucket>"
S5CMD_DISK_NAME = "s5cmd cp A->local dir, then cp dir->B"
S5CMD_PIPE_NAME = "s5cmd cat A, piped into s5cmd pipe B"


def small_key(number: int) -> str:
    return f"datasets/shard-{number // 25:04d}/img-{number:06d}.jpg"


@dataclass(frozen=True)
class Case:
    """One thing to migrate: a source bucket on A, and what the target must hold after."""

    operation: str
    size: int  # bytes of each object
    per_run: int  # objects per run for an objects/s row; 0 for a MB/s row
    bucket: str
    keys: tuple[str, ...]


class Copier:
    """One way of copying a source bucket on A into the target bucket on B."""

    name = "?"
    missing: str | None = None

    def copy(self, case: Case) -> None:
        raise NotImplementedError

    def clean(self, case: Case) -> None:
        """Untimed, after each run: whatever the copy left besides the target's objects."""


class Ours(Copier):
    """The engine behind ``dualstorage_migrate --apply --rules datasets``: plan (a listing
    of the source), journal, then the run (8 workers, its default)."""

    name = OURS_NAME

    def __init__(self, source: Target, target: Target) -> None:
        configure(target)
        self.source = source
        self.runs = 0

    def _source(self, bucket: str) -> MigrationSource:
        from dual_storage_app.moving.source import load_source

        environ = {  # as the MIGRATION_SOURCE_* variables the command reads
            "MIGRATION_SOURCE_ENDPOINT": self.source.endpoint_url,
            "MIGRATION_SOURCE_ACCESS_KEY": self.source.access_key,
            "MIGRATION_SOURCE_SECRET_KEY": self.source.secret_key,
            "MIGRATION_SOURCE_REGION": self.source.region,
        }
        return load_source([bucket], environ=environ)

    def copy(self, case: Case) -> None:
        from dual_storage_app.moving.engine import plan_migration, run_migration, write_journal
        from dual_storage_app.moving.rules import PRESETS

        self.runs += 1
        name = f"bench-{self.runs}"
        source = self._source(case.bucket)
        plan = plan_migration(source, PRESETS["datasets"])
        write_journal(name, plan)
        report = run_migration(name, source)
        if report.errors or report.outcomes["streamed"] != len(case.keys):
            first = report.errors[0]["error"] if report.errors else ""
            raise RuntimeError(f"outcomes {dict(report.outcomes)} {first}")

    def clean(self, case: Case) -> None:
        """Drop the journal and the ``Dataset`` rows (the target is emptied in bulk)."""
        from django.db import connection

        from dual_storage_app.models import Dataset
        from dual_storage_app.moving.journal import MigrationEntry

        MigrationEntry.objects.all().delete()
        # Raw SQL: a model delete would also delete each row's object, one request each.
        table = connection.ops.quote_name(Dataset._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - the model's own table


class Cli(Copier):
    """A CLI peer: its binary from this venv, each server reached with its own keys."""

    binary = "?"

    def __init__(self, source: Target, target: Target) -> None:
        self.source, self.target = source, target
        self.path = str(venv_binary(self.binary) or "")
        self.missing = None if self.path else NOT_INSTALLED
        self.env_a, self.env_b = source.cli_env(), target.cli_env()  # each server's keys

    @staticmethod
    def check(done: subprocess.CompletedProcess[bytes], what: str) -> None:
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()[-300:]
            raise RuntimeError(f"{what} exited with {done.returncode}: {stderr}")

    def run(self, command: list[str], env: Mapping[str, str]) -> None:
        done = subprocess.run(command, env=env, capture_output=True, check=False)
        self.check(done, self.name)


class RcloneCopy(Cli):
    """``rclone copy src:<bucket> dst:<bucket>`` with the remotes ``src`` and ``dst``
    defined by ``RCLONE_CONFIG_<REMOTE>_*`` variables (rclone's defaults otherwise)."""

    name, binary = RCLONE_NAME, "rclone"

    def __init__(self, source: Target, target: Target) -> None:
        super().__init__(source, target)
        self.env = dict(self.env_b)
        for remote, server in (("SRC", source), ("DST", target)):
            prefix = f"RCLONE_CONFIG_{remote}_"
            self.env.update(
                {
                    prefix + "TYPE": "s3",
                    prefix + "PROVIDER": "Other",
                    prefix + "ENV_AUTH": "false",
                    prefix + "ACCESS_KEY_ID": server.access_key,
                    prefix + "SECRET_ACCESS_KEY": server.secret_key,
                    prefix + "ENDPOINT": server.endpoint_url,
                    prefix + "REGION": server.region,
                    prefix + "FORCE_PATH_STYLE": "true",
                    prefix + "NO_CHECK_BUCKET": "true",
                }
            )

    def copy(self, case: Case) -> None:
        self.run([self.path, "copy", f"src:{case.bucket}", f"dst:{self.target.bucket}"], self.env)


class S5cmdViaDisk(Cli):
    """``s5cmd cp 's3://<bucket>/*' dir/`` on A, then ``s5cmd cp 'dir/*' s3://<target>/``
    on B (s5cmd's defaults: 256 workers, 50 MiB parts, 5 at once)."""

    name, binary = S5CMD_DISK_NAME, "s5cmd"

    def __init__(self, source: Target, target: Target) -> None:
        super().__init__(source, target)
        self.stage = target.workdir / "s5cmd-stage"

    def copy(self, case: Case) -> None:
        self.stage.mkdir()
        download = ["cp", f"s3://{case.bucket}/*", f"{self.stage}/"]
        self.run([self.path, "--endpoint-url", self.source.endpoint_url, *download], self.env_a)
        upload = ["cp", f"{self.stage}/*", f"s3://{self.target.bucket}/"]
        self.run([self.path, "--endpoint-url", self.target.endpoint_url, *upload], self.env_b)

    def clean(self, case: Case) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


class S5cmdPipe(Cli):
    """``s5cmd cat s3://<bucket>/<key>`` on A piped into ``s5cmd pipe s3://<target>/<key>``
    on B, one object at a time (used for the one large object)."""

    name, binary = S5CMD_PIPE_NAME, "s5cmd"

    def copy(self, case: Case) -> None:
        for key in case.keys:
            self._pipe(case.bucket, key)

    def _pipe(self, bucket: str, key: str) -> None:
        cat_command = [self.path, "--endpoint-url", self.source.endpoint_url, "cat"]
        put_command = [self.path, "--endpoint-url", self.target.endpoint_url, "pipe"]
        with tempfile.TemporaryFile() as cat_errors:
            cat = subprocess.Popen(
                [*cat_command, f"s3://{bucket}/{key}"],
                env=self.env_a,
                stdout=subprocess.PIPE,
                stderr=cat_errors,
            )
            assert cat.stdout is not None
            try:
                put = subprocess.run(
                    [*put_command, f"s3://{self.target.bucket}/{key}"],
                    env=self.env_b,
                    stdin=cat.stdout,
                    capture_output=True,
                    check=False,
                )
            finally:
                cat.stdout.close()
                cat.wait()
            cat_errors.seek(0)
            self.check(
                subprocess.CompletedProcess(cat.args, cat.returncode, b"", cat_errors.read()),
                "s5cmd cat",
            )
        self.check(put, "s5cmd pipe")


class ServersMeter(CpuMeter):
    """CPU seconds of the bench (with the CLI peers it waited for) and of both servers."""

    def __init__(self, meters: list[CpuMeter]) -> None:
        super().__init__(None)
        self.meters = meters

    def sample(self) -> CpuSample:
        samples = [meter.sample() for meter in self.meters]
        return CpuSample(samples[0].client, sum(sample.server for sample in samples))


def fill_source(client: S3Client, case: Case, workdir: Path) -> None:
    """Create ``case.bucket`` on A and write its objects (random bytes)."""
    client.create_bucket(Bucket=case.bucket)
    if case.per_run:
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda key: client.put_object(
                        Bucket=case.bucket, Key=key, Body=os.urandom(case.size)
                    ),
                    case.keys,
                )
            )
        return
    path = workdir / "migration-large"
    write_test_file(path, case.size)
    config = TransferConfig(multipart_chunksize=16 * MiB, max_concurrency=10)
    client.upload_file(str(path), case.bucket, case.keys[0], Config=config)
    path.unlink()


def listed(client: S3Client, bucket: str) -> dict[str, int]:
    """Every key of ``bucket`` with its size."""
    sizes: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = item["Size"]
    return sizes


def empty(client: S3Client, bucket: str) -> None:
    """Delete every object of ``bucket`` (1,000 per request) and any unfinished upload."""
    keys = list(listed(client, bucket))
    for start in range(0, len(keys), 1000):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def missing_from_target(client: S3Client, bucket: str, case: Case) -> str | None:
    """What the target lacks after a run (``None``: every key, at its size)."""
    found = listed(client, bucket)
    wrong = [key for key in case.keys if found.get(key) != case.size]
    if wrong or len(found) != len(case.keys):
        return f"target holds {len(found)} object(s), {len(wrong)} source key(s) missing or short"
    return None


def timed_cases(
    cases: list[tuple[Case, list[Copier]]],
    repeat: int,
    target_client: S3Client,
    target_bucket: str,
    meter: CpuMeter,
    reclaim: Callable[[], None],
) -> list[Result]:
    """Each case's copiers, ``repeat`` rounds with their order rotated each round, each
    run on an empty target and checked after (untimed)."""
    rows: list[Result] = []
    for case, copiers in cases:
        results = {
            c.name: Result(case.operation, case.size, c.name, note=c.missing, per_run=case.per_run)
            for c in copiers
        }
        runnable = [c for c in copiers if c.missing is None]
        for round_number in range(repeat):
            shift = round_number % max(1, len(runnable))
            for copier in runnable[shift:] + runnable[:shift]:
                result = results[copier.name]
                if result.note is not None:
                    continue
                cpu_before = meter.sample()
                start = time.perf_counter()
                try:
                    copier.copy(case)
                except Exception as exc:
                    result.note = f"error: {type(exc).__name__}: {exc}"[:160]
                else:
                    seconds = time.perf_counter() - start
                    cpu = meter.spent(cpu_before, meter.sample())
                    problem = missing_from_target(target_client, target_bucket, case)
                    if problem:
                        result.note = f"error: {problem}"
                    else:
                        result.seconds.append(seconds)
                        result.cpu.append(cpu)
                finally:
                    copier.clean(case)
                    empty(target_client, target_bucket)
            if not case.per_run:
                reclaim()  # deleted bytes stay on the server's disk until a vacuum
        rows += [results[c.name] for c in copiers]
    return rows


def footnote(objects: int, large: int) -> str:
    return "\n".join(
        [
            f"Migration: server A -> server B, two SeaweedFS on loopback with different "
            f"credentials; {objects:,} objects of {size_label(SMALL_SIZE)} (objects/s) and "
            f"one of {size_label(large)} (MB/s); server CPU is both servers'.",
            "* ours also reads every copy back from B and compares its SHA-256 with the "
            "source's (one more GET per object), writes only where the target is free (a "
            "conditional PUT carrying the SHA-256 tag; a HEAD first for a large object), "
            "and writes a journal row and a Dataset row per object (SQLite); the peers send "
            "each object once and read nothing back (rclone compares sizes, and MD5s where "
            "the ETags carry them).",
            "s5cmd takes one endpoint and one set of keys per command, so its rows are two "
            "commands: a download to local disk then an upload, or cat piped into pipe.",
        ]
    )


def run(
    bench_server: LocalS3Server,
    target: Target,
    *,
    objects: int,
    large: int,
    repeat: int,
) -> tuple[list[Result], str]:
    """Start server A, fill it, race every copier to the bench server (B); the rows and
    the footnote to print under the table."""
    server_a = LocalS3Server(
        data_dir=target.workdir / "migration-source-server",
        s3_port=free_port_pair(),
        access_key="migration-source-access",
        secret_key="migration-source-secret-key",
    )
    server_a.start()
    try:
        source = Target(
            server_a.endpoint_url,
            server_a.access_key,
            server_a.secret_key,
            SMALL_BUCKET,
            target.workdir,
        )
        source_client = raw_client(source)
        target_client = raw_client(target)
        target_bucket = bucket_names(target)["EXTERNAL_BUCKET_DATASETS"]
        b_side = Target(
            target.endpoint_url, target.access_key, target.secret_key, target_bucket, target.workdir
        )
        small = Case(
            f"{OPERATION} {objects:,} objects",
            SMALL_SIZE,
            objects,
            SMALL_BUCKET,
            tuple(small_key(n) for n in range(objects)),
        )
        one = Case(f"{OPERATION} 1 object", large, 0, LARGE_BUCKET, (LARGE_KEY,))
        warm = Case("warm-up", SMALL_SIZE, 3, WARM_UP_BUCKET, tuple(small_key(n) for n in range(3)))
        for case in (small, one, warm):
            fill_source(source_client, case, target.workdir)
        ours = Ours(source, target)
        reclaim = seaweed_vacuum(bench_server) if large >= VACUUM_FROM else lambda: None
        empty(target_client, target_bucket)
        # Untimed: Django's models, the clients' service model and pools; and the target
        # bucket's volumes, which SeaweedFS grows on the first large write.
        for case in (warm, one):
            ours.copy(case)
            ours.clean(case)
            empty(target_client, target_bucket)
        reclaim()
        peers_small: list[Copier] = [RcloneCopy(source, b_side), S5cmdViaDisk(source, b_side)]
        peers_large = [*peers_small, S5cmdPipe(source, b_side)]
        meter = ServersMeter(
            [
                CpuMeter(bench_server.process.pid if bench_server.process else None),
                CpuMeter(server_a.process.pid if server_a.process else None),
            ]
        )
        rows = timed_cases(
            [(small, [ours, *peers_small]), (one, [ours, *peers_large])],
            repeat,
            target_client,
            target_bucket,
            meter,
            reclaim,
        )
    finally:
        server_a.kill()  # throw-away data
    return rows, footnote(objects, large)

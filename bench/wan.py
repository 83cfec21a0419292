"""``python -m bench.wan [--quick] [--profiles R2 FAR]``: transfers over a modelled WAN.

Every contender talks to the S3 server through :mod:`bench.wan_proxy` (its own process,
on 127.0.0.1): per connection and direction a round trip of ``rtt`` and a cap of
``rate``, and 2 round trips (TCP + TLS 1.3) before a new connection's first byte. For
each profile (``R2``: 100 ms, 200 Mbit/s per connection; ``FAR``: 300 ms, 200 Mbit/s;
``LAN``: no proxy, as a reference):

* one large file (1 GiB) up and down: ours (``Store.upload_file`` / ``Store.download``),
  boto3 default and tuned, s5cmd, rclone and ``aws s3 cp``
  (:mod:`bench.contenders`);
* a folder of many small files (2,000 x 256 KiB = 262,144 bytes each) up and down:
  ours (``DualStorageClient.upload_dataset_folder`` / ``download_dataset`` of its
  manifest, in the external store's datasets bucket), ``s5cmd cp 'dir/*'``,
  ``rclone copy``, ``aws s3 cp --recursive`` and "raw boto3": 10 threads of
  ``upload_file`` / ``download_file`` (after a listing).

Each run starts with no pooled connection in any contender (the CLI peers start cold by
nature; the in-process ones have their connection pools emptied, after an untimed
warm-up that loaded their clients), is timed, and is then checked, untimed: an upload
must have stored every object at its size; a download must have written the source's
exact bytes (and nothing else), or the row is an error. The proxy counts the requests
of each run by operation and its peak of connections open at once; the CPU seconds are
the bench's (with the CLI peer it waited for), the server's and the proxy's. The order
of the contenders rotates each round (``--repeat``), as in :mod:`bench.run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import filecmp
import hashlib
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3

from dual_storage_app.client import DualStorageClient
from dual_storage_app.manifests import MANIFEST_SUFFIX, ManifestEntry, manifest_bytes
from dual_storage_app.store import transfer as transfer_policy
from dual_storage_app.testing.server import LocalS3Server

from .contenders import (
    OURS,
    AwsCli,
    Cli,
    Contender,
    MiB,
    Ours,
    Rclone,
    S5cmd,
    our_store,
    raw_client,
    warm_up,
)
from .cpu import CpuMeter, CpuSample
from .lineup import peers
from .memory import seaweed_vacuum, write_test_file
from .report import MB, parse_size, size_label
from .target import Target, own_server
from .wan_proxy import PROFILES, LinkProfile, ProxyStats, WanProxy, measure_capacity

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

KiB = 1024
BUCKET = "bench"
FULL_FIGURES = (1024 * MiB, 2000, 256 * KiB)  # the large file; the folder's files, their size
QUICK_FIGURES = (32 * MiB, 100, 256 * KiB)
DEFAULT_PROFILES = ("R2", "FAR")
PARTS = ("large", "folder")
RATIO_HEADER = "vs best peer"
BOTO3_FOLDER_THREADS = 10


@dataclass
class Row:
    """One contender's figures for one operation at one profile."""

    profile: str
    operation: str  # "upload" or "download"
    size: str  # "1 GiB", "2,000 x 256 KiB"
    contender: str
    seconds: float | None  # the median run's (None: not run, or an error)
    requests: int | None  # the proxy's count in the median run (None: no proxy, LAN)
    note: str | None = None  # "n/a (not installed)", or the error that stopped it
    by_operation: dict[str, int] = field(default_factory=dict)
    bytes_per_run: int = 0
    files: int = 0  # files per run (a folder row); 0 for the large file
    runs: list[float] = field(default_factory=list)
    client_cpu: float | None = None
    server_cpu: float | None = None
    proxy_cpu: float | None = None
    peak_connections: int | None = None  # most open at once through the proxy
    connections: int | None = None  # opened through the proxy in the run
    requests_text: str = ""

    @property
    def connections_text(self) -> str:
        if self.connections is None or self.peak_connections is None:
            return "-"
        return f"{self.connections:,}/{self.peak_connections:,}"

    @property
    def speed(self) -> float | None:
        """Files/s for a folder row, MB/s otherwise (higher is better)."""
        if self.seconds is None or self.seconds <= 0 or self.note is not None:
            return None
        return (self.files or self.bytes_per_run / MB) / self.seconds


@dataclass
class Run:
    seconds: float
    cpu: CpuSample
    proxy_cpu: float | None
    stats: ProxyStats | None


# -- the folder contenders -------------------------------------------------------------


class FolderContender(Contender):
    """Moves a whole folder: ``upload(folder, prefix)`` stores ``<prefix>/<name>`` for each
    file; ``download(prefix, dest)`` writes them back under the directory ``dest``."""


class OursFolder(FolderContender):
    """``upload_dataset_folder`` / ``download_dataset(<prefix>.manifest.json)``."""

    name = OURS

    def __init__(self, target: Target) -> None:
        self.client = DualStorageClient(
            overrides={**target.overrides(), "EXTERNAL_BUCKET_DATASETS": target.bucket}
        )
        if not hasattr(self.client, "upload_dataset_folder"):
            self.missing = "n/a (no DualStorageClient.upload_dataset_folder in this tree)"

    def upload(self, source: Path, key: str) -> None:
        result = self.client.upload_dataset_folder(source, key)
        if result.key != key + MANIFEST_SUFFIX:
            raise RuntimeError(f"the manifest is {result.key!r}, not {key + MANIFEST_SUFFIX!r}")

    def download(self, key: str, dest: Path) -> None:
        self.client.download_dataset(key + MANIFEST_SUFFIX, dest)


class S5cmdFolder(S5cmd, FolderContender):
    """``s5cmd cp 'dir/*' s3://bucket/prefix/`` and ``cp 's3://bucket/prefix/*' dest/``
    (s5cmd's defaults: 256 workers)."""

    def upload(self, source: Path, key: str) -> None:
        self._run(f"{source}/*", f"{self.url(key)}/")

    def download(self, key: str, dest: Path) -> None:
        self._run(f"{self.url(key)}/*", f"{dest}/")


class RcloneFolder(Rclone, FolderContender):
    """``rclone copy dir :s3:bucket/prefix`` and back (rclone's defaults: 4 transfers,
    8 checkers; ``--s3-no-check-bucket`` spares it a bucket probe)."""

    def command(self, source: str, dest: str) -> list[str]:
        return [str(self.path), "copy", "--s3-no-check-bucket", source, dest]


class AwsCliFolder(AwsCli, FolderContender):
    """``aws s3 cp --recursive`` (its defaults: 10 requests at once)."""

    def command(self, source: str, dest: str) -> list[str]:
        return [*super().command(source, dest), "--recursive"]

    def upload(self, source: Path, key: str) -> None:
        self._run(str(source), f"{self.url(key)}/")

    def download(self, key: str, dest: Path) -> None:
        self._run(f"{self.url(key)}/", str(dest))


class Boto3Folder(FolderContender):
    """Raw boto3: a ThreadPoolExecutor of 10 doing ``upload_file``, or a listing then
    ``download_file`` (default TransferConfig and connection pool)."""

    name = "raw boto3, 10 threads"

    def __init__(self, target: Target) -> None:
        self.bucket = target.bucket
        self.client = raw_client(target)

    def upload(self, source: Path, key: str) -> None:
        names = sorted(os.listdir(source))
        with ThreadPoolExecutor(BOTO3_FOLDER_THREADS) as pool:
            list(
                pool.map(
                    lambda name: self.client.upload_file(
                        str(source / name), self.bucket, f"{key}/{name}"
                    ),
                    names,
                )
            )

    def download(self, key: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        keys = list(listed(self.client, self.bucket, key + "/"))
        with ThreadPoolExecutor(BOTO3_FOLDER_THREADS) as pool:
            list(
                pool.map(
                    lambda found: self.client.download_file(
                        self.bucket, found, str(dest / found.removeprefix(key + "/"))
                    ),
                    keys,
                )
            )


# -- helpers -------------------------------------------------------------------------


def listed(client: S3Client, bucket: str, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` with its size."""
    sizes: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = item["Size"]
    return sizes


def delete_prefix(client: S3Client, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix`` (1,000 per request)."""
    keys = list(listed(client, bucket, prefix))
    for start in range(0, len(keys), 1000):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def drop_pools(contender: Contender) -> None:
    """Close the pooled connections of an in-process contender's boto3 clients, so its
    next run opens (and pays for) its connections as a CLI peer does."""
    clients: list[Any] = []
    store = getattr(contender, "store", None)
    if store is not None:
        clients.append(store.client)
    client = getattr(contender, "client", None)
    if isinstance(client, DualStorageClient):
        clients.append(client.locate("datasets")[0].client)
    elif client is not None:
        clients.append(client)
    for boto_client in clients:
        boto_client._endpoint.http_session.close()


def write_folder(folder: Path, files: int, file_size: int) -> None:
    """``files`` files of random bytes, ``part-00000.bin`` ..."""
    folder.mkdir(parents=True)
    for number in range(files):
        (folder / f"part-{number:05d}.bin").write_bytes(os.urandom(file_size))


def folder_problem(source: Path, dest: Path) -> str | None:
    """Why ``dest`` is not an exact copy of the flat folder ``source`` (None: it is)."""
    want = sorted(os.listdir(source))
    found = sorted(
        str(Path(root, name).relative_to(dest))
        for root, _, names in os.walk(dest)
        for name in names
    )
    if found != want:
        extra, missing = set(found) - set(want), set(want) - set(found)
        return f"{len(missing)} file(s) missing, {len(extra)} unexpected (e.g. {sorted(extra)[:2]})"
    wrong = [name for name in want if not filecmp.cmp(source / name, dest / name, shallow=False)]
    if wrong:
        return f"{len(wrong)} file(s) with other bytes (e.g. {wrong[0]})"
    return None


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def endpoint_address(endpoint_url: str) -> tuple[str, int]:
    parts = urlsplit(endpoint_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def ensure_bucket(client: S3Client, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=bucket)


# -- timing ------------------------------------------------------------------------


@dataclass
class Case:
    """One operation at one profile, and how each run is done, checked and undone."""

    profile: str
    operation: str
    size: str
    bytes_per_run: int
    files: int
    step: Callable[[Contender], None]
    check: Callable[[Contender], str | None]  # untimed, after a run: what is wrong
    cleanup: Callable[[Contender], None]  # untimed, after each run


def progress(case: Case, name: str, row: Row, runs: list[Run]) -> None:
    """One line on stderr per run: a full section takes a quarter of an hour."""
    if row.note is not None:
        told = row.note
    else:
        last = runs[-1]
        told = f"{last.seconds:.2f} s" + (f", {last.stats.short()}" if last.stats else "")
    print(f"bench.wan: {case.profile} {case.operation} {case.size} {name}: {told}", file=sys.stderr)


def race(
    case: Case,
    contenders: list[Contender],
    repeat: int,
    meter: CpuMeter,
    proxy: WanProxy | None,
) -> list[Row]:
    """``repeat`` rounds of every contender, the order rotated each round."""
    rows = {
        c.name: Row(
            case.profile,
            case.operation,
            case.size,
            c.name,
            None,
            None,
            note=c.missing,
            bytes_per_run=case.bytes_per_run,
            files=case.files,
        )
        for c in contenders
    }
    runs: dict[str, list[Run]] = {c.name: [] for c in contenders}
    runnable = [c for c in contenders if c.missing is None]
    for round_number in range(repeat):
        shift = round_number % max(1, len(runnable))
        for contender in runnable[shift:] + runnable[:shift]:
            row = rows[contender.name]
            if row.note is not None:
                continue
            drop_pools(contender)
            proxy_before = proxy.take().cpu if proxy is not None else None
            cpu_before = meter.sample()
            start = time.perf_counter()
            try:
                case.step(contender)
                seconds = time.perf_counter() - start
                cpu = meter.spent(cpu_before, meter.sample())
                stats = proxy.take() if proxy is not None else None
                problem = case.check(contender)
            except Exception as exc:
                row.note = f"error: {type(exc).__name__}: {exc}"[:160]
            else:
                if problem is not None:
                    row.note = f"error: {problem}"[:160]
                else:
                    proxy_cpu = (
                        stats.cpu - proxy_before
                        if stats is not None and proxy_before is not None
                        else None
                    )
                    runs[contender.name].append(Run(seconds, cpu, proxy_cpu, stats))
            finally:
                case.cleanup(contender)
            progress(case, contender.name, row, runs[contender.name])
    for name, row in rows.items():
        done = sorted(runs[name], key=lambda run: run.seconds)
        if row.note is not None or not done:
            continue
        median = done[(len(done) - 1) // 2]  # the lower median: a run that happened
        row.runs = [run.seconds for run in runs[name]]
        row.seconds = statistics.median(row.runs)
        row.client_cpu = median.cpu.client
        row.server_cpu = median.cpu.server
        row.proxy_cpu = median.proxy_cpu
        if median.stats is not None:
            row.requests = median.stats.total
            row.by_operation = dict(median.stats.requests)
            row.peak_connections = median.stats.peak_connections
            row.connections = median.stats.connections
            row.requests_text = median.stats.short()
    return [rows[c.name] for c in contenders]


class Section:
    """Everything one profile's races share: the server, the files, the checks."""

    def __init__(
        self,
        server: LocalS3Server,
        target: Target,
        big_size: int,
        files: int,
        file_size: int,
        repeat: int,
        parts: Collection[str] = PARTS,
        only: Collection[str] | None = None,
    ) -> None:
        self.server = server
        self.parts = parts
        self.only = only  # contender names to run (None: all)
        self.direct = target  # the server itself: setup, checks and cleanup go here
        self.datasets = f"{target.bucket}-datasets"
        self.big_size, self.files, self.file_size = big_size, files, file_size
        self.repeat = repeat
        self.meter = CpuMeter(server.process.pid if server.process else None)
        self.reclaim = seaweed_vacuum(server)
        self.admin = raw_client(target)
        ensure_bucket(self.admin, target.bucket)
        ensure_bucket(self.admin, self.datasets)
        self.work = target.workdir / "wan"
        self.work.mkdir(exist_ok=True)
        self.big = self.work / "large-source"
        self.folder = self.work / "folder-source"
        self.dest = self.work / "download"

    def prepare(self) -> None:
        if "large" in self.parts:
            write_test_file(self.big, self.big_size)
        if "folder" in self.parts:
            write_folder(self.folder, self.files, self.file_size)

    def chosen(self, contenders: list[Contender]) -> list[Contender]:
        return [c for c in contenders if self.only is None or c.name in self.only]

    def finish(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def profile(self, profile: LinkProfile) -> list[Row]:
        if not profile.proxied:
            return self._races(profile, self.direct, None)
        with WanProxy(endpoint_address(self.direct.endpoint_url), profile) as proxy:
            target = dataclasses.replace(self.direct, endpoint_url=proxy.url)
            return self._races(profile, target, proxy)

    def _races(self, profile: LinkProfile, target: Target, proxy: WanProxy | None) -> list[Row]:
        rows = self._big_file(profile, target, proxy) if "large" in self.parts else []
        return rows + (self._folder(profile, target, proxy) if "folder" in self.parts else [])

    def _big_file(self, profile: LinkProfile, target: Target, proxy: WanProxy | None) -> list[Row]:
        contenders: list[Contender] = self.chosen([Ours(target), *peers(target)])
        warm_up(contenders, self.work)
        bucket, base = target.bucket, f"wan/{profile.name}/large"
        label = size_label(self.big_size)

        def upload(c: Contender) -> None:
            c.upload(self.big, f"{base}/{slug(c.name)}")

        def uploaded(c: Contender) -> str | None:
            key = f"{base}/{slug(c.name)}"
            size = listed(self.admin, bucket, key).get(key)
            return None if size == self.big_size else f"{key} holds {size} bytes"

        def unload(c: Contender) -> None:
            delete_prefix(self.admin, bucket, f"{base}/{slug(c.name)}")

        source_key = f"{base}/download-source"

        def download(c: Contender) -> None:
            c.download(source_key, self.dest)

        def downloaded(c: Contender) -> str | None:
            if filecmp.cmp(self.big, self.dest, shallow=False):
                return None
            return "the downloaded file differs from the source"

        rows = race(
            Case(profile.name, "upload", label, self.big_size, 0, upload, uploaded, unload),
            contenders,
            self.repeat,
            self.meter,
            proxy,
        )
        self.reclaim()
        Ours(self.direct).upload(self.big, source_key)  # untimed; carries our SHA-256 tag
        rows += race(
            Case(
                profile.name,
                "download",
                label,
                self.big_size,
                0,
                download,
                downloaded,
                lambda c: self.dest.unlink(missing_ok=True),
            ),
            contenders,
            self.repeat,
            self.meter,
            proxy,
        )
        delete_prefix(self.admin, bucket, base)
        self.reclaim()
        return rows

    def _folder(self, profile: LinkProfile, target: Target, proxy: WanProxy | None) -> list[Row]:
        on_datasets = dataclasses.replace(target, bucket=self.datasets)
        contenders: list[Contender] = self.chosen(
            [
                OursFolder(on_datasets),
                S5cmdFolder(on_datasets),
                RcloneFolder(on_datasets),
                AwsCliFolder(on_datasets),
                Boto3Folder(on_datasets),
            ]
        )
        base = f"wan/{profile.name}/folder"
        label = f"{self.files:,} x {size_label(self.file_size)}"
        self._warm_up_folders(contenders, base)
        sizes = {name: self.file_size for name in os.listdir(self.folder)}

        def prefix(c: Contender) -> str:
            return f"{base}/{slug(c.name)}"

        def upload(c: Contender) -> None:
            c.upload(self.folder, prefix(c))

        def uploaded(c: Contender) -> str | None:
            found = {
                key.removeprefix(prefix(c) + "/"): size
                for key, size in listed(self.admin, self.datasets, prefix(c) + "/").items()
            }
            if found != sizes:
                return f"the store holds {len(found)} of the {len(sizes)} files (or other sizes)"
            return None

        def unload(c: Contender) -> None:
            delete_prefix(self.admin, self.datasets, prefix(c))

        source = f"{base}/download-source"

        def download(c: Contender) -> None:
            c.download(source, self.dest)

        rows = race(
            Case(
                profile.name,
                "upload",
                label,
                self.files * self.file_size,
                self.files,
                upload,
                uploaded,
                unload,
            ),
            contenders,
            self.repeat,
            self.meter,
            proxy,
        )
        self._store_folder(source)
        rows += race(
            Case(
                profile.name,
                "download",
                label,
                self.files * self.file_size,
                self.files,
                download,
                lambda c: folder_problem(self.folder, self.dest),
                lambda c: shutil.rmtree(self.dest, ignore_errors=True),
            ),
            contenders,
            self.repeat,
            self.meter,
            proxy,
        )
        delete_prefix(self.admin, self.datasets, base)
        return rows

    def _store_folder(self, key: str) -> None:
        """The download source, untimed and straight to the server: ours when it can (a
        manifest, then files), else raw boto3 and a manifest written here."""
        ours = OursFolder(dataclasses.replace(self.direct, bucket=self.datasets))
        if ours.missing is None:
            ours.upload(self.folder, key)
            return
        Boto3Folder(dataclasses.replace(self.direct, bucket=self.datasets)).upload(self.folder, key)
        entries = [
            ManifestEntry(name, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            for name in sorted(os.listdir(self.folder))
            for path in [self.folder / name]
        ]
        self.admin.put_object(
            Bucket=self.datasets, Key=key + MANIFEST_SUFFIX, Body=manifest_bytes(key, entries)
        )

    def _warm_up_folders(self, contenders: list[Contender], base: str) -> None:
        """A 2-file folder up and down per in-process contender (clients and models built)."""
        tiny = self.work / "warm-up-folder"
        write_folder(tiny, 2, KiB)
        try:
            for contender in contenders:
                if contender.missing is not None or isinstance(contender, Cli):
                    continue
                key = f"{base}/warm-up/{slug(contender.name)}"
                contender.upload(tiny, key)
                contender.download(key, self.dest)
                shutil.rmtree(self.dest)
                delete_prefix(self.admin, self.datasets, key)
        finally:
            shutil.rmtree(tiny, ignore_errors=True)


# -- the report --------------------------------------------------------------------


def best_peer_speed(group: list[Row]) -> float | None:
    speeds = [r.speed for r in group if r.contender != OURS and r.speed is not None]
    return max(speeds) if speeds else None


def format_table(rows: list[Row]) -> str:
    """One table (a profile's rows), one line per (operation, size, contender)."""
    header = [
        "operation",
        "size",
        "contender",
        "median s",
        "MB/s or files/s",
        RATIO_HEADER,
        "requests (by operation)",
        "conns opened/peak",
        "client CPU s",
        "server CPU s",
        "proxy CPU s",
    ]
    lines: list[list[str]] = []
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.operation, row.size), []).append(row)
    for (operation, size), group in groups.items():
        best = best_peer_speed(group)
        for row in group:
            speed = row.speed
            if speed is None or row.seconds is None:
                cells = [row.note or "n/a", "", "", "", "", "", "", ""]
            else:
                unit = " files/s" if row.files else " MB/s"
                ratio = f"{speed / best:.2f}x" if best else "-"
                if row.contender != OURS and best and speed == best:
                    ratio += " (best)"
                cells = [
                    f"{row.seconds:.2f}",
                    f"{speed:,.1f}{unit}" if row.files else f"{speed:,.0f}{unit}",
                    ratio,
                    row.requests_text or "-",
                    row.connections_text,
                    f"{row.client_cpu:.1f}" if row.client_cpu is not None else "",
                    f"{row.server_cpu:.1f}" if row.server_cpu is not None else "",
                    f"{row.proxy_cpu:.1f}" if row.proxy_cpu is not None else "-",
                ]
            lines.append([operation, size, row.contender, *cells])
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def text(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([text(header), rule, *(text(line) for line in lines)])


def verdicts(rows: list[Row]) -> list[str]:
    """Per (profile, operation, size): ours against the fastest peer, with both sides'
    requests and connections, the figures that explain a gap at a per-connection cap."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.profile, row.operation, row.size), []).append(row)
    found: list[str] = []
    for (profile, operation, size), group in groups.items():
        ours = next((r for r in group if r.contender == OURS), None)
        peers = [r for r in group if r.contender != OURS and r.speed is not None]
        if ours is None or ours.speed is None or not peers:
            why = ours.note if ours is not None else "no row"
            found.append(f"{profile} {operation} {size}: not judged ({why})")
            continue
        best = max(peers, key=lambda r: r.speed or 0.0)
        assert best.speed is not None and ours.seconds is not None and best.seconds is not None
        ratio = ours.speed / best.speed
        mark = "MET" if ratio >= 1.0 else "MISSED"
        found.append(
            f"{profile} {operation} {size}: ours {ratio:.2f}x the fastest peer ({best.contender}) "
            f"{mark}; ours {ours.seconds:.1f} s, {ours.requests_text or '-'} requests, "
            f"{ours.connections_text} conns; {best.contender} {best.seconds:.1f} s, "
            f"{best.requests_text or '-'} requests, {best.connections_text} conns"
        )
    return found


def our_settings() -> str:
    """Ours' transfer settings in this tree (read at run time: they change)."""
    policy: Any = transfer_policy
    config = policy.transfer_config()
    from dual_storage_app.store import clients

    pool = getattr(clients, "POOL_CONNECTIONS", "32?")
    folder_at_once = getattr(policy, "FOLDER_FILES_AT_ONCE", None)
    if folder_at_once is None:
        from dual_storage_app import folder_download

        folder_at_once = getattr(folder_download, "FILES_AT_ONCE", "?")
    return (
        f"ours: {size_label(policy.PART_SIZE)} parts, {config.max_request_concurrency} at "
        f"once up; {policy.DOWNLOAD_THREADS} ranged GETs of "
        f"{size_label(policy.DOWNLOAD_PART_SIZE)} at once down; {folder_at_once} folder "
        f"files at once; a pool of {pool} connections"
    )


def footnote(
    profiles: list[LinkProfile],
    big_size: int,
    files: int,
    file_size: int,
    repeat: int,
    capacity: list[str],
    seconds: float,
    parts: Collection[str] = PARTS,
) -> str:
    figures = []
    if "large" in parts:
        figures.append(f"large file {size_label(big_size)} ({big_size:,} bytes)")
    if "folder" in parts:
        figures.append(
            f"folder {files:,} files x {size_label(file_size)} ({file_size:,} bytes each)"
        )
    described = "; ".join(figures)
    lines = [
        "WAN profiles through bench.wan_proxy (its own process): "
        + "; ".join(p.describe() for p in profiles)
        + ".",
        f"{described[:1].upper()}{described[1:]}; median of {repeat} run(s), the order "
        "rotated each round. MB/s are 10^6 bytes/s.",
        "Every run starts without pooled connections (CLI peers start cold; in-process "
        "contenders have their pools emptied after an untimed warm-up), so each contender "
        "pays the handshake of every connection it opens.",
        "requests: counted by the proxy in the median run (PUT = PutObject, CreateMPU / "
        "CompleteMPU = multipart start / end, LIST = ListObjects); conns: connections "
        "opened through the proxy in the run / most of them open at once. client CPU "
        "includes the CLI peer's.",
        "Peers at their defaults: boto3 default (8 MiB parts, 10 threads), boto3 tuned "
        "(16 MiB, 10), s5cmd (50 MiB parts, 5 at once per file; 256 workers), rclone "
        "(copyto / copy: 5 MiB parts, 4 at once, 4 transfers, 8 checkers; only "
        "--s3-no-check-bucket added), aws s3 cp (8 MiB parts, 10 requests at once), raw "
        f"boto3 folder ({BOTO3_FOLDER_THREADS} threads of upload_file / a listing then "
        "download_file).",
        our_settings() + ".",
    ]
    if capacity:
        lines.append("Proxy capacity on this machine (1 ms round trip): " + "; ".join(capacity))
    lines.append(f"WAN section: {seconds:.0f} s.")
    return "\n".join(lines)


def run(
    server: LocalS3Server,
    target: Target,
    profiles: list[str] | tuple[str, ...] = DEFAULT_PROFILES,
    big_size: int = FULL_FIGURES[0],
    files: int = FULL_FIGURES[1],
    file_size: int = FULL_FIGURES[2],
    repeat: int = 1,
    *,
    capacity: bool = True,
    parts: Collection[str] = PARTS,
    only: Collection[str] | None = None,
) -> tuple[list[Row], str]:
    """Race every contender at each profile; the rows and the printable section.
    ``parts``: "large" (the one file) and/or "folder"; ``only``: contender names (for a
    closer look at a few; the figures with all of them are the section's)."""
    started = time.perf_counter()
    chosen = [PROFILES[name.upper()] for name in profiles]
    measured = (
        [c.describe().strip() for c in measure_capacity(10, 25e6, seconds=2.0)] if capacity else []
    )
    section = Section(server, target, big_size, files, file_size, max(1, repeat), parts, only)
    rows: list[Row] = []
    try:
        section.prepare()
        for profile in chosen:
            rows += section.profile(profile)
    finally:
        section.finish()
    seconds = time.perf_counter() - started
    tables = []
    for profile in chosen:
        mine = [row for row in rows if row.profile == profile.name]
        tables.append(f"WAN {profile.describe()}\n{format_table(mine)}")
    text = "\n\n".join(
        [
            *tables,
            "Ours against the fastest peer:\n" + "\n".join(f"  {v}" for v in verdicts(rows)),
            footnote(chosen, big_size, files, file_size, max(1, repeat), measured, seconds, parts),
        ]
    )
    return rows, text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.wan", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small figures (CI)")
    parser.add_argument("--profiles", nargs="+", choices=sorted(PROFILES), help="default: R2 FAR")
    parser.add_argument("--big-size", help="the large file (default 1GiB; quick 32MiB)")
    parser.add_argument(
        "--folder", help="COUNTxSIZE of the folder (default 2000x256KiB; quick 100x256KiB)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (median)")
    parser.add_argument("--workdir", type=Path, help="where the server and files live")
    parser.add_argument("--no-capacity", action="store_true", help="skip the proxy's capacity")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--contenders", nargs="+", help="only these (e.g. ours s5cmd)")
    args = parser.parse_args(argv)
    big, files, file_size = QUICK_FIGURES if args.quick else FULL_FIGURES
    args.big_size = parse_size(args.big_size) if args.big_size else big
    if args.folder:
        count, _, size = args.folder.lower().partition("x")
        files, file_size = int(count), parse_size(size)
    args.files, args.file_size = max(1, files), file_size
    args.profiles = args.profiles or list(DEFAULT_PROFILES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with own_server(BUCKET, prefix="dual-storage-wan-", workdir=args.workdir) as (server, target):
        our_store(target).create_bucket(BUCKET)
        rows, text = run(
            server,
            target,
            args.profiles,
            args.big_size,
            args.files,
            args.file_size,
            args.repeat,
            capacity=not args.no_capacity,
            parts=args.parts,
            only=args.contenders,
        )
    print(
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"boto3 {boto3.__version__}\n"
    )
    print(text)
    return 1 if any(row.note and row.note.startswith("error") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench.run [--quick] [--sizes ...] [--repeat N]``: the whole benchmark.

Starts SeaweedFS on free loopback ports in a temp dir, creates a bucket, writes a test
file of each size, then times upload and download for every contender (median of
``--repeat`` rounds, the contenders' order rotated each round to cancel drift, with the
CPU seconds each run cost the bench and the server), presigns for 1,000 keys, reads a
10 KB schema 1,000 times, measures the peak RSS of every path, times a migration from a
second SeaweedFS to the first (ours against rclone and s5cmd), uploads datasets from
Chromium through the admin (form against direct, and a folder; not with ``--quick``
unless named in ``--only``), and ends with a verdict on each of issue 5's goals. Nothing
leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3

from . import browser_uploads, goals, links, memory, migration, scale, schemas, wan
from .contenders import OURS, Contender, our_store, warm_up
from .cpu import CpuMeter, sha256_rate
from .floor import floors, format_floors
from .lineup import all_contenders
from .memory import write_test_file
from .report import Result, format_rss, format_table, parse_size, size_label
from .target import Target, own_server
from .wan_proxy import PROFILES as WAN_PROFILES

REPO = Path(__file__).resolve().parent.parent
BUCKET = "bench"
QUICK_SIZES = ["8MiB", "40MiB"]
FULL_SIZES = ["500MB", "1GiB"]
SECTIONS = (
    "transfers",
    "links",
    "schemas",
    "rss",
    "memory",
    "migration",
    "browser",
    "wan",
    "scale",
)
# Minutes even when small (a browser, round trips of 100-300 ms, 100,000 objects): left
# out of --quick unless named in --only.
NOT_QUICK = ("browser", "wan", "scale")
QUICK_MEMORY_SIZES = ["8MiB", "64MiB"]
FULL_MEMORY_SIZES = ["256MiB", "1GiB", "2GiB"]

RSS_SCRIPT = """
import json, sys
from pathlib import Path
from boto3.s3.transfer import TransferConfig
from bench.contenders import MiB, Ours, RawBoto3
from bench.target import Target
raw = json.loads(sys.argv[1])
target = Target(**{**raw, "workdir": Path(raw["workdir"])})
if sys.argv[2] == "ours":
    contender = Ours(target)
elif sys.argv[2] == "boto3 tuned":
    tuned = TransferConfig(multipart_chunksize=16 * MiB, max_concurrency=10)
    contender = RawBoto3(target, "boto3 tuned", tuned)
else:
    contender = None  # baseline: interpreter and imports only
if contender is not None:
    key = "bench/rss/" + sys.argv[2].replace(" ", "-")
    contender.upload(Path(sys.argv[3]), key)
    dest = target.workdir / "rss-download"
    contender.download(key, dest)
    dest.unlink()
status = Path("/proc/self/status").read_text()
print(next(line for line in status.splitlines() if line.startswith("VmHWM:")))
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (CI)")
    parser.add_argument("--sizes", nargs="+", help="e.g. 8MiB 500MB 1GiB")
    parser.add_argument("--repeat", type=int, help="rounds per measurement (median)")
    parser.add_argument("--workdir", type=Path, help="where the server and files live")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        help="run only these sections (default: all; --quick leaves out browser)",
    )
    parser.add_argument(
        "--migration-objects", type=int, help="small objects migrated (default 1000; quick 200)"
    )
    parser.add_argument(
        "--migration-large", help="the one large object migrated (default 1GiB; quick 64MiB)"
    )
    parser.add_argument(
        "--browser-size", help="the file uploaded from the browser (default 1GiB; quick 32MiB)"
    )
    parser.add_argument(
        "--wan-profiles",
        nargs="+",
        choices=sorted(WAN_PROFILES),
        help=f"WAN profiles (default {' '.join(wan.DEFAULT_PROFILES)})",
    )
    parser.add_argument(
        "--scale-counts",
        nargs="+",
        type=int,
        help="objects per scale step (default 1000 10000 100000; quick 200 1000)",
    )
    parser.add_argument(
        "--browser-folder",
        help="the folder uploaded from the browser, COUNTxSIZE (default 2000x256KiB)",
    )
    args = parser.parse_args(argv)
    args.only = args.only or [s for s in SECTIONS if not (args.quick and s in NOT_QUICK)]
    size, files, file_size = (
        browser_uploads.QUICK_FIGURES if args.quick else browser_uploads.FULL_FIGURES
    )
    if args.browser_folder:
        files, file_size = browser_uploads.parse_folder(args.browser_folder)
    args.browser = browser_uploads.Figures(
        parse_size(args.browser_size) if args.browser_size else size, max(1, files), file_size
    )
    objects, large = migration.QUICK_FIGURES if args.quick else migration.FULL_FIGURES
    args.migration_objects = max(1, args.migration_objects or objects)
    args.migration_large = parse_size(args.migration_large) if args.migration_large else large
    args.sizes = [parse_size(s) for s in args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)]
    args.repeat = max(1, args.repeat or (1 if args.quick else 5))
    args.wan_figures = wan.QUICK_FIGURES if args.quick else wan.FULL_FIGURES
    args.wan_profiles = args.wan_profiles or list(wan.DEFAULT_PROFILES)
    args.scale_counts = args.scale_counts or list(
        scale.QUICK_COUNTS if args.quick else scale.FULL_COUNTS
    )
    return args


def slug(name: str) -> str:
    return name.replace(" ", "-")


def timed_rounds(
    operation: str,
    size: int,
    contenders: list[Contender],
    repeat: int,
    step: Callable[[Contender], None],
    cleanup: Callable[[Contender], None],
    meter: CpuMeter,
) -> list[Result]:
    """Run ``step`` for each contender ``repeat`` times, rotating the order each round,
    with the CPU seconds each run cost the bench and the server; ``cleanup`` runs
    untimed after each step."""
    results = {c.name: Result(operation, size, c.name, note=c.missing) for c in contenders}
    runnable = [c for c in contenders if c.missing is None]
    for round_number in range(repeat):
        shift = round_number % max(1, len(runnable))
        for contender in runnable[shift:] + runnable[:shift]:
            result = results[contender.name]
            if result.note is not None:
                continue
            cpu_before = meter.sample()
            start = time.perf_counter()
            try:
                step(contender)
            except Exception as exc:
                result.note = f"error: {type(exc).__name__}: {exc}"[:120]
            else:
                result.seconds.append(time.perf_counter() - start)
                result.cpu.append(meter.spent(cpu_before, meter.sample()))
            finally:
                cleanup(contender)
    return [results[c.name] for c in contenders]


def bench_transfers(
    target: Target,
    sizes: list[int],
    repeat: int,
    reclaim: Callable[[], None],
    meter: CpuMeter,
) -> list[Result]:
    """Upload and download rounds per size; ``reclaim`` compacts the server after each."""
    contenders = all_contenders(target)
    uploaders = [c for c in contenders if "upload" in c.directions]
    downloaders = [c for c in contenders if "download" in c.directions]
    ours = next(c for c in contenders if c.name == OURS)
    store = our_store(target)
    warm_up(contenders, target.workdir)
    dest = target.workdir / "download"
    results: list[Result] = []
    for size in sizes:
        source = target.workdir / f"source-{size}"
        write_test_file(source, size)
        key = f"bench/{size}/download-source"

        def upload(c: Contender, source: Path = source, size: int = size) -> None:
            c.upload(source, f"bench/{size}/{slug(c.name)}")

        def after_upload(c: Contender, size: int = size) -> None:
            c.cleanup()
            store.delete(BUCKET, f"bench/{size}/{slug(c.name)}")

        def download(c: Contender, key: str = key) -> None:
            c.download(key, dest)

        results += timed_rounds("upload", size, uploaders, repeat, upload, after_upload, meter)
        ours.upload(source, key)  # ours, so it carries the SHA-256 our download verifies
        for contender in downloaders:
            if contender.missing is None:
                contender.prepare_download(source, key)
        results += timed_rounds(
            "download",
            size,
            downloaders,
            repeat,
            download,
            lambda c: dest.unlink(missing_ok=True),
            meter,
        )
        store.delete(BUCKET, key)
        source.unlink()
        reclaim()
    return results


def child_peak_rss(target: Target, path: str, source: Path) -> int | str:
    """Peak RSS (KiB) of a child that uploads and downloads ``source`` along ``path``.

    The child reports its own ``VmHWM``: on Linux, ``ru_maxrss`` from ``getrusage``/
    ``wait4`` keeps the parent's high-water mark across fork + exec, so it would show
    the bench's own RSS rather than the child's.
    """
    raw = {
        "endpoint_url": target.endpoint_url,
        "access_key": target.access_key,
        "secret_key": target.secret_key,
        "bucket": target.bucket,
        "workdir": str(target.workdir),
    }
    command = [sys.executable, "-c", RSS_SCRIPT, json.dumps(raw), path, str(source)]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("VmHWM:"):
        return f"error (exit {done.returncode}): {done.stderr[-300:]}"
    return int(lines[-1].split()[1])  # "VmHWM:   123456 kB"


def bench_rss(target: Target, size: int) -> dict[str, int | str]:
    source = target.workdir / "rss-source"
    write_test_file(source, size)
    try:
        return {
            path: child_peak_rss(target, path, source)
            for path in ("baseline (imports only)", OURS, "boto3 tuned")
        }
    finally:
        source.unlink()


def machine_summary(sha256_mb_per_s: float) -> str:
    """CPU count and model, memory, and the kernel: what the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown CPU",
    )
    memory_kib = 0
    if Path("/proc/meminfo").exists():
        first = Path("/proc/meminfo").read_text().splitlines()[0]  # "MemTotal: 123 kB"
        memory_kib = int(first.split()[1])
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory_kib / 1024**2:.0f} GiB RAM, "
        f"Linux {platform.release()}; SHA-256 {sha256_mb_per_s:,.0f} MB/s on one core"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with own_server(BUCKET, prefix="dual-storage-bench-", workdir=args.workdir) as (server, target):
        workdir = target.workdir
        our_store(target).create_bucket(BUCKET)
        results: list[Result] = []
        if "transfers" in args.only:
            results += bench_transfers(
                target,
                args.sizes,
                args.repeat,
                memory.seaweed_vacuum(server),
                CpuMeter(server.process.pid if server.process else None),
            )
        if "links" in args.only:
            results += links.run(target, repeat=args.repeat)
        if "schemas" in args.only:
            results += schemas.run(target, repeat=args.repeat)
        peaks = bench_rss(target, max(args.sizes)) if "rss" in args.only else {}
        memory_table, memory_failures = "", None
        memory_sizes = QUICK_MEMORY_SIZES if args.quick else FULL_MEMORY_SIZES
        if "memory" in args.only:
            memory_table, memory_failures = memory.run(
                target,
                [parse_size(size) for size in memory_sizes],
                reclaim=memory.seaweed_vacuum(server),
            )
        migration_notes = ""
        if "migration" in args.only:
            moved, migration_notes = migration.run(
                server,
                target,
                objects=args.migration_objects,
                large=args.migration_large,
                repeat=args.repeat,
            )
            results += moved
        browser_rows, browser_text = None, ""
        if "browser" in args.only:
            browser_rows, browser_text = browser_uploads.run(server, workdir, args.browser)
        wan_rows, wan_text = None, ""
        if "wan" in args.only:
            big, files, file_size = args.wan_figures
            wan_rows, wan_text = wan.run(
                server, target, args.wan_profiles, big, files, file_size, repeat=1
            )
        scale_text = ""
        if "scale" in args.only:
            _, scale_text = scale.run(server, target, args.scale_counts)
    hash_rate = sha256_rate()
    print(
        f"\n{machine_summary(hash_rate)}; {platform.python_implementation()} "
        f"{platform.python_version()}, boto3 {boto3.__version__}; sizes "
        f"{', '.join(size_label(s) for s in args.sizes)}; median of {args.repeat} round(s)\n"
    )
    found_floors = floors(results, hash_rate)
    if results:
        print(format_table(results))
    if found_floors:
        print("\n" + format_floors(found_floors))
    if migration_notes:
        print("\n" + migration_notes)
    if peaks:
        print("\n" + format_rss(peaks, max(args.sizes)))
    if memory_table:
        print("\n" + memory_table)
    if browser_text:
        print("\n" + browser_text)
    if wan_text:
        print("\n" + wan_text)
    if scale_text:
        print("\nScale: time per object from 1,000 to 100,000 objects\n" + scale_text)
    verdicts = goals.judge(
        results,
        memory_failures,
        ", ".join(memory_sizes),
        browser=browser_rows,
        floors=found_floors,
        wan=wan_rows,
    )
    print("\n" + goals.format_goals(verdicts))
    notes = [r.note for r in results] + [r.note for r in browser_rows or []]
    notes += [r.note for r in wan_rows or []]
    return 1 if any(note and note.startswith("error") for note in notes) else 0


if __name__ == "__main__":
    sys.exit(main())

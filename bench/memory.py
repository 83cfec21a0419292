"""Peak RSS of every way an artifact moves, per size: is it flat, and under 150 MB?

Each measurement is a fresh child (:mod:`bench.memory_child`) that sets Django up, moves
one artifact of the given size up and back down along one path (client, model FileField,
admin, management commands; or nothing, for the baseline) and reports its own ``VmHWM``
(see ``bench.run.child_peak_rss`` for why the child reads it itself). The parent writes
the test file and, for the admin, the whole multipart request body to disk beforehand,
so neither is in any child's memory; it deletes files and objects after every child.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from dual_storage_app.testing.server import LocalS3Server

from .contenders import our_store
from .djangoenv import bucket_names
from .memory_child import KEY_MARK
from .report import size_label
from .target import Target

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
BUDGET_BYTES = 150 * 10**6  # 150 MB, decimal
FLAT_TOLERANCE = 16 * MiB  # one part: thread timing moves a peak by about that much
# Smaller transfers end before their buffers fill (one part is 16 MiB), so growth
# between two small sizes says nothing about flatness; it is shown, not judged.
FLAT_MIN_SIZE = 128 * MiB
CHILD_TIMEOUT = 1800  # seconds; a 2 GiB round trip takes well under a minute here
PATHS = {
    "baseline": "baseline: Django set up, nothing moved",
    "client": "client: upload_weight + download_weight",
    "filefield": "FileField: save() + row.file.open()",
    "admin": "admin: add-form POST + download view",
    "command": "commands: dualstorage_upload + _download",
}


@dataclass
class Peak:
    """One child's answer (KiB, as ``/proc`` reports them)."""

    path: str
    peak_kib: int
    upload_peak_kib: int
    seconds: float

    @property
    def peak_bytes(self) -> int:
        return self.peak_kib * 1024


def write_test_file(path: Path, size: int) -> None:
    """Incompressible bytes, written in 8 MiB blocks."""
    block = os.urandom(8 * MiB)
    with path.open("wb") as out:
        for offset in range(0, size, len(block)):
            out.write(block[: min(len(block), size - offset)])


def write_admin_body(source: Path, body: Path, name: str) -> tuple[str, str]:
    """The ModelWeight add form as ``multipart/form-data``, written to ``body`` with the
    file copied in 8 MiB blocks; returns ``(csrf_token, boundary)``."""
    token = secrets.token_hex(16)  # 32 characters: Django accepts an unmasked secret
    boundary = f"----bench{secrets.token_hex(16)}"

    def field(field_name: str, value: str) -> bytes:
        return (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"\r\n\r\n'
            f"{value}\r\n"
        ).encode()

    with body.open("wb") as out:
        out.write(field("csrfmiddlewaretoken", token))
        out.write(field("name", name))
        out.write(field("framework", ""))
        out.write(field("_save", "Save"))
        out.write(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
        )
        with source.open("rb") as data:
            shutil.copyfileobj(data, out, 8 * MiB)
        out.write(f"\r\n--{boundary}--\r\n".encode())
    return token, boundary


def child(target: Target, path: str, source: Path, name: str, extra: list[str]) -> Peak | str:
    """Run one measurement; a :class:`Peak`, or an error note."""
    raw = {**asdict(target), "workdir": str(target.workdir)}
    command = [sys.executable, "-m", "bench.memory_child", json.dumps(raw), path, str(source)]
    command += [name, *extra]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    try:
        done = subprocess.run(
            command,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=CHILD_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"error: no answer in {CHILD_TIMEOUT} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return f"error (exit {done.returncode}): {tail}"[:300]
    answer = json.loads(lines[-1])
    return Peak(path, answer["peak_kib"], answer["upload_peak_kib"], answer["seconds"])


def sweep(target: Target) -> None:
    """Remove whatever a child left behind: its objects, scratch and upload temp files."""
    store = our_store(target)
    bucket = bucket_names(target)["INTERNAL_BUCKET_WEIGHTS"]
    try:
        for info in store.list(bucket):
            if KEY_MARK in info.key:
                store.delete(bucket, info.key)
    except Exception as exc:  # a missing bucket (child failed early), an unreachable store
        print(f"memory bench: sweep of {bucket} failed: {exc}", file=sys.stderr)
    for leftovers in ("memory-scratch", "django-uploads"):
        directory = target.workdir / leftovers
        if directory.is_dir():
            for entry in directory.iterdir():
                entry.unlink(missing_ok=True)


def seaweed_vacuum(server: LocalS3Server) -> Callable[[], None]:
    """Compact away ``server``'s deleted objects: SeaweedFS keeps their bytes on disk
    until a vacuum, about 13 GiB per full memory section."""

    def vacuum() -> None:
        try:
            server.vacuum()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            print(f"bench: SeaweedFS vacuum failed: {exc}", file=sys.stderr)

    return vacuum


def measure(
    target: Target, sizes: list[int], reclaim: Callable[[], None] = lambda: None
) -> dict[str, dict[int, Peak | str]]:
    """``{path: {size: Peak or error}}``; the baseline is filed under size 0.
    ``reclaim`` runs after each size (e.g. :func:`seaweed_vacuum`)."""
    scratch = target.workdir / "memory"
    scratch.mkdir(exist_ok=True)
    results: dict[str, dict[int, Peak | str]] = {path: {} for path in PATHS}
    empty = scratch / "empty"
    empty.touch()
    results["baseline"][0] = child(target, "baseline", empty, f"{KEY_MARK}-baseline.bin", [])
    empty.unlink()
    for size in sizes:
        source = scratch / f"source-{size}"
        write_test_file(source, size)
        try:
            for path in list(PATHS)[1:]:
                name = f"{KEY_MARK}-{path}-{secrets.token_hex(4)}.bin"
                body = scratch / "admin-body"
                extra: list[str] = []
                if path == "admin":
                    extra = [str(body), *write_admin_body(source, body, name)]
                try:
                    results[path][size] = child(target, path, source, name, extra)
                finally:
                    body.unlink(missing_ok=True)
                    sweep(target)
        finally:
            source.unlink(missing_ok=True)
            reclaim()
    return results


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def path_rows(
    results: dict[str, dict[int, Peak | str]], sizes: list[int]
) -> tuple[list[list[str]], list[str]]:
    """One row per moving path (label, a cell per size, growth, verdict), and the errors."""
    first, last = min(sizes), max(sizes)
    rows: list[list[str]] = []
    errors: list[str] = []
    for path, label in list(PATHS.items())[1:]:
        cells: list[str] = []
        peaks: dict[int, Peak] = {}
        for size in sizes:
            got = results[path].get(size, "not run")
            if isinstance(got, Peak):
                peaks[size] = got
                cells.append(f"{mib(got.peak_kib)} (up {mib(got.upload_peak_kib)})")
            else:
                cells.append("error")
                errors.append(f"{path} {size_label(size)}: {got}")
        growth = ""
        if first in peaks and last in peaks:
            delta = peaks[last].peak_bytes - peaks[first].peak_bytes
            judged = first >= FLAT_MIN_SIZE and last > first
            flat = " (flat)" if delta <= FLAT_TOLERANCE else " NOT FLAT"
            growth = f"{delta / MiB:+.1f} MiB" + (flat if judged else " (not judged)")
        over = [p for p in peaks.values() if p.peak_bytes >= BUDGET_BYTES]
        if len(peaks) < len(sizes):
            verdict = "ERROR"
        elif over:
            verdict = "OVER BUDGET"
        elif "NOT FLAT" in growth:
            verdict = "NOT FLAT"
        else:
            verdict = "PASS"
        rows.append([label, *cells, growth, verdict])
    return rows, errors


def format_section(
    results: dict[str, dict[int, Peak | str]],
    sizes: list[int],
    elapsed: float,
    moving: tuple[list[list[str]], list[str]],
) -> str:
    """The table (MiB), growth from the smallest to the largest size, and a verdict;
    ``moving`` is :func:`path_rows` of ``results``."""
    first, last = min(sizes), max(sizes)
    header = [
        "path",
        *(size_label(s) for s in sizes),
        f"growth {size_label(first)} -> {size_label(last)}",
        "verdict",
    ]
    rows, errors = list(moving[0]), list(moving[1])
    baseline = results["baseline"].get(0)
    rows.insert(
        0,
        [PATHS["baseline"], *([mib(baseline.peak_kib)] if isinstance(baseline, Peak) else ["?"])],
    )
    if isinstance(baseline, str):
        errors.insert(0, f"baseline: {baseline}")
    width = len(header)
    rows = [row + [""] * (width - len(row)) for row in rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(width)]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    timings = [
        f"{path} {size_label(size)} {got.seconds:.1f} s"
        for path in list(PATHS)[1:]
        for size, got in results[path].items()
        if isinstance(got, Peak)
    ]
    lines = [
        "Peak RSS (VmHWM) of a fresh child moving one artifact up and back down, in MiB "
        "(2^20 bytes); '(up ...)' is the peak after the upload phase.",
        f"Budget: under 150 MB = {BUDGET_BYTES:,} bytes = {BUDGET_BYTES / MiB:.1f} MiB per "
        f"child; flat = growth of at most {FLAT_TOLERANCE // MiB} MiB from "
        f"{size_label(first)} to {size_label(last)} (judged from "
        f"{size_label(FLAT_MIN_SIZE)} up). Uploads run without a TTY: the commands "
        "draw no progress bar.",
        "",
        line(header),
        "-+-".join("-" * w for w in widths),
        *(line(row) for row in rows),
        "",
        f"Child times (Django setup + round trip): {', '.join(timings)}.",
        f"Memory section: {elapsed:.0f} s.",
    ]
    return "\n".join(lines + [f"  {e}" for e in errors])


def run(
    target: Target, sizes: list[int], reclaim: Callable[[], None] = lambda: None
) -> tuple[str, list[str]]:
    """Measure every path at every size: the printable section, and the labels of the
    paths whose verdict is not PASS. ``reclaim`` runs after each size: pass
    ``seaweed_vacuum(server)`` to give the disk back."""
    started = time.perf_counter()
    results = measure(target, sorted(sizes), reclaim)
    moving = path_rows(results, sorted(sizes))
    text = format_section(results, sorted(sizes), time.perf_counter() - started, moving)
    return text, [row[0] for row in moving[0] if row[-1] != "PASS"]

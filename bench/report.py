"""The results table: medians, throughput and each figure as a ratio to the best peer.

The ratio is "how many times as fast as the best peer" (best peer time / our time, or
our rate / best peer rate): 1.00 ties the fastest non-ours contender, above 1 leads it.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from .contenders import OURS
from .cpu import CpuSample

MB = 1_000_000
RATIO_HEADER = "vs best peer"


@dataclass
class Result:
    """All timings of one contender for one operation and size."""

    operation: str
    size: int  # bytes moved per run (0 for rate benchmarks)
    contender: str
    seconds: list[float] = field(default_factory=list)
    note: str | None = None  # "n/a (not installed)", or the error that stopped it
    per_run: int = 0  # items per run, for rate benchmarks (presigns)
    cpu: list[CpuSample] = field(default_factory=list)  # per timed run, when measured

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds and self.note is None else None

    @property
    def speed(self) -> float | None:
        """Higher is better: MB/s for transfers, items/s for rate benchmarks."""
        median = self.median
        if median is None or median <= 0:
            return None
        return (self.per_run or self.size / MB) / median

    def cpu_cells(self) -> list[str]:
        """Median client and server CPU seconds, and their share of all cores' time."""
        median = self.median
        if not self.cpu or median is None:
            return ["", "", ""]
        client = statistics.median(sample.client for sample in self.cpu)
        server = statistics.median(sample.server for sample in self.cpu)
        busy = (client + server) / ((os.cpu_count() or 1) * median)
        return [f"{client:.2f}", f"{server:.2f}", f"{busy:.0%}"]


def size_label(size: int) -> str:
    if size == 0:
        return "-"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size % scale == 0:
            return f"{size // scale} {unit}"
    if size % MB == 0:
        return f"{size // MB} MB"
    return f"{size} B"


def parse_size(text: str) -> int:
    """``"8MiB"``, ``"500MB"``, ``"1GiB"`` or a plain byte count."""
    units = {"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "KB": 1000, "MB": MB, "GB": 10**9}
    cleaned = text.strip().upper().replace(" ", "")
    for unit, scale in sorted(units.items(), key=lambda item: -len(item[0])):
        if cleaned.endswith(unit):
            return int(float(cleaned[: -len(unit)]) * scale)
    return int(cleaned)


def best_peer_speed(group: list[Result]) -> float | None:
    speeds = [r.speed for r in group if not r.contender.startswith(OURS) and r.speed is not None]
    return max(speeds) if speeds else None


def format_table(results: list[Result]) -> str:
    """A plain-text table, one row per (operation, size, contender), in run order."""
    header = [
        "operation",
        "size",
        "contender",
        "median s",
        "MB/s or ops/s",
        RATIO_HEADER,
        "client CPU s",
        "server CPU s",
        "CPU busy",
    ]
    rows: list[list[str]] = []
    groups: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        groups.setdefault((result.operation, result.size), []).append(result)
    for (operation, size), group in groups.items():
        best = best_peer_speed(group)
        for result in group:
            speed = result.speed
            if result.note is not None or speed is None:
                numbers = [result.note or "n/a", "", "", "", "", ""]
            else:
                unit = "/s" if result.per_run else ""
                ratio = f"{speed / best:.2f}x" if best else "-"
                if result.contender != OURS and best and speed == best:
                    ratio += " (best)"
                numbers = [f"{result.median:.3f}", f"{speed:,.0f}{unit}", ratio]
                numbers += result.cpu_cells()
            rows.append([operation, size_label(size), result.contender, *numbers])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(
            cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
        ).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def format_rss(peaks: dict[str, int | str], size: int) -> str:
    """Peak RSS lines: ``peaks`` maps a path name to kilobytes (or an error note)."""
    lines = [f"Peak RSS, upload + download of {size_label(size)} in a child process:"]
    for name, peak in peaks.items():
        shown = f"{peak / 1024:.1f} MiB" if isinstance(peak, int) else peak
        lines.append(f"  peak RSS {name}: {shown}")
    return "\n".join(lines)

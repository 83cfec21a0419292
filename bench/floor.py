"""The floor of a verified transfer on this machine, computed from the run's own rows.

A client that verifies what it moves needs, at the least, the CPU the fastest peer spent
moving the bytes, the CPU the server spent serving them, and one SHA-256 pass over them.
Spread over every core, that is the shortest time any verifying client could take here:

    floor = max(fastest peer's time, (peer CPU + server CPU + size / SHA-256 rate) / cores)

Our time as a share of it (``floor / ours``) says how much of the machine our verified
path leaves unused: 1.0 is the floor itself, 0.5 means twice the time the parts allow.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from .contenders import DIAGNOSTIC, OURS
from .report import MB, Result, size_label

RAW_BOTO3 = ("boto3 default", "boto3 tuned")


@dataclass(frozen=True)
class Floor:
    """The floor of one (operation, size) group and how each of our paths compares."""

    operation: str
    size: int
    peer: str  # the fastest peer, whose CPU the floor counts
    peer_seconds: float
    peer_cpu: float
    server_cpu: float
    hash_seconds: float
    cores: int
    ours: dict[str, float]  # each verified path of ours -> its median seconds
    raw_boto3: tuple[str, float] | None  # the faster raw boto3 row: (name, median s)

    @property
    def cpu_bound(self) -> float:
        return (self.peer_cpu + self.server_cpu + self.hash_seconds) / self.cores

    @property
    def seconds(self) -> float:
        return max(self.peer_seconds, self.cpu_bound)

    def share(self, path: str) -> float:
        """``floor / our time`` for one of our paths: 1.0 is the floor itself."""
        return self.seconds / self.ours[path]

    def describe(self) -> str:
        """The floor's terms, then each of our paths against it and raw boto3."""
        terms = (
            f"({self.peer} CPU {self.peer_cpu:.2f} + server {self.server_cpu:.2f} + "
            f"SHA-256 {self.hash_seconds:.2f}) / {self.cores} cores = {self.cpu_bound:.3f} s"
        )
        ours = "; ".join(
            f"{name} {seconds:.3f} s = {self.share(name):.0%} of floor"
            for name, seconds in self.ours.items()
        )
        raw = f"; {self.raw_boto3[0]} {self.raw_boto3[1]:.3f} s" if self.raw_boto3 else ""
        return (
            f"{self.operation} {size_label(self.size)}: floor {self.seconds:.3f} s = "
            f"max({self.peer} {self.peer_seconds:.3f} s, {terms}); {ours}{raw}"
        )


def _median_cpu(result: Result) -> tuple[float, float]:
    return (
        statistics.median(sample.client for sample in result.cpu),
        statistics.median(sample.server for sample in result.cpu),
    )


def is_verified_path(result: Result) -> bool:
    """Ours, and not a diagnostic row (those move bytes without verifying them)."""
    return result.contender.startswith(OURS) and DIAGNOSTIC not in result.contender


def floor_of(group: list[Result], sha256_mb_per_s: float, cores: int | None = None) -> Floor | None:
    """The floor of one (operation, size) group; None without a timed peer with CPU
    figures or without a timed path of ours."""
    cores = cores or os.cpu_count() or 1
    peers = [
        r for r in group if not r.contender.startswith(OURS) and r.median is not None and r.cpu
    ]
    ours = [r for r in group if is_verified_path(r) and r.median is not None]
    if not peers or not ours:
        return None
    fastest = min(peers, key=lambda r: r.median or 0.0)
    peer_cpu, server_cpu = _median_cpu(fastest)
    size = group[0].size
    raw = [(r.contender, r.median) for r in group if r.contender in RAW_BOTO3 and r.median]
    return Floor(
        operation=group[0].operation,
        size=size,
        peer=fastest.contender,
        peer_seconds=fastest.median or 0.0,
        peer_cpu=peer_cpu,
        server_cpu=server_cpu,
        hash_seconds=size / MB / sha256_mb_per_s,
        cores=cores,
        ours={r.contender: r.median or 0.0 for r in ours},
        raw_boto3=min(raw, key=lambda pair: pair[1]) if raw else None,
    )


def floors(results: list[Result], sha256_mb_per_s: float, cores: int | None = None) -> list[Floor]:
    """The floor of every upload and download group in ``results``, in run order."""
    groups: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        if result.operation in ("upload", "download") and result.size:
            groups.setdefault((result.operation, result.size), []).append(result)
    found = [floor_of(group, sha256_mb_per_s, cores) for group in groups.values()]
    return [floor for floor in found if floor is not None]


def format_floors(found: list[Floor]) -> str:
    lines = ["Floors of verified transfers (computed from this run's rows):"]
    lines += [f"  {floor.describe()}" for floor in found]
    return "\n".join(lines)

"""CPU seconds spent by the bench (and the CLI peers it waits for) and by the server.

Two numbers per timed step tell what limits a transfer on this machine: when client CPU
plus server CPU is close to ``cores x wall time``, the step is CPU-bound and any work
added to either side (our SHA-256, say) costs wall time; when the server alone uses most
of the cores, every contender waits on the server.
"""

from __future__ import annotations

import hashlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds at one instant."""

    client: float  # this process and its waited-for children
    server: float  # every process in the server's process group


def _client_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _group_seconds(pgid: int | None) -> float:
    """utime + stime of every live process whose process group is ``pgid``."""
    if pgid is None:
        return 0.0
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the ")" closing the command name: state is [0], pgrp [2],
            # utime [11] and stime [12] (proc(5) numbers them 3, 5, 14 and 15).
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICKS


class CpuMeter:
    """Reads :class:`CpuSample` s for the bench and one server process group."""

    def __init__(self, server_pgid: int | None) -> None:
        self.server_pgid = server_pgid

    def sample(self) -> CpuSample:
        return CpuSample(_client_seconds(), _group_seconds(self.server_pgid))

    @staticmethod
    def spent(before: CpuSample, after: CpuSample) -> CpuSample:
        return CpuSample(after.client - before.client, after.server - before.server)


def sha256_rate(megabytes: int = 256) -> float:
    """MB/s of hashlib's SHA-256 on one core, over ``megabytes`` of data held in memory:
    the most any path that hashes what it moves can move per core it gives the hash."""
    block = os.urandom(1_000_000)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(megabytes):
        digest.update(block)
    return megabytes / (time.perf_counter() - start)

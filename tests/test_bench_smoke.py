"""Smoke test of the benchmark suite: ``python -m bench.run --quick`` runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import RATIO_HEADER

pytestmark = pytest.mark.real_s3

REPO = Path(__file__).resolve().parent.parent
CONTENDERS = ("ours", "boto3 default", "boto3 tuned", "s5cmd", "rclone", "aws s3 cp")


def test_quick_bench_prints_every_contender_with_a_ratio() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("operation"))
    assert RATIO_HEADER in header
    rows = [[cell.strip() for cell in line.split("|")] for line in lines if line.count("|") >= 4]
    for operation in ("upload", "download"):
        for size in ("8 MiB", "40 MiB"):
            contenders = {row[2] for row in rows if row[:2] == [operation, size]}
            assert set(CONTENDERS) <= contenders, (operation, size, contenders)
    ours = [row for row in rows if row[0] in ("upload", "download") and row[2] == "ours"]
    assert len(ours) == 4
    assert all(row[5].endswith("x") for row in ours), ours  # a ratio to the best peer
    presign = {row[2] for row in rows if row[0] == "presign x1000"}
    assert presign == {"ours", "boto3 generate_presigned_url"}
    assert "peak RSS ours:" in done.stdout
    assert "MiB" in next(line for line in lines if "peak RSS ours:" in line)

"""Smoke test of the benchmark suite: ``python -m bench.run --quick`` runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.migration import OURS_NAME, RCLONE_NAME, S5CMD_DISK_NAME, S5CMD_PIPE_NAME
from bench.report import RATIO_HEADER
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.real_s3


PEERS = ("boto3 default", "boto3 tuned", "s5cmd", "rclone", "aws s3 cp")


CONTENDERS = {
    "upload": ("ours", "ours FileField save", *PEERS),
    "download": ("ours", "ours download command", *PEERS, "ours without SHA-256 (diagnostic)"),
}


GOALS = (
    "upload >= 0.95x",
    "download >= 0.95x",
    "presign >= 20,000/s",
    "get_schema",
    "peak RSS",
    "migration of small objects",
    "verified transfers >= 90% of the floor",
    "verified transfers never slower than raw boto3",
)


MIGRATION = {  # --quick: 200 objects of 4 KiB, one of 64 MiB; server A -> server B
    ("migrate 200 objects", "4 KiB"): (OURS_NAME, RCLONE_NAME, S5CMD_DISK_NAME),
    ("migrate 1 object", "64 MiB"): (OURS_NAME, RCLONE_NAME, S5CMD_DISK_NAME, S5CMD_PIPE_NAME),
}


def test_quick_bench_prints_every_contender_with_a_ratio() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("operation"))
    assert RATIO_HEADER in header
    rows = [[cell.strip() for cell in line.split("|")] for line in lines if line.count("|") >= 4]
    for operation, expected in CONTENDERS.items():
        for size in ("8 MiB", "40 MiB"):
            found = {row[2]: row for row in rows if row[:2] == [operation, size]}
            assert set(expected) == set(found), (operation, size, found)
            for name in expected:  # every contender ran (installed, no error) ...
                assert found[name][4].replace(",", "").isdigit(), found[name]
            for name in expected[:2]:  # ... and ours carry a ratio to the best peer
                assert found[name][5].endswith("x"), found[name]
    presign = {row[2]: row for row in rows if row[0] == "presign x1000"}
    assert set(presign) == {
        "ours",
        "ours FileField url() + audit",
        "ours FileField url(), audit off (diagnostic)",
        "ours client link + audit, one INSERT each (diagnostic)",
        "boto3 generate_presigned_url",
        "django-storages url()",
    }
    assert all(row[5].endswith("x") for name, row in presign.items() if name.startswith("ours"))
    schema = {row[2]: row for row in rows if row[0].startswith("get_schema")}
    assert set(schema) == {"ours", "ours (revalidate every read)", "boto3 get_object"}
    assert schema["ours"][5].endswith("x"), schema
    memory = {line.split("|")[0].strip(): line for line in lines if line.count("|") == 4}
    for path in ("client", "FileField", "admin", "commands"):
        row = next(line for name, line in memory.items() if name.startswith(path + ":"))
        assert row.rstrip().endswith("PASS"), row  # under 150 MB at the quick sizes
    assert "peak RSS ours:" in done.stdout
    assert "MiB" in next(line for line in lines if "peak RSS ours:" in line)
    transfer = next(row for row in rows if row[:3] == ["download", "40 MiB", "ours"])
    client_cpu, server_cpu, busy = transfer[6:9]
    assert float(client_cpu) > 0 and float(server_cpu) > 0 and busy.endswith("%"), transfer
    for (operation, size), expected in MIGRATION.items():
        found = {row[2]: row for row in rows if row[:2] == [operation, size]}
        assert set(expected) == set(found), (operation, size, found)
        for name in expected:  # every copier ran, checked complete, at a positive rate
            rate = found[name][4].removesuffix("/s").replace(",", "")
            assert rate.isdigit() and int(rate) > 0, found[name]
        assert found[OURS_NAME][5].endswith("x"), found[OURS_NAME]
    assert "s5cmd takes one endpoint" in done.stdout  # the footnote under the table
    verdicts = [line.strip() for line in lines if line.startswith("  [")]
    for goal in GOALS:  # every goal judged (met or missed), none "not run"
        verdict = next(line for line in verdicts if goal in line)
        assert verdict.startswith(("[MET]", "[MISSED]")), verdict
    assert next(line for line in verdicts if "peak RSS" in line).startswith("[MET]")
    assert "Floors of verified transfers" in done.stdout  # each floor with its terms
    floors = [line for line in lines if line.startswith("  download 40 MiB: floor ")]
    assert floors and "of floor" in floors[0], floors

"""The README's run command, end to end: `manage.py rundemo` on a fresh data folder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dual_storage_app.testing.server import free_port_pair, is_listening
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.real_s3


DEMO_SECRET = "demo-secret-Pq72Lm"


def clean_env() -> dict[str, str]:
    """The environment minus storage variables and pytest-django's settings module."""
    prefixes = ("INTERNAL_", "EXTERNAL_", "AWS_", "S3_BUCKET_", "DJANGO_")
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


def run_demo(tmp_path: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    endpoint = f"http://localhost:{port}"
    env.update(
        INTERNAL_STORAGE_ENDPOINT=endpoint,
        EXTERNAL_STORAGE_ENDPOINT=endpoint,
        INTERNAL_STORAGE_SECRET_KEY=DEMO_SECRET,
        EXTERNAL_STORAGE_SECRET_KEY=DEMO_SECRET,
        DUAL_STORAGE_LOCAL_DATA_DIR=str(tmp_path / "seaweedfs"),
        EXAMPLE_DB_PATH=str(tmp_path / "example.sqlite3"),
    )
    return subprocess.run(
        [sys.executable, "manage.py", "rundemo", "--no-serve"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rundemo_starts_the_server_seeds_and_prints_the_login(tmp_path: Path) -> None:
    port = free_port_pair()
    first = run_demo(tmp_path, port)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert f"Starting the embedded S3 server (SeaweedFS) on http://localhost:{port}" in out
    for bucket in ("model-weights", "training-checkpoints", "config-schemas", "training-datasets"):
        assert f"bucket {bucket}: created" in out
    assert re.search(
        r"seeded weights +internal:model-weights/weights/\w{12}/resnet50-demo.pth 3,145,728 bytes",
        out,
    )
    assert re.search(
        r"seeded checkpoints +internal:training-checkpoints/jobs/1/\w{12}/checkpoint_epoch_1.pth",
        out,
    )
    assert re.search(
        r"seeded schemas +internal:config-schemas/versions/ultralytics/\w{12}/ultralytics.json", out
    )
    assert re.search(
        r"seeded datasets +external:training-datasets/datasets/\w{12}/demo-coco8.zip", out
    )
    assert "get_schema('ultralytics') -> 'ultralytics training config'" in out
    assert f"presigned dataset URL (1 h): http://localhost:{port}/training-datasets/" in out
    assert "Admin: http://127.0.0.1:8000/admin/  user 'admin' password 'admin'" in out
    assert DEMO_SECRET not in out + first.stderr  # the secret is never printed
    assert not is_listening(port), "rundemo must stop the S3 server it started"

    # Second run: the data folder survived, buckets exist, seeding is repeatable.
    second = run_demo(tmp_path, port)
    assert second.returncode == 0, second.stderr
    assert "bucket model-weights: exists" in second.stdout
    assert second.stdout.count("exists ") == 4  # every demo row already stored, same hash
    assert "seeded" not in second.stdout
    assert not is_listening(port)


def test_check_passes_on_the_example_settings() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_localserver_command_serves_until_interrupted(tmp_path: Path) -> None:
    port = free_port_pair()
    env = clean_env()
    endpoint = f"http://localhost:{port}"
    env.update(
        INTERNAL_STORAGE_ENDPOINT=endpoint,
        EXTERNAL_STORAGE_ENDPOINT=endpoint,
        DUAL_STORAGE_LOCAL_DATA_DIR=str(tmp_path / "seaweedfs"),
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "dualstorage_localserver"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    assert is_listening(port)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    text = "".join(lines) + out
    assert process.returncode == 0, err
    assert f"S3 server on http://127.0.0.1:{port}" in text
    assert "bucket training-datasets: created" in text
    assert "S3 server stopped." in text
    assert not is_listening(port)

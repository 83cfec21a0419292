"""``dualstorage_localserver --json`` runs the embedded SeaweedFS as a process, as a script
would: one JSON line when it is ready, one when it has stopped.

(Its plain output runs through the example project in ``test_example_project.py``; a
taken port as a JSON error is in ``test_command_json.py``.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dual_storage_app.testing.server import free_port_pair, is_listening
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.real_s3


def test_localserver_json_prints_one_line_when_ready_and_one_when_stopped(
    tmp_path: Path,
) -> None:
    port = free_port_pair()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERNAL_", "EXTERNAL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",  # no DUAL_STORAGE: the variables below
        INTERNAL_STORAGE_ENDPOINT=endpoint,
        EXTERNAL_STORAGE_ENDPOINT=endpoint,
        **{f"{store}_STORAGE_ACCESS_KEY": "local-admin" for store in ("INTERNAL", "EXTERNAL")},
        **{f"{store}_STORAGE_SECRET_KEY": "local-Secret-93" for store in ("INTERNAL", "EXTERNAL")},
    )
    data_dir = tmp_path / "seaweedfs"
    command = ["dualstorage_localserver", "--data-dir", str(data_dir), "--json"]
    process = subprocess.Popen(
        [sys.executable, "-m", "django", *command],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())  # flushed at once, before Ctrl-C
        assert is_listening(port)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    where = {"endpoint": endpoint, "data_dir": str(data_dir)}
    assert ready == {
        "event": "ready",
        **where,
        "buckets": [
            {"store": "internal", "bucket": "model-weights", "created": True},
            {"store": "internal", "bucket": "training-checkpoints", "created": True},
            {"store": "internal", "bucket": "config-schemas", "created": True},
            {"store": "external", "bucket": "training-datasets", "created": True},
        ],
    }
    assert [json.loads(line) for line in out.splitlines()] == [{"event": "stopped", **where}]
    assert "local-Secret-93" not in out + err
    assert not is_listening(port)

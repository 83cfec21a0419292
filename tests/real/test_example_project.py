"""The README's run command, end to end: `manage.py rundemo` on a fresh data folder;
the example project's settings (`.env` only, loud demo defaults, `check --deploy`) and
`make run` creating `.env`."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dual_storage_app.testing.server import free_port_pair, is_listening
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.real_s3


INTERNAL_ACCESS, INTERNAL_SECRET = "demo-internal-access", "demo-internal-secret-Pq72Lm"
EXTERNAL_ACCESS, EXTERNAL_SECRET = "demo-external-access", "demo-external-secret-Xw41Rd"


def clean_env() -> dict[str, str]:
    """The environment minus storage variables and pytest-django's settings module."""
    prefixes = ("INTERNAL_", "EXTERNAL_", "AWS_", "S3_BUCKET_", "DJANGO_")
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


def demo_env(tmp_path: Path, port: int) -> dict[str, str]:
    """Everything rundemo needs, set explicitly (a developer's `.env` never decides)."""
    env = clean_env()
    endpoint = f"http://localhost:{port}"
    env.update(
        INTERNAL_STORAGE_ENDPOINT=endpoint,
        EXTERNAL_STORAGE_ENDPOINT=endpoint,
        INTERNAL_STORAGE_ACCESS_KEY=INTERNAL_ACCESS,
        INTERNAL_STORAGE_SECRET_KEY=INTERNAL_SECRET,
        EXTERNAL_STORAGE_ACCESS_KEY=EXTERNAL_ACCESS,
        EXTERNAL_STORAGE_SECRET_KEY=EXTERNAL_SECRET,
        DJANGO_DEBUG="1",
        DUAL_STORAGE_LOCAL_DATA_DIR=str(tmp_path / "seaweedfs"),
        EXAMPLE_DB_PATH=str(tmp_path / "example.sqlite3"),
    )
    return env


def manage(
    env: dict[str, str], *args: str, cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_demo(tmp_path: Path, port: int) -> subprocess.CompletedProcess[str]:
    return manage(demo_env(tmp_path, port), "rundemo", "--no-serve")


def test_rundemo_starts_the_server_seeds_and_prints_the_login(tmp_path: Path) -> None:
    port = free_port_pair()
    first = run_demo(tmp_path, port)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert f"Starting the embedded S3 server (SeaweedFS) on http://localhost:{port}" in out
    for bucket in ("model-weights", "training-checkpoints", "config-schemas"):
        assert f"bucket {bucket}: created" in out
    # The server creates the external identity's bucket itself (that identity cannot).
    assert "bucket training-datasets: exists" in out
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
    for secret in (INTERNAL_SECRET, EXTERNAL_SECRET):
        assert secret not in out + first.stderr  # a secret is never printed
    assert not is_listening(port), "rundemo must stop the S3 server it started"

    # Second run: the data folder survived, buckets exist, nothing is seeded again.
    second = run_demo(tmp_path, port)
    assert second.returncode == 0, second.stderr
    assert "bucket model-weights: exists" in second.stdout
    assert second.stdout.count("; seeded before") == 4
    assert not re.search(r"^seeded ", second.stdout, re.MULTILINE)
    assert "existing user 'admin' kept (password unchanged)" in second.stdout
    assert "password 'admin'" not in second.stdout
    assert not is_listening(port)


def test_presigned_dataset_links_carry_the_external_identity_only(tmp_path: Path) -> None:
    """The link names the external store's least-privilege key, never the internal
    (admin) one, and that key opens the dataset but nothing in the internal store."""
    port = free_port_pair()
    result = run_demo(tmp_path, port)
    assert result.returncode == 0, result.stderr
    match = re.search(r"presigned dataset URL \(1 h\): (\S+)", result.stdout)
    assert match
    url = match.group(1)
    assert f"X-Amz-Credential={EXTERNAL_ACCESS}%2F" in url
    assert INTERNAL_ACCESS not in url
    assert "minioadmin" not in url

    script = """
import json, sys, urllib.request
from botocore.exceptions import ClientError
from dual_storage_app.management.commands.dualstorage_localserver import embedded_server
server = embedded_server().start()
try:
    body = urllib.request.urlopen(sys.argv[1], timeout=10).read()
    (identity,) = server.bucket_identities
    client = server.identity_client(identity)
    codes = {}
    for bucket in ("model-weights", "config-schemas"):
        try:
            client.list_objects_v2(Bucket=bucket)
            codes[bucket] = "allowed"
        except ClientError as exc:
            codes[bucket] = exc.response["Error"]["Code"]
    print(json.dumps({"zip": body[:2].decode(), "codes": codes}))
finally:
    server.stop()
"""
    env = demo_env(tmp_path, port)
    checked = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); exec({script!r})", url],
        cwd=REPO_ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "example_project.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout.splitlines()[-1])
    assert report["zip"] == "PK"  # the link serves the dataset archive
    assert report["codes"] == {"model-weights": "AccessDenied", "config-schemas": "AccessDenied"}


SHELL_EDIT = """
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from dual_storage_app.management.commands.dualstorage_localserver import embedded_server
from dual_storage_app.models import ConfigSchema, ModelWeight
server = embedded_server().start()
try:
    weight = ModelWeight.objects.get(name="resnet50-demo")
    weight.name = "my-renamed-weight"
    weight.save()
    schema = ConfigSchema.objects.get(framework="ultralytics")
    schema.file.save("ultralytics.json", ContentFile(b'{"title": "my own schema"}'))
    user = get_user_model().objects.get(username="admin")
    user.set_password("my-own-password")
    user.save()
finally:
    server.stop()
"""

SHELL_REPORT = """
import json
from django.contrib.auth import get_user_model
from dual_storage_app.models import ConfigSchema, ModelWeight
print(json.dumps({
    "weights": sorted(ModelWeight.objects.values_list("name", flat=True)),
    "schemas": ConfigSchema.objects.count(),
    "password kept": get_user_model().objects.get(username="admin").check_password(
        "my-own-password"
    ),
}))
"""


def test_rundemo_never_changes_what_exists(tmp_path: Path) -> None:
    """A renamed demo weight, a replaced schema and a changed admin password stay as the
    user left them (the previous rundemo re-created, republished and reset them)."""
    port = free_port_pair()
    assert run_demo(tmp_path, port).returncode == 0
    env = demo_env(tmp_path, port)
    edited = manage(env, "shell", "-c", SHELL_EDIT)
    assert edited.returncode == 0, edited.stderr

    again = run_demo(tmp_path, port)
    assert again.returncode == 0, again.stderr
    assert not re.search(r"^seeded ", again.stdout, re.MULTILINE)
    assert "get_schema('ultralytics') -> 'my own schema'" in again.stdout
    assert "existing user 'admin' kept" in again.stdout
    report = manage(env, "shell", "-c", SHELL_REPORT)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout.splitlines()[-1]) == {
        "weights": ["my-renamed-weight"],
        "schemas": 1,
        "password kept": True,
    }


def test_rundemo_seeds_nothing_into_a_kind_that_already_has_rows(tmp_path: Path) -> None:
    """A database that holds weights before the demo ever ran gets no demo weight."""
    port = free_port_pair()
    env = demo_env(tmp_path, port)
    assert manage(env, "migrate", "--verbosity", "0").returncode == 0
    script = (
        "from dual_storage_app.models import ModelWeight\n"
        "ModelWeight.objects.bulk_create([ModelWeight(name='mine', file='weights/x/mine.pth',"
        " sha256='0' * 64)])\n"
    )
    made = manage(env, "shell", "-c", script)
    assert made.returncode == 0, made.stderr
    result = run_demo(tmp_path, port)
    assert result.returncode == 0, result.stderr
    assert re.search(r"kept weights +1 row\(s\); demo not seeded", result.stdout)
    assert not re.search(r"^seeded weights", result.stdout, re.MULTILINE)
    assert "seeded datasets" in result.stdout  # the other kinds are still seeded


def test_rundemo_and_check_are_loud_about_the_demo_defaults(tmp_path: Path) -> None:
    env = demo_env(tmp_path, free_port_pair())
    checked = manage(env, "check")
    assert checked.returncode == 0, checked.stderr  # warnings, not errors
    for check_id in ("demo.W001", "demo.W002"):
        assert check_id in checked.stderr
    assert "DEBUG is on" in checked.stderr
    assert "public demo key" in checked.stderr
    assert manage(env, "check", "--fail-level", "WARNING").returncode != 0


def deployed_env(tmp_path: Path) -> dict[str, str]:
    """DEBUG off, a secret key, and two distinct stores (as in production; the app's
    own W002 warns when both share an endpoint with DEBUG off)."""
    env = demo_env(tmp_path, free_port_pair())
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        INTERNAL_STORAGE_ENDPOINT="http://minio.internal:9000",
        EXTERNAL_STORAGE_ENDPOINT="https://s3.eu-west-1.amazonaws.com",
        EXTERNAL_STORAGE_REGION="eu-west-1",
    )
    return env


def test_check_passes_with_debug_off_and_a_secret_key(tmp_path: Path) -> None:
    env = deployed_env(tmp_path)
    result = manage(env, "check", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_passes_with_debug_off_and_a_secret_key(tmp_path: Path) -> None:
    env = {**deployed_env(tmp_path), "DJANGO_ALLOWED_HOSTS": "datasets.example.org"}
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    code = "from django.conf import settings as s; print(s.ALLOWED_HOSTS)"
    shown = manage(env, "shell", "-c", code)
    assert shown.stdout.strip().splitlines()[-1] == "['datasets.example.org']"


def copy_of_the_example_project(tmp_path: Path) -> Path:
    """The example project beside its own `.env.example`, in ``tmp_path/project``."""
    project = tmp_path / "project"
    shutil.copytree(
        REPO_ROOT / "example_project",
        project / "example_project",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("manage.py", ".env.example", "Makefile"):
        shutil.copy2(REPO_ROOT / name, project / name)
    return project


READ_SETTING = (
    "import os, example_project.settings; print(os.environ.get('INTERNAL_STORAGE_ACCESS_KEY'))"
)


def test_settings_read_dot_env_and_never_dot_env_example(tmp_path: Path) -> None:
    project = copy_of_the_example_project(tmp_path)
    env = clean_env()

    def setting() -> str:
        result = subprocess.run(
            [sys.executable, "-c", READ_SETTING],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    assert setting() == "None"  # .env.example alone configures nothing
    (project / ".env").write_text("INTERNAL_STORAGE_ACCESS_KEY=from-dot-env\n")
    assert setting() == "from-dot-env"


def test_make_run_creates_dot_env_from_the_example_once(tmp_path: Path) -> None:
    project = copy_of_the_example_project(tmp_path)
    # A venv stamp newer than pyproject.toml, and `true` for Python: only `run` itself runs.
    (project / "pyproject.toml").write_text("")
    (project / "stamp").write_text("")
    make = ["make", "--no-print-directory", "run", "STAMP=stamp", "PY=true"]

    def run() -> list[str]:
        result = subprocess.run(
            make, cwd=project, capture_output=True, text=True, timeout=60, check=True
        )
        return result.stdout.splitlines()

    first = run()
    assert first[0] == (
        "Created .env from .env.example (local demo values; edit .env to change them)."
    )
    assert (project / ".env").read_text() == (project / ".env.example").read_text()
    (project / ".env").write_text("INTERNAL_STORAGE_ACCESS_KEY=mine\n")
    second = run()
    assert not any("Created .env" in line for line in second)
    assert (project / ".env").read_text() == "INTERNAL_STORAGE_ACCESS_KEY=mine\n"


def test_dot_env_is_git_ignored() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", ".env"], cwd=REPO_ROOT, timeout=30, check=False
    )
    assert result.returncode == 0


def test_localserver_command_serves_until_interrupted(tmp_path: Path) -> None:
    port = free_port_pair()
    env = demo_env(tmp_path, port)
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
    assert "bucket model-weights: created" in text
    assert "bucket training-datasets: exists" in text  # the server made it for its identity
    assert "S3 server stopped." in text
    assert not is_listening(port)

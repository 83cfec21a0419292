"""Worker processes for tests: the database several processes share, their environment,
running a management command, stopping a process group.

Used by the tests that run real ``db_worker`` and ``manage.py`` processes beside the
suite (``tests/real/test_jobs_workers.py``, ``tests/real/test_migrate_proof.py``); the
``worker_database`` fixture (``tests/conftest.py``) is :func:`worker_database_fixture`.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings

from tests.helpers import REPO_ROOT


class WorkerDatabase:
    """The workers' database, read directly (SQL, not the ORM: this process's Django
    uses the suite's own test database)."""

    def __init__(self, target: str) -> None:
        if target.startswith("postgres"):
            import psycopg

            self.connection: Any = psycopg.connect(target, autocommit=True)
            self.mark = "%s"
        else:
            self.connection = sqlite3.connect(target, timeout=30, isolation_level=None)
            self.mark = "?"

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(sql.replace("%s", self.mark), params).fetchall())

    def batches(self, job_id: int) -> list[tuple[int, str, str, int]]:
        """(index, status, worker, attempts) of each batch of the job."""
        return [
            (int(index), str(status), str(worker), int(attempts))
            for index, status, worker, attempts in self.rows(
                'SELECT "index", status, worker, attempts FROM dual_storage_jobs_jobbatch '
                'WHERE job_id = %s ORDER BY "index"',
                job_id,
            )
        ]

    def job_status(self, job_id: int) -> str:
        return str(
            self.rows("SELECT status FROM dual_storage_jobs_storagejob WHERE id = %s", job_id)[0][0]
        )

    def close(self) -> None:
        self.connection.close()


def worker_database_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the workers keep the job: a SQLite file, or (PostgreSQL pass) a fresh
    PostgreSQL database on the suite's server, dropped afterwards."""
    if request.param == "sqlite":
        yield str(tmp_path / "jobs.sqlite3")
        return
    import psycopg

    server = django_settings.DATABASES["default"]
    base = (
        f"postgres://{server['USER']}:{server['PASSWORD']}@{server['HOST']}:{server['PORT']}"
        f"/{server['NAME']}"
    )
    name = f"jobs_workers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def worker_environment(database: str, stores: dict[str, str]) -> dict[str, str]:
    """The environment of a worker process: the stores' settings, its database, the
    suite's worker settings module, and nothing inherited that could configure a store."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("INTERNAL_", "EXTERNAL_", "AWS_", "S3_BUCKET_", "DJANGO_"))
    }
    return {
        **inherited,
        **stores,
        "DJANGO_SETTINGS_MODULE": "tests.jobs_worker_settings",
        "DUAL_STORAGE_JOBS_TEST_DB": database,
        "PYTHONPATH": str(REPO_ROOT),
    }


def run_django(env: dict[str, str], *args: str) -> str:
    """Run ``python -m django ARGS`` (a management command) and return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, then SIGKILL it after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

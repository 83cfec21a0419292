"""Run the suite's database tests on PostgreSQL, when a server is available.

``make test`` runs the whole suite on SQLite, then this: it connects to
``DUAL_STORAGE_TEST_POSTGRES_URL`` (default: the role ``.ci/run`` creates on the local
cluster, ``postgres://dual_storage:dual-storage-tests@127.0.0.1:5432/postgres``) and, if
that works, runs every test that uses the database (``-m '(django_db or postgres) and not
volume and not browser'``: the full-volume proofs and the Chromium tests run on SQLite
only; the database behaviour they rest on is tested here by their HTTP-level siblings)
against it, saying which server it ran on. Without a server it says so and succeeds, unless
``DUAL_STORAGE_REQUIRE_POSTGRES=1`` (as in CI), when it fails.

Extra arguments are passed to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

DEFAULT_URL = "postgres://dual_storage:dual-storage-tests@127.0.0.1:5432/postgres"


def server_version(url: str) -> str:
    """``PostgreSQL 15.18`` for the server at ``url``; raises if it cannot be reached."""
    import psycopg

    with psycopg.connect(url, connect_timeout=3) as connection:
        version = connection.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {version[0] if version else '?'}"


def main(pytest_args: list[str]) -> int:
    url = os.environ.get("DUAL_STORAGE_TEST_POSTGRES_URL", DEFAULT_URL)
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5432}"
    required = os.environ.get("DUAL_STORAGE_REQUIRE_POSTGRES") == "1"
    try:
        version = server_version(url)
    except Exception as exc:  # any failure means "not available"
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        print(f"PostgreSQL is not available at {where} ({reason}).")
        if required:
            print("DUAL_STORAGE_REQUIRE_POSTGRES=1: failing; .ci/run shows how to set it up.")
            return 1
        print("The suite ran on SQLite only; set DUAL_STORAGE_TEST_POSTGRES_URL to add PostgreSQL.")
        return 0
    print(f"Running the database tests on {version} at {where}.", flush=True)
    environment = {**os.environ, "DUAL_STORAGE_TEST_DATABASE_URL": url}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "(django_db or postgres) and not volume and not browser",
    ]
    return subprocess.call([*command, *pytest_args], env=environment)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Fetch the installed django-storages' sdist (it carries its own ``tests/test_s3.py``)
into ``var/django-storages-sdist/``: a setup step run before pytest (``make``), never by a
test, so tests and benchmarks make no request beyond loopback.

    python scripts/fetch_django_storages_tests.py [--dest var/django-storages-sdist]

Does nothing when the sdist of the installed version is already there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

DEFAULT_DEST = Path(__file__).resolve().parent.parent / "var" / "django-storages-sdist"


def sdist_path(dest: Path, installed: str) -> Path:
    """Where the sdist of django-storages ``installed`` lands (PyPI's normalised name)."""
    return dest / f"django_storages-{installed}.tar.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    installed = version("django-storages")
    target = sdist_path(args.dest, installed)
    if target.exists():
        print(f"{target} is there.")
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", f"django-storages=={installed}"]
    command += ["--no-deps", "--no-binary", ":all:", "--quiet", "-d", str(args.dest)]
    subprocess.run(command, check=True)
    print(f"Fetched {target}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

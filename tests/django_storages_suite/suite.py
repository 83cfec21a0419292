"""Prepare django-storages' ``tests/test_s3.py`` (from the fetched sdist of the installed
version) to run against one of our storages.

Three import lines change, nothing else: ``storages.backends.s3`` becomes our adapter's
(:mod:`.adapter`: their module with our ``S3Storage``), moto's ``mock_s3`` is moto 5's
``mock_aws`` (the sdist was written for moto 4), and their ``tests.utils`` is copied beside
the module (our ``tests`` package is another).
"""

from __future__ import annotations

import shutil
import tarfile
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SDIST_DIR = REPO_ROOT / "var" / "django-storages-sdist"
SUITE_DIR = REPO_ROOT / "var" / "django-storages-suite"
# Which of our storages a run of their suite puts in place of S3Storage.
STORAGE_VARIABLE = "DUAL_STORAGE_SUITE_STORAGE"

# (their line, ours): each must be found exactly once, or the sdist changed under us.
REWRITES = (
    (
        "from storages.backends import s3\n",
        "from tests.django_storages_suite.adapter import s3\n",
    ),
    ("from moto import mock_s3\n", "from moto import mock_aws as mock_s3\n"),
    (
        "from tests.utils import NonSeekableContentFile\n",
        "from django_storages_utils import NonSeekableContentFile\n",
    ),
)


class SuiteMissing(RuntimeError):
    """The sdist of the installed django-storages has not been fetched."""


def installed_version() -> str:
    return version("django-storages")


def sdist_path() -> Path:
    return SDIST_DIR / f"django_storages-{installed_version()}.tar.gz"


def prepare(storage: str) -> Path:
    """Write the adapted ``test_s3.py`` (and their ``utils.py``) into a folder of its own
    for ``storage``; return that folder."""
    archive = sdist_path()
    if not archive.exists():
        raise SuiteMissing(
            f"{archive} is missing: run `python scripts/fetch_django_storages_tests.py` "
            "(make test does) to fetch django-storages' sdist from PyPI."
        )
    top = f"django_storages-{installed_version()}"
    with tarfile.open(archive) as sdist:
        source = _member_text(sdist, f"{top}/tests/test_s3.py")
        utils = _member_text(sdist, f"{top}/tests/utils.py")
    for theirs, ours in REWRITES:
        found = source.count(theirs)
        if found != 1:
            raise RuntimeError(f"{theirs.strip()!r} found {found} times in their test_s3.py")
        source = source.replace(theirs, ours)
    folder = SUITE_DIR / storage
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "test_s3.py").write_text(source, encoding="utf-8")
    (folder / "django_storages_utils.py").write_text(utils, encoding="utf-8")
    return folder


def _member_text(sdist: tarfile.TarFile, name: str) -> str:
    member = sdist.extractfile(name)
    if member is None:  # pragma: no cover - a folder by that name
        raise RuntimeError(f"{name} is not a file in the sdist")
    with member:
        return member.read().decode("utf-8")

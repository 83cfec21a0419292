"""The ``s3`` module their suite imports: django-storages' own ``storages.backends.s3``
with ``S3Storage`` replaced by the storage under test, and nothing else changed.

The prepared copy of their ``test_s3.py`` imports this in place of
``from storages.backends import s3`` (``suite.py``). Which storage is under test comes from
``DUAL_STORAGE_SUITE_STORAGE`` (``internal`` or ``external``); each is built as their
tests build ``S3Storage``: with no arguments, so on its default kind, whose bucket the
suite's settings name ``test-bucket``.
"""

from __future__ import annotations

import os
import types

from storages.backends import s3 as original

from dual_storage_app.storages import ExternalStorage, InternalStorage

from .suite import STORAGE_VARIABLE

STORAGES: dict[str, type[InternalStorage] | type[ExternalStorage]] = {
    "internal": InternalStorage,
    "external": ExternalStorage,
}


def storage_under_test() -> type[InternalStorage] | type[ExternalStorage]:
    """Our storage class named by ``DUAL_STORAGE_SUITE_STORAGE``."""
    name = os.environ.get(STORAGE_VARIABLE, "")
    if name not in STORAGES:
        raise RuntimeError(f"{STORAGE_VARIABLE} must be one of {sorted(STORAGES)}, not {name!r}")
    return STORAGES[name]


s3 = types.ModuleType(original.__name__, original.__doc__)
s3.__dict__.update(
    {name: value for name, value in vars(original).items() if not name.startswith("__")}
)
s3.S3Storage = storage_under_test()  # type: ignore[attr-defined]

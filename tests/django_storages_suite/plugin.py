"""Marks each deliberate difference (:mod:`.differences`) as a strict xfail and leaves
out the classes that never build the storage under test. Loaded with ``-p`` by the
runner; a difference that names no collected test is an error (the table went stale)."""

from __future__ import annotations

import os

import pytest

from .differences import NOT_ABOUT_THE_STORAGE, differences_for
from .suite import STORAGE_VARIABLE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    differences = differences_for(os.environ[STORAGE_VARIABLE])
    kept, left_out, seen = [], [], set()
    for item in items:
        cls = getattr(item, "cls", None)
        class_name = cls.__name__ if cls is not None else ""
        if class_name in NOT_ABOUT_THE_STORAGE:
            left_out.append(item)
            continue
        test_id = f"{class_name}.{item.name}"
        difference = differences.get(test_id)
        if difference is not None:
            seen.add(test_id)
            item.add_marker(pytest.mark.xfail(strict=True, reason=str(difference)))
        kept.append(item)
    stale = sorted(set(differences) - seen)
    if stale:
        raise pytest.UsageError(f"differences name no collected test: {', '.join(stale)}")
    if left_out:
        config.hook.pytest_deselected(items=left_out)
    items[:] = kept

"""verification.check_artifacts: many rows checked with several objects read at once,
yielded in the rows' order, with a bounded number in flight."""

from __future__ import annotations

import threading
import time

import pytest

from dual_storage_app import verification
from dual_storage_app.exceptions import ConfigurationError
from dual_storage_app.models import Artifact, Dataset, ModelWeight
from dual_storage_app.verification import CHECKS_AT_ONCE, INTACT, Verdict, check_artifacts


def test_rows_are_checked_several_at_once_and_yielded_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = threading.Lock()
    running, most = 0, 0

    def slow_check(row: Artifact, *, quick: bool = False) -> Verdict:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)  # a round trip to the store
        with lock:
            running -= 1
        return Verdict("changed", f"row {row.name}") if row.name == "7" else INTACT

    monkeypatch.setattr(verification, "check_artifact", slow_check)
    rows = [ModelWeight(name=str(index)) for index in range(60)]
    started = time.perf_counter()
    checked = list(check_artifacts(rows))
    elapsed = time.perf_counter() - started
    assert [row.name for row, _ in checked] == [str(index) for index in range(60)]
    assert [v.problem for _, v in checked if v.problem] == ["row 7"]
    assert 1 < most <= CHECKS_AT_ONCE
    assert elapsed < 60 * 0.02 / 2  # well under one at a time


def test_a_folder_dataset_is_checked_in_the_callers_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: dict[str, str] = {}

    def record(row: Artifact, *, quick: bool = False) -> Verdict:
        threads[row.name] = threading.current_thread().name
        return INTACT

    monkeypatch.setattr(verification, "check_artifact", record)
    folder = Dataset(name="folder", file_count=3, status=Dataset.Status.READY)
    plain = ModelWeight(name="plain")
    list(check_artifacts([plain, folder]))
    assert threads["folder"] == threading.current_thread().name
    assert threads["plain"].startswith("dual-storage-verify")


def test_a_configuration_error_is_raised_not_classified(monkeypatch: pytest.MonkeyPatch) -> None:
    def misconfigured(row: Artifact, *, quick: bool = False) -> Verdict:
        raise ConfigurationError("no endpoint")

    monkeypatch.setattr(verification, "check_artifact", misconfigured)
    with pytest.raises(ConfigurationError, match="no endpoint"):
        list(check_artifacts([ModelWeight(name="a")]))

"""``dualstorage_list`` without a server: a limited list counts the rest without keeping it.

On the real servers: ``tests/real/test_command_list.py``.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from dual_storage_app.management.commands.dualstorage_list import first_and_total, shown


def _objects(count: int) -> Iterator[object]:
    for _ in range(count):
        yield object()


def test_first_and_total_keeps_only_the_first_items() -> None:
    assert first_and_total(iter("abcde"), 2) == (["a", "b"], 5)
    assert first_and_total(iter("ab"), 5) == (["a", "b"], 2)
    assert first_and_total(iter(""), 3) == ([], 0)
    tracemalloc.start()
    try:
        first, total = first_and_total(_objects(200_000), 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(first), total) == (3, 200_000)
    assert peak < 100_000  # a list of them all would take over 3 MB


def test_shown_says_first_n_of_m_only_when_some_are_left_out() -> None:
    assert (shown(3, 3), shown(3, 10), shown(0, 0)) == ("3", "first 3 of 10", "0")

"""``dualstorage_cleanup_uploads`` without a server: its duration and age formats.

On the real servers: ``tests/real/test_command_cleanup_uploads.py``.
"""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from dual_storage_app.management.commands.dualstorage_cleanup_uploads import duration, human_age
from tests.helpers import run


def test_duration_and_age_formats() -> None:
    assert [duration(t) for t in ("24h", "30m", "3600s", "3600", "2d", "0", " 5M ")] == [
        86400,
        1800,
        3600,
        3600,
        172800,
        0,
        300,
    ]
    assert [human_age(s) for s in (0, 59, 60, 3599, 3600, 93784)] == [
        "0s",
        "59s",
        "1m",
        "59m",
        "1h 0m",
        "1d 2h 3m",
    ]


def test_a_malformed_duration_is_refused() -> None:
    with pytest.raises(CommandError, match="not a duration"):
        run("dualstorage_cleanup_uploads", "--older-than", "5 weeks")
    with pytest.raises(CommandError, match="not a duration"):
        run("dualstorage_cleanup_uploads", "--older-than=-1h")

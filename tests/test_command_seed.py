"""``dualstorage_seed`` without a server: its folder convention covers every kind.

On the real servers: ``tests/real/test_command_seed.py``.
"""

from __future__ import annotations

from dual_storage_app.kinds import KINDS
from dual_storage_app.management.commands.dualstorage_seed import PLANNERS


def test_every_kind_of_the_registry_has_a_seed_folder() -> None:
    assert list(PLANNERS) == list(KINDS)

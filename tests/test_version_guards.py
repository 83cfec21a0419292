"""Both sides of every guard around a private or newer dependency API (issue 11).

* ``store.presign.botocore_now``: botocore >= 1.41 signs with
  ``botocore.auth.get_current_datetime()``, older botocore with
  ``datetime.datetime.utcnow()`` through ``botocore.auth``'s ``datetime``. Whichever botocore
  is installed, both branches are run here and the presigned URLs must equal botocore's.
* ``_consistency.delete_on_rollback`` inserts into Django's private
  ``connection.run_on_commit`` an entry of the shape ``on_commit()`` appends; pinned here
  against the installed Django (5.2 and 6.1 in the matrix).
"""

from __future__ import annotations

import datetime
import types
from typing import Any

import botocore
import pytest
from botocore import auth
from django.db import connection, transaction

from dual_storage_app.store import presign
from dual_storage_app.store.disposition import link_parameters
from dual_storage_app.store.presign import botocore_now
from tests.botocore_clock import datetime_module, frozen_botocore_clock
from tests.test_presign import BUCKETS, EXTRAS, KEYS, botocore_url, store_for

MOMENT = datetime.datetime(2025, 6, 7, 23, 59, 58)


def botocore_version() -> tuple[int, int]:
    major, minor = botocore.__version__.split(".")[:2]
    return int(major), int(minor)


def old_botocore_auth(moment: datetime.datetime) -> types.ModuleType:
    """``botocore.auth`` as botocore < 1.41 has it: no ``get_current_datetime``, and a
    ``datetime`` module whose ``utcnow()`` is ``moment``."""
    module = types.ModuleType("botocore.auth")
    module.__dict__.update(auth.__dict__)
    module.__dict__.pop("get_current_datetime", None)
    module.datetime = datetime_module(moment)  # type: ignore[attr-defined]
    return module


def test_the_guard_matches_the_installed_botocore() -> None:
    """get_current_datetime first appears in botocore 1.41: the floor (1.36) runs the
    fallback, the latest releases the new API."""
    assert hasattr(auth, "get_current_datetime") == (botocore_version() >= (1, 41))


def test_botocore_now_reads_get_current_datetime_where_it_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "get_current_datetime", lambda: MOMENT, raising=False)
    assert botocore_now() == MOMENT


def test_botocore_now_falls_back_to_utcnow_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presign, "auth", old_botocore_auth(MOMENT))
    assert botocore_now() == MOMENT


def test_frozen_clock_freezes_botocore_and_us() -> None:
    with frozen_botocore_clock(MOMENT):
        assert botocore_now() == MOMENT
        url = store_for("minio").presign_get(BUCKETS[0], "k", 60)
    assert f"X-Amz-Date={MOMENT:%Y%m%dT%H%M%SZ}" in url


@pytest.mark.parametrize("side", ["get_current_datetime", "utcnow"])
def test_urls_equal_botocore_on_both_sides_of_the_guard(
    side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our URLs equal botocore's whichever clock the guard reads (botocore itself signs
    with the installed release's clock, frozen at the same moment)."""
    store = store_for("aws-virtual")
    # botocore's own clock first (how the installed release reads it), then the guard's
    with frozen_botocore_clock(MOMENT), monkeypatch.context() as patch:
        if side == "utcnow":
            patch.setattr(presign, "auth", old_botocore_auth(MOMENT))
        else:
            patch.setattr(auth, "get_current_datetime", lambda: MOMENT, raising=False)
        assert store._link_signer().fast_path(BUCKETS[0])  # the probes matched botocore
        for key in KEYS[:5]:
            for extra in EXTRAS:
                ours = store.presign_get(BUCKETS[0], key, 900, extra=extra)
                sent = link_parameters(key, extra, inline=False)
                assert ours == botocore_url(store, BUCKETS[0], key, sent)
                assert f"X-Amz-Date={MOMENT:%Y%m%dT%H%M%SZ}" in ours


@pytest.mark.django_db(transaction=True)
def test_run_on_commit_entries_have_the_shape_consistency_inserts() -> None:
    """_consistency inserts ``(set(savepoint_ids), callback, True)``: the shape the
    installed Django's on_commit() appends and run_and_clear_commit_hooks() unpacks."""

    def callback() -> None:
        ran.append(True)

    ran: list[bool] = []
    with transaction.atomic(), transaction.atomic():
        transaction.on_commit(callback, robust=True)
        entry: Any = connection.run_on_commit[-1]
        assert type(connection.run_on_commit) is list
        assert entry == (set(connection.savepoint_ids), callback, True)
        assert type(entry) is tuple and type(entry[0]) is set
        ours: Any = (set(connection.savepoint_ids), callback, True)  # as _consistency builds it
        connection.run_on_commit.insert(0, ours)
    assert ran == [True, True]  # Django ran our inserted entry like its own

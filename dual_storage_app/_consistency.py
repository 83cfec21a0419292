"""Keep the database and the stores consistent around transactions.

* An object uploaded inside a transaction is deleted if that transaction (or the
  savepoint it was uploaded in) rolls back.
* An object that a row stops pointing at (row deleted, file replaced) is deleted only
  after the transaction commits.

Django has no rollback hook, but it discards the ``on_commit`` callbacks of a rolled
back transaction or savepoint. We register a marker callback and watch, with
``weakref.finalize``, for the moment Django drops it: if it was dropped without having
run, the work was rolled back. In autocommit mode (no transaction), nothing can roll
back and the upload stands. On CPython the marker is collected, and the rollback
cleanup runs, the moment Django drops it; on other interpreters, at their next garbage
collection.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction

from .exceptions import DualStorageError
from .store import Store

logger = logging.getLogger(__name__)


def on_rollback(callback: Callable[[], None], *, using: str) -> None:
    """Run ``callback`` if the current transaction or savepoint rolls back (never in
    autocommit mode, where nothing can roll back)."""
    if not connections[using].in_atomic_block:
        return
    state = {"committed": False}

    def mark_committed() -> None:
        state["committed"] = True

    connection = connections[using]
    # First in line and robust: a failing callback registered earlier (which makes
    # Django drop the rest of the list) can never make us mistake a commit for a
    # rollback. The entry has the shape Django's on_commit() appends (Django >= 4.2).
    entry: Any = (set(connection.savepoint_ids), mark_committed, True)
    connection.run_on_commit.insert(0, entry)
    weakref.finalize(mark_committed, _run_unless_committed, state, callback)


def _run_unless_committed(state: dict[str, bool], callback: Callable[[], None]) -> None:
    if not state["committed"]:
        callback()


def delete_on_rollback(store: Store, bucket: str, key: str, *, using: str) -> None:
    """Delete ``bucket/key`` if the current transaction or savepoint rolls back."""
    on_rollback(lambda: delete_quietly(store, bucket, key), using=using)


def delete_on_commit(store: Store, bucket: str, key: str, *, using: str) -> None:
    """Delete ``bucket/key`` once the current transaction commits (now, in autocommit)."""
    transaction.on_commit(lambda: delete_quietly(store, bucket, key), using=using, robust=True)


def delete_quietly(store: Store, bucket: str, key: str) -> None:
    """Delete ``bucket/key`` now, logging (not raising) a failure."""
    try:
        store.delete(bucket, key)
    except DualStorageError as exc:
        # The row is already gone or was never written; an orphan is the lesser harm.
        logger.warning("Could not delete orphaned object: %s", exc)
    else:
        logger.info("Deleted %s/%s on the %s store", bucket, key, store.name)

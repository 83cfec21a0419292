"""Issuing presigned links, and telling the link audit who got each one.

Every link handed to a person goes through :func:`issue`: the client's
``generate_dataset_presigned_url``, ``ExternalStorage.url()``, the link view, the admin's
action and ``dualstorage_presign``. It presigns (no network) and hands a
:class:`LinkRecord` to the installed :class:`LinkRecorder` (the database audit of
:mod:`.audit`, installed by the app's ``ready()``), so the client knows no model and a
process without Django records nothing. Who asked comes from :func:`issued_to`, set by
the view, the admin and the commands around their calls; otherwise the holder is this
process. The URL itself is never recorded: it is a bearer credential.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .store import Store

Via = Literal["client", "storage", "view", "admin", "command"]


@dataclass(frozen=True)
class Holder:
    """Who a link is handed to: a signed-in user (web) or a process (scripts, workers)."""

    via: Via = "client"
    user_id: int | None = None
    actor: str = ""  # "alice" or "process web-1 pid 42 (gunicorn) as app"
    remote_addr: str | None = None


@dataclass(frozen=True)
class LinkRecord:
    """One issued link, without its URL."""

    holder: Holder
    store: str
    bucket: str
    key: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    dataset_id: int | None = None


class LinkRecorder(Protocol):
    """Where issued links are recorded (:class:`.audit.DatabaseLinkAudit`)."""

    def record(self, link: LinkRecord, *, batched: bool) -> None:
        """Record ``link``; ``batched``: it may wait in a buffer (pages of thousands)."""


_recorder: LinkRecorder | None = None
_holder: ContextVar[Holder | None] = ContextVar("dual_storage_link_holder", default=None)


def install_recorder(recorder: LinkRecorder | None) -> None:
    """Record every issued link in ``recorder`` from now on (``None``: record nothing)."""
    global _recorder
    _recorder = recorder


@functools.cache
def _process_description(pid: int) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        user = str(os.getuid())
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return f"process {socket.gethostname()} pid {pid} ({program}) as {user}"


_process_holders: dict[Via, Holder] = {}
os.register_at_fork(after_in_child=_process_holders.clear)  # a child has its own pid


def this_process(via: Via = "client") -> Holder:
    """This process as a link's holder: host, pid, program and OS user."""
    holder = _process_holders.get(via)
    if holder is None:
        holder = _process_holders[via] = Holder(via=via, actor=_process_description(os.getpid()))
    return holder


def web_holder(request: Any, via: Via) -> Holder:
    """The signed-in user of a Django request, and its client address (``REMOTE_ADDR``:
    behind a proxy, the proxy's, unless the project's middleware sets it)."""
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Holder(
            via=via, actor="anonymous", remote_addr=request.META.get("REMOTE_ADDR") or None
        )
    return Holder(
        via=via,
        user_id=user.pk,
        actor=user.get_username(),
        remote_addr=request.META.get("REMOTE_ADDR") or None,
    )


def command_holder(command: str) -> Holder:
    """A management command run by this process."""
    return Holder(via="command", actor=f"{command}: {_process_description(os.getpid())}")


@contextmanager
def issued_to(holder: Holder) -> Iterator[Holder]:
    """Links issued inside the block are recorded as handed to ``holder``."""
    token = _holder.set(holder)
    try:
        yield holder
    finally:
        _holder.reset(token)


def issue(
    store: Store,
    bucket: str,
    key: str,
    expiration: int,
    *,
    via: Via,
    extra: dict[str, Any] | None = None,
    inline: bool = False,
    dataset_id: int | None = None,
    batched: bool = False,
    record: bool = True,
) -> str:
    """A presigned GET URL (:meth:`.store.Store.presign_get`), recorded as handed to
    the current holder (``via`` names the path when no holder was set). ``record=False``
    (``LINK_AUDIT`` off) records nothing."""
    url = store.presign_get(bucket, key, expiration, extra=extra, inline=inline)
    recorder = _recorder
    if recorder is not None and record:
        holder = _holder.get() or this_process(via)
        # SigV4 signs the current second (X-Amz-Date): the link dies that + expiration.
        issued_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        recorder.record(
            LinkRecord(
                holder=holder,
                store=store.name,
                bucket=bucket,
                key=key,
                issued_at=issued_at,
                expires_at=issued_at + dt.timedelta(seconds=expiration),
                dataset_id=dataset_id,
            ),
            batched=batched,
        )
    return url


def issue_to_request(
    request: Any,
    via: Via,
    store: Store,
    bucket: str,
    key: str,
    expiration: int,
    *,
    dataset_id: int | None = None,
    batched: bool = False,
    record: bool = True,
) -> str:
    """:func:`issue` for a web request: recorded as handed to its user, from its address."""
    with issued_to(web_holder(request, via)):
        return issue(
            store,
            bucket,
            key,
            expiration,
            via=via,
            dataset_id=dataset_id,
            batched=batched,
            record=record,
        )

"""The link audit: who was handed which presigned link, when, until when, from where.

:class:`IssuedLink` is one record (never the URL: it is a bearer credential).
:class:`DatabaseLinkAudit` is the :class:`~.links.LinkRecorder` installed by the app's
``ready()``: a link is written at once, except links issued ``batched`` (a page of
thousands of ``ExternalStorage.url()`` calls), which wait in a per-thread buffer written
with one ``bulk_create`` per 500 records, at the end of each request, and at exit.
``LINK_AUDIT=false`` records nothing; records older than ``LINK_AUDIT_DAYS`` go with
:func:`purge_old_records` (``manage.py dualstorage_audit --purge``).
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
from typing import Any

from django.conf import settings
from django.core.signals import request_finished
from django.db import models
from django.utils import timezone

from .links import LinkRecord, install_recorder

logger = logging.getLogger(__name__)

BATCH_SIZE = 500


class IssuedLink(models.Model):
    """One presigned link handed out (its URL is not kept)."""

    VIA_CHOICES = (
        ("client", "client API"),
        ("storage", "ExternalStorage.url()"),
        ("view", "link view"),
        ("admin", "admin action"),
        ("command", "management command"),
    )

    issued_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    via = models.CharField(max_length=16, choices=VIA_CHOICES)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,  # batched records may name a user deleted meanwhile
    )
    actor = models.CharField(max_length=255, help_text="The user, or the process.")
    remote_addr = models.GenericIPAddressField(
        "address", null=True, blank=True, help_text="Of the web request, if any."
    )
    store = models.CharField(max_length=16)
    bucket = models.CharField(max_length=63)
    key = models.CharField(max_length=1024)
    dataset = models.ForeignKey(
        "dual_storage_app.Dataset",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,  # the record outlives the dataset
    )

    class Meta:
        app_label = "dual_storage_app"
        verbose_name = "issued link"
        ordering = ("-issued_at", "-pk")

    def __str__(self) -> str:
        return f"{self.key} to {self.actor} until {self.expires_at:%Y-%m-%d %H:%M}"


def _row(link: LinkRecord) -> IssuedLink:
    holder = link.holder
    return IssuedLink(
        issued_at=link.issued_at,
        expires_at=link.expires_at,
        via=holder.via,
        user_id=holder.user_id,
        actor=holder.actor[:255],
        remote_addr=holder.remote_addr,
        store=link.store,
        bucket=link.bucket,
        key=link.key,
        dataset_id=link.dataset_id,
    )


class DatabaseLinkAudit:
    """Records issued links as :class:`IssuedLink` rows (see the module docstring)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._buffers: list[list[LinkRecord]] = []
        self._lock = threading.Lock()

    def _buffer(self) -> list[LinkRecord]:
        buffer: list[LinkRecord] | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = []
            with self._lock:
                self._buffers.append(buffer)
        return buffer

    def record(self, link: LinkRecord, *, batched: bool) -> None:
        if not batched:
            _row(link).save(force_insert=True)
            return
        buffer = self._buffer()
        buffer.append(link)
        if len(buffer) >= BATCH_SIZE:
            self.flush_thread()

    def flush_thread(self) -> None:
        """Write this thread's waiting records."""
        buffer = getattr(self._local, "buffer", None)
        if buffer:
            waiting = buffer[:]
            buffer.clear()
            IssuedLink.objects.bulk_create([_row(link) for link in waiting])

    def flush_all(self) -> None:
        """Write every thread's waiting records (at exit)."""
        with self._lock:
            buffers = list(self._buffers)
        for buffer in buffers:
            waiting = buffer[:]
            buffer.clear()
            if waiting:
                try:
                    IssuedLink.objects.bulk_create([_row(link) for link in waiting])
                except Exception:  # at exit, the database may be gone: say what was lost
                    logger.exception("Could not record %d issued link(s)", len(waiting))


audit = DatabaseLinkAudit()


def _flush_after_request(**kwargs: Any) -> None:
    audit.flush_thread()


def install() -> None:
    """Record issued links in the database (``AppConfig.ready``)."""
    install_recorder(audit)
    request_finished.connect(_flush_after_request, dispatch_uid="dual_storage_link_audit")
    atexit.register(audit.flush_all)


def purge_old_records(days: int, *, now: dt.datetime | None = None) -> int:
    """Delete records issued more than ``days`` days ago; return how many went."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted, _ = IssuedLink.objects.filter(issued_at__lt=cutoff).delete()
    return deleted

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
from typing import Any, cast

from django.conf import settings
from django.core.signals import request_finished
from django.db import connections, models, router, transaction
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


# Every field of a record, in the order a batch writes them (the same values as _row()).
RECORD_FIELDS = (
    "issued_at",
    "expires_at",
    "via",
    "user",
    "actor",
    "remote_addr",
    "store",
    "bucket",
    "key",
    "dataset",
)


def _insert_batch(links: list[LinkRecord]) -> None:
    """One ``executemany`` INSERT of ``links``. ``bulk_create`` compiles a SQL expression
    per value, about 90 us a record (4x the signing itself), which kept a page of links
    under 20,000 a second; the values here are adapted by the database backend's own
    operations, as the ORM would."""
    connection = connections[router.db_for_write(IssuedLink)]
    ops, quote = connection.ops, connection.ops.quote_name
    fields = [cast("models.Field[Any, Any]", IssuedLink._meta.get_field(n)) for n in RECORD_FIELDS]
    columns = ", ".join(quote(str(field.column)) for field in fields)
    # Identifiers from the model, quoted by the backend; every value is a parameter.
    sql = (
        f"INSERT INTO {quote(IssuedLink._meta.db_table)} ({columns}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    adapted: dict[dt.datetime, Any] = {}  # a batch's links share a few seconds

    def moment(value: dt.datetime) -> Any:
        if value not in adapted:
            adapted[value] = ops.adapt_datetimefield_value(value)
        return adapted[value]

    rows = [
        (
            moment(link.issued_at),
            moment(link.expires_at),
            link.holder.via,
            link.holder.user_id,
            link.holder.actor[:255],
            ops.adapt_ipaddressfield_value(link.holder.remote_addr),
            link.store,
            link.bucket,
            link.key,
            link.dataset_id,
        )
        for link in links
    ]
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


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
            _insert_batch(waiting)

    def flush_all(self) -> None:
        """Write every thread's waiting records (at exit)."""
        with self._lock:
            buffers = list(self._buffers)
        for buffer in buffers:
            waiting = buffer[:]
            buffer.clear()
            if waiting:
                try:
                    _insert_batch(waiting)
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

"""The migration journal: one row per source object of a named migration, and its state.

States go forward only: ``pending`` -> ``copied`` (the target exists and reads back with
the source's SHA-256) -> ``recorded`` (its artifact row exists) -> ``source deleted``
(with ``--delete-source``). ``failed`` rows keep their error and are tried again by the
next run; ``conflict`` rows (two sources for one target, or a target holding other
bytes) and ``unmapped``/``skipped`` ones are reported and left alone.

A worker takes a row with one conditional UPDATE that sets a lease (``lease_until``), so
two threads, processes or task workers never work on one object at once, and a worker
that died loses its rows when the lease expires.
"""

from __future__ import annotations

from django.db import models


class EntryState(models.TextChoices):
    PENDING = "pending", "pending"
    COPIED = "copied", "copied and verified"
    RECORDED = "recorded", "recorded"
    SOURCE_DELETED = "source-deleted", "source deleted"
    FAILED = "failed", "failed"
    CONFLICT = "conflict", "conflict"
    SKIPPED = "skipped", "left alone"


OPEN_STATES = (EntryState.PENDING, EntryState.COPIED, EntryState.FAILED)
DONE_STATES = (EntryState.RECORDED, EntryState.SOURCE_DELETED)


class MigrationEntry(models.Model):
    """One source object of a migration: where it goes and how far it got."""

    migration = models.CharField(
        max_length=64, help_text="The migration's name (--name): 'legacy', 'swap-to-r2'..."
    )
    source_endpoint = models.CharField(max_length=255)
    source_bucket = models.CharField(max_length=63)
    source_key = models.CharField(max_length=1024)
    size = models.BigIntegerField(default=0)
    source_etag = models.CharField(max_length=80, blank=True)
    kind = models.CharField(max_length=16, blank=True)
    target_bucket = models.CharField(max_length=63, blank=True)
    target_key = models.CharField(max_length=1024, blank=True)
    state = models.CharField(
        max_length=16, choices=EntryState.choices, default=EntryState.PENDING, db_index=True
    )
    method = models.CharField(max_length=16, blank=True, help_text="How it was copied.")
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    target_etag = models.CharField(max_length=80, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=64, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "dual_storage_app"
        ordering = ("migration", "pk")
        verbose_name = "migration journal entry"
        verbose_name_plural = "migration journal"
        constraints = (
            models.UniqueConstraint(
                fields=("migration", "source_bucket", "source_key"),
                name="dual_storage_migration_source",
            ),
        )
        indexes = (
            models.Index(fields=("migration", "state"), name="dual_storage_migration_state"),
        )

    def __str__(self) -> str:
        return f"{self.source_bucket}/{self.source_key} -> {self.kind or '-'} ({self.state})"

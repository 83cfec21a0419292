"""The upload session: one browser upload of one file, from start to a ``Dataset`` row.

A session holds what the server decided (bucket, key, part size) and what it signed (each
part's SHA-256, bound into the part's URL), never what the browser says it sent: the
parts come from the store's ``ListParts``. An active session past ``expires_at`` is
aborted by ``manage.py dualstorage_cleanup_uploads``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class UploadSession(models.Model):
    """One file (``key`` is its object) or one folder (``key`` is the folder's prefix,
    its files are :class:`UploadedFile` rows; ``size`` is their total)."""

    class Kind(models.TextChoices):
        FILE = "file", "file"
        FOLDER = "folder", "folder"

    class State(models.TextChoices):
        ACTIVE = "active", "uploading"
        COMPLETED = "completed", "completed"
        ABORTED = "aborted", "cancelled"
        EXPIRED = "expired", "expired (aborted by the cleanup)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FILE)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=255, blank=True)
    last_modified = models.BigIntegerField(
        default=0, help_text="The file's lastModified in the browser (ms), to resume it."
    )
    description = models.TextField(blank=True)
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="A folder: the SHA-256 of its file list, to resume it."
    )
    bucket = models.CharField(max_length=63)
    key = models.CharField(max_length=1024)
    upload_id = models.CharField(max_length=1024, blank=True)
    part_size = models.PositiveBigIntegerField()
    part_count = models.PositiveIntegerField(help_text="A folder: how many files.")
    checksums = models.JSONField(
        default=dict, blank=True, help_text="Part number -> the SHA-256 (base64) it was signed for."
    )
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.ACTIVE, db_index=True
    )
    dataset = models.ForeignKey(
        "dual_storage_app.Dataset", null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    check_lease = models.DateTimeField(
        null=True, blank=True, help_text="Until when a worker holds the check of the bytes."
    )

    class Meta:
        app_label = "dual_storage_app"
        verbose_name = "browser upload"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"upload of {self.file_name} ({self.get_state_display()})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    def checksum_of(self, number: int) -> str | None:
        """The SHA-256 (base64) part ``number`` was signed for, if it was."""
        value: Any = self.checksums.get(str(number))
        return str(value) if value else None


class UploadedFile(models.Model):
    """One file of a folder upload: one presigned ``PUT`` when it fits in a part, else a
    multipart upload of its own (``upload_id``)."""

    session = models.ForeignKey(UploadSession, on_delete=models.CASCADE, related_name="files")
    index = models.PositiveIntegerField()
    path = models.CharField(max_length=1024, help_text="Relative to the folder.")
    size = models.PositiveBigIntegerField()
    part_count = models.PositiveIntegerField()
    upload_id = models.CharField(max_length=1024, blank=True)
    checksums = models.JSONField(
        default=dict, blank=True, help_text="Part number -> the SHA-256 (base64) it was signed for."
    )
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)

    class Meta:
        app_label = "dual_storage_app"
        ordering = ("session", "index")
        constraints = (
            models.UniqueConstraint(fields=("session", "index"), name="dual_storage_upload_index"),
        )

    def __str__(self) -> str:
        return self.path

    @property
    def is_multipart(self) -> bool:
        return self.part_count > 1

    def checksum_of(self, number: int) -> str | None:
        value: Any = self.checksums.get(str(number))
        return str(value) if value else None

"""A storage job and its batches: what to do, who is doing which part, and what came of it.

A :class:`StorageJob` is split into :class:`JobBatch` rows when it starts. A worker takes
a batch by claiming it (a conditional UPDATE, :mod:`.engine`) under a lease that its
heartbeats extend; the batch's result and its ``done`` status are written in one
transaction, and the job's report is merged from the results of its done batches.
"""

from __future__ import annotations

from django.db import models


class JobKind(models.TextChoices):
    VERIFY = "verify", "verify"
    ADOPT = "adopt", "adopt"
    RETENTION = "retention", "retention"
    USAGE_SCAN = "usage-scan", "usage scan"
    MIGRATE = "migrate", "migrate"


class JobStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"  # finished, but a batch failed for good


class BatchStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class StorageJob(models.Model):
    """One long job: its kind and parameters, its plan, its progress and its report."""

    kind = models.CharField(max_length=20, choices=JobKind.choices)
    params = models.JSONField(default=dict, blank=True, help_text="What was asked for.")
    plan = models.JSONField(
        default=dict, blank=True, help_text="What planning found besides the batches."
    )
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True
    )
    lease_seconds = models.PositiveIntegerField(
        default=60, help_text="How long a batch stays claimed without a heartbeat."
    )
    max_attempts = models.PositiveIntegerField(
        default=3, help_text="Runs of a batch before it is failed for good."
    )
    batches_total = models.PositiveIntegerField(default=0)
    items_total = models.PositiveIntegerField(
        default=0, help_text="Artifacts, keys or training jobs planned."
    )
    sweep_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the next sweep is due."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")
        verbose_name = "storage job"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None


class JobBatch(models.Model):
    """One part of a job, run by one worker at a time; its result is written once."""

    job = models.ForeignKey(StorageJob, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    params = models.JSONField(default=dict, blank=True, help_text="This batch's share.")
    items = models.PositiveIntegerField(default=0, help_text="Items planned.")
    status = models.CharField(
        max_length=10, choices=BatchStatus.choices, default=BatchStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Times it was claimed.")
    claim = models.CharField(
        max_length=32, blank=True, editable=False, help_text="The current claim's token."
    )
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the claimer.")
    lease_until = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    items_done = models.PositiveIntegerField(default=0, help_text="Progress of the current run.")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("job", "index")
        verbose_name = "job batch"
        verbose_name_plural = "job batches"
        constraints = (
            models.UniqueConstraint(fields=("job", "index"), name="dual_storage_jobs_batch_index"),
        )
        indexes = (models.Index(fields=("job", "status"), name="dual_storage_jobs_open"),)

    def __str__(self) -> str:
        return f"batch {self.index} of job #{self.job_id}"

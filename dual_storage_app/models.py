"""Artifact models: one row per stored object, with the metadata measured at upload.

Saving an artifact whose file is new streams it to its store in one pass that also
measures size and SHA-256, under a key that no other upload can take (a short random
folder keeps the original file name readable). The upload happens inside the save's
transaction: if that rolls back, the object is deleted. Replacing or deleting a file
deletes the old object only after the transaction commits. Which store and bucket hold a
kind, and the prefix of its keys, come from :mod:`.kinds`.
"""

from __future__ import annotations

import logging
import posixpath
import unicodedata
import uuid
from functools import partial
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.base import File
from django.core.validators import MinValueValidator
from django.db import models, router, transaction
from django.db.models.fields.files import FieldFile
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils.text import get_valid_filename

from ._consistency import delete_on_commit, delete_on_rollback, delete_quietly, on_rollback
from .audit import IssuedLink as IssuedLink  # the link audit's record (audit.py), a model here
from .client import MAX_SCHEMA_BYTES, dual_storage, schema_key, schema_problem
from .exceptions import (
    ConfigurationError,
    DualStorageError,
    InvalidArgument,
    InvalidKey,
    safe_reason,
)
from .keys import segment_problem, validate_segment
from .kinds import REGISTRY, ArtifactKind, StoreName
from .manifests import folder_prefix
from .moving.journal import MigrationEntry as MigrationEntry  # the migration journal
from .storages import checkpoints_storage, datasets_storage, schemas_storage, weights_storage
from .store import Store
from .store.schema_cache import schema_cache
from .store.transfer import guess_content_type
from .uploads.session import UploadedFile as UploadedFile  # browser uploads
from .uploads.session import UploadSession as UploadSession

logger = logging.getLogger(__name__)

_MAX_NAME_BYTES = 200  # well under the 255-byte segment limit


def safe_segment(text: str, default: str) -> str:
    """One key segment from user text: NFC, Django's filename cleaning, at most 200 bytes
    of UTF-8 (keeping a short extension), or ``default`` when nothing usable is left."""
    text = unicodedata.normalize("NFC", posixpath.basename(str(text).replace("\\", "/")))
    try:
        name = get_valid_filename(text)
    except SuspiciousFileOperation:  # nothing left of the name
        return default
    if len(name.encode()) > _MAX_NAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        if not dot or len(extension.encode()) > 16:
            stem, extension = name, ""
        suffix = f".{extension}" if extension else ""
        budget = _MAX_NAME_BYTES - len(suffix.encode())
        stem = stem.encode()[:budget].decode("utf-8", errors="ignore")
        name = stem + suffix
    return name if name.strip("._-") else default


def unique_key(prefix: str, filename: str) -> str:
    """``weights/3f2a9c1b7d4e/resnet50.pth``: readable, and never the same twice."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}/{safe_segment(filename, 'file')}"


def _weights_key(instance: Artifact, filename: str) -> str:
    return unique_key(REGISTRY["weights"].key_prefix, filename)


def _checkpoints_key(instance: Artifact, filename: str) -> str:
    # The job id is used as it is: cleaning would file ``../7`` under job 7.
    job = validate_segment(getattr(instance, "job_id", ""), field="job_id", store="internal")
    return unique_key(f"{REGISTRY['checkpoints'].key_prefix}/{job}", filename)


def _schemas_key(instance: Artifact, filename: str) -> str:
    # The framework passed schema_key() in save(): one key segment, used as it is.
    framework = validate_segment(getattr(instance, "framework", ""), field="framework")
    return unique_key(f"{REGISTRY['schemas'].key_prefix}/{framework}", filename)


def _datasets_key(instance: Artifact, filename: str) -> str:
    return unique_key(REGISTRY["datasets"].key_prefix, filename)


class ArtifactFieldFile(FieldFile):
    """``field_file.save()`` defers the upload to the model's ``save()``, so every path
    (code, forms, admin) uploads once, measured, inside the row's transaction."""

    def save(self, name: str, content: File[Any], save: bool = True) -> None:
        self.file = content
        self.name = name
        self._committed = False
        setattr(self.instance, self.field.attname, self)
        if save:
            self.instance.save()


def _is_pending(field_file: FieldFile) -> bool:
    """True when the field holds a file that is not yet in the store."""
    return bool(field_file) and not getattr(field_file, "_committed", True)


class ArtifactFileField(models.FileField):
    attr_class = ArtifactFieldFile


class Artifact(models.Model):
    """Common fields; each concrete model binds ``file`` to its store and bucket."""

    kind: ClassVar[ArtifactKind]
    file: models.FileField

    name = models.CharField(max_length=255, help_text="A human-readable name.")
    bucket = models.CharField(max_length=63, editable=False)
    size = models.PositiveBigIntegerField(default=0, editable=False)
    sha256 = models.CharField("SHA-256", max_length=64, editable=False)
    content_type = models.CharField(max_length=255, blank=True, editable=False)
    etag = models.CharField("ETag", max_length=255, blank=True, editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Indexed: the changelist's default order and its date filter (a scan and a sort of
    # every row without it: 150 ms a page at 100,000 rows).
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return self.name or self.key

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the row; a new file is streamed to its store first, with no transaction
        of ours open while bytes move, then the row is written in a short one.

        Whatever fails after the first byte is sent (the upload, the INSERT/UPDATE, the
        commit), the object is deleted; called inside the caller's own transaction, the
        object also goes if that transaction rolls back. A replaced file is deleted
        after the commit.
        """
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        if not _is_pending(self.file):
            super().save(*args, **kwargs)
            return
        store, bucket = dual_storage.locate(self.kind)
        previous = self._stored_key(using)
        name = self.file.name
        key = self.file.field.generate_filename(self, name or "file")
        # Only inside a caller's transaction: its rollback takes the object with it.
        delete_on_rollback(store, bucket, key, using=using)
        try:
            self._upload_file(store, bucket, key)
            with transaction.atomic(using=using):
                super().save(*args, **kwargs)
                if previous and previous != key:
                    delete_on_commit(store, bucket, previous, using=using)
        except BaseException:
            # Deleting a key that was never written is harmless. The file is pending
            # again, so a retried save uploads it again instead of recording a row
            # that points at the deleted object.
            delete_quietly(store, bucket, key)
            self.file.name = name
            self.file._committed = False  # type: ignore[attr-defined]
            raise

    @property
    def key(self) -> str:
        return self.file.name or ""

    @property
    def store_name(self) -> StoreName:
        return REGISTRY[self.kind].store

    def location(self) -> tuple[Store, str]:
        """The store holding this artifact and its bucket (the one recorded on the row,
        else the kind's configured bucket)."""
        store, bucket = dual_storage.locate(self.kind)
        return store, self.bucket or bucket

    def describe_failure(self, exc: DualStorageError | ConfigurationError) -> str:
        """Why an operation on this artifact's object failed, fit to show in a page
        (names key, bucket and store, never the endpoint)."""
        return safe_reason(exc, key=self.key, bucket=self.bucket, store=self.store_name)

    def _upload_file(self, store: Store, bucket: str, key: str) -> None:
        """Stream the pending file to ``bucket/key`` and record what was measured."""
        pending = self.file.file
        if pending.seekable():
            pending.seek(0)
        # The type comes from the key, never from the browser's claim in an upload.
        result = store.upload(bucket, key, pending, content_type=guess_content_type(key))
        self.file.name = key
        self.file._committed = True  # type: ignore[attr-defined]
        self.bucket, self.size, self.sha256 = bucket, result.size, result.sha256
        self.etag, self.content_type = result.etag, result.content_type or ""

    def _stored_key(self, using: str) -> str | None:
        if self.pk is None:
            return None
        manager: Any = type(self)._default_manager
        stored = manager.using(using).filter(pk=self.pk).values_list("file", flat=True).first()
        return str(stored) if stored else None


class ModelWeight(Artifact):
    kind = "weights"
    file = ArtifactFileField(storage=weights_storage, upload_to=_weights_key, max_length=1024)
    framework = models.CharField(max_length=100, blank=True)

    class Meta(Artifact.Meta):
        verbose_name = "model weight"
        constraints = (models.UniqueConstraint(fields=("file",), name="dual_storage_weight_key"),)


def validate_job_id(value: str) -> None:
    """Form validation of a job id: one key segment, used as it is (migrations name
    this function, so it keeps its name)."""
    problem = segment_problem(value)
    if problem is not None:
        raise ValidationError(
            "Not usable as a job id: %(problem)s.", code="invalid", params={"problem": problem}
        )


class TrainingCheckpoint(Artifact):
    kind = "checkpoints"
    file = ArtifactFileField(
        storage=checkpoints_storage, upload_to=_checkpoints_key, max_length=1024
    )
    job_id = models.CharField(max_length=100, db_index=True, validators=[validate_job_id])
    epoch = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    pinned = models.BooleanField(
        default=False, help_text="Kept by the retention policy, whatever its rules say."
    )

    class Meta(Artifact.Meta):
        verbose_name = "training checkpoint"
        constraints = (
            models.UniqueConstraint(fields=("file",), name="dual_storage_checkpoint_key"),
        )


def _valid_schema_name(value: str) -> None:
    try:
        schema_key(value)
    except InvalidKey as exc:
        raise ValidationError(str(exc)) from exc


class ConfigSchema(Artifact):
    """A framework's schema. Each version has its own key; the current one is also
    published (server-side copy, at save; put back as it was if the transaction rolls
    back) as ``<framework>.json``, which is what ``dual_storage.get_schema(framework)``
    reads."""

    kind = "schemas"
    file = ArtifactFileField(storage=schemas_storage, upload_to=_schemas_key, max_length=1024)
    framework = models.CharField(max_length=100, unique=True, validators=[_valid_schema_name])

    class Meta(Artifact.Meta):
        verbose_name = "config schema"
        constraints = (models.UniqueConstraint(fields=("file",), name="dual_storage_schema_key"),)

    def save(self, *args: Any, **kwargs: Any) -> None:
        schema_key(self.framework)  # refuse a name get_schema() could never read
        problem = self._pending_schema_problem()
        if problem is not None:
            raise InvalidArgument(
                f"The schema of {self.framework!r} is not valid JSON: {problem}.",
                store="internal",
            )
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        manager: Any = type(self)._default_manager
        stored = manager.using(using).filter(pk=self.pk).values_list("framework", "file")
        previous = stored.first() if self.pk is not None else None
        previous_framework, previous_key = previous or (None, None)
        new_version = _is_pending(self.file)
        super().save(*args, **kwargs)
        renamed = previous_framework is not None and previous_framework != self.framework
        if new_version or renamed:
            # Published now, so this process's next get_schema() reads it even inside a
            # transaction (a request's, a test's); a rollback puts back what was there.
            store, bucket = self.location()
            _publish_schema(store, bucket, self.key, self.framework)
            restore = partial(
                _restore_publication,
                store,
                bucket,
                self.framework,
                previous_framework,
                previous_key,
            )
            on_rollback(restore, using=using)
        if renamed:
            _unpublish_schema_on_commit(str(previous_framework), using)

    def clean(self) -> None:
        """A new version must be a JSON document (the admin's form shows the line and
        column of the error)."""
        super().clean()
        problem = self._pending_schema_problem()
        if problem is not None:
            raise ValidationError({"file": f"Not valid JSON: {problem}."})

    def _pending_schema_problem(self) -> str | None:
        """What makes a new version's file not a JSON document (read once, from the
        start, and rewound), or ``None``."""
        if not _is_pending(self.file):
            return None
        pending = self.file.file
        if not pending.seekable():
            return "the file must be seekable to be checked before it is stored"
        pending.seek(0)
        data = pending.read(MAX_SCHEMA_BYTES + 1)
        pending.seek(0)
        return schema_problem(data if isinstance(data, bytes) else data.encode("utf-8"))


def _publish_schema(store: Store, bucket: str, version_key: str, framework: str) -> None:
    try:
        store.copy(bucket, version_key, f"{framework}.json")
    finally:
        schema_cache.invalidate(store, bucket, f"{framework}.json")


def _restore_publication(
    store: Store,
    bucket: str,
    framework: str,
    previous_framework: str | None,
    previous_key: str | None,
) -> None:
    """After a rollback: ``<framework>.json`` serves the version the row still points
    at (its object is deleted only after a commit), or goes if the row had none."""
    try:
        if previous_key and previous_framework == framework:
            _publish_schema(store, bucket, previous_key, framework)
        else:
            delete_quietly(store, bucket, f"{framework}.json")
    except DualStorageError as exc:
        logger.error("Could not restore the schema %r after a rollback: %s", framework, exc)
    finally:
        schema_cache.invalidate(store, bucket, f"{framework}.json")


def _unpublish_schema_on_commit(framework: str, using: str) -> None:
    """Delete ``<framework>.json`` after commit, then drop it from the schema cache."""
    store, bucket = dual_storage.locate("schemas")
    key = f"{framework}.json"
    delete_on_commit(store, bucket, key, using=using)
    transaction.on_commit(
        lambda: schema_cache.invalidate(store, bucket, key), using=using, robust=True
    )


class Dataset(Artifact):
    class Status(models.TextChoices):
        READY = "ready", "ready"
        VERIFYING = "verifying", "verifying (its SHA-256 is being computed)"
        CORRUPT = "corrupt", "corrupt (the stored bytes are not the ones sent)"

    kind = "datasets"
    file = ArtifactFileField(storage=datasets_storage, upload_to=_datasets_key, max_length=1024)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.READY,
        editable=False,
        help_text="A browser upload is 'verifying' until the server has read it back once.",
    )
    file_count = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="0: the dataset is one object. N: a folder of N files under "
        "folder_prefix, listed in its manifest (the dataset's own object).",
    )

    class Meta(Artifact.Meta):
        constraints = (models.UniqueConstraint(fields=("file",), name="dual_storage_dataset_key"),)

    @property
    def is_folder(self) -> bool:
        return self.file_count > 0

    def link_refusal(self) -> str | None:
        """Why no link to this dataset may be handed out now (its bytes are not yet read
        back, or are not the ones sent), or ``None``."""
        if self.status == self.Status.VERIFYING:
            return f"{self} is still being verified; its SHA-256 is not known yet. Try again soon."
        if self.status == self.Status.CORRUPT:
            return f"{self} is corrupt: the stored bytes are not the ones uploaded."
        return None

    @property
    def folder_prefix(self) -> str:
        """Where a folder dataset's files are: ``datasets/<id>/<name>/`` beside the
        manifest ``datasets/<id>/<name>.manifest.json`` (empty for a single object)."""
        return folder_prefix(self.key) if self.is_folder else ""


class DatasetFile(models.Model):
    """One file of a folder dataset, as its manifest lists it (paged by ``path``)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024, help_text="Relative to the folder.")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField("SHA-256", max_length=64)

    class Meta:
        verbose_name = "dataset file"
        ordering = ("dataset", "path")
        constraints = (
            models.UniqueConstraint(fields=("dataset", "path"), name="dual_storage_dataset_path"),
        )

    def __str__(self) -> str:
        return self.path

    @property
    def key(self) -> str:
        return self.dataset.folder_prefix + self.path


_BY_NAME: dict[str, type[Artifact]] = {
    model.__name__: model for model in (ModelWeight, TrainingCheckpoint, ConfigSchema, Dataset)
}
ARTIFACT_MODELS: dict[ArtifactKind, type[Artifact]] = {
    kind: _BY_NAME[spec.model_name] for kind, spec in REGISTRY.items()
}
"""The artifact model of each kind, in registry order."""


@receiver(post_delete)
def _delete_object_after_commit(sender: type, instance: object, using: str, **kwargs: Any) -> None:
    if not isinstance(instance, Artifact) or not instance.key:
        return
    store, bucket = dual_storage.locate(instance.kind)
    delete_on_commit(store, bucket, instance.key, using=using)
    if isinstance(instance, Dataset) and instance.is_folder:
        prefix = instance.folder_prefix
        transaction.on_commit(
            partial(_delete_folder, store, instance.bucket or bucket, prefix), using=using
        )
    if isinstance(instance, ConfigSchema):
        _unpublish_schema_on_commit(instance.framework, using)


def _delete_folder(store: Store, bucket: str, prefix: str) -> None:
    """Delete every object under a deleted folder dataset's prefix (after the commit)."""
    for found in store.list(bucket, prefix):
        delete_quietly(store, bucket, found.key)


class RetentionPolicy(models.Model):
    """A training job's checkpoint retention policy (applied by
    :mod:`dual_storage_app.retention`). A field left empty (NULL) falls back to the
    project default, the settings ``RETENTION_KEEP_LAST``, ``RETENTION_KEEP_BEST``,
    ``RETENTION_METRIC`` and ``RETENTION_METRIC_MODE``."""

    class MetricMode(models.TextChoices):
        MIN = "min", "min (lower is better)"
        MAX = "max", "max (higher is better)"

    job_id = models.CharField(
        max_length=100, unique=True, validators=[validate_job_id], help_text="The training job."
    )
    keep_last = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Keep the checkpoints of the last N epochs. Empty: the project default.",
    )
    keep_best = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Keep the best K checkpoints by the metric (0: none). Empty: the project "
        "default.",
    )
    # NULL, not "", is "not set here": the project default applies (as for the counts).
    metric = models.CharField(  # noqa: DJ001
        max_length=100,
        null=True,
        blank=True,
        help_text="The key in a checkpoint's metrics that ranks the best (val_loss). Empty: "
        "the project default.",
    )
    metric_mode = models.CharField(  # noqa: DJ001
        max_length=3,
        choices=MetricMode.choices,
        null=True,
        blank=True,
        help_text="Whether lower or higher values of the metric are better. Empty: the project "
        "default.",
    )

    class Meta:
        verbose_name = "retention policy"
        verbose_name_plural = "retention policies"
        ordering = ("job_id",)

    def __str__(self) -> str:
        return f"retention policy of job {self.job_id}"

    def clean(self) -> None:
        """Keeping the best K needs a metric: here, or in the project default."""
        super().clean()
        if not self.keep_best or self.metric:
            return
        try:
            default_metric = dual_storage.config.retention.metric
        except ConfigurationError:  # the system checks report it; the planner deletes nothing
            default_metric = None
        if not default_metric:
            raise ValidationError(
                {
                    "metric": "Keeping the best checkpoints needs a metric, and the project "
                    "default (RETENTION_METRIC) sets none."
                }
            )


class StorageUsage(models.Model):
    """No table: the admin's "Usage and cost" page (:mod:`._admin_usage`) hangs on this
    model, so it sits in the app's list and is seen by users with its view permission."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "usage and cost"
        verbose_name_plural = "usage and cost"

    def __str__(self) -> str:
        return "usage and cost"

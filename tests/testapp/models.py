"""Models that use the storages the way a user's app would (FileField with a callable)."""

from __future__ import annotations

from django.db import models

from dual_storage_app.storages import datasets_storage, weights_storage


class Upload(models.Model):
    weight = models.FileField(storage=weights_storage, upload_to="weights/", blank=True)
    dataset = models.FileField(storage=datasets_storage, upload_to="datasets/", blank=True)

    class Meta:
        app_label = "testapp"

    def __str__(self) -> str:
        return self.weight.name or self.dataset.name or f"upload {self.pk}"

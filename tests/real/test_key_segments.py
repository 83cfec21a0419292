"""A checkpoint's job id is one segment of its key, used as it is: a hostile id is
refused with an error naming the field, through the model, the admin form and the
upload command, before any byte is stored (``../7`` was cleaned into job 7's prefix); a
schema name likewise."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError
from django.test import Client
from django.urls import reverse

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import InvalidKey
from dual_storage_app.models import ConfigSchema, TrainingCheckpoint
from tests.helpers import run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]

HOSTILE_JOB_IDS = [
    pytest.param("../7", id="dot-dot-prefix"),
    pytest.param("a/../7", id="dot-dot-inside"),
    pytest.param("7/..", id="dot-dot-suffix"),
    pytest.param("..", id="dot-dot"),
    pytest.param(".", id="dot"),
    pytest.param("7/extra", id="slash"),
    pytest.param("/7", id="leading-slash"),
    pytest.param("..\\7", id="backslash"),
    pytest.param("7\x00", id="nul"),
    pytest.param("7\n8", id="newline"),
    pytest.param("7\u200b", id="zero-width-space"),
    pytest.param("", id="empty"),
]


def objects_under_jobs(storage: DualStorageClient) -> list[str]:
    return [info.key for info in storage.list_objects("checkpoints", "jobs/")]


@pytest.mark.parametrize("job_id", HOSTILE_JOB_IDS)
def test_the_model_refuses_a_hostile_job_id_naming_the_field(
    real_storage: DualStorageClient, job_id: str
) -> None:
    before = objects_under_jobs(real_storage)
    checkpoint = TrainingCheckpoint(name="hostile", job_id=job_id, epoch=1)
    with pytest.raises(InvalidKey) as refused:
        checkpoint.file.save("epoch1.pt", ContentFile(b"weights"))
    assert "job_id" in str(refused.value) and repr(job_id) in str(refused.value)
    assert not TrainingCheckpoint.objects.exists()
    assert objects_under_jobs(real_storage) == before


@pytest.mark.parametrize("job_id", ["7", "run 7", "résumé-2026.12", "exp_1-2"])
def test_a_job_id_is_used_as_it_is(real_storage: DualStorageClient, job_id: str) -> None:
    """No cleaning: ``run 7`` and ``run_7`` are two jobs with two prefixes."""
    checkpoint = TrainingCheckpoint(name="ok", job_id=job_id, epoch=1)
    checkpoint.file.save("epoch1.pt", ContentFile(b"weights"))
    assert checkpoint.key.startswith(f"jobs/{job_id}/")
    assert real_storage.exists("checkpoints", checkpoint.key)


@pytest.mark.parametrize("job_id", ["../7", "a/../7", "7/extra", "..\\7", "7\u200b8"])
def test_the_admin_form_refuses_a_hostile_job_id_on_the_field(
    real_storage: DualStorageClient, admin_client: Client, job_id: str
) -> None:
    before = objects_under_jobs(real_storage)
    url = reverse("admin:dual_storage_app_trainingcheckpoint_add")
    upload = SimpleUploadedFile("epoch1.pt", b"weights")
    form = {"name": "hostile", "job_id": job_id, "epoch": "1", "metrics": "{}", "file": upload}
    response = admin_client.post(url, form)
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["job_id"], errors
    assert "Not usable as a job id" in errors["job_id"][0]
    assert not TrainingCheckpoint.objects.exists()
    assert objects_under_jobs(real_storage) == before


@pytest.mark.parametrize("job_id", ["../7", "a/../7", "7/extra"])
def test_the_upload_command_refuses_a_hostile_job_id(
    real_storage: DualStorageClient, tmp_path: Path, job_id: str
) -> None:
    before = objects_under_jobs(real_storage)
    source = tmp_path / "epoch1.pt"
    source.write_bytes(b"weights")
    with pytest.raises(CommandError) as refused:
        run("dualstorage_upload", "checkpoints", str(source), "--job-id", job_id)
    assert "job_id" in str(refused.value) and repr(job_id) in str(refused.value)
    assert not TrainingCheckpoint.objects.exists()
    assert objects_under_jobs(real_storage) == before
    # The same command with a plain id works.
    uploaded = run_json("dualstorage_upload", "checkpoints", str(source), "--job-id", "7")
    assert uploaded["key"].startswith("jobs/7/")


@pytest.mark.parametrize("framework", ["..", ".", "a/b", "a\\b", "fw\x00", "fw\u200b"])
def test_a_hostile_schema_name_is_refused_on_every_path(
    real_storage: DualStorageClient, framework: str
) -> None:
    """The twin of the job id: a schema name is one segment of the version's key and of
    the published ``<name>.json``."""
    schema = ConfigSchema(name="hostile", framework=framework)
    with pytest.raises(InvalidKey, match="schema name"):
        schema.file.save("schema.json", ContentFile(b"{}"))
    with pytest.raises(InvalidKey, match="schema name"):
        real_storage.upload_schema(framework, b"{}")
    assert not ConfigSchema.objects.exists()
    assert list(real_storage.list_objects("schemas")) == []


def test_a_schema_version_is_filed_under_its_name_as_it_is(
    real_storage: DualStorageClient,
) -> None:
    schema = ConfigSchema(name="spaced", framework="my fw")
    schema.file.save("schema.json", ContentFile(b"{}"))
    assert schema.key.startswith("versions/my fw/")

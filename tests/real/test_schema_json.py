"""Schema content is checked on every write path (the client, the model, the admin's add
form, the upload and seed commands): text that is not JSON is refused with the line and
column of the error and nothing is stored, so ``get_schema`` never serves it."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import InvalidArgument, ObjectNotFound
from dual_storage_app.models import ConfigSchema

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]
BROKEN = b'{"type": "object",\n  oops}'  # line 2, column 3


def stored_versions(client: DualStorageClient, framework: str) -> list[str]:
    return [info.key for info in client.list_objects("schemas", prefix=f"versions/{framework}/")]


def test_the_client_refuses_a_schema_that_is_not_json(real_storage: DualStorageClient) -> None:
    with pytest.raises(
        InvalidArgument, match=r"'broken-client' is not valid JSON: line 2 column 3"
    ):
        real_storage.upload_schema("broken-client", BROKEN)
    with pytest.raises(ObjectNotFound):
        real_storage.get_schema("broken-client")
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        real_storage.upload_schema("broken-client", b'{"a": "\xff"}')
    real_storage.upload_schema("broken-client", b'{"type": "object"}')  # JSON is fine
    assert real_storage.get_schema("broken-client") == b'{"type": "object"}'


def test_the_model_refuses_a_version_that_is_not_json(real_storage: DualStorageClient) -> None:
    schema = ConfigSchema(name="broken", framework="broken-model")
    with pytest.raises(InvalidArgument, match="line 2 column 3"):
        schema.file.save("broken.json", ContentFile(BROKEN))
    assert not ConfigSchema.objects.filter(framework="broken-model").exists()
    assert stored_versions(real_storage, "broken-model") == []


def test_the_admin_add_form_shows_the_line_and_column(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    upload = SimpleUploadedFile("s.json", BROKEN, content_type="application/json")
    response = admin_client.post(
        reverse("admin:dual_storage_app_configschema_add"),
        {"name": "s", "framework": "broken-admin", "file": upload},
    )
    assert response.status_code == 200  # the form again, with the error on the file field
    errors = response.context["adminform"].form.errors
    assert errors["file"] == [
        "Not valid JSON: line 2 column 3: Expecting property name enclosed in double quotes."
    ]
    assert not ConfigSchema.objects.filter(framework="broken-admin").exists()
    assert stored_versions(real_storage, "broken-admin") == []


def test_the_commands_name_the_line_and_column(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(BROKEN)
    with pytest.raises(CommandError, match=r"is not valid JSON: line 2 column 3"):
        call_command(
            "dualstorage_upload",
            "schemas",
            str(path),
            "--framework",
            "broken-cmd",
            stdout=StringIO(),
        )
    (tmp_path / "seed" / "schemas").mkdir(parents=True)
    (tmp_path / "seed" / "schemas" / "broken-seed.json").write_bytes(BROKEN)
    with pytest.raises(CommandError, match=r"broken-seed\.json.*line 2 column 3"):
        call_command("dualstorage_seed", str(tmp_path / "seed"), stdout=StringIO())
    assert stored_versions(real_storage, "broken-cmd") == []
    assert stored_versions(real_storage, "broken-seed") == []

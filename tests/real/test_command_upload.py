"""``dualstorage_upload`` on the real servers: what it prints and records, the arguments
it refuses, and hostile file names, frameworks and job ids stored under safe keys or
refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError
from django.test import Client
from django.urls import reverse

from dual_storage_app.client import DualStorageClient
from dual_storage_app.keys import validate_key
from dual_storage_app.kinds import KINDS
from dual_storage_app.models import ARTIFACT_MODELS, ConfigSchema, ModelWeight, TrainingCheckpoint
from tests.helpers import (
    NFC_NAME,
    NFD_NAME,
    MakeFile,
    assert_generated_key,
    run,
    run_json,
    run_with_stderr,
    sha256,
)

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


def test_upload_then_download_round_trip(
    real_storage: DualStorageClient, make_file: MakeFile, tmp_path: Path
) -> None:
    source = make_file("resnet50.pth", 17 * 1024 * 1024 + 5, seed=3)  # multipart
    data = source.read_bytes()
    uploaded = run_json("dualstorage_upload", "weights", str(source), "--name", "ResNet-50")
    assert uploaded["key"].startswith("weights/") and uploaded["key"].endswith("/resnet50.pth")
    assert (uploaded["bucket"], uploaded["store"]) == ("model-weights", "internal")
    assert (uploaded["size"], uploaded["sha256"]) == (len(data), sha256(data))
    row = ModelWeight.objects.get(pk=uploaded["id"])
    assert (row.name, row.key, row.sha256) == ("ResNet-50", uploaded["key"], sha256(data))

    dest = tmp_path / "out" / "copy.pth"
    downloaded = run_json("dualstorage_download", "weights", "--id", str(row.pk), str(dest))
    assert dest.read_bytes() == data
    assert downloaded["verified"] is True and downloaded["sha256"] == sha256(data)
    assert downloaded["dest"] == str(dest)


def test_upload_prints_key_bucket_size_and_hash(
    real_storage: DualStorageClient, make_file: MakeFile
) -> None:
    source = make_file("model.pt", 3000)
    out = run("dualstorage_upload", "weights", str(source), "--framework", "torch")
    row = ModelWeight.objects.get()
    assert f"key:    {row.key}" in out and "bucket: model-weights (internal store)" in out
    assert "size:   2.9 KB (3000 bytes)" in out and f"sha256: {row.sha256}" in out
    assert (row.name, row.framework) == ("model.pt", "torch")


def test_upload_checkpoint_records_job_epoch_and_metrics(
    real_storage: DualStorageClient, make_file: MakeFile
) -> None:
    source = make_file("epoch10.pth", 1000)
    options = ["--job-id", "123", "--epoch", "10", "--metrics", '{"loss": 0.12}']
    data = run_json("dualstorage_upload", "checkpoints", str(source), *options)
    assert data["key"].startswith("jobs/123/") and data["bucket"] == "training-checkpoints"
    row = TrainingCheckpoint.objects.get(pk=data["id"])
    assert (row.job_id, row.epoch, row.metrics) == ("123", 10, {"loss": 0.12})
    assert real_storage.exists("checkpoints", row.key)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["checkpoints", "{file}"], "needs --job-id"),
        (["schemas", "{file}"], "needs --framework"),
        (["weights", "{file}", "--epoch", "3"], "--epoch does not apply to weights"),
        (["datasets", "{file}", "--framework", "x"], "--framework does not apply to datasets"),
        (["checkpoints", "{file}", "--job-id", "1", "--metrics", "[1]"], "JSON object"),
        (["weights", "{missing}"], "is not a file"),
        (["schemas", "{file}", "--framework", "f"], "is not valid JSON"),
    ],
)
def test_upload_refuses_bad_arguments(
    real_storage: DualStorageClient, make_file: MakeFile, args: list[str], message: str
) -> None:
    path = make_file("f.bin", 10)
    argv = [a.format(file=path, missing=path.with_name("nope.bin")) for a in args]
    with pytest.raises(CommandError, match=message):
        run("dualstorage_upload", *argv)
    assert not ModelWeight.objects.exists() and not TrainingCheckpoint.objects.exists()


EMPTY_FILE = "The submitted file is empty."  # the message of Django's forms.FileField


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_file_is_refused_as_the_admin_refuses_it(
    kind: str, real_storage: DualStorageClient, admin_client: Client, tmp_path: Path
) -> None:
    model = ARTIFACT_MODELS[kind]  # type: ignore[index]
    fields = {"name": "empty", "framework": "fw", "job_id": "job-1"}
    url = reverse(f"admin:dual_storage_app_{model._meta.model_name}_add")
    page = admin_client.post(url, {**fields, "file": SimpleUploadedFile("empty.json", b"")})
    assert page.status_code == 200 and EMPTY_FILE in page.content.decode()  # the form refuses

    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    options = {"schemas": ["--framework", "fw"], "checkpoints": ["--job-id", "job-1"]}
    with pytest.raises(CommandError) as caught:
        run("dualstorage_upload", kind, str(path), *options.get(kind, []))
    assert str(caught.value) == f"Refused {str(path)!r}: {EMPTY_FILE}"
    assert not model._default_manager.exists()
    store, bucket = real_storage.locate(kind)  # type: ignore[arg-type]
    assert not any("empty.json" in info.key for info in store.list(bucket))


def test_upload_schema_again_replaces_its_version(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_bytes(b'{"v": 1}')
    first = run_json("dualstorage_upload", "schemas", str(schema), "--framework", "cmd-fw")
    schema.write_bytes(b'{"v": 2}')
    second = run_json("dualstorage_upload", "schemas", str(schema), "--framework", "cmd-fw")
    assert (first["replaced"], second["replaced"]) == (False, True)
    assert second["id"] == first["id"] and second["key"] != first["key"]
    assert ConfigSchema.objects.get().name == "cmd-fw"
    assert real_storage.get_schema("cmd-fw") == b'{"v": 2}'
    assert not real_storage.exists("schemas", first["key"])


# -- hostile file names, frameworks and job ids ------------------------------------------


# Local files may hold any byte but NUL and "/", and at most 255 bytes of name.
COMMAND_FILE_NAMES = [
    pytest.param("new\nline.pth", id="LF"),
    pytest.param("car\rriage.pth", id="CR"),
    pytest.param("t\tab.pth", id="TAB"),
    pytest.param("del\x7f.pth", id="DEL"),
    pytest.param("esc\x1b[31m.pth", id="ESC"),
    pytest.param("zero\u200bwidth.pth", id="ZWSP"),
    pytest.param("\ufeffbom.pth", id="BOM"),
    pytest.param("zw\u200djoiner.pth", id="ZWJ"),
    pytest.param("evil\u202egnp.exe", id="bidi-RLO"),
    pytest.param(NFD_NAME + ".pth", id="NFD"),
    pytest.param(NFC_NAME + ".pth", id="NFC"),
    pytest.param("..\\..\\windows.pth", id="backslashes"),
    pytest.param("...", id="three-dots"),
    pytest.param(" lead and trail .pth ", id="spaces"),
    pytest.param("s" * 251 + ".pth", id="255-byte-name"),
    pytest.param("日本語" * 28 + ".pt", id="255-byte-multibyte-name"),
    pytest.param("\U0001f642", id="emoji-only"),
    pytest.param("()", id="punctuation-only"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("filename", COMMAND_FILE_NAMES)
def test_upload_command_stores_a_hostile_file_name_under_a_safe_generated_key(
    filename: str, real_storage: DualStorageClient, tmp_path: Path
) -> None:
    import json

    keys: list[str] = []
    payloads = [b"first " + filename.encode(), b"second " + filename.encode()]
    for index, payload in enumerate(payloads):
        folder = tmp_path / str(index)
        folder.mkdir()
        path = folder / filename
        path.write_bytes(payload)
        data = json.loads(run_with_stderr("dualstorage_upload", "weights", str(path), "--json"))
        assert_generated_key(data["key"], "weights")
        assert data["sha256"] == hashlib.sha256(payload).hexdigest()
        keys.append(data["key"])
    assert keys[0] != keys[1]  # the same name twice: two objects, never one overwritten
    for key, payload in zip(keys, payloads, strict=True):
        assert real_storage.internal.get_bytes("model-weights", key) == payload
    assert ModelWeight.objects.filter(file__in=keys).count() == 2


@pytest.mark.parametrize(
    "framework", ["../x", "a/b", "nul\x00", NFD_NAME, "\u202eevil", "日本語" * 33]
)
def test_upload_command_refuses_a_hostile_schema_framework(
    framework: str, real_storage: DualStorageClient, tmp_path: Path
) -> None:
    """The framework names the published ``<framework>.json``: a name that cannot be a
    schema key is refused before anything is stored, not stored and then never published."""
    path = tmp_path / "schema.json"
    path.write_bytes(b'{"type": "object"}')
    with pytest.raises(CommandError):
        run_with_stderr("dualstorage_upload", "schemas", str(path), "--framework", framework)
    assert not ConfigSchema.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("job_id", ["../x", "a/b", "nul\x00", NFD_NAME, "()", "\U0001f642"])
def test_upload_command_files_a_hostile_job_id_under_a_safe_key_or_refuses_it(
    job_id: str, real_storage: DualStorageClient, tmp_path: Path
) -> None:
    """The job id becomes a key segment (``jobs/<job>/...``): the checkpoint is stored
    under a safe key, or the command refuses with a CommandError, never a traceback."""
    import json

    path = tmp_path / "epoch1.pth"
    path.write_bytes(b"checkpoint")
    try:
        output = run_with_stderr(
            "dualstorage_upload", "checkpoints", str(path), "--job-id", job_id, "--json"
        )
    except CommandError:
        assert not TrainingCheckpoint.objects.exists()
        return
    key = json.loads(output)["key"]
    assert validate_key(key) == key and key.startswith("jobs/")
    assert key.count("/") == 3  # jobs/<one safe segment>/<unique>/<name>
    assert real_storage.internal.get_bytes("training-checkpoints", key) == b"checkpoint"

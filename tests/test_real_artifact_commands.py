"""The artifact commands (upload, download, presign, seed, check, list) on the real servers."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper
from tqdm import tqdm

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.store import facade
from dual_storage_app.testing.server import LocalS3Server
from tests.conftest import EXTERNAL_SECRET, INTERNAL_SECRET, real_settings
from tests.http import fetch

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]
MakeFile = Callable[..., Path]


class Terminal(StringIO):
    """A stdout that says it is a TTY, as an interactive shell's would."""

    def isatty(self) -> bool:
        return True


def run(*args: str, stdout: StringIO | None = None) -> str:
    out = stdout if stdout is not None else StringIO()
    call_command(*args, stdout=out, no_color=True)
    return out.getvalue()


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- upload and download ---------------------------------------------------------


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


def test_download_verifies_the_recorded_sha256(
    real_storage: DualStorageClient, make_file: MakeFile, tmp_path: Path
) -> None:
    uploaded = run_json("dualstorage_upload", "weights", str(make_file("w.pth", 5000)))
    # The object changes behind the row's back (corruption, a stray overwrite).
    real_storage.internal.upload("model-weights", uploaded["key"], io.BytesIO(b"tampered"))
    dest = tmp_path / "downloads" / "w.pth"
    with pytest.raises(CommandError, match="SHA-256") as caught:
        run("dualstorage_download", "weights", "--id", str(uploaded["id"]), str(dest))
    assert "model-weights" in str(caught.value) and uploaded["key"] in str(caught.value)
    assert list(dest.parent.iterdir()) == []  # no file, no temporary left behind


def test_download_by_key_without_a_row_into_a_directory(
    real_storage: DualStorageClient, unique_key: str, tmp_path: Path
) -> None:
    key = f"{unique_key}/raw.zip"
    real_storage.upload_dataset(file_obj=io.BytesIO(b"raw dataset"), dataset_key=key)
    out = run("dualstorage_download", "datasets", "--key", key, str(tmp_path))
    assert (tmp_path / "raw.zip").read_bytes() == b"raw dataset"
    assert "(no row: not verified)" in out


def test_download_to_an_unwritable_place_is_a_command_error(
    real_storage: DualStorageClient, make_file: MakeFile
) -> None:
    uploaded = run_json("dualstorage_upload", "weights", str(make_file("w.pth", 10)))
    blocked = make_file("a-file", 1) / "sub" / "w.pth"  # a directory would be needed here
    with pytest.raises(CommandError, match=r"Local file error \(.*\): .*a-file"):
        run("dualstorage_download", "weights", "--id", str(uploaded["id"]), str(blocked))


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        (["--id", "999"], "No model weight with id 999"),
        (["--key", "weights/none/missing.pth"], "no such object"),
        (["--key", "../etc/passwd"], "Invalid object key"),
    ],
)
def test_download_missing_or_bad_key_is_a_command_error(
    real_storage: DualStorageClient, tmp_path: Path, lookup: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run("dualstorage_download", "weights", *lookup, str(tmp_path / "x"))
    assert list(tmp_path.iterdir()) == []


# -- progress bar ------------------------------------------------------------------


def test_progress_bar_only_on_a_terminal(
    real_storage: DualStorageClient, make_file: MakeFile, tmp_path: Path
) -> None:
    source = make_file("bar.pth", 2 * 1024 * 1024)
    quiet = run("dualstorage_upload", "weights", str(source))
    assert "\r" not in quiet and "%" not in quiet
    row = ModelWeight.objects.get()
    quiet = run("dualstorage_download", "weights", "--id", str(row.pk), str(tmp_path / "a"))
    assert "\r" not in quiet and "%" not in quiet

    shown = run("dualstorage_upload", "weights", str(source), stdout=Terminal())
    assert "\rUploading bar.pth:" in shown and "100%" in shown and "2.00M/2.00M" in shown
    download = ["dualstorage_download", "weights", "--id", str(row.pk), str(tmp_path / "b")]
    shown = run(*download, stdout=Terminal())
    assert "\rDownloading b:" in shown and "100%" in shown and "2.00M/2.00M" in shown
    assert (tmp_path / "b").read_bytes() == source.read_bytes()
    # --json output stays a clean document even on a terminal.
    out = Terminal()
    call_command("dualstorage_upload", "weights", str(source), "--json", stdout=out)
    assert json.loads(out.getvalue())["size"] == source.stat().st_size


def _counting_bar_updates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every increment a progress bar is fed, in order."""
    heard: list[int] = []
    real_update = tqdm.update

    def update(bar: tqdm[None], count: float | None = 1) -> bool | None:
        heard.append(int(count or 0))
        return real_update(bar, count)

    monkeypatch.setattr(tqdm, "update", update)
    return heard


def test_progress_bar_upload_still_goes_by_path(
    real_storage: DualStorageClient, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar hears s3transfer's callback; the file is not wrapped into a stream (which
    would buffer parts in memory)."""

    def no_stream_upload(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file upload took the buffered stream path")

    monkeypatch.setattr(facade, "upload_stream", no_stream_upload)
    heard = _counting_bar_updates(monkeypatch)
    source = make_file("big.pth", 40 * 1024 * 1024)
    shown = run("dualstorage_upload", "weights", str(source), stdout=Terminal())
    assert re.findall(r"(\d+)%", shown)[-1] == "100"
    assert sum(heard) == source.stat().st_size
    assert len(heard) > 3  # it moved as the parts were sent, not in one jump
    assert ModelWeight.objects.get().size == source.stat().st_size


def test_progress_bar_download_hears_the_bytes_written(
    real_storage: DualStorageClient,
    make_file: MakeFile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A download's bar is fed by the ranged GETs as they write (not by polling the
    temporary file), so it never runs ahead of what is on disk."""
    source = make_file("big.pth", 40 * 1024 * 1024)
    run("dualstorage_upload", "weights", str(source))
    row = ModelWeight.objects.get()
    heard = _counting_bar_updates(monkeypatch)
    shown = run(
        "dualstorage_download",
        "weights",
        "--id",
        str(row.pk),
        str(tmp_path / "c"),
        stdout=Terminal(),
    )
    assert re.findall(r"(\d+)%", shown)[-1] == "100"
    assert sum(heard) == source.stat().st_size
    assert len(heard) > 3
    assert (tmp_path / "c").read_bytes() == source.read_bytes()


def test_sizes_use_the_admins_formatter() -> None:
    """Commands and the admin format one size the same way (Django's filesizeformat)."""
    from django.template.defaultfilters import filesizeformat

    from dual_storage_app.management._common import format_size, size_text

    for size in (0, 1536, 20 * 1024 * 1024, 5 * 1024**4):
        assert format_size(size) == str(filesizeformat(size)).replace("\xa0", " ")
    assert (format_size(0), format_size(1536), format_size(5 * 1024**4)) == (
        "0 bytes",
        "1.5 KB",
        "5.0 TB",
    )
    assert size_text(3000) == "2.9 KB (3000 bytes)"


# -- presign -----------------------------------------------------------------------


def test_presign_a_dataset_and_fetch_its_bytes(
    real_storage: DualStorageClient, make_file: MakeFile
) -> None:
    source = make_file("train.zip", 4000, seed=9)
    uploaded = run_json("dualstorage_upload", "datasets", str(source))
    assert (uploaded["store"], uploaded["bucket"]) == ("external", "training-datasets")
    before = timezone.now()
    data = run_json("dualstorage_presign", "--id", str(uploaded["id"]), "--expires", "120")
    expires_at = datetime.fromisoformat(data["expires_at"])
    assert before + timedelta(seconds=118) <= expires_at <= timezone.now() + timedelta(seconds=120)
    assert data["key"] == uploaded["key"] and "X-Amz-Expires=120" in data["url"]
    assert fetch(data["url"]) == source.read_bytes()

    out = run("dualstorage_presign", "--key", uploaded["key"])
    assert "Presigned URL for" in out and "X-Amz-Expires=3600" in out.splitlines()[1]


@pytest.mark.parametrize("kind", ["weights", "checkpoints", "schemas"])
def test_presign_refuses_internal_kinds(real_storage: DualStorageClient, kind: str) -> None:
    with pytest.raises(CommandError, match=r"never get a URL") as caught:
        run("dualstorage_presign", "--kind", kind, "--key", "weights/a/b.pth")
    assert "dualstorage_download" in str(caught.value)


@pytest.mark.parametrize("expires", ["0", "604801", "-5"])
def test_presign_refuses_out_of_range_expiry(real_storage: DualStorageClient, expires: str) -> None:
    dataset = Dataset(name="d")
    dataset.file.save("d.zip", ContentFile(b"d"))
    with pytest.raises(CommandError, match="out of range"):
        run("dualstorage_presign", "--id", str(dataset.pk), "--expires", expires)


def test_presign_missing_dataset_is_a_command_error(real_storage: DualStorageClient) -> None:
    with pytest.raises(CommandError, match="no such object"):
        run("dualstorage_presign", "--key", "datasets/none/missing.zip")
    with pytest.raises(CommandError, match="No dataset with id 12345"):
        run("dualstorage_presign", "--id", "12345")


# -- seed --------------------------------------------------------------------------


def make_seed_folder(root: Path) -> Path:
    (root / "weights" / "yolo").mkdir(parents=True)
    (root / "schemas").mkdir()
    (root / "weights" / "resnet50.pth").write_bytes(b"resnet weights" * 100)
    (root / "weights" / "yolo" / "v8n.pt").write_bytes(b"yolo weights")
    (root / "weights" / ".DS_Store").write_bytes(b"ignored")
    (root / "schemas" / "seed-fw.json").write_bytes(b'{"type": "object"}')
    (root / "schemas" / "README.txt").write_bytes(b"not a schema")
    return root


def test_seed_twice_skips_everything_the_second_time(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    folder = make_seed_folder(tmp_path / "seed")
    first = run_json("dualstorage_seed", str(folder))
    assert (first["created"], first["replaced"], first["skipped"]) == (3, 0, 0)
    assert sorted(ModelWeight.objects.values_list("name", flat=True)) == [
        "resnet50.pth",
        "yolo/v8n.pt",
    ]
    schema = ConfigSchema.objects.get(framework="seed-fw")
    assert schema.sha256 == sha256(b'{"type": "object"}')
    assert real_storage.get_schema("seed-fw") == b'{"type": "object"}'

    out = run("dualstorage_seed", str(folder))
    assert "0 created, 0 replaced, 3 skipped." in out
    assert ModelWeight.objects.count() == 2 and ConfigSchema.objects.count() == 1


def test_seed_replaces_a_changed_schema(real_storage: DualStorageClient, tmp_path: Path) -> None:
    folder = make_seed_folder(tmp_path / "seed")
    run("dualstorage_seed", str(folder))
    old_key = ConfigSchema.objects.get().key
    (folder / "schemas" / "seed-fw.json").write_bytes(b'{"type": "array"}')
    data = run_json("dualstorage_seed", str(folder))
    assert (data["created"], data["replaced"], data["skipped"]) == (0, 1, 2)
    [replaced] = [item for item in data["items"] if item["action"] == "replaced"]
    assert replaced["framework"] == "seed-fw" and replaced["key"] != old_key
    assert ConfigSchema.objects.get().sha256 == sha256(b'{"type": "array"}')
    assert real_storage.get_schema("seed-fw") == b'{"type": "array"}'
    assert not real_storage.exists("schemas", old_key)


def test_seed_refuses_a_bad_folder_before_uploading(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match="is not a directory"):
        run("dualstorage_seed", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="expected a weights/ or schemas/ folder"):
        run("dualstorage_seed", str(tmp_path))
    folder = make_seed_folder(tmp_path / "seed")
    (folder / "schemas" / "broken.json").write_bytes(b"{not json")
    with pytest.raises(CommandError, match=r"broken\.json.*not valid JSON"):
        run("dualstorage_seed", str(folder))
    assert not ModelWeight.objects.exists() and not ConfigSchema.objects.exists()


# -- check -------------------------------------------------------------------------


def test_check_round_trips_every_bucket(real_storage: DualStorageClient) -> None:
    data = run_json("dualstorage_check")
    assert data["ok"] is True
    assert sorted((r["store"], r["bucket"]) for r in data["results"]) == [
        ("external", "training-datasets"),
        ("internal", "config-schemas"),
        ("internal", "model-weights"),
        ("internal", "training-checkpoints"),
    ]
    for result in data["results"]:
        assert list(result["steps"]) == ["put", "head", "get", "delete"]
        assert all(isinstance(ms, float) and ms >= 0 for ms in result["steps"].values())
        assert not real_storage.exists(_kind_of(result["bucket"]), result["key"])
    out = run("dualstorage_check")
    assert out.count("OK ") == 4 and "put " in out and " ms" in out
    assert INTERNAL_SECRET not in out and EXTERNAL_SECRET not in out


def _kind_of(bucket: str) -> Any:
    return {
        "model-weights": "weights",
        "training-checkpoints": "checkpoints",
        "config-schemas": "schemas",
        "training-datasets": "datasets",
    }[bucket]


def test_check_fails_with_a_wrong_secret_without_printing_it(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> None:
    secret = "wrong-secret-Qp7vX2"
    settings.DUAL_STORAGE = real_settings(s3_servers, INTERNAL_STORAGE_SECRET_KEY=secret)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="3 of 4 store checks failed") as caught:
        call_command("dualstorage_check", "--json", stdout=out, stderr=err)
    report = json.loads(out.getvalue())
    assert report["ok"] is False
    failed = {r["bucket"]: r for r in report["results"] if not r["ok"]}
    assert set(failed) == {"model-weights", "training-checkpoints", "config-schemas"}
    assert all(r["failed_step"] == "put" and "refused" in r["error"] for r in failed.values())
    for text in (str(caught.value), out.getvalue(), err.getvalue()):
        assert secret not in text and INTERNAL_SECRET not in text and EXTERNAL_SECRET not in text


def test_check_misconfigured_is_a_command_error(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {"INTERNAL_STORAGE_ENDPOINT": "http://127.0.0.1:1"}
    with pytest.raises(CommandError, match="misconfigured"):
        run("dualstorage_check")


def test_check_gives_up_on_an_unreachable_store_in_bounded_time(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> None:
    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.DUAL_STORAGE = real_settings(
        s3_servers, EXTERNAL_STORAGE_ENDPOINT=f"http://127.0.0.1:{port}"
    )
    started = time.monotonic()
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 4 store checks failed: external/"):
        call_command("dualstorage_check", stdout=out, no_color=True)
    assert time.monotonic() - started < 60
    assert "FAIL external" in out.getvalue() and "unreachable" in out.getvalue()
    assert out.getvalue().count("OK ") == 3


# -- list --------------------------------------------------------------------------


def test_list_shows_rows_and_objects(real_storage: DualStorageClient, make_file: MakeFile) -> None:
    keys = []
    for epoch in range(3):
        path = str(make_file(f"e{epoch}.pth", 2048 + epoch))
        options = ["--job-id", "list-job", "--epoch", str(epoch)]
        keys.append(run_json("dualstorage_upload", "checkpoints", path, *options)["key"])
    out = run("dualstorage_list", "checkpoints")
    assert "3 checkpoints row(s)." in out and all(key in out for key in keys)
    assert "2.0 KB" in out and ModelWeight.objects.count() == 0

    data = run_json("dualstorage_list", "checkpoints", "--limit", "2")
    assert data["source"] == "database" and len(data["items"]) == 2
    assert [item["key"] for item in data["items"]] == keys[:0:-1]  # newest first
    assert run_json("dualstorage_list", "checkpoints", "--prefix", "jobs/other/")["items"] == []

    stored = run_json("dualstorage_list", "checkpoints", "--store", "--prefix", "jobs/list-job/")
    assert stored["bucket"] == "training-checkpoints"
    assert sorted(item["key"] for item in stored["items"]) == sorted(keys)
    assert {item["size"] for item in stored["items"]} == {2048, 2049, 2050}
    out = run("dualstorage_list", "checkpoints", "--store", "--prefix", "jobs/list-job/")
    assert "3 object(s) in internal/training-checkpoints." in out


def test_list_errors_are_command_errors(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers, INTERNAL_BUCKET_WEIGHTS="no-such-bucket")
    with pytest.raises(CommandError, match="bucket does not exist"):
        run("dualstorage_list", "weights", "--store")
    with pytest.raises(CommandError, match="not a positive number"):
        run("dualstorage_list", "weights", "--limit", "0")

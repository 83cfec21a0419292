"""``dualstorage_download`` on the real servers: verified, by id or key, clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError

from dual_storage_app.client import DualStorageClient
from tests.helpers import MakeFile, run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


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

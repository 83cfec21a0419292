"""``dualstorage_presign`` on the real servers (bad expiries: ``test_presign.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError
from django.utils import timezone

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset
from tests.helpers import MakeFile, run, run_json
from tests.http import fetch

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


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

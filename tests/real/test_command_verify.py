"""``dualstorage_verify`` on the real servers: intact rows, deleted and overwritten
objects, orphans.
"""

from __future__ import annotations

import io
import json
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset, ModelWeight

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


def verify(*args: str) -> dict[str, object]:
    out = StringIO()
    call_command("dualstorage_verify", "--json", *args, stdout=out)
    return dict(json.loads(out.getvalue()))


def test_intact_rows_pass(real_storage: DualStorageClient) -> None:
    ModelWeight(name="ok").file.save("ok.pth", ContentFile(b"ok"))
    report = verify("--kind", "weights")
    assert report == {"checked": 1, "problems": []}


@pytest.mark.parametrize("quick", [False, True])
def test_deleted_and_overwritten_objects_are_reported(
    real_storage: DualStorageClient, quick: bool
) -> None:
    gone = ModelWeight(name="gone")
    gone.file.save("gone.pth", ContentFile(b"gone"))
    changed = Dataset(name="changed")
    changed.file.save("changed.zip", ContentFile(b"original"))
    real_storage.delete("weights", gone.key)
    store, bucket = real_storage.locate("datasets")
    store.client.put_object(Bucket=bucket, Key=changed.key, Body=b"tampered!")
    out = StringIO()
    args = ["--quick"] if quick else []
    with pytest.raises(CommandError, match="2 artifact problem"):
        call_command("dualstorage_verify", *args, stdout=out)
    text = out.getvalue()
    assert f"weights #{gone.pk} {gone.key}: missing" in text
    assert f"datasets #{changed.pk} {changed.key}: changed in the store" in text


def test_orphans_are_listed(real_storage: DualStorageClient, unique_key: str) -> None:
    real_storage.upload_dataset(file_obj=io.BytesIO(b"stray"), dataset_key=f"{unique_key}/stray")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("dualstorage_verify", "--kind", "datasets", "--orphans", stdout=out)
    assert f"datasets {unique_key}/stray: orphan (no row)" in out.getvalue()

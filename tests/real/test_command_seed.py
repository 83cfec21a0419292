"""``dualstorage_seed`` on the real servers: idempotent, replaces changes, checks first."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import ConfigSchema, ModelWeight
from tests.helpers import run, run_json, sha256

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


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

"""``dualstorage_seed`` on the real servers: every kind, idempotent, replaces changes,
checks first (unknown folders, empty files, broken schemas refused before any upload)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError

from dual_storage_app.client import DualStorageClient
from dual_storage_app.kinds import KINDS
from dual_storage_app.models import (
    ARTIFACT_MODELS,
    ConfigSchema,
    Dataset,
    ModelWeight,
    TrainingCheckpoint,
)
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
    with pytest.raises(CommandError, match="expected one of weights/, checkpoints/, sch"):
        run("dualstorage_seed", str(tmp_path))
    folder = make_seed_folder(tmp_path / "seed")
    (folder / "schemas" / "broken.json").write_bytes(b"{not json")
    with pytest.raises(CommandError, match=r"broken\.json.*not valid JSON"):
        run("dualstorage_seed", str(folder))
    assert not ModelWeight.objects.exists() and not ConfigSchema.objects.exists()


def nothing_stored() -> bool:
    return not any(ARTIFACT_MODELS[kind]._default_manager.exists() for kind in KINDS)


def test_seed_stores_every_kind(real_storage: DualStorageClient, tmp_path: Path) -> None:
    folder = make_seed_folder(tmp_path / "seed")
    (folder / "checkpoints" / "job-7" / "run-a").mkdir(parents=True)
    (folder / "checkpoints" / "job-7" / "epoch_1.pth").write_bytes(b"epoch 1")
    (folder / "checkpoints" / "job-7" / "run-a" / "epoch_2.pth").write_bytes(b"epoch 2")
    (folder / "datasets" / "coco").mkdir(parents=True)
    (folder / "datasets" / "coco" / "train.zip").write_bytes(b"a dataset")
    first = run_json("dualstorage_seed", str(folder))
    assert (first["created"], first["replaced"], first["skipped"]) == (6, 0, 0)
    assert sorted(TrainingCheckpoint.objects.values_list("job_id", "name")) == [
        ("job-7", "epoch_1.pth"),
        ("job-7", "run-a/epoch_2.pth"),
    ]
    checkpoint = TrainingCheckpoint.objects.get(name="epoch_1.pth")
    assert checkpoint.key.startswith("jobs/job-7/") and checkpoint.bucket == "training-checkpoints"
    assert real_storage.internal.get_bytes("training-checkpoints", checkpoint.key) == b"epoch 1"
    dataset = Dataset.objects.get()
    assert (dataset.name, dataset.bucket, dataset.sha256) == (
        "coco/train.zip",
        "training-datasets",
        sha256(b"a dataset"),
    )
    assert real_storage.external.get_bytes("training-datasets", dataset.key) == b"a dataset"

    out = run("dualstorage_seed", str(folder))
    assert "0 created, 0 replaced, 6 skipped." in out
    assert "checkpoints job-7/run-a/epoch_2.pth" in out and "datasets    coco/train.zip" in out
    (folder / "datasets" / "coco" / "train.zip").write_bytes(b"a new version")
    again = run_json("dualstorage_seed", str(folder))
    assert (again["created"], again["replaced"], again["skipped"]) == (0, 1, 5)
    assert Dataset.objects.get().sha256 == sha256(b"a new version")


def test_seed_refuses_an_unknown_folder_naming_it(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    folder = make_seed_folder(tmp_path / "seed")
    (folder / "weigths").mkdir()
    (folder / "dataset").mkdir()
    (folder / ".git").mkdir()  # hidden: ignored, like hidden files
    with pytest.raises(CommandError) as caught:
        run("dualstorage_seed", str(folder))
    message = str(caught.value)
    assert "unknown folder(s) dataset/, weigths/ in" in message
    assert "weights/, checkpoints/, schemas/, datasets/" in message and ".git" not in message
    assert nothing_stored()


def test_seed_refuses_loose_files_naming_them(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    # A file beside the kinds' folders was silently left out: the user believed it seeded.
    folder = make_seed_folder(tmp_path / "seed")
    (folder / "resnet50.pth").write_bytes(b"w")
    (folder / ".DS_Store").write_bytes(b"x")  # hidden: ignored
    with pytest.raises(CommandError) as caught:
        run("dualstorage_seed", str(folder))
    message = str(caught.value)
    assert "loose file(s) resnet50.pth in" in message and ".DS_Store" not in message
    assert nothing_stored()


def test_seed_refuses_an_empty_file_as_the_admin_does(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    folder = make_seed_folder(tmp_path / "seed")
    empty = folder / "weights" / "zz-empty.pth"  # after the others: nothing is stored first
    empty.write_bytes(b"")
    with pytest.raises(CommandError) as caught:
        run("dualstorage_seed", str(folder))
    assert str(caught.value) == f"Refused {str(empty)!r}: The submitted file is empty."
    assert nothing_stored()


def test_seed_refuses_a_checkpoint_outside_a_job_folder(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    folder = make_seed_folder(tmp_path / "seed")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "epoch_1.pth").write_bytes(b"no job")
    with pytest.raises(CommandError, match=r"not in a job's folder.*checkpoints/<job id>/epoch"):
        run("dualstorage_seed", str(folder))
    assert nothing_stored()


def test_seed_refuses_a_job_folder_the_model_would_refuse_before_uploading(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    folder = make_seed_folder(tmp_path / "seed")
    (folder / "checkpoints" / "job\u200b7").mkdir(parents=True)  # a zero-width space
    (folder / "checkpoints" / "job\u200b7" / "epoch_1.pth").write_bytes(b"hidden job")
    with pytest.raises(CommandError, match="Invalid job_id"):
        run("dualstorage_seed", str(folder))
    assert nothing_stored()

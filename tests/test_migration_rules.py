"""The migration rules: globs, presets, rules from a file or a setting, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dual_storage_app.exceptions import InvalidArgument, InvalidKey
from dual_storage_app.moving.rules import LEGACY_RULES, Rule, load_rules, map_key


@pytest.mark.parametrize(
    ("key", "kind", "target"),
    [
        ("weights/resnet50.pth", "weights", "resnet50.pth"),
        ("models/a/b.safetensors", "weights", "a/b.safetensors"),
        ("checkpoints/jobs/7/epoch_3.pth", "checkpoints", "jobs/7/epoch_3.pth"),
        ("jobs/8/checkpoint_epoch_1.pth", "checkpoints", "jobs/8/checkpoint_epoch_1.pth"),
        ("schemas/ultralytics.json", "schemas", "ultralytics.json"),
        ("schemas/nested/x.json", "datasets", "schemas/nested/x.json"),  # * stays in a segment
        ("datasets/abc-123.zip", "datasets", "datasets/abc-123.zip"),
        ("coco/annotations.json", "datasets", "coco/annotations.json"),
    ],
)
def test_the_legacy_preset(key: str, kind: str, target: str) -> None:
    mapped = map_key(LEGACY_RULES, "legacy", key)
    assert mapped is not None and (mapped.kind, mapped.target_key) == (kind, target)


def test_first_match_wins_and_skip_and_bucket_limits(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            [
                {"match": "tmp/**", "skip": True},
                {"match": "exports/*.onnx", "kind": "weights", "strip": "exports/", "prefix": "x/"},
                {"match": "**", "kind": "datasets", "bucket": "only-this"},
            ]
        )
    )
    rules = load_rules(str(path))
    skipped = map_key(rules, "b", "tmp/a")
    assert skipped is not None and skipped.kind is None
    weight = map_key(rules, "b", "exports/m.onnx")
    assert weight is not None and (weight.kind, weight.target_key) == ("weights", "x/m.onnx")
    assert map_key(rules, "other", "data.bin") is None  # no rule for this bucket
    data = map_key(rules, "only-this", "data.bin")
    assert data is not None and data.kind == "datasets"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "non-empty list"),
        ([{"kind": "weights"}], "needs a 'match'"),
        ([{"match": "a/**", "kind": "nope"}], "unknown kind 'nope'"),
        ([{"match": "a/**"}], "either a 'kind'"),
        ([{"match": "a/**", "kind": "weights", "skip": True}], "either a 'kind'"),
        ([{"match": "a/**", "kind": "weights", "colour": "red"}], "unknown field"),
        (["a/**"], "must be a mapping"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(entries: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        load_rules(None, entries)


def test_an_unknown_preset_or_missing_file_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="neither a preset"):
        load_rules("no-such-preset")


def test_a_key_the_app_refuses_is_named() -> None:
    with pytest.raises(InvalidKey, match="maps to a refused key"):
        map_key((Rule("**", "datasets", strip="a/"),), "b", "a//x")

"""``dualstorage_createbuckets`` on the real servers."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.testing.pair import INTERNAL_SECRET
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import real_settings, run_json

pytestmark = pytest.mark.real_s3


def test_createbuckets_is_idempotent(real_storage: DualStorageClient) -> None:
    out = StringIO()
    call_command("dualstorage_createbuckets", stdout=out)
    lines = out.getvalue().splitlines()
    assert sorted(lines) == sorted(
        f"{bucket}: already exists"
        for bucket in (
            "model-weights",
            "training-checkpoints",
            "config-schemas",
            "training-datasets",
        )
    )


def test_createbuckets_creates_missing_buckets(
    s3_servers: dict[str, LocalS3Server], settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(
        s3_servers, INTERNAL_BUCKET_SCHEMAS="schemas-created-by-cmd"
    )
    out = StringIO()
    call_command("dualstorage_createbuckets", stdout=out, no_color=True)
    assert "schemas-created-by-cmd: created" in out.getvalue()


def test_createbuckets_wrong_secret_is_a_command_error(
    s3_servers: dict[str, LocalS3Server], settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers, INTERNAL_STORAGE_SECRET_KEY="bad-secret-x")
    with pytest.raises(CommandError) as caught:
        call_command("dualstorage_createbuckets", stdout=StringIO())
    assert "internal store" in str(caught.value)
    assert "bad-secret-x" not in str(caught.value) and INTERNAL_SECRET not in str(caught.value)


def test_createbuckets_json_names_each_bucket_its_store_and_what_was_done(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers, EXTERNAL_BUCKET_DATASETS="datasets-by-json")
    assert run_json("dualstorage_createbuckets") == {
        "buckets": [
            {"store": "internal", "bucket": "model-weights", "created": False},
            {"store": "internal", "bucket": "training-checkpoints", "created": False},
            {"store": "internal", "bucket": "config-schemas", "created": False},
            {"store": "external", "bucket": "datasets-by-json", "created": True},
        ]
    }

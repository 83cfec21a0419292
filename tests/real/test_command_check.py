"""``dualstorage_check`` on the real servers: round trips, wrong secrets, bounded time."""

from __future__ import annotations

import json
import socket
import time
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.testing.pair import EXTERNAL_SECRET, INTERNAL_SECRET
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import real_settings, run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


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

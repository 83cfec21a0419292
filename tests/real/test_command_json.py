"""Every ``dualstorage_*`` command takes ``--json`` and, with it, reports every error as
one JSON object on stderr with a non-zero exit, stdout empty or one JSON document.

The commands run as ``manage.py`` runs them (``run_from_argv``, in this process, so the
settings fixtures apply): exit status and the two streams as a script would see them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, ManagementUtility, call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import ModelWeight
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import WRONG_SECRET, assert_no_secret, make, real_settings

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]

COMMANDS = (
    "check",
    "cleanup_uploads",
    "createbuckets",
    "download",
    "list",
    "localserver",
    "presign",
    "seed",
    "upload",
    "verify",
)


@dataclass
class Run:
    """What a script sees of one ``manage.py`` run."""

    status: int
    stdout: str
    stderr: str

    def error(self) -> dict[str, Any]:
        """The one JSON error object on stderr (the whole of stderr)."""
        report = json.loads(self.stderr)
        assert set(report) == {"error"}, self.stderr
        error: dict[str, Any] = report["error"]
        for field in ("type", "message", "store", "bucket", "key", "code", "status"):
            assert field in error, f"{field} missing from {error}"
        return error

    def document(self) -> Any:
        """stdout: nothing, or one JSON document."""
        return json.loads(self.stdout) if self.stdout.strip() else None


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """``manage.py <argv>``: its exit status, stdout and stderr."""
    capsys.readouterr()
    utility = ManagementUtility(["manage.py", *argv])
    try:
        utility.fetch_command(argv[0]).run_from_argv(["manage.py", *argv])
        status = 0
    except SystemExit as exited:
        status = exited.code if isinstance(exited.code, int) else 1
    captured = capsys.readouterr()
    return Run(status, captured.out, captured.err)


# -- one failure of each command ---------------------------------------------------------


Setup = Callable[[dict[str, LocalS3Server], SettingsWrapper, Path], list[str]]
MISSING_WEIGHT = "weights/none/missing.pth"
MISSING_DATASET = "datasets/none/missing.zip"


def _wrong_internal_secret(servers: dict[str, LocalS3Server], settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = real_settings(servers, INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET)


def _check(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    _wrong_internal_secret(servers, settings)
    return ["dualstorage_check"]


def _cleanup(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    _wrong_internal_secret(servers, settings)
    return ["dualstorage_cleanup_uploads"]


def _create(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    _wrong_internal_secret(servers, settings)
    return ["dualstorage_createbuckets"]


def _download(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    return ["dualstorage_download", "weights", "--key", MISSING_WEIGHT, str(tmp)]


def _list(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    settings.DUAL_STORAGE = real_settings(servers, INTERNAL_BUCKET_WEIGHTS="no-such-bucket")
    return ["dualstorage_list", "weights", "--store"]


def _localserver(
    servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path
) -> list[str]:
    # The internal endpoint is the running test server's: its port is taken.
    return ["dualstorage_localserver", "--data-dir", str(tmp / "local")]


def _presign(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    return ["dualstorage_presign", "--key", MISSING_DATASET]


def _seed(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    (tmp / "seed" / "weigths").mkdir(parents=True)  # a typo: not a kind
    return ["dualstorage_seed", str(tmp / "seed")]


def _upload(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    (tmp / "schema.json").write_bytes(b"{}")
    return ["dualstorage_upload", "schemas", str(tmp / "schema.json"), "--framework", ".."]


def _verify(servers: dict[str, LocalS3Server], settings: SettingsWrapper, tmp: Path) -> list[str]:
    row = make(ModelWeight, b"soon gone")
    DualStorageClient(overrides=real_settings(servers)).delete("weights", row.key)
    return ["dualstorage_verify", "--kind", "weights"]


@dataclass(frozen=True)
class Failure:
    """How to make one command fail, and what its JSON error must say."""

    setup: Setup
    type: str
    fields: dict[str, Any]  # "message": a part of it; any other field: its value
    reports: bool = False  # stdout holds a report of what was done before the failure


FAILURES = {
    "check": Failure(_check, "CommandError", {"message": "3 of 4 store checks failed"}, True),
    "cleanup_uploads": Failure(_cleanup, "CommandError", {"message": "internal store"}, True),
    "createbuckets": Failure(_create, "AccessDenied", {"store": "internal", "status": 403}),
    "download": Failure(
        _download,
        "ObjectNotFound",
        {"store": "internal", "bucket": "model-weights", "key": MISSING_WEIGHT, "status": 404},
    ),
    "list": Failure(_list, "ObjectNotFound", {"bucket": "no-such-bucket", "code": "NoSuchBucket"}),
    "localserver": Failure(_localserver, "CommandError", {"message": "already in use"}),
    "presign": Failure(_presign, "ObjectNotFound", {"store": "external", "key": MISSING_DATASET}),
    "seed": Failure(_seed, "CommandError", {"message": "weigths/"}),
    "upload": Failure(_upload, "InvalidKey", {"store": "internal"}),
    "verify": Failure(_verify, "CommandError", {"message": "1 artifact problem"}, True),
}


def test_every_command_has_a_failure_case() -> None:
    assert sorted(FAILURES) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_with_json_an_error_is_one_json_object_on_stderr(
    command: str,
    s3_servers: dict[str, LocalS3Server],
    _real_buckets: None,
    settings: SettingsWrapper,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers)
    failure = FAILURES[command]
    argv = failure.setup(s3_servers, settings, tmp_path)

    run = cli(capsys, *argv, "--json")
    assert run.status == 1, run
    error = run.error()
    assert error["type"] == failure.type, error
    for field, expected in failure.fields.items():
        if field == "message":
            assert expected in error["message"], error
        else:
            assert error[field] == expected, error
    document = run.document()  # a report of what was done before the failure, or nothing
    assert (document is not None) == failure.reports, run.stdout
    assert_no_secret(run.stdout + run.stderr, command)

    # Without --json: Django's one plain line, the same message, the same exit.
    plain = cli(capsys, *argv)
    assert plain.status == 1 and plain.stderr.startswith("CommandError: "), plain
    assert error["message"] in plain.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(plain.stderr)


@pytest.mark.parametrize("command", COMMANDS)
def test_with_json_a_usage_error_is_json_too(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(capsys, f"dualstorage_{command}", "--no-such-option", "--json")
    assert run.status == 2 and run.stdout == ""  # argparse's exit status, kept
    error = run.error()
    assert error["type"] == "UsageError" and error["message"], error
    assert error["usage"].startswith(f"usage: manage.py dualstorage_{command}")

    plain = cli(capsys, f"dualstorage_{command}", "--no-such-option")  # argparse's text
    assert plain.status == 2 and f"error: {error['message']}" in plain.stderr
    assert plain.stderr.startswith(error["usage"])


def test_a_bad_argument_value_is_a_json_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "dualstorage_list", "weights", "--limit", "0", "--json")
    assert run.status == 2
    assert run.error()["message"] == "argument --limit: 0 is not a positive number"


# The arguments each command needs to get as far as reading the configuration.
MINIMAL_ARGUMENTS = {
    "download": ["weights", "--key", "weights/x.pth", "{tmp}"],
    "list": ["weights", "--store"],
    "localserver": ["--data-dir", "{tmp}/local"],
    "presign": ["--key", "datasets/x.zip"],
    "seed": ["{tmp}/seed"],
    "upload": ["weights", "{tmp}/seed/weights/w.pth"],
    "verify": ["--orphans"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_misconfiguration_is_a_json_configuration_error(
    command: str,
    settings: SettingsWrapper,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ConfigurationError is no DualStorageError; every command still reports it, with
    the check ids that explain it (system checks skipped: they would report it first)."""
    (tmp_path / "seed" / "weights").mkdir(parents=True)
    (tmp_path / "seed" / "weights" / "w.pth").write_bytes(b"weights")
    settings.DUAL_STORAGE = {"INTERNAL_STORAGE_ENDPOINT": "ftp://127.0.0.1:1"}
    args = [a.format(tmp=tmp_path) for a in MINIMAL_ARGUMENTS.get(command, [])]
    run = cli(capsys, f"dualstorage_{command}", *args, "--skip-checks", "--json")
    assert run.status == 1 and run.stdout == "", run
    error = run.error()
    assert error["type"] == "ConfigurationError", error
    assert "dual_storage_app.E002" in error["check_ids"], error
    assert "misconfigured" in error["message"]


def test_system_checks_failing_on_the_command_line_are_json(
    settings: SettingsWrapper, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.DUAL_STORAGE = {"INTERNAL_STORAGE_ENDPOINT": "ftp://127.0.0.1:1"}
    run = cli(capsys, "dualstorage_check", "--json")
    assert run.status == 1 and run.stdout == ""
    error = run.error()
    assert error["type"] == "SystemCheckError" and "dual_storage_app.E002" in error["message"]


def test_call_command_with_json_writes_the_error_and_still_raises(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    """Python callers keep their exception; the JSON also goes to the stderr they gave."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="no such object") as caught:
        call_command(
            "dualstorage_download",
            "datasets",
            "--key",
            "datasets/none/missing.zip",
            str(tmp_path),
            "--json",
            stdout=out,
            stderr=err,
        )
    error = json.loads(err.getvalue())["error"]
    assert error["type"] == "ObjectNotFound" and error["message"] == str(caught.value)
    assert (error["store"], error["bucket"]) == ("external", "training-datasets")
    assert out.getvalue() == ""


def test_success_with_json_is_one_document_and_nothing_on_stderr(
    real_storage: DualStorageClient, capsys: pytest.CaptureFixture[str], unique_key: str
) -> None:
    real_storage.upload_dataset(file_obj=io.BytesIO(b"data"), dataset_key=f"{unique_key}/a.zip")
    run = cli(capsys, "dualstorage_presign", "--key", f"{unique_key}/a.zip", "--json")
    assert run.status == 0 and run.stderr == ""
    assert run.document()["key"] == f"{unique_key}/a.zip"

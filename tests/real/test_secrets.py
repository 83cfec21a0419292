"""No secret key leaks, on the real servers: not in any exception (wrong secret,
missing object, unreachable endpoint), log line (botocore DEBUG included), repr, Django
error report, check output or command output. (Admin pages: ``test_admin.py``; the
migration: ``test_models.py``.)

Issue 4, item 4.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.config.loading import load_config
from dual_storage_app.config.sources import resolve
from dual_storage_app.exceptions import (
    AccessDenied,
    ConfigurationError,
    DualStorageError,
    ObjectNotFound,
    StorageUnavailable,
)
from dual_storage_app.storages import ExternalStorage, InternalStorage
from dual_storage_app.testing.pair import EXTERNAL_SECRET, INTERNAL_SECRET
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.helpers import WRONG_SECRET, assert_no_secret, exception_text, real_settings, run_command
from tests.http import refusal_status

pytestmark = pytest.mark.real_s3


def store_operations(tmp_path: Path, big_file: Path) -> list[tuple[str, Callable[[], object]]]:
    """Operations on every store and bucket through every Python entry point; each one
    needs the server (so each fails with a wrong secret or an unreachable endpoint)."""
    small = tmp_path / "small.bin"
    small.write_bytes(b"small")
    dest = tmp_path / "dest.bin"
    client = dual_storage
    return [
        ("upload_weight", lambda: client.upload_weight(small, "leaks/w.bin")),
        ("upload_weight multipart", lambda: client.upload_weight(big_file, "leaks/big.bin")),
        ("download_weight", lambda: client.download_weight("leaks/w.bin", dest)),
        ("upload_checkpoint", lambda: client.upload_checkpoint(small, "leaks/c.bin")),
        ("download_checkpoint", lambda: client.download_checkpoint("leaks/c.bin", dest)),
        ("upload_schema", lambda: client.upload_schema("leaks", b"{}")),
        ("get_schema", lambda: client.get_schema("leaks-missing")),
        ("upload_dataset", lambda: client.upload_dataset(io.BytesIO(b"d"), "leaks/d.zip")),
        ("download_dataset", lambda: client.download_dataset("leaks/nope.zip", dest)),
        ("exists", lambda: client.exists("datasets", "leaks/nope.zip")),
        ("head", lambda: client.head("weights", "leaks/nope.bin")),
        ("delete", lambda: client.delete("checkpoints", "leaks/nope.bin")),
        ("list_objects", lambda: list(client.list_objects("schemas", "leaks/"))),
        ("create_buckets", client.create_buckets),
        ("InternalStorage.save", lambda: InternalStorage().save("leaks/s.bin", ContentFile(b"s"))),
        ("InternalStorage.open", lambda: InternalStorage().open("leaks/nope.bin")),
        ("ExternalStorage.size", lambda: ExternalStorage().size("leaks/nope.zip")),
        ("ExternalStorage.exists", lambda: ExternalStorage().exists("leaks/nope.zip")),
    ]


# -- exceptions --------------------------------------------------------------------------


def test_exceptions_carry_no_secret_with_a_wrong_secret(
    s3_servers: dict[str, LocalS3Server],
    _real_buckets: None,
    settings: SettingsWrapper,
    tmp_path: Path,
    big_file: Path,
) -> None:
    settings.DUAL_STORAGE = real_settings(
        s3_servers,
        INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
        EXTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
    )
    for label, operation in store_operations(tmp_path, big_file):
        with pytest.raises(AccessDenied) as caught:
            operation()
        assert "refused" in str(caught.value), label
        assert_no_secret(exception_text(caught.value), label)
    # Presigning makes no request, so it "works"; the URL carries a signature, no secret.
    url = dual_storage.generate_dataset_presigned_url("leaks/d.zip", 60)
    assert_no_secret(url, "presigned URL")
    assert refusal_status(url) == 403


def test_exceptions_carry_no_secret_for_missing_objects(
    real_storage: DualStorageClient, tmp_path: Path
) -> None:
    operations: list[Callable[[], object]] = [
        lambda: real_storage.download_weight("leaks/nope.bin", tmp_path / "d"),
        lambda: real_storage.download_dataset("leaks/nope.zip", tmp_path / "d"),
        lambda: real_storage.get_schema("leaks-nope"),
        lambda: real_storage.head("checkpoints", "leaks/nope.bin"),
        lambda: InternalStorage(kind="schemas").open("leaks/nope.json"),
        lambda: ExternalStorage().size("leaks/nope.zip"),
        lambda: real_storage.internal.copy("model-weights", "leaks/nope", "leaks/copy"),
    ]
    for operation in operations:
        with pytest.raises(ObjectNotFound) as caught:
            operation()
        assert_no_secret(exception_text(caught.value), "missing-object error")


def test_exceptions_carry_no_secret_for_an_unreachable_endpoint(
    s3_servers: dict[str, LocalS3Server],
    settings: SettingsWrapper,
    tmp_path: Path,
    big_file: Path,
) -> None:
    closed = f"http://127.0.0.1:{free_port_pair()}"  # nothing listens there
    settings.DUAL_STORAGE = real_settings(
        s3_servers, INTERNAL_STORAGE_ENDPOINT=closed, EXTERNAL_STORAGE_ENDPOINT=closed
    )

    def outcome(operation: Callable[[], object]) -> BaseException | None:
        try:
            operation()
        except BaseException as exc:
            return exc
        return None

    operations = store_operations(tmp_path, big_file)
    with ThreadPoolExecutor(len(operations)) as pool:  # retries back off: wait only once
        outcomes = list(pool.map(outcome, [op for _, op in operations]))
    for (label, _), exc in zip(operations, outcomes, strict=True):
        assert isinstance(exc, StorageUnavailable), (label, exc)
        assert "unreachable" in str(exc), label
        assert_no_secret(exception_text(exc), label)


# -- logs --------------------------------------------------------------------------------


def test_debug_logs_carry_no_secret(
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    big_file: Path,
    unique_key: str,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: botocore, s3transfer, urllib3 ...
    small = tmp_path / "w.bin"
    small.write_bytes(b"w")
    real_storage.upload_weight(small, unique_key)
    with big_file.open("rb") as handle:
        real_storage.upload_dataset(handle, f"{unique_key}/big.bin")
    real_storage.download_dataset(f"{unique_key}/big.bin", tmp_path / "back.bin")
    real_storage.download_weight(unique_key, tmp_path / "w2.bin")
    url = real_storage.generate_dataset_presigned_url(f"{unique_key}/big.bin", 60)
    storage = ExternalStorage()
    storage.save(f"{unique_key}/s.zip", ContentFile(b"s"))
    with storage.open(f"{unique_key}/s.zip") as handle:
        handle.read()
    storage.url(f"{unique_key}/s.zip")
    with pytest.raises(ObjectNotFound):
        real_storage.get_schema("leaks-missing")
    wrong = DualStorageClient(
        overrides=real_settings(
            s3_servers,
            INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
            EXTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
        )
    )
    with pytest.raises(AccessDenied):
        wrong.upload_weight(big_file, f"{unique_key}/denied.bin")
    with pytest.raises(AccessDenied):
        wrong.download_dataset(f"{unique_key}/big.bin", tmp_path / "denied")
    wrong.generate_dataset_presigned_url(f"{unique_key}/big.bin", 60)

    botocore_debug = [
        r for r in caplog.records if r.name.startswith("botocore") and r.levelno == logging.DEBUG
    ]
    assert any("Signature" in r.getMessage() for r in botocore_debug)  # signing was logged
    assert any(r.name.startswith("s3transfer") for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += exception_text(record.exc_info[1])
        assert_no_secret(text, f"log record from {record.name}")
    assert_no_secret(caplog.text, "captured log")
    assert "X-Amz-Signature" in url


# -- repr --------------------------------------------------------------------------------


def test_reprs_carry_no_secret(
    s3_servers: dict[str, LocalS3Server], real_storage: DualStorageClient
) -> None:
    real_storage.internal.client  # noqa: B018 - build the lazy clients first
    config = real_storage.config
    shown: list[object] = [
        dual_storage,
        real_storage,
        DualStorageClient(overrides=real_settings(s3_servers)),
        real_storage.internal,
        real_storage.external,
        config,
        config.internal,
        config.external,
        load_config(real_settings(s3_servers)),
        InternalStorage(),
        InternalStorage(kind="schemas"),
        ExternalStorage(),
        InternalStorage().deconstruct(),
        ExternalStorage().deconstruct(),
        *s3_servers.values(),
        resolve(),
        *resolve().values(),
        *resolve(real_settings(s3_servers)).values(),
    ]
    for value in shown:
        assert_no_secret(repr(value), f"repr of {type(value).__name__}")
        assert_no_secret(str(value), f"str of {type(value).__name__}")
    for storage in (InternalStorage(), ExternalStorage()):
        assert_no_secret(repr(vars(storage)), f"attributes of {storage!r}")
    # Django's error pages and reports show settings through this filter.
    safe = SafeExceptionReporterFilter().get_safe_settings()
    assert_no_secret(repr(safe["DUAL_STORAGE"]), "settings shown in error reports")


# -- error reports -----------------------------------------------------------------------


def failure_of(call: Callable[[], object]) -> BaseException:
    """The exception ``call`` raises, caught here so that its traceback starts in a frame
    without secrets (as in a view calling the API), not in the test."""
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("the call did not fail")


def html_error_report(exc: BaseException) -> str:
    """The report Django's AdminEmailHandler (include_html) and the DEBUG page render,
    frame variables included."""
    return ExceptionReporter(
        None, type(exc), exc, exc.__traceback__, is_email=True
    ).get_traceback_html()


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"INTERNAL_STORAGE_SECRET_KEY": WRONG_SECRET}, id="wrong-secret"),
        pytest.param({"INTERNAL_STORAGE_REGION": "not a region!"}, id="bad-region"),
    ],
)
def test_error_reports_show_no_secret_in_frame_variables(
    overrides: dict[str, str],
    s3_servers: dict[str, LocalS3Server],
    _real_buckets: None,
    settings: SettingsWrapper,
) -> None:
    """A failure inside the store client (here while the lazily built boto3 client is
    created, or when a request is refused) is reported by Django with every frame's
    local variables, in production (DEBUG off) too: no frame may hold a secret."""
    settings.DEBUG = False
    settings.DUAL_STORAGE = real_settings(s3_servers, **overrides)
    failure = failure_of(lambda: dual_storage.exists("weights", "leaks/report.bin"))
    assert isinstance(failure, (DualStorageError, ConfigurationError))
    assert_no_secret(html_error_report(failure), "Django error report")


# -- manage.py check ---------------------------------------------------------------------


BAD_CONFIGS = [
    pytest.param(
        {
            "INTERNAL_STORAGE_ENDPOINT": f"http://internal-access:{INTERNAL_SECRET}@127.0.0.1:9000",
            "INTERNAL_STORAGE_ACCESS_KEY": "internal-access",
            "INTERNAL_STORAGE_SECRET_KEY": INTERNAL_SECRET,
            "EXTERNAL_STORAGE_ENDPOINT": "ftp://r2.example.com",
            "EXTERNAL_STORAGE_SECRET_KEY": EXTERNAL_SECRET,
            "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": f"https://u:{EXTERNAL_SECRET}@cdn.example.com",
            "INTERNAL_STORAGE_PROVIDER": "nope",
            "INTERNAL_BUCKET_WEIGHTS": "Bad_Bucket",
            "SECRET_KEY_TYPO": WRONG_SECRET,
        },
        ["E002", "E003", "E004", "E005", "E006", "E007"],
        id="credentials-in-urls",
    ),
    pytest.param(
        {  # values pasted into the wrong settings
            "INTERNAL_STORAGE_ENDPOINT": INTERNAL_SECRET,
            "INTERNAL_STORAGE_SECRET_KEY": "http://127.0.0.1:9000",
            "EXTERNAL_STORAGE_ENDPOINT": EXTERNAL_SECRET,
            "EXTERNAL_STORAGE_ACCESS_KEY": WRONG_SECRET,
        },
        ["E002", "E003"],
        id="swapped-values",
    ),
]


@pytest.mark.parametrize(("config", "expected_ids"), BAD_CONFIGS)
def test_check_output_shows_no_secret(
    config: dict[str, str], expected_ids: list[str], settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = config
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", stdout=out, stderr=err)
    text = str(caught.value) + out.getvalue() + err.getvalue()
    for check_id in expected_ids:
        assert f"dual_storage_app.{check_id}" in text
    assert_no_secret(text, "manage.py check")
    with pytest.raises(ConfigurationError) as refused:
        DualStorageClient()
    assert_no_secret(exception_text(refused.value), "ConfigurationError")
    with pytest.raises(CommandError) as command:
        call_command("dualstorage_check", stdout=out, stderr=err)
    assert_no_secret(str(command.value) + out.getvalue() + err.getvalue(), "dualstorage_check")


def test_check_output_with_legacy_environment_shows_no_secret(
    monkeypatch: pytest.MonkeyPatch, settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = {}
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", f"http://key:{INTERNAL_SECRET}@127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "legacy-access")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", EXTERNAL_SECRET)
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", stdout=out, stderr=err)
    text = str(caught.value) + out.getvalue() + err.getvalue()
    assert "dual_storage_app.E003" in text and "dual_storage_app.W001" in text
    assert_no_secret(text, "manage.py check")


# -- command output ----------------------------------------------------------------------


@pytest.mark.django_db
def test_command_output_shows_no_secret(
    s3_servers: dict[str, LocalS3Server],
    public_endpoint: str,
    settings: SettingsWrapper,
    tmp_path: Path,
) -> None:
    weight_file = tmp_path / "w.pth"
    weight_file.write_bytes(b"weights")
    schema_file = tmp_path / "s.json"
    schema_file.write_bytes(b"{}")
    seed = tmp_path / "seed"
    (seed / "weights").mkdir(parents=True)
    (seed / "weights" / "seeded.pt").write_bytes(b"seeded")
    (seed / "schemas").mkdir()
    (seed / "schemas" / "seeded.json").write_bytes(b"{}")
    uploaded = json.loads(run_command("dualstorage_upload", "weights", str(weight_file), "--json"))
    dataset = json.loads(run_command("dualstorage_upload", "datasets", str(weight_file), "--json"))
    outputs = {
        "upload": run_command("dualstorage_upload", "weights", str(weight_file)),
        "upload schema": run_command(
            "dualstorage_upload", "schemas", str(schema_file), "--framework", "leak-fw", "--json"
        ),
        "upload checkpoint": run_command(
            "dualstorage_upload", "checkpoints", str(weight_file), "--job-id", "7"
        ),
        "download": run_command(
            "dualstorage_download", "weights", "--id", str(uploaded["id"]), str(tmp_path / "d1")
        ),
        "download --json": run_command(
            "dualstorage_download",
            "weights",
            "--key",
            uploaded["key"],
            str(tmp_path / "d2"),
            "--json",
        ),
        "presign": run_command("dualstorage_presign", "--id", str(dataset["id"])),
        "presign --json": run_command("dualstorage_presign", "--key", dataset["key"], "--json"),
        "presign internal": run_command("dualstorage_presign", "--kind", "weights", "--id", "1"),
        "list": run_command("dualstorage_list", "weights"),
        "list --store --json": run_command("dualstorage_list", "datasets", "--store", "--json"),
        "check": run_command("dualstorage_check"),
        "check --json": run_command("dualstorage_check", "--json"),
        "seed": run_command("dualstorage_seed", str(seed)),
        "seed --json": run_command("dualstorage_seed", str(seed), "--json"),
        "createbuckets": run_command("dualstorage_createbuckets"),
        # The embedded server refuses a port that is taken (the running test server's).
        "localserver": run_command("dualstorage_localserver", "--data-dir", str(tmp_path / "ls")),
    }
    assert "already in use" in outputs["localserver"]
    for label, output in outputs.items():
        assert_no_secret(output, label)
    for label in ("presign", "presign --json"):  # and the URL names the public endpoint
        urls = re.findall(r"https?://[^\s\"]+", outputs[label])
        assert urls and all(urlsplit(u).netloc == urlsplit(public_endpoint).netloc for u in urls)

    changed_seed = tmp_path / "changed-seed"
    (changed_seed / "weights").mkdir(parents=True)
    (changed_seed / "weights" / "seeded.pt").write_bytes(b"changed, so it must be stored")
    settings.DUAL_STORAGE = real_settings(
        s3_servers,
        INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
        EXTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
    )
    failures = {
        "upload": run_command("dualstorage_upload", "weights", str(weight_file), "--json"),
        "download": run_command(
            "dualstorage_download", "weights", "--id", str(uploaded["id"]), str(tmp_path / "d3")
        ),
        "presign": run_command("dualstorage_presign", "--key", "leaks/nope.zip"),
        "list --store": run_command("dualstorage_list", "weights", "--store"),
        "check": run_command("dualstorage_check"),
        "check --json": run_command("dualstorage_check", "--json"),
        "seed": run_command("dualstorage_seed", str(changed_seed)),
        "createbuckets": run_command("dualstorage_createbuckets"),
    }
    for label, output in failures.items():
        assert "refused" in output, label
        assert_no_secret(output, f"{label} with a wrong secret")

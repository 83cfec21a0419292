"""Nothing leaked, on the real servers: no secret key in any exception, log line (botocore
DEBUG included), repr, admin page, check output, command output, error report or
migration; presigned URLs always name the public endpoint; internal artifacts never get
a URL; both views refuse anonymous users and users without permission; no object is ever
public.

Issue 4, item 4.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter
from pytest_django import Settings as SettingsWrapper

import dual_storage_app
from dual_storage_app.client import DualStorageClient, dual_storage
from dual_storage_app.config.loading import load_config
from dual_storage_app.config.sources import resolve
from dual_storage_app.exceptions import (
    AccessDenied,
    ConfigurationError,
    DualStorageError,
    NoPublicURL,
    ObjectNotFound,
    StorageUnavailable,
)
from dual_storage_app.kinds import STORE_NAMES
from dual_storage_app.models import (
    Artifact,
    ConfigSchema,
    Dataset,
    ModelWeight,
    TrainingCheckpoint,
)
from dual_storage_app.storages import ExternalStorage, InternalStorage
from dual_storage_app.store.transfer import PART_SIZE
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.conftest import EXTERNAL_SECRET, INTERNAL_SECRET, real_settings
from tests.http import fetch, refusal_status

pytestmark = pytest.mark.real_s3
WRONG_SECRET = "wrong-secret-Jf62rTnB"
SECRETS = (INTERNAL_SECRET, EXTERNAL_SECRET, WRONG_SECRET)
INTERNAL_MODELS: tuple[type[Artifact], ...] = (ModelWeight, TrainingCheckpoint, ConfigSchema)
ALL_MODELS: tuple[type[Artifact], ...] = (*INTERNAL_MODELS, Dataset)


def assert_no_secret(text: str, what: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} contains the secret key {secret!r}"


def exception_text(exc: BaseException) -> str:
    """Everything a log or a traceback would print of ``exc`` and its causes."""
    return "\n".join(
        [str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)]
        + [f"{name}={value!r}" for name, value in vars(exc).items()]
    )


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(b"m" * (PART_SIZE + 1))  # multipart: two parts
    return path


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


# -- exceptions -------------------------------------------------------------------


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


# -- logs -------------------------------------------------------------------------


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


# -- repr -------------------------------------------------------------------------


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


# -- error reports ------------------------------------------------------------------


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
    assert isinstance(failure, DualStorageError)
    assert_no_secret(html_error_report(failure), "Django error report")


# -- admin pages ---------------------------------------------------------------------


def make(model: type[Artifact], data: bytes) -> Any:
    tag = uuid.uuid4().hex[:8]
    fields: dict[type[Artifact], dict[str, Any]] = {
        ModelWeight: {"framework": "torch"},
        TrainingCheckpoint: {"job_id": f"job-{tag}", "epoch": 1},
        ConfigSchema: {"framework": f"fw-{tag}"},
        Dataset: {},
    }
    artifact = model(name=f"{model.kind}-{tag}", **fields[model])
    artifact.file.save(f"{tag}.bin", ContentFile(data))
    return artifact


def admin_url(model: type[Artifact], view: str, *args: object) -> str:
    return reverse(f"admin:dual_storage_app_{model._meta.model_name}_{view}", args=args)


def private_endpoints(servers: dict[str, LocalS3Server]) -> list[str]:
    """How the two stores' real endpoints could appear in a page."""
    return [
        text
        for server in servers.values()
        for text in (server.endpoint_url, f"127.0.0.1:{server.s3_port}")
    ]


def assert_page_is_clean(
    content: bytes, servers: dict[str, LocalS3Server], what: str, *, internal: bool
) -> None:
    text = content.decode()
    assert_no_secret(text, what)
    for endpoint in private_endpoints(servers):
        assert endpoint not in text, f"{what} shows the endpoint {endpoint}"
    if internal:
        assert "X-Amz-Signature" not in text, f"{what} holds a presigned URL"
        assert "X-Amz-Credential" not in text, what


@pytest.mark.django_db
def test_admin_pages_show_no_secret_and_no_private_endpoint(
    public_endpoint: str,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
    django_user_model: Any,
) -> None:
    rows = {model: make(model, b"admin page " + model.kind.encode()) for model in ALL_MODELS}
    viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    view_only = Client()
    view_only.force_login(viewer)
    pages: list[tuple[Client, str, bool]] = [(admin_client, reverse("admin:index"), False)]
    pages.append((admin_client, reverse("admin:app_list", args=["dual_storage_app"]), False))
    for model, row in rows.items():
        internal = model in INTERNAL_MODELS
        for client in (admin_client, view_only):
            pages += [
                (client, admin_url(model, "changelist"), internal),
                (client, admin_url(model, "change", row.pk), internal),
                (client, admin_url(model, "history", row.pk), internal),
            ]
        pages += [
            (admin_client, admin_url(model, "add"), internal),
            (admin_client, admin_url(model, "delete", row.pk), internal),
            (admin_client, admin_url(model, "changelist") + f"?q={quote(row.key)}", internal),
        ]
    for client, url, internal in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_page_is_clean(response.content, s3_servers, url, internal=internal)

    dataset = rows[Dataset]
    action = {"action": "create_presigned_links", "_selected_action": [dataset.pk]}
    form = admin_client.post(admin_url(Dataset, "changelist"), action)
    assert_page_is_clean(form.content, s3_servers, "presign form", internal=True)
    result = admin_client.post(
        admin_url(Dataset, "changelist"), {**action, "expires": "60", "apply": "1"}
    )
    assert result.status_code == 200 and b"X-Amz-Signature" in result.content
    assert_page_is_clean(result.content, s3_servers, "presign result", internal=False)
    for model in INTERNAL_MODELS:  # the download action: a redirect into Django, no URL
        response = admin_client.post(
            admin_url(model, "changelist"),
            {"action": "download", "_selected_action": [rows[model].pk]},
        )
        assert response.status_code == 302
        assert response["Location"] == reverse(
            "dual_storage_app:artifact-download", args=[model.kind, rows[model].pk]
        )


@pytest.mark.django_db
def test_admin_store_failures_show_no_secret(
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
    admin_client: Client,
) -> None:
    rows = [make(model, b"x") for model in ALL_MODELS]
    settings.DUAL_STORAGE = real_settings(
        s3_servers,
        INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
        EXTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET,
    )
    for row in rows:
        model = type(row)
        for action in ("verify_integrity", "refresh_metadata"):
            response = admin_client.post(
                admin_url(model, "changelist"),
                {"action": action, "_selected_action": [row.pk]},
                follow=True,
            )
            assert response.status_code == 200
            text = " ".join(str(m) for m in response.context["messages"])
            assert "refused" in text, text
            assert_page_is_clean(response.content, s3_servers, action, internal=True)
    upload = admin_client.post(
        admin_url(ModelWeight, "add"),
        {"name": "denied", "framework": "", "file": ContentFile(b"w", name="w.pth")},
        follow=True,
    )
    assert_page_is_clean(upload.content, s3_servers, "failed add form", internal=True)


# -- manage.py check ---------------------------------------------------------------


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


# -- command output ------------------------------------------------------------------


def run_command(*args: str) -> str:
    """stdout and stderr of a command, and the message of a CommandError it raises."""
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err, no_color=True)
    except CommandError as exc:
        return out.getvalue() + err.getvalue() + exception_text(exc)
    return out.getvalue() + err.getvalue()


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


# -- the migration -------------------------------------------------------------------


@pytest.mark.django_db
def test_migration_freezes_no_endpoint_key_or_secret(real_storage: DualStorageClient) -> None:
    path = Path(dual_storage_app.__file__).parent / "migrations" / "0001_initial.py"
    source = path.read_text()
    strings = [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    for forbidden in (
        *SECRETS,
        "minioadmin",
        "http://",
        "https://",
        "127.0.0.1",
        "localhost",
        "30900",
        "amazonaws",
        "r2.cloudflarestorage",
        "internal-access",
        "external-access",
    ):
        assert forbidden not in source, forbidden
    assert not [s for s in strings if re.search(r"(?i)secret|access.?key|endpoint", s)]
    # Storages are frozen as import paths of callables, never as configured instances.
    storages = set(re.findall(r"storage=([\w.]+)", source))
    assert storages == {
        f"dual_storage_app.storages.{kind}_storage"
        for kind in ("weights", "checkpoints", "schemas", "datasets")
    }
    out = StringIO()
    call_command("makemigrations", "dual_storage_app", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


# -- presigned URLs use the public endpoint --------------------------------------------


@pytest.mark.django_db
def test_every_presigned_url_uses_the_public_endpoint(
    public_endpoint: str,
    admin_client: Client,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    data = b"dataset for a browser"
    dataset = make(Dataset, data)
    urls: dict[str, str] = {
        "client": dual_storage.generate_dataset_presigned_url(dataset.key, 60),
        "storage.url": ExternalStorage().url(dataset.key),
        "FieldFile.url": dataset.file.url,
    }
    result = admin_client.post(
        admin_url(Dataset, "changelist"),
        {
            "action": "create_presigned_links",
            "_selected_action": [dataset.pk],
            "expires": "60",
            "apply": "1",
        },
    )
    urls["admin action"] = dict(result.context["links"])[dataset]
    link = admin_client.get(reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk}))
    assert link.status_code == 302
    urls["dataset-link view"] = link["Location"]
    command = json.loads(run_command("dualstorage_presign", "--id", str(dataset.pk), "--json"))
    urls["presign command"] = command["url"]
    change = admin_client.get(admin_url(Dataset, "change", dataset.pk)).content.decode()
    hrefs = re.findall(r'href="(https?://[^"]+)"', change)
    assert hrefs, "the change form links the dataset"
    urls["change form"] = hrefs[0].replace("&amp;", "&")
    public = urlsplit(public_endpoint)
    for label, url in urls.items():
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == (public.scheme, public.netloc), label
        assert "X-Amz-Signature=" in url, label
        for endpoint in private_endpoints(s3_servers):
            assert endpoint not in url, label
        assert fetch(url) == data, label


# -- internal artifacts never get a URL ---------------------------------------------------


@pytest.mark.django_db
def test_internal_artifacts_never_get_a_url(
    real_storage: DualStorageClient, admin_client: Client, s3_servers: dict[str, LocalS3Server]
) -> None:
    for model in INTERNAL_MODELS:
        row = make(model, b"private " + model.kind.encode())
        with pytest.raises(NoPublicURL):
            _ = row.file.url
        with pytest.raises(NoPublicURL):
            InternalStorage(kind=model.kind).url(row.key)
        with pytest.raises(CommandError, match="never get a URL"):
            call_command("dualstorage_presign", "--kind", model.kind, "--id", str(row.pk))
        for page in (
            admin_url(model, "changelist"),
            admin_url(model, "change", row.pk),
            admin_url(model, "add"),
        ):
            response = admin_client.get(page)
            assert response.status_code == 200
            assert_page_is_clean(response.content, s3_servers, page, internal=True)


def test_the_internal_store_refuses_to_presign(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """The store-level primitive enforces the rule too: ``dual_storage.internal`` is a
    public attribute, and a presigned URL to the private store must never exist."""
    real_storage.upload_weight(Path(__file__), f"{unique_key}/private.py")
    with pytest.raises(NoPublicURL):
        real_storage.internal.presign_get("model-weights", f"{unique_key}/private.py", 60)


# -- the views refuse anonymous users and users without permission -------------------------


@pytest.mark.django_db
def test_views_refuse_anonymous_users_and_users_without_permission(
    real_storage: DualStorageClient,
    django_user_model: Any,
    s3_servers: dict[str, LocalS3Server],
) -> None:
    weight, dataset = make(ModelWeight, b"private weights"), make(Dataset, b"dataset")
    download = reverse("dual_storage_app:artifact-download", args=["weights", weight.pk])
    link = reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk})
    for url in (download, link):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{reverse('admin:login')}?next={quote(url)}"

    def user(staff: bool, *perms: str) -> Client:
        account = django_user_model.objects.create_user(
            username=f"u-{uuid.uuid4().hex[:8]}", password="pw", is_staff=staff
        )
        account.user_permissions.add(*Permission.objects.filter(codename__in=perms))
        client = Client()
        client.force_login(account)
        return client

    refused: list[tuple[Client, str]] = [
        (user(False), download),
        (user(True), download),
        (user(False, "view_modelweight"), download),  # permission, but not staff
        (user(True, "view_dataset"), download),  # another model's permission
        (user(False), link),
        (user(True), link),
        (user(True, "view_modelweight"), link),
    ]
    for client, url in refused:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Location" not in response
        assert b"private weights" not in response.content
        assert_page_is_clean(response.content, s3_servers, url, internal=True)


# -- objects are never public ---------------------------------------------------------------


class SentRequests:
    """The parameters and headers of every request sent to either store."""

    def __init__(self, client: DualStorageClient) -> None:
        self.params: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        for store in (client.internal, client.external):
            events = store.client.meta.events
            events.register("before-call.s3", self._call)
            events.register("before-send.s3", self._send)

    def _call(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        self.params.append((model.name, params))

    def _send(self, request: Any, **kwargs: Any) -> None:
        self.headers.append({k.lower(): str(v) for k, v in request.headers.items()})


PUBLIC_GRANTEES = ("AllUsers", "AuthenticatedUsers")


@pytest.mark.django_db
def test_objects_are_never_public(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    big_file: Path,
    unique_key: str,
) -> None:
    sent = SentRequests(real_storage)
    real_storage.upload_weight(big_file, f"{unique_key}/multipart.bin")
    real_storage.upload_checkpoint(Path(__file__), f"{unique_key}/c.py")
    real_storage.upload_schema(unique_key.replace("/", "-"), b"{}")
    with big_file.open("rb") as handle:
        real_storage.upload_dataset(handle, f"{unique_key}/multipart.zip")
    real_storage.internal.copy("model-weights", f"{unique_key}/multipart.bin", f"{unique_key}/copy")
    InternalStorage(kind="weights").save(f"{unique_key}/storage.bin", ContentFile(b"s"))
    ExternalStorage().save(f"{unique_key}/storage.zip", ContentFile(b"s"))
    rows = [make(model, b"row") for model in ALL_MODELS]
    objects = [
        ("internal", "model-weights", f"{unique_key}/multipart.bin"),
        ("internal", "model-weights", f"{unique_key}/copy"),
        ("internal", "training-checkpoints", f"{unique_key}/c.py"),
        ("internal", "config-schemas", f"{unique_key.replace('/', '-')}.json"),
        ("external", "training-datasets", f"{unique_key}/multipart.zip"),
        ("internal", "model-weights", f"{unique_key}/storage.bin"),
        ("external", "training-datasets", f"{unique_key}/storage.zip"),
        *[(row.store_name, row.bucket, row.key) for row in rows],
    ]
    for store_name, bucket, key in objects:
        endpoint = s3_servers[store_name].endpoint_url
        assert refusal_status(f"{endpoint}/{bucket}/{quote(key)}") == 403, key
        store = real_storage.store(store_name)
        grants = store.client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        for grant in grants:
            grantee = grant["Grantee"]
            assert grantee.get("Type") == "CanonicalUser", (key, grant)
            assert not any(g in grantee.get("URI", "") for g in PUBLIC_GRANTEES), (key, grant)
    for name in STORE_NAMES:
        endpoint = s3_servers[name].endpoint_url
        for bucket in real_storage.config.store(name).buckets.values():
            assert refusal_status(f"{endpoint}/{bucket}") == 403  # no anonymous listing
            acl = real_storage.store(name).client.get_bucket_acl(Bucket=bucket)
            assert all("URI" not in g["Grantee"] for g in acl["Grants"]), bucket
    operations = {operation for operation, _ in sent.params}
    assert {"PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject"} <= operations
    for operation, params in sent.params:
        assert not {p for p in params if p == "ACL" or p.startswith("Grant")}, operation
    for headers in sent.headers:
        assert not [h for h in headers if h == "x-amz-acl" or h.startswith("x-amz-grant")]

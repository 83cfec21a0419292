"""System checks: stable ids, a hint on every message, no secrets, no network."""

from __future__ import annotations

import socket
import time
from io import StringIO
from typing import Any

import pytest
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.checks import check_configuration
from dual_storage_app.config.loading import load_config
from tests.helpers import MOTO_SETTINGS

INTERNAL_SECRET = "int-secret-Qw3rTy9Z"
EXTERNAL_SECRET = "ext-secret-Mn8bVc2X"
LEGACY_SECRET = "legacy-secret-Lk5jHg1F"
SECRETS = (INTERNAL_SECRET, EXTERNAL_SECRET, LEGACY_SECRET)

VALID: dict[str, str] = {
    "INTERNAL_STORAGE_ENDPOINT": "http://minio.backend.svc:9000",
    "INTERNAL_STORAGE_ACCESS_KEY": "internal-access",
    "INTERNAL_STORAGE_SECRET_KEY": INTERNAL_SECRET,
    "EXTERNAL_STORAGE_ENDPOINT": "https://acct.r2.cloudflarestorage.com",
    "EXTERNAL_STORAGE_ACCESS_KEY": "external-access",
    "EXTERNAL_STORAGE_SECRET_KEY": EXTERNAL_SECRET,
}
SAME_SERVER: dict[str, str] = {
    **VALID,
    "EXTERNAL_STORAGE_ENDPOINT": "http://minio.backend.svc:9000",
}


def run_checks(
    settings: SettingsWrapper, dual_storage: Any = None, *, debug: bool = True
) -> list[CheckMessage]:
    settings.DEBUG = debug
    if dual_storage is not None:
        settings.DUAL_STORAGE = dual_storage
    messages = check_configuration()
    for message in messages:
        assert message.hint, f"{message.id} has no hint"
        text = f"{message.msg} {message.hint}"
        for secret in SECRETS:
            assert secret not in text, f"{message.id} leaks a secret"
        assert message.id is not None
        assert message.id.startswith("dual_storage_app.")
    return messages


def ids(messages: list[CheckMessage]) -> list[str]:
    return sorted(str(m.id) for m in messages)


def only(messages: list[CheckMessage], check_id: str) -> CheckMessage:
    found = [m for m in messages if m.id == f"dual_storage_app.{check_id}"]
    assert len(found) == 1, ids(messages)
    return found[0]


@pytest.mark.parametrize("debug", [True, False])
def test_valid_configuration_yields_no_messages(settings: SettingsWrapper, debug: bool) -> None:
    assert run_checks(settings, VALID, debug=debug) == []


def test_valid_configuration_from_environment_yields_no_messages(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    assert run_checks(settings, {}, debug=False) == []


def test_e001_missing_endpoint(settings: SettingsWrapper) -> None:
    config = {k: v for k, v in VALID.items() if k != "INTERNAL_STORAGE_ENDPOINT"}
    messages = run_checks(settings, config)
    assert ids(messages) == ["dual_storage_app.E001"]
    message = only(messages, "E001")
    assert isinstance(message, Error)
    assert "internal" in message.msg
    assert "INTERNAL_STORAGE_ENDPOINT" in message.msg
    assert message.hint is not None
    assert "AWS_S3_ENDPOINT_URL" in message.hint


def test_e001_for_both_stores_when_nothing_is_configured(settings: SettingsWrapper) -> None:
    messages = run_checks(settings, {})
    e001 = [m for m in messages if m.id == "dual_storage_app.E001"]
    assert len(e001) == 2
    assert {"internal", "external"} == {
        "internal" if "internal" in m.msg else "external" for m in e001
    }
    assert "dual_storage_app.E002" in ids(messages)


@pytest.mark.parametrize(
    "missing",
    [
        ("INTERNAL_STORAGE_ACCESS_KEY",),
        ("EXTERNAL_STORAGE_SECRET_KEY",),
        ("INTERNAL_STORAGE_ACCESS_KEY", "INTERNAL_STORAGE_SECRET_KEY"),
    ],
)
def test_e002_missing_credentials(settings: SettingsWrapper, missing: tuple[str, ...]) -> None:
    config = {k: v for k, v in VALID.items() if k not in missing}
    messages = run_checks(settings, config)
    assert ids(messages) == ["dual_storage_app.E002"]
    message = only(messages, "E002")
    for name in missing:
        assert name in message.msg


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("ftp://minio:9000", "http:// or https://"),
        ("minio:9000", "http:// or https://"),
        ("http://", "no host"),
        ("https:///bucket", "no host"),
        (f"http://admin:{INTERNAL_SECRET}@minio:9000", "credentials"),
        ("http://admin@minio:9000", "credentials"),
        ("http://minio:99999", "not a valid URL"),
        ("http://minio:9000?x=1", "query string"),
    ],
)
def test_e003_bad_endpoint_url(settings: SettingsWrapper, endpoint: str, problem: str) -> None:
    messages = run_checks(settings, {**VALID, "INTERNAL_STORAGE_ENDPOINT": endpoint})
    assert "dual_storage_app.E003" in ids(messages)
    message = only(messages, "E003")
    assert "INTERNAL_STORAGE_ENDPOINT" in message.msg
    assert problem in message.msg


@pytest.mark.parametrize("public", ["ftp://x", "datasets.example.com", "https://u:p@cdn.example"])
def test_e004_bad_public_endpoint(settings: SettingsWrapper, public: str) -> None:
    messages = run_checks(settings, {**VALID, "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": public})
    assert ids(messages) == ["dual_storage_app.E004"]
    assert "EXTERNAL_STORAGE_PUBLIC_ENDPOINT" in only(messages, "E004").msg


def test_good_public_endpoint_is_accepted(settings: SettingsWrapper) -> None:
    config = {**VALID, "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": "https://datasets.example.com"}
    assert run_checks(settings, config) == []


def test_e005_unknown_provider(settings: SettingsWrapper) -> None:
    messages = run_checks(settings, {**VALID, "EXTERNAL_STORAGE_PROVIDER": "b2"})
    assert ids(messages) == ["dual_storage_app.E005"]
    message = only(messages, "E005")
    assert "'b2'" in message.msg
    assert message.hint is not None
    assert "minio" in message.hint
    assert "r2" in message.hint
    assert "gcs" in message.hint


@pytest.mark.parametrize("provider", ["minio", "r2", "aws"])
def test_known_providers_pass(settings: SettingsWrapper, provider: str) -> None:
    assert run_checks(settings, {**VALID, "INTERNAL_STORAGE_PROVIDER": provider}) == []


@pytest.mark.parametrize(
    "bucket", ["Model_Weights", "ab", "a..b", "-weights", "weights-", "x" * 64, "with space"]
)
def test_e006_invalid_bucket_name(settings: SettingsWrapper, bucket: str) -> None:
    messages = run_checks(settings, {**VALID, "INTERNAL_BUCKET_SCHEMAS": bucket})
    assert ids(messages) == ["dual_storage_app.E006"]
    message = only(messages, "E006")
    assert "INTERNAL_BUCKET_SCHEMAS" in message.msg
    assert repr(bucket) in message.msg


def test_e007_unknown_key_in_dual_storage(settings: SettingsWrapper) -> None:
    messages = run_checks(settings, {**VALID, "INTERNAL_STORAGE_ENDPIONT": "http://typo:9000"})
    assert ids(messages) == ["dual_storage_app.E007"]
    message = only(messages, "E007")
    assert "INTERNAL_STORAGE_ENDPIONT" in message.msg
    assert message.hint is not None
    assert "INTERNAL_STORAGE_ENDPOINT" in message.hint


@pytest.mark.parametrize("value", [["INTERNAL_STORAGE_ENDPOINT"], "http://minio:9000", 42])
def test_e007_dual_storage_not_a_dict(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    for name, env_value in VALID.items():
        monkeypatch.setenv(name, env_value)
    messages = run_checks(settings, value)
    assert ids(messages) == ["dual_storage_app.E007"]
    assert type(value).__name__ in only(messages, "E007").msg


@pytest.mark.parametrize("debug", [True, False])
def test_e008_two_internal_kinds_share_a_bucket(settings: SettingsWrapper, debug: bool) -> None:
    config = {**VALID, "INTERNAL_BUCKET_CHECKPOINTS": "model-weights"}
    messages = run_checks(settings, config, debug=debug)
    assert ids(messages) == ["dual_storage_app.E008"]
    message = only(messages, "E008")
    assert isinstance(message, Error)
    assert "INTERNAL_BUCKET_WEIGHTS" in message.msg
    assert "INTERNAL_BUCKET_CHECKPOINTS" in message.msg


def test_e008_internal_and_external_share_a_bucket_in_production(
    settings: SettingsWrapper,
) -> None:
    config = {**SAME_SERVER, "EXTERNAL_BUCKET_DATASETS": "model-weights"}
    messages = run_checks(settings, config, debug=False)
    assert "dual_storage_app.E008" in ids(messages)
    assert "dual_storage_app.W003" not in ids(messages)
    message = only(messages, "E008")
    assert "EXTERNAL_BUCKET_DATASETS" in message.msg


def test_w003_internal_and_external_share_a_bucket_in_development(
    settings: SettingsWrapper,
) -> None:
    config = {**SAME_SERVER, "EXTERNAL_BUCKET_DATASETS": "model-weights"}
    messages = run_checks(settings, config, debug=True)
    assert ids(messages) == ["dual_storage_app.W003"]
    message = only(messages, "W003")
    assert isinstance(message, CheckWarning)
    assert not message.is_serious()


def test_same_bucket_name_on_different_servers_is_fine(settings: SettingsWrapper) -> None:
    config = {**VALID, "EXTERNAL_BUCKET_DATASETS": "model-weights"}
    assert run_checks(settings, config, debug=False) == []


def test_w001_legacy_variables_in_use(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", "http://localhost:30900")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "legacy-access")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LEGACY_SECRET)
    monkeypatch.setenv("S3_BUCKET_DATASETS", "old-datasets")
    messages = run_checks(settings, {}, debug=True)
    assert ids(messages) == ["dual_storage_app.W001"]
    message = only(messages, "W001")
    assert isinstance(message, CheckWarning)
    for name in (
        "AWS_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "S3_BUCKET_DATASETS",
    ):
        assert name in message.msg


def test_no_w001_when_new_variables_win(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", "http://localhost:30900")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "legacy-access")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LEGACY_SECRET)
    assert run_checks(settings, VALID, debug=False) == []


def test_w002_same_endpoint_in_production(settings: SettingsWrapper) -> None:
    messages = run_checks(settings, SAME_SERVER, debug=False)
    assert ids(messages) == ["dual_storage_app.W002"]
    assert isinstance(only(messages, "W002"), CheckWarning)


def test_no_w002_in_development(settings: SettingsWrapper) -> None:
    assert run_checks(settings, SAME_SERVER, debug=True) == []


def test_w002_sees_through_a_trailing_slash(settings: SettingsWrapper) -> None:
    config = {**SAME_SERVER, "EXTERNAL_STORAGE_ENDPOINT": "http://minio.backend.svc:9000/"}
    assert ids(run_checks(settings, config, debug=False)) == ["dual_storage_app.W002"]


@pytest.mark.parametrize(
    ("internal", "external"),
    [
        ("http://127.0.0.1:9000", "http://localhost:9000"),
        ("http://localhost:9000", "http://[::1]:9000"),
        ("http://127.0.0.2:9000", "http://LOCALHOST.:9000"),
        ("http://minio.backend", "http://minio.backend:80"),
        ("https://MinIO.example.com", "https://minio.example.com:443/"),
    ],
)
def test_two_spellings_of_one_server_are_one_server(
    settings: SettingsWrapper, internal: str, external: str
) -> None:
    """E008 and W002 compare who answers, not the text of the URL: otherwise a dataset
    link could point into an internal bucket on the same server."""
    config = {
        **VALID,
        "INTERNAL_STORAGE_ENDPOINT": internal,
        "EXTERNAL_STORAGE_ENDPOINT": external,
        "EXTERNAL_BUCKET_DATASETS": "model-weights",
    }
    production = ids(run_checks(settings, config, debug=False))
    assert "dual_storage_app.E008" in production and "dual_storage_app.W002" in production
    assert ids(run_checks(settings, config, debug=True)) == ["dual_storage_app.W003"]


def test_other_ports_and_hosts_stay_different_servers(settings: SettingsWrapper) -> None:
    for internal, external in (
        ("http://127.0.0.1:9000", "http://127.0.0.1:9001"),
        ("http://minio.backend:80", "https://minio.backend"),
        ("http://10.0.0.1:9000", "http://127.0.0.1:9000"),
    ):
        config = {
            **VALID,
            "INTERNAL_STORAGE_ENDPOINT": internal,
            "EXTERNAL_STORAGE_ENDPOINT": external,
            "EXTERNAL_BUCKET_DATASETS": "model-weights",
        }
        assert run_checks(settings, config, debug=False) == [], (internal, external)


# Django 6.1's check of JSONField reads the database's features.
@pytest.mark.django_db
def test_manage_py_check_fails_on_bad_configuration(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {k: v for k, v in VALID.items() if k != "INTERNAL_STORAGE_ENDPOINT"}
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "dual_storage_app.E001" in str(excinfo.value)
    assert "INTERNAL_STORAGE_ENDPOINT" in str(excinfo.value)
    assert INTERNAL_SECRET not in str(excinfo.value)
    assert EXTERNAL_SECRET not in str(excinfo.value)


# Django 6.1's check of JSONField reads the database's features.
@pytest.mark.django_db
def test_manage_py_check_passes_on_valid_configuration(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = VALID
    out = StringIO()
    call_command("check", stdout=out, stderr=StringIO())
    assert "no issues" in out.getvalue()


# Django 6.1's check of JSONField reads the database's features.
@pytest.mark.django_db
def test_checks_make_no_network_io(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args))
        raise AssertionError("system checks must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # Unroutable endpoints: a probe would hang until its timeout instead of failing fast.
    config = {
        **VALID,
        "INTERNAL_STORAGE_ENDPOINT": "http://10.255.255.1:9000",
        "EXTERNAL_STORAGE_ENDPOINT": "https://unreachable.invalid",
        "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": "https://also-unreachable.invalid",
    }
    start = time.perf_counter()
    messages = run_checks(settings, config, debug=False)
    call_command("check", stdout=StringIO(), stderr=StringIO())
    elapsed = time.perf_counter() - start
    assert messages == []
    assert attempts == []
    assert elapsed < 2.0


@pytest.mark.parametrize("region", ["eu west 1", "us-east-1/..", "-bad", "x" * 70])
def test_e009_bad_region(settings: SettingsWrapper, region: str) -> None:
    messages = run_checks(settings, {**VALID, "INTERNAL_STORAGE_REGION": region})
    assert ids(messages) == ["dual_storage_app.E009"]
    assert "INTERNAL_STORAGE_REGION" in only(messages, "E009").msg


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "auto"])
def test_good_regions_pass(settings: SettingsWrapper, region: str) -> None:
    assert run_checks(settings, {**VALID, "EXTERNAL_STORAGE_REGION": region}) == []


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_record_catalog_must_be_a_boolean(settings: SettingsWrapper, value: str) -> None:
    settings.DUAL_STORAGE = {**MOTO_SETTINGS, "RECORD_CATALOG": value}
    messages = [m for m in check_configuration() if m.id == "dual_storage_app.E011"]
    assert len(messages) == 1 and repr(value) in messages[0].msg
    assert messages[0].hint and "true" in messages[0].hint


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("off", False), ("YES", True), ("1", True), ("0", False)],
)
def test_record_catalog_takes_booleans_and_their_words(
    settings: SettingsWrapper, value: object, expected: bool
) -> None:
    settings.DUAL_STORAGE = {**MOTO_SETTINGS, "RECORD_CATALOG": value}
    assert not [m for m in check_configuration() if m.id == "dual_storage_app.E011"]
    assert load_config().record_catalog is expected

"""Configuration precedence, provider profiles and secret hygiene (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.config.loading import load_config
from dual_storage_app.config.providers import PROFILES, detect_provider
from dual_storage_app.config.sources import DEFAULTS, resolve
from dual_storage_app.config.stores import DualStorageSettings
from dual_storage_app.exceptions import ConfigurationError
from dual_storage_app.store import Store

INTERNAL_SECRET = "int-secret-9fQ2xLw7"
EXTERNAL_SECRET = "ext-secret-3kPz8RtY"
INTERNAL_ACCESS = "int-access-AKID4411"
EXTERNAL_ACCESS = "ext-access-AKID5522"
LEGACY_SECRET = "legacy-secret-Hj6Vb2Nq"
LEGACY_ACCESS = "legacy-access-AKID7733"

FULL_ENV: dict[str, str] = {
    "INTERNAL_STORAGE_ENDPOINT": "http://minio.internal:9000",
    "INTERNAL_STORAGE_ACCESS_KEY": INTERNAL_ACCESS,
    "INTERNAL_STORAGE_SECRET_KEY": INTERNAL_SECRET,
    "EXTERNAL_STORAGE_ENDPOINT": "https://acct.r2.cloudflarestorage.com",
    "EXTERNAL_STORAGE_ACCESS_KEY": EXTERNAL_ACCESS,
    "EXTERNAL_STORAGE_SECRET_KEY": EXTERNAL_SECRET,
}
LEGACY_ENV: dict[str, str] = {
    "AWS_S3_ENDPOINT_URL": "http://localhost:30900",
    "AWS_ACCESS_KEY_ID": LEGACY_ACCESS,
    "AWS_SECRET_ACCESS_KEY": LEGACY_SECRET,
}
NAME = "INTERNAL_STORAGE_ENDPOINT"


# -- precedence ----------------------------------------------------------------


def test_defaults_name_the_four_buckets() -> None:
    values = resolve(environ={})
    assert values["INTERNAL_BUCKET_WEIGHTS"].value == "model-weights"
    assert values["INTERNAL_BUCKET_CHECKPOINTS"].value == "training-checkpoints"
    assert values["INTERNAL_BUCKET_SCHEMAS"].value == "config-schemas"
    assert values["EXTERNAL_BUCKET_DATASETS"].value == "training-datasets"
    assert values["INTERNAL_BUCKET_WEIGHTS"].origin == "default"
    assert values[NAME].value is None
    assert values[NAME].origin == "unset"
    assert set(values) == set(DEFAULTS)


def test_default_buckets_reach_the_built_config() -> None:
    config = load_config(environ=FULL_ENV)
    assert dict(config.internal.buckets) == {
        "weights": "model-weights",
        "checkpoints": "training-checkpoints",
        "schemas": "config-schemas",
    }
    assert dict(config.external.buckets) == {"datasets": "training-datasets"}
    assert config.store_for("datasets") is config.external
    assert config.store_for("schemas") is config.internal


def test_explicit_overrides_beat_settings_env_and_legacy(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {NAME: "http://from-settings:9000"}
    environ = {NAME: "http://from-env:9000", "AWS_S3_ENDPOINT_URL": "http://from-legacy:9000"}
    resolved = resolve({NAME: "http://from-overrides:9000"}, environ)[NAME]
    assert resolved.value == "http://from-overrides:9000"
    assert resolved.origin == "explicit overrides"


def test_settings_beat_env_and_legacy(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {NAME: "http://from-settings:9000"}
    environ = {NAME: "http://from-env:9000", "AWS_S3_ENDPOINT_URL": "http://from-legacy:9000"}
    resolved = resolve(environ=environ)[NAME]
    assert resolved.value == "http://from-settings:9000"
    assert resolved.origin == f"settings.DUAL_STORAGE[{NAME!r}]"


def test_env_beats_legacy_and_defaults() -> None:
    environ = {
        NAME: "http://from-env:9000",
        "AWS_S3_ENDPOINT_URL": "http://from-legacy:9000",
        "EXTERNAL_BUCKET_DATASETS": "new-datasets",
        "S3_BUCKET_DATASETS": "legacy-datasets",
    }
    values = resolve(environ=environ)
    assert values[NAME].value == "http://from-env:9000"
    assert values[NAME].origin == f"environment variable {NAME}"
    assert values["EXTERNAL_BUCKET_DATASETS"].value == "new-datasets"


def test_legacy_beats_defaults() -> None:
    values = resolve(environ={"S3_BUCKET_DATASETS": "legacy-datasets"})
    assert values["EXTERNAL_BUCKET_DATASETS"].value == "legacy-datasets"
    assert values["EXTERNAL_BUCKET_DATASETS"].origin == (
        "legacy environment variable S3_BUCKET_DATASETS"
    )
    # Legacy names only supply the datasets bucket, not the internal ones.
    assert values["INTERNAL_BUCKET_WEIGHTS"].value == "model-weights"


def test_lower_levels_win_when_higher_are_absent(settings: SettingsWrapper) -> None:
    """The same chain read from the bottom: each level is used once those above are gone."""
    environ = {NAME: "http://from-env:9000", "AWS_S3_ENDPOINT_URL": "http://from-legacy:9000"}
    settings.DUAL_STORAGE = {NAME: "http://from-settings:9000"}
    assert resolve({}, environ)[NAME].value == "http://from-settings:9000"
    settings.DUAL_STORAGE = {}
    assert resolve({}, environ)[NAME].value == "http://from-env:9000"
    del environ[NAME]
    assert resolve({}, environ)[NAME].value == "http://from-legacy:9000"
    assert resolve({}, {})[NAME].value is None


def test_settings_are_read_on_every_call(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {"INTERNAL_BUCKET_WEIGHTS": "first-weights"}
    assert resolve(environ={})["INTERNAL_BUCKET_WEIGHTS"].value == "first-weights"
    settings.DUAL_STORAGE = {"INTERNAL_BUCKET_WEIGHTS": "second-weights"}
    assert resolve(environ={})["INTERNAL_BUCKET_WEIGHTS"].value == "second-weights"


def test_non_dict_settings_value_is_ignored_by_resolve(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = ["INTERNAL_STORAGE_ENDPOINT"]
    assert resolve(environ={NAME: "http://from-env:9000"})[NAME].value == "http://from-env:9000"


def test_process_environment_is_read_when_environ_is_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(NAME, "http://from-os-environ:9000")
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", "http://from-legacy:9000")
    monkeypatch.setenv("S3_BUCKET_DATASETS", "legacy-datasets")
    values = resolve()
    assert values[NAME].value == "http://from-os-environ:9000"
    assert values["EXTERNAL_STORAGE_ENDPOINT"].value == "http://from-legacy:9000"
    assert values["EXTERNAL_BUCKET_DATASETS"].value == "legacy-datasets"


def test_environ_argument_replaces_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(NAME, "http://from-os-environ:9000")
    assert resolve(environ={})[NAME].value is None


@pytest.mark.parametrize("empty", ["", None])
def test_empty_override_counts_as_unset(settings: SettingsWrapper, empty: str | None) -> None:
    settings.DUAL_STORAGE = {NAME: "http://from-settings:9000"}
    assert resolve({NAME: empty}, {})[NAME].value == "http://from-settings:9000"


def test_empty_values_fall_through_every_level(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {NAME: "", "EXTERNAL_BUCKET_DATASETS": ""}
    environ = {
        NAME: "",
        "AWS_S3_ENDPOINT_URL": "http://from-legacy:9000",
        "EXTERNAL_BUCKET_DATASETS": "",
        "S3_BUCKET_DATASETS": "",
    }
    values = resolve({NAME: ""}, environ)
    assert values[NAME].value == "http://from-legacy:9000"
    assert values["EXTERNAL_BUCKET_DATASETS"].value == "training-datasets"
    assert values["EXTERNAL_BUCKET_DATASETS"].origin == "default"
    environ["AWS_S3_ENDPOINT_URL"] = ""
    assert resolve({}, environ)[NAME].value is None


def test_empty_env_value_does_not_hide_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERNAL_STORAGE_SECRET_KEY", "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LEGACY_SECRET)
    assert resolve()["INTERNAL_STORAGE_SECRET_KEY"].value == LEGACY_SECRET


# -- legacy works, new wins ----------------------------------------------------------


def test_legacy_variables_configure_both_stores() -> None:
    config = load_config(environ={**LEGACY_ENV, "S3_BUCKET_DATASETS": "old-datasets"})
    for store in (config.internal, config.external):
        assert store.endpoint_url == "http://localhost:30900"
        assert store.access_key == LEGACY_ACCESS
        assert store.secret_key == LEGACY_SECRET
    assert config.external.buckets["datasets"] == "old-datasets"
    assert config.legacy_names == (
        "AWS_ACCESS_KEY_ID",
        "AWS_S3_ENDPOINT_URL",
        "AWS_SECRET_ACCESS_KEY",
        "S3_BUCKET_DATASETS",
    )


def test_new_variables_win_over_legacy() -> None:
    config = load_config(
        environ={
            **LEGACY_ENV,
            **FULL_ENV,
            "S3_BUCKET_DATASETS": "old-datasets",
            "EXTERNAL_BUCKET_DATASETS": "new-datasets",
        }
    )
    assert config.internal.endpoint_url == "http://minio.internal:9000"
    assert config.internal.secret_key == INTERNAL_SECRET
    assert config.external.endpoint_url == "https://acct.r2.cloudflarestorage.com"
    assert config.external.access_key == EXTERNAL_ACCESS
    assert config.external.buckets["datasets"] == "new-datasets"
    assert config.legacy_names == ()


def test_new_variable_for_one_store_leaves_legacy_for_the_other() -> None:
    config = load_config(
        environ={
            **LEGACY_ENV,
            "EXTERNAL_STORAGE_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
            "EXTERNAL_STORAGE_ACCESS_KEY": EXTERNAL_ACCESS,
            "EXTERNAL_STORAGE_SECRET_KEY": EXTERNAL_SECRET,
        }
    )
    assert config.internal.endpoint_url == "http://localhost:30900"
    assert config.internal.secret_key == LEGACY_SECRET
    assert config.external.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert config.external.secret_key == EXTERNAL_SECRET
    assert "AWS_S3_ENDPOINT_URL" in config.legacy_names


def test_a_store_never_borrows_part_of_its_connection_from_legacy() -> None:
    """A forgotten secret is reported, not silently taken from AWS_SECRET_ACCESS_KEY."""
    environ = {
        **LEGACY_ENV,
        "EXTERNAL_STORAGE_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
        "EXTERNAL_STORAGE_ACCESS_KEY": EXTERNAL_ACCESS,
    }
    values = resolve(environ=environ)
    assert values["EXTERNAL_STORAGE_SECRET_KEY"].value is None
    assert values["INTERNAL_STORAGE_SECRET_KEY"].value == LEGACY_SECRET
    with pytest.raises(ConfigurationError, match="EXTERNAL_STORAGE_SECRET_KEY") as caught:
        load_config(environ=environ)
    assert "E002" in str(caught.value)
    assert LEGACY_SECRET not in str(caught.value)


def test_settings_win_over_legacy_env(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {
        "INTERNAL_STORAGE_ENDPOINT": "http://minio.internal:9000",
        "INTERNAL_STORAGE_ACCESS_KEY": INTERNAL_ACCESS,
        "INTERNAL_STORAGE_SECRET_KEY": INTERNAL_SECRET,
    }
    config = load_config(environ=LEGACY_ENV)
    assert config.internal.secret_key == INTERNAL_SECRET
    assert config.internal.endpoint_url == "http://minio.internal:9000"
    assert config.external.secret_key == LEGACY_SECRET


def test_repr_of_resolved_values_masks_keys() -> None:
    values = resolve(environ={**LEGACY_ENV, "INTERNAL_STORAGE_SECRET_KEY": INTERNAL_SECRET})
    rendered = repr(values)
    assert INTERNAL_SECRET not in rendered and LEGACY_SECRET not in rendered
    assert "'***'" in rendered


# -- unknown names -------------------------------------------------------------


def test_unknown_override_name_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        resolve({"INTERNAL_STORAGE_ENDPIONT": "http://typo:9000"}, {})
    assert isinstance(excinfo.value, ImproperlyConfigured)
    assert "INTERNAL_STORAGE_ENDPIONT" in str(excinfo.value)
    assert "INTERNAL_STORAGE_ENDPOINT" in str(excinfo.value)  # the known names are listed


def test_unknown_override_name_is_refused_by_load_config_too() -> None:
    with pytest.raises(ImproperlyConfigured, match="AWS_ACCESS_KEY_ID"):
        load_config({**FULL_ENV, "AWS_ACCESS_KEY_ID": "x"}, {})


# -- providers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "provider", "addressing", "region"),
    [
        ("https://0123abcd.r2.cloudflarestorage.com", "r2", "path", "auto"),
        ("https://ACCT.R2.CloudflareStorage.com/", "r2", "path", "auto"),
        ("https://s3.amazonaws.com", "aws", "virtual", "us-east-1"),
        ("https://s3.eu-west-1.amazonaws.com", "aws", "virtual", None),
        ("http://localhost:30900", "minio", "path", "us-east-1"),
        ("http://minio.svc.cluster.local:9000", "minio", "path", "us-east-1"),
        ("https://storage.googleapis.com", "gcs", "path", "auto"),
        ("https://evil-amazonaws.com", "minio", "path", "us-east-1"),
        ("https://r2.cloudflarestorage.com.evil.example", "minio", "path", "us-east-1"),
    ],
)
def test_provider_is_detected_from_the_endpoint(
    endpoint: str, provider: str, addressing: str, region: str | None
) -> None:
    assert detect_provider(endpoint).name == provider
    config = load_config(environ={**FULL_ENV, "EXTERNAL_STORAGE_ENDPOINT": endpoint})
    assert config.external.provider.name == provider
    assert config.external.provider.addressing_style == addressing
    if region is not None:  # a regional AWS endpoint's region is not asserted here
        assert config.external.region == region


def test_explicit_provider_wins_over_detection() -> None:
    config = load_config(
        environ={
            **FULL_ENV,
            "INTERNAL_STORAGE_PROVIDER": "r2",
            "EXTERNAL_STORAGE_PROVIDER": "minio",
        }
    )
    assert config.internal.provider is PROFILES["r2"]
    assert config.internal.region == "auto"
    assert config.external.provider is PROFILES["minio"]
    assert config.external.provider.addressing_style == "path"


def test_explicit_region_wins_over_provider_default() -> None:
    config = load_config(environ={**FULL_ENV, "EXTERNAL_STORAGE_REGION": "eu-central-1"})
    assert config.external.provider.name == "r2"
    assert config.external.region == "eu-central-1"


def test_unknown_explicit_provider_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="INTERNAL_STORAGE_PROVIDER"):
        load_config(environ={**FULL_ENV, "INTERNAL_STORAGE_PROVIDER": "b2"})


def options(config: Config) -> dict[str, Any]:
    """The options a botocore ``Config`` was built with (its stubs declare none of them)."""
    names = (
        "request_checksum_calculation",
        "response_checksum_validation",
        "retries",
        "signature_version",
        "s3",
    )
    return {name: getattr(config, name) for name in names}


@pytest.mark.parametrize("provider", ["minio", "r2"])
def test_s3_compatible_providers_send_checksums_only_when_required(provider: str) -> None:
    config = options(
        PROFILES[provider].botocore_config(
            max_pool_connections=4, connect_timeout=1, read_timeout=1
        )
    )
    assert config["request_checksum_calculation"] == "when_required"
    assert config["response_checksum_validation"] == "when_required"
    assert config["retries"]["mode"] == "standard"
    assert config["signature_version"] == "s3v4"
    assert config["s3"] == {"addressing_style": "path"}


def test_aws_profile_keeps_default_checksums_and_standard_retries() -> None:
    config = options(
        PROFILES["aws"].botocore_config(max_pool_connections=4, connect_timeout=1, read_timeout=1)
    )
    assert config["request_checksum_calculation"] == "when_supported"
    assert config["retries"]["mode"] == "standard"
    assert config["s3"] == {"addressing_style": "virtual"}


def test_built_boto3_clients_carry_the_provider_config() -> None:
    """The botocore config reaches the real (lazily built, request-free) clients."""
    config = load_config(environ=FULL_ENV)
    for store_config in (config.internal, config.external):
        client_config = options(Store(store_config).client.meta.config)
        assert client_config["request_checksum_calculation"] == "when_required"
        assert client_config["response_checksum_validation"] == "when_required"
        assert client_config["retries"]["mode"] == "standard"
    assert Store(config.external).client.meta.region_name == "auto"


# -- public endpoint -------------------------------------------------------------


def test_public_endpoint_defaults_to_the_external_endpoint() -> None:
    config = load_config(environ={**FULL_ENV, "EXTERNAL_STORAGE_ENDPOINT": "https://s3.x.io/"})
    assert config.external.public_endpoint_url == "https://s3.x.io"
    assert config.external.endpoint_url == "https://s3.x.io"
    assert config.internal.public_endpoint_url is None


def test_public_endpoint_is_used_when_set() -> None:
    config = load_config(
        environ={**FULL_ENV, "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": "https://datasets.example.com/"}
    )
    assert config.external.public_endpoint_url == "https://datasets.example.com"
    assert config.external.endpoint_url == "https://acct.r2.cloudflarestorage.com"


# -- secrets ---------------------------------------------------------------------


def _assert_no_credentials(text: str) -> None:
    for value in (INTERNAL_SECRET, EXTERNAL_SECRET, INTERNAL_ACCESS, EXTERNAL_ACCESS):
        assert value not in text


def test_reprs_never_show_keys() -> None:
    config = load_config(environ=FULL_ENV)
    assert isinstance(config, DualStorageSettings)
    _assert_no_credentials(repr(config))
    _assert_no_credentials(repr(config.internal))
    _assert_no_credentials(repr(config.external))
    _assert_no_credentials(str(config))
    assert "minio.internal" in repr(config.internal)  # the repr still says something useful


@pytest.mark.parametrize(
    "missing",
    [
        "INTERNAL_STORAGE_ENDPOINT",
        "INTERNAL_STORAGE_ACCESS_KEY",
        "EXTERNAL_STORAGE_SECRET_KEY",
        "EXTERNAL_STORAGE_ENDPOINT",
    ],
)
def test_load_config_names_the_missing_variable_and_never_the_secret(missing: str) -> None:
    environ = {k: v for k, v in FULL_ENV.items() if k != missing}
    with pytest.raises(ConfigurationError) as excinfo:
        load_config(environ=environ)
    message = str(excinfo.value)
    assert missing in message
    assert isinstance(excinfo.value, ImproperlyConfigured)
    assert INTERNAL_SECRET not in message
    assert EXTERNAL_SECRET not in message


def test_load_config_error_never_shows_a_secret_given_in_the_wrong_place() -> None:
    environ = {**FULL_ENV, "INTERNAL_STORAGE_ENDPOINT": f"http://user:{INTERNAL_SECRET}@minio:9000"}
    with pytest.raises(ConfigurationError) as excinfo:
        load_config(environ=environ)
    assert "INTERNAL_STORAGE_ENDPOINT" in str(excinfo.value)
    assert INTERNAL_SECRET not in str(excinfo.value)


def test_load_config_with_nothing_set_names_every_missing_endpoint() -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        load_config(environ={})
    message = str(excinfo.value)
    assert "INTERNAL_STORAGE_ENDPOINT" in message
    assert "EXTERNAL_STORAGE_ENDPOINT" in message
    assert "AWS_S3_ENDPOINT_URL" in message  # the hint lists the legacy name as well


def test_r2_records_no_tags_and_minio_does() -> None:
    assert PROFILES["r2"].supports_tagging is False
    assert PROFILES["minio"].supports_tagging is True
    assert PROFILES["aws"].supports_tagging is True

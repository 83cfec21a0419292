"""Two error trees on the real servers: a storage failure carries the S3 error code and
HTTP status as attributes; a misconfiguration is not a storage failure (django-anymail
keeps the two apart), names its check ids and never a setting's value, and the admin
reports it once, not once per selected row."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.config.loading import load_config
from dual_storage_app.exceptions import (
    AccessDenied,
    ConfigurationError,
    DualStorageError,
    ObjectNotFound,
    StorageUnavailable,
)
from dual_storage_app.models import Dataset, ModelWeight
from dual_storage_app.testing.server import LocalS3Server, free_port_pair
from tests.helpers import changelist, close_clients, levels, make, real_settings

pytestmark = [pytest.mark.real_s3]

WRONG_SECRET = "not-the-secret-0123456789"


def broken_settings(servers: dict[str, LocalS3Server]) -> dict[str, str]:
    """An internal endpoint that is no URL (E002) and no external secret (E003)."""
    broken = {**real_settings(servers), "INTERNAL_STORAGE_ENDPOINT": "ftp://127.0.0.1:1"}
    broken.pop("EXTERNAL_STORAGE_SECRET_KEY")
    return broken


def test_a_misconfiguration_is_not_a_storage_error(s3_servers: dict[str, LocalS3Server]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(broken_settings(s3_servers), environ={})
    error = caught.value
    assert not isinstance(error, DualStorageError)
    assert isinstance(error, ImproperlyConfigured)
    assert error.check_ids == ("dual_storage_app.E002", "dual_storage_app.E003")
    public = error.public_message()
    assert "dual_storage_app.E002, dual_storage_app.E003" in public
    assert "manage.py check" in public
    assert "ftp://" not in public and "127.0.0.1" not in public
    # Code written for storage failures does not swallow it.
    with pytest.raises(ConfigurationError):
        try:
            DualStorageClient(overrides=broken_settings(s3_servers)).config  # noqa: B018
        except DualStorageError:  # pragma: no cover - the defect this test guards
            pytest.fail("a ConfigurationError was caught as a storage failure")


def test_storage_errors_carry_the_s3_code_and_http_status(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, unique_key: str
) -> None:
    client = DualStorageClient(overrides=real_settings(s3_servers))
    wrong = DualStorageClient(
        overrides=real_settings(s3_servers, INTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET)
    )
    closed = DualStorageClient(
        overrides=real_settings(
            s3_servers, INTERNAL_STORAGE_ENDPOINT=f"http://127.0.0.1:{free_port_pair()}"
        )
    )
    try:
        with pytest.raises(ObjectNotFound) as missing:
            client.internal.get_bytes(client.config.internal.buckets["weights"], unique_key)
        assert (missing.value.code, missing.value.status) == ("NoSuchKey", 404)

        with pytest.raises(ObjectNotFound) as no_bucket:
            client.internal.get_bytes("no-such-bucket-here", unique_key)
        assert (no_bucket.value.code, no_bucket.value.status) == ("NoSuchBucket", 404)

        with pytest.raises(AccessDenied) as denied:
            wrong.upload_schema(unique_key.replace("/", "-"), b"{}")
        assert (denied.value.code, denied.value.status) == ("SignatureDoesNotMatch", 403)
        assert WRONG_SECRET not in repr(vars(denied.value))

        with pytest.raises(StorageUnavailable) as unreachable:
            closed.internal.head(closed.config.internal.buckets["weights"], unique_key)
        # No answer came, so there is no code or status to report.
        assert (unreachable.value.code, unreachable.value.status) == (None, None)
    finally:
        close_clients(client, wrong, closed)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "action"),
    [
        (Dataset, "create_presigned_links"),
        (ModelWeight, "verify_integrity"),
        (ModelWeight, "refresh_metadata"),
        (ModelWeight, "accept_stored_content"),
    ],
)
def test_an_admin_action_under_a_misconfiguration_is_one_error_message(
    real_storage: DualStorageClient,
    admin_client: Client,
    settings: SettingsWrapper,
    s3_servers: dict[str, LocalS3Server],
    model: type[ModelWeight] | type[Dataset],
    action: str,
) -> None:
    rows = [make(model, f"row {i}".encode()) for i in range(3)]
    settings.DUAL_STORAGE = broken_settings(s3_servers)
    response = admin_client.post(
        changelist(model),
        {"action": action, "_selected_action": [row.pk for row in rows], "apply": "1"},
        follow=True,
    )
    assert response.status_code == 200
    shown = levels(response)
    assert len(shown) == 1, shown
    text = shown[0][1]
    assert text.startswith("Nothing was done: the storage is not configured")
    assert "dual_storage_app.E002" in text and "manage.py check" in text
    assert "ftp://" not in text and "127.0.0.1" not in text

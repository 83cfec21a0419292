"""``get_schema``'s cache: no request inside the window, one conditional GET after it,
changes made here seen at once and changes made elsewhere within the window.

Fast tests run on moto; the ``real_s3`` ones prove the same on SeaweedFS. The clock the
cache reads is replaced by a fake one, so no test sleeps. Requests are counted with
botocore's ``request-created`` event (one per HTTP attempt) on the store's client, and
answers with ``after-call`` (which also sees the 304 that botocore then raises).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSRequest
from django.core.files.base import ContentFile
from moto import mock_aws
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.checks import check_configuration
from dual_storage_app.client import DualStorageClient, clear_schema_cache, dual_storage
from dual_storage_app.config.loading import load_config
from dual_storage_app.exceptions import AccessDenied, ConfigurationError, ObjectNotFound
from dual_storage_app.models import ConfigSchema
from dual_storage_app.store.schema_cache import SchemaCache, schema_cache
from dual_storage_app.testing.server import LocalS3Server
from tests.conftest import real_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY = "moto-access-AKID88"
SECRET_KEY = "moto-secret-456"
ENDPOINT = "https://s3.us-east-1.amazonaws.com"
MOTO_SETTINGS: dict[str, str | None] = {
    "INTERNAL_STORAGE_ENDPOINT": ENDPOINT,
    "INTERNAL_STORAGE_ACCESS_KEY": ACCESS_KEY,
    "INTERNAL_STORAGE_SECRET_KEY": SECRET_KEY,
    "INTERNAL_STORAGE_REGION": "us-east-1",
    "EXTERNAL_STORAGE_ENDPOINT": ENDPOINT,
    "EXTERNAL_STORAGE_ACCESS_KEY": ACCESS_KEY,
    "EXTERNAL_STORAGE_SECRET_KEY": SECRET_KEY,
    "EXTERNAL_STORAGE_REGION": "us-east-1",
}
BUCKET = "config-schemas"
WINDOW = 5.0  # the default SCHEMA_CACHE_SECONDS


def schema_body(version: int, size: int = 10_000) -> bytes:
    """A ~10 KB JSON schema whose every byte depends on ``version`` (a mix would show)."""
    head = json.dumps({"version": version, "pad": ""}).encode()
    return head[:-2] + (chr(ord("a") + version % 26) * (size - len(head))).encode() + b'"}'


# -- instruments ---------------------------------------------------------------


class FakeClock:
    """The cache's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RequestLog:
    """Every request a boto3 client sends (with its If-None-Match) and every answer."""

    sent: list[tuple[str, str | None]] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)

    def attach(self, client: S3Client) -> RequestLog:
        client.meta.events.register("request-created.s3", self._created)
        client.meta.events.register("after-call.s3", self._answered)
        return self

    def _created(self, request: AWSRequest, operation_name: str, **kwargs: Any) -> None:
        self.sent.append((operation_name, request.headers.get("If-None-Match")))

    def _answered(self, http_response: Any, model: Any, **kwargs: Any) -> None:
        self.answers.append((model.name, http_response.status_code))

    def clear(self) -> None:
        self.sent.clear()
        self.answers.clear()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(schema_cache, "clock", fake)
    return fake


@pytest.fixture
def moto_client(clock: FakeClock) -> Iterator[DualStorageClient]:
    with mock_aws():
        client = DualStorageClient(overrides=MOTO_SETTINGS)
        client.create_buckets()
        yield client


def other_client(client: DualStorageClient) -> S3Client:
    """A plain boto3 client, standing for another process writing to the same store."""
    config = client.config.internal
    raw: S3Client = boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint_url,
        aws_access_key_id=config.access_key,
        aws_secret_access_key=config.secret_key,
        region_name=config.region,
    )
    return raw


def log_for(client: DualStorageClient) -> RequestLog:
    return RequestLog().attach(client.internal.client)


# -- the rule, on moto -----------------------------------------------------------


def test_reads_inside_the_window_make_no_request(moto_client: DualStorageClient) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    log = log_for(moto_client)
    assert moto_client.get_schema("fw") == schema_body(1)
    assert log.sent == [("GetObject", None)]
    log.clear()
    for _ in range(50):
        assert moto_client.get_schema("fw") == schema_body(1)
    assert log.sent == []


def test_after_the_window_one_conditional_get_answered_304_keeps_the_bytes(
    moto_client: DualStorageClient, clock: FakeClock
) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    first = moto_client.get_schema("fw")
    etag = moto_client.head("schemas", "fw.json").etag
    log = log_for(moto_client)
    clock.advance(WINDOW)
    second = moto_client.get_schema("fw")
    assert second == first == schema_body(1)
    assert type(second) is bytes
    assert log.sent == [("GetObject", f'"{etag}"')]
    assert log.answers == [("GetObject", 304)]
    log.clear()
    clock.advance(WINDOW - 0.1)  # the 304 restarted the window
    assert moto_client.get_schema("fw") == schema_body(1)
    assert log.sent == []


def test_a_change_by_another_client_is_seen_after_the_window_not_before(
    moto_client: DualStorageClient, clock: FakeClock
) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    assert moto_client.get_schema("fw") == schema_body(1)
    other_client(moto_client).put_object(Bucket=BUCKET, Key="fw.json", Body=schema_body(2))
    clock.advance(WINDOW - 0.001)
    assert moto_client.get_schema("fw") == schema_body(1)  # the staleness a user can see
    clock.advance(0.001)
    log = log_for(moto_client)
    assert moto_client.get_schema("fw") == schema_body(2)
    assert log.answers == [("GetObject", 200)]
    assert len(log.sent) == 1 and log.sent[0][1] is not None  # conditional, but changed


def test_a_change_through_this_process_is_seen_at_once(
    moto_client: DualStorageClient,
) -> None:
    second_client = DualStorageClient(overrides=MOTO_SETTINGS)
    moto_client.upload_schema("fw", schema_body(1))
    assert moto_client.get_schema("fw") == schema_body(1)
    moto_client.upload_schema("fw", schema_body(2))
    assert moto_client.get_schema("fw") == schema_body(2)
    second_client.upload_schema("fw", schema_body(3))  # any client in this process
    assert moto_client.get_schema("fw") == schema_body(3)
    moto_client.delete("schemas", "fw.json")
    with pytest.raises(ObjectNotFound):
        moto_client.get_schema("fw")


def test_a_deleted_schema_raises_object_not_found_after_the_window(
    moto_client: DualStorageClient, clock: FakeClock
) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    assert moto_client.get_schema("fw") == schema_body(1)
    other_client(moto_client).delete_object(Bucket=BUCKET, Key="fw.json")
    assert moto_client.get_schema("fw") == schema_body(1)  # inside the window
    clock.advance(WINDOW)
    log = log_for(moto_client)
    for _ in range(2):  # evicted: the second read asks again, unconditionally
        with pytest.raises(ObjectNotFound) as caught:
            moto_client.get_schema("fw")
        assert caught.value.bucket == BUCKET and caught.value.key == "fw.json"
    assert [name for name, _ in log.sent] == ["GetObject", "GetObject"]
    assert log.sent[1][1] is None
    assert len(schema_cache) == 0


def test_zero_seconds_revalidates_every_read(clock: FakeClock) -> None:
    with mock_aws():
        client = DualStorageClient(overrides={**MOTO_SETTINGS, "SCHEMA_CACHE_SECONDS": "0"})
        client.create_buckets()
        client.upload_schema("fw", schema_body(1))
        assert client.get_schema("fw") == schema_body(1)
        log = log_for(client)
        for _ in range(5):
            assert client.get_schema("fw") == schema_body(1)
        assert log.answers == [("GetObject", 304)] * 5
        assert all(if_none_match for _, if_none_match in log.sent)
        other_client(client).put_object(Bucket=BUCKET, Key="fw.json", Body=schema_body(2))
        assert client.get_schema("fw") == schema_body(2)  # no clock change needed


def test_a_read_in_flight_during_an_invalidation_is_returned_but_not_cached(
    moto_client: DualStorageClient,
) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    store = moto_client.internal
    invalidated: list[bool] = []

    def invalidate_once(**kwargs: Any) -> None:
        if not invalidated:  # a write by another thread lands while the GET is in flight
            invalidated.append(True)
            schema_cache.invalidate(store, BUCKET, "fw.json")

    store.client.meta.events.register("after-call.s3.GetObject", invalidate_once)
    assert moto_client.get_schema("fw") == schema_body(1)
    assert len(schema_cache) == 0
    log = log_for(moto_client)
    assert moto_client.get_schema("fw") == schema_body(1)
    assert log.sent == [("GetObject", None)]


def test_objects_over_1_mib_are_returned_but_not_cached(moto_client: DualStorageClient) -> None:
    big = b"x" * (1024 * 1024 + 1)
    moto_client.upload_schema("big", big)
    moto_client.upload_schema("small", schema_body(1))
    log = log_for(moto_client)
    for _ in range(2):
        assert moto_client.get_schema("big") == big
        assert moto_client.get_schema("small") == schema_body(1)
    assert log.sent == [("GetObject", None)] * 3  # big twice, unconditionally; small once


def test_a_schema_that_grows_over_1_mib_leaves_no_older_entry(
    moto_client: DualStorageClient, clock: FakeClock
) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    assert moto_client.get_schema("fw") == schema_body(1)
    raw = other_client(moto_client)
    big = b"x" * (1024 * 1024 + 1)
    raw.put_object(Bucket=BUCKET, Key="fw.json", Body=big)
    clock.advance(WINDOW)
    assert moto_client.get_schema("fw") == big
    assert len(schema_cache) == 0
    raw.put_object(Bucket=BUCKET, Key="fw.json", Body=schema_body(2))
    assert moto_client.get_schema("fw") == schema_body(2)  # no window to wait out


def test_the_cache_keeps_the_most_recently_used_entries(
    moto_client: DualStorageClient, clock: FakeClock
) -> None:
    cache = SchemaCache(clock=clock, max_entries=2, max_total_bytes=25_000)
    store = moto_client.internal
    for name in "abc":
        moto_client.upload_schema(name, schema_body(ord(name)))
    log = log_for(moto_client)
    cache.get(store, BUCKET, "a.json", WINDOW)
    cache.get(store, BUCKET, "b.json", WINDOW)
    cache.get(store, BUCKET, "a.json", WINDOW)  # hit: a is now the most recent
    cache.get(store, BUCKET, "c.json", WINDOW)  # evicts b
    assert len(log.sent) == 3 and len(cache) == 2
    log.clear()
    cache.get(store, BUCKET, "a.json", WINDOW)
    cache.get(store, BUCKET, "c.json", WINDOW)
    assert log.sent == []
    cache.get(store, BUCKET, "b.json", WINDOW)
    assert log.sent == [("GetObject", None)]
    small = SchemaCache(clock=clock, max_total_bytes=15_000)  # room for one 10 KB schema
    small.get(store, BUCKET, "a.json", WINDOW)
    small.get(store, BUCKET, "b.json", WINDOW)
    assert len(small) == 1


def test_changing_settings_and_clear_empty_the_cache(
    moto_client: DualStorageClient, settings: SettingsWrapper
) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    moto_client.get_schema("fw")
    assert len(schema_cache) == 1
    clear_schema_cache()
    assert len(schema_cache) == 0
    moto_client.get_schema("fw")
    settings.DUAL_STORAGE = MOTO_SETTINGS
    assert len(schema_cache) == 0
    moto_client.get_schema("fw")
    dual_storage.reset()
    assert len(schema_cache) == 0


# -- the setting ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf", "5s"])
def test_bad_setting_values_are_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config({**MOTO_SETTINGS, "SCHEMA_CACHE_SECONDS": value}, environ={})
    message = str(caught.value)
    assert "[dual_storage_app.E010] SCHEMA_CACHE_SECONDS" in message
    assert repr(value) in message and ">= 0" in message


@pytest.mark.parametrize("value", [-0.5, "never", True])
def test_bad_setting_in_django_settings_is_a_system_check_error(
    settings: SettingsWrapper, value: object
) -> None:
    settings.DUAL_STORAGE = {**MOTO_SETTINGS, "SCHEMA_CACHE_SECONDS": value}
    messages = [m for m in check_configuration() if m.id == "dual_storage_app.E010"]
    assert len(messages) == 1
    assert "settings.DUAL_STORAGE['SCHEMA_CACHE_SECONDS']" in messages[0].msg
    assert messages[0].hint and "SCHEMA_CACHE_SECONDS" in messages[0].hint
    with pytest.raises(ConfigurationError, match="SCHEMA_CACHE_SECONDS"):
        dual_storage.get_schema("fw")


def test_setting_is_read_from_every_level(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(MOTO_SETTINGS, environ={}).schema_cache_seconds == 5.0
    monkeypatch.setenv("SCHEMA_CACHE_SECONDS", "0")
    assert load_config(MOTO_SETTINGS).schema_cache_seconds == 0.0
    settings.DUAL_STORAGE = {"SCHEMA_CACHE_SECONDS": 2.5}
    assert load_config(MOTO_SETTINGS).schema_cache_seconds == 2.5
    overrides = {**MOTO_SETTINGS, "SCHEMA_CACHE_SECONDS": "30"}
    assert load_config(overrides).schema_cache_seconds == 30.0
    assert [m for m in check_configuration() if m.id == "dual_storage_app.E010"] == []


# -- the same on SeaweedFS -----------------------------------------------------

real_s3 = pytest.mark.real_s3


@pytest.fixture
def name(unique_key: str) -> str:
    return unique_key.replace("/", "-")


@real_s3
def test_real_window_then_one_conditional_get_answered_304(
    real_storage: DualStorageClient, clock: FakeClock, name: str
) -> None:
    real_storage.upload_schema(name, schema_body(1))
    log = log_for(real_storage)
    for _ in range(100):
        assert real_storage.get_schema(name) == schema_body(1)
    assert log.sent == [("GetObject", None)]
    log.clear()
    clock.advance(WINDOW)
    assert real_storage.get_schema(name) == schema_body(1)
    assert len(log.sent) == 1 and log.sent[0][1] is not None
    assert log.answers == [("GetObject", 304)]


@real_s3
def test_real_change_elsewhere_is_seen_after_the_window_and_a_delete_raises(
    real_storage: DualStorageClient, clock: FakeClock, name: str
) -> None:
    real_storage.upload_schema(name, schema_body(1))
    assert real_storage.get_schema(name) == schema_body(1)
    raw = other_client(real_storage)
    raw.put_object(Bucket=BUCKET, Key=f"{name}.json", Body=schema_body(2))
    clock.advance(WINDOW / 2)
    assert real_storage.get_schema(name) == schema_body(1)
    clock.advance(WINDOW / 2)
    assert real_storage.get_schema(name) == schema_body(2)
    raw.delete_object(Bucket=BUCKET, Key=f"{name}.json")
    assert real_storage.get_schema(name) == schema_body(2)
    clock.advance(WINDOW)
    with pytest.raises(ObjectNotFound, match="no such object"):
        real_storage.get_schema(name)


@real_s3
@pytest.mark.django_db(transaction=True)
def test_real_config_schema_versions_are_seen_at_once(
    real_storage: DualStorageClient, clock: FakeClock, name: str
) -> None:
    schema = ConfigSchema(name="s", framework=name)
    schema.file.save("s.json", ContentFile(b'{"v": 1}'))
    assert real_storage.get_schema(name) == b'{"v": 1}'
    schema.file.save("s.json", ContentFile(b'{"v": 2}'))  # publish: a server-side copy
    assert real_storage.get_schema(name) == b'{"v": 2}'
    schema.framework = f"{name}-renamed"
    schema.save()
    with pytest.raises(ObjectNotFound):
        real_storage.get_schema(name)
    assert real_storage.get_schema(f"{name}-renamed") == b'{"v": 2}'
    schema.delete()
    with pytest.raises(ObjectNotFound):
        real_storage.get_schema(f"{name}-renamed")


@real_s3
@pytest.mark.parametrize("access_key", ["intruder", "internal-access"])
def test_real_a_cached_schema_is_never_served_to_other_credentials(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    name: str,
    access_key: str,
) -> None:
    real_storage.upload_schema(name, schema_body(1))
    assert real_storage.get_schema(name) == schema_body(1)
    intruder = DualStorageClient(
        overrides=real_settings(
            s3_servers,
            INTERNAL_STORAGE_ACCESS_KEY=access_key,
            INTERNAL_STORAGE_SECRET_KEY="wrong-secret-" + "x" * 12,
        )
    )
    with pytest.raises(AccessDenied):
        intruder.get_schema(name)
    assert real_storage.get_schema(name) == schema_body(1)


@real_s3
def test_real_many_readers_and_one_writer_only_ever_see_whole_versions(
    real_storage: DualStorageClient, s3_servers: dict[str, LocalS3Server], name: str
) -> None:
    versions = {schema_body(v) for v in range(20)}
    real_storage.upload_schema(name, schema_body(0))
    revalidating = DualStorageClient(overrides=real_settings(s3_servers, SCHEMA_CACHE_SECONDS="0"))
    done = threading.Event()
    bad: list[bytes] = []

    def read(client: DualStorageClient) -> int:
        reads = 0
        while not done.is_set() or reads < 5:
            data = client.get_schema(name)
            if data not in versions:
                bad.append(data)
            reads += 1
        return reads

    with ThreadPoolExecutor(8) as pool:
        readers = [pool.submit(read, c) for c in [real_storage, revalidating] * 4]
        for version in range(1, 20):
            real_storage.upload_schema(name, schema_body(version))
        done.set()
        reads = sum(reader.result() for reader in readers)
    assert bad == [] and reads >= 40
    for client in (real_storage, revalidating):
        assert client.get_schema(name) == schema_body(19)  # our own last write, at once
    for entry in schema_cache._entries.values():  # every cached pair is whole
        assert entry.etag.strip('"') == hashlib.md5(entry.data).hexdigest()  # noqa: S324

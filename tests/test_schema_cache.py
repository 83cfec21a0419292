"""``get_schema``'s cache on moto: no request inside the window, one conditional GET
after it, changes made here seen at once and changes made elsewhere within the window.

The clock the cache reads is replaced by a fake one (the ``clock`` fixture), so no test
sleeps. Requests are counted with botocore's ``request-created`` event (one per HTTP
attempt) on the store's client, and answers with ``after-call`` (which also sees the 304
that botocore then raises). The same on SeaweedFS: ``tests/real/test_schema_cache.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.checks import check_configuration
from dual_storage_app.client import DualStorageClient, clear_schema_cache, dual_storage
from dual_storage_app.config.loading import load_config
from dual_storage_app.exceptions import ConfigurationError, ObjectNotFound
from dual_storage_app.store.schema_cache import SchemaCache, schema_cache
from tests.helpers import (
    MOTO_SETTINGS,
    SCHEMA_BUCKET,
    SCHEMA_WINDOW,
    FakeClock,
    log_for,
    other_client,
    schema_body,
)


@pytest.fixture
def moto_client(clock: FakeClock) -> Iterator[DualStorageClient]:
    with mock_aws():
        client = DualStorageClient(overrides=MOTO_SETTINGS)
        client.create_buckets()
        yield client


# -- the rule, on moto -------------------------------------------------------------------


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
    clock.advance(SCHEMA_WINDOW)
    second = moto_client.get_schema("fw")
    assert second == first == schema_body(1)
    assert type(second) is bytes
    assert log.sent == [("GetObject", f'"{etag}"')]
    assert log.answers == [("GetObject", 304)]
    log.clear()
    clock.advance(SCHEMA_WINDOW - 0.1)  # the 304 restarted the window
    assert moto_client.get_schema("fw") == schema_body(1)
    assert log.sent == []


def test_a_change_by_another_client_is_seen_after_the_window_not_before(
    moto_client: DualStorageClient, clock: FakeClock
) -> None:
    moto_client.upload_schema("fw", schema_body(1))
    assert moto_client.get_schema("fw") == schema_body(1)
    other_client(moto_client).put_object(Bucket=SCHEMA_BUCKET, Key="fw.json", Body=schema_body(2))
    clock.advance(SCHEMA_WINDOW - 0.001)
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
    other_client(moto_client).delete_object(Bucket=SCHEMA_BUCKET, Key="fw.json")
    assert moto_client.get_schema("fw") == schema_body(1)  # inside the window
    clock.advance(SCHEMA_WINDOW)
    log = log_for(moto_client)
    for _ in range(2):  # evicted: the second read asks again, unconditionally
        with pytest.raises(ObjectNotFound) as caught:
            moto_client.get_schema("fw")
        assert caught.value.bucket == SCHEMA_BUCKET and caught.value.key == "fw.json"
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
        other_client(client).put_object(Bucket=SCHEMA_BUCKET, Key="fw.json", Body=schema_body(2))
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
            schema_cache.invalidate(store, SCHEMA_BUCKET, "fw.json")

    store.client.meta.events.register("after-call.s3.GetObject", invalidate_once)
    assert moto_client.get_schema("fw") == schema_body(1)
    assert len(schema_cache) == 0
    log = log_for(moto_client)
    assert moto_client.get_schema("fw") == schema_body(1)
    assert log.sent == [("GetObject", None)]


def test_objects_over_1_mib_are_returned_but_not_cached(moto_client: DualStorageClient) -> None:
    big = b'"' + b"x" * (1024 * 1024 - 1) + b'"'  # a JSON string of 1 MiB + 1 byte
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
    big = b'"' + b"x" * (1024 * 1024 - 1) + b'"'  # a JSON string of 1 MiB + 1 byte
    raw.put_object(Bucket=SCHEMA_BUCKET, Key="fw.json", Body=big)
    clock.advance(SCHEMA_WINDOW)
    assert moto_client.get_schema("fw") == big
    assert len(schema_cache) == 0
    raw.put_object(Bucket=SCHEMA_BUCKET, Key="fw.json", Body=schema_body(2))
    assert moto_client.get_schema("fw") == schema_body(2)  # no window to wait out


def test_the_cache_keeps_the_most_recently_used_entries(
    moto_client: DualStorageClient, clock: FakeClock
) -> None:
    cache = SchemaCache(clock=clock, max_entries=2, max_total_bytes=25_000)
    store = moto_client.internal
    for name in "abc":
        moto_client.upload_schema(name, schema_body(ord(name)))
    log = log_for(moto_client)
    cache.get(store, SCHEMA_BUCKET, "a.json", SCHEMA_WINDOW)
    cache.get(store, SCHEMA_BUCKET, "b.json", SCHEMA_WINDOW)
    cache.get(store, SCHEMA_BUCKET, "a.json", SCHEMA_WINDOW)  # hit: a is now the most recent
    cache.get(store, SCHEMA_BUCKET, "c.json", SCHEMA_WINDOW)  # evicts b
    assert len(log.sent) == 3 and len(cache) == 2
    log.clear()
    cache.get(store, SCHEMA_BUCKET, "a.json", SCHEMA_WINDOW)
    cache.get(store, SCHEMA_BUCKET, "c.json", SCHEMA_WINDOW)
    assert log.sent == []
    cache.get(store, SCHEMA_BUCKET, "b.json", SCHEMA_WINDOW)
    assert log.sent == [("GetObject", None)]
    small = SchemaCache(clock=clock, max_total_bytes=15_000)  # room for one 10 KB schema
    small.get(store, SCHEMA_BUCKET, "a.json", SCHEMA_WINDOW)
    small.get(store, SCHEMA_BUCKET, "b.json", SCHEMA_WINDOW)
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

"""Presigning without a server: the hand-written presigner (issue 5, item 5 "Links") is
byte-for-byte botocore's URL, makes no HTTP request, and falls back to botocore whenever
it cannot match; the client's presigned URLs on moto (bucket, key, expiry bounds).

A real server accepting these URLs: ``tests/real/test_presign.py``.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import socket
from functools import partial
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.httpsession
import pytest
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.config.loading import load_config
from dual_storage_app.config.stores import StoreConfig
from dual_storage_app.exceptions import InvalidArgument
from dual_storage_app.storages import ExternalStorage
from dual_storage_app.store import Store
from dual_storage_app.store.disposition import link_parameters
from dual_storage_app.store.presign import Presigner
from dual_storage_app.store.transfer import MAX_PRESIGN_SECONDS
from tests.botocore_clock import frozen_botocore_clock
from tests.helpers import MOTO_SECRET_KEY, record_api_calls

SECRET = "fast-presign-secret-Qx7Lm2"


FROZEN = (
    datetime.datetime(2025, 3, 4, 5, 6, 7),
    datetime.datetime(2025, 3, 5, 0, 0, 0),  # the next day: a new signing key
)


KEYS = [
    "datasets/abc-123.zip",
    "a",
    "with space/and  two.zip",
    "plus+sign/a+b.zip",
    "tilde~/~x~.zip",
    "percent%20/100%.zip",
    "hash#/frag#ment.zip",
    "question?/q?x=1.zip",
    "equals=/a=b&c=d.zip",
    "amp&/a&b.zip",
    "reserved/;,:@$!'()*[]{}|^`\"<>.zip",
    "unicode/日本語/données/ß-ǅ-😀.zip",
    "deep/" * 40 + "nested.zip",
    "/".join(["x" * 199] * 5),  # 999 characters + "/" separators: 999 bytes
    ("é" * 120 + "/") * 4 + "é" * 20,  # 500 characters, 1,000 bytes of UTF-8
]


EXTRAS: list[dict[str, Any] | None] = [
    None,
    {"ResponseContentDisposition": 'attachment; filename="résumé v2.zip"'},
    {
        "ResponseContentType": "application/zip; charset=a+b",
        "ResponseCacheControl": "private, max-age=60",
        "ResponseContentLanguage": "",
        "ResponseContentEncoding": "identity",
    },
]


# (provider, endpoint, public endpoint, region): the stores the app's settings can make.
STORES = {
    "minio": ("minio", "http://127.0.0.1:9000", None, None),
    "minio-public-host": ("minio", "http://minio.internal:9000", "http://localhost:9000", None),
    "minio-public-prefix": ("minio", "http://10.0.0.5:9000", "https://files.example.com/s3/", None),
    "minio-region": ("minio", "https://minio.example.com", None, "eu-central-1"),
    "aws-virtual": ("aws", "https://s3.eu-west-1.amazonaws.com", None, None),
    "aws-virtual-global": ("aws", "https://s3.amazonaws.com", None, "us-east-1"),
    "aws-virtual-http-port": ("aws", "http://s3.local:80", None, "us-west-2"),
    "aws-public-cdn": (
        "aws",
        "https://s3.us-east-2.amazonaws.com",
        "https://cdn.example.com",
        None,
    ),
    "r2": ("r2", "https://acct.r2.cloudflarestorage.com", None, None),
    "r2-public": ("r2", "https://acct.r2.cloudflarestorage.com", "https://data.example.com", None),
}


BUCKETS = ("training-datasets", "my.datasets")  # a dotted name is path-style on https AWS


def store_for(name: str) -> Store:
    provider, endpoint, public, region = STORES[name]
    values = {
        "INTERNAL_STORAGE_ENDPOINT": "http://127.0.0.1:9000",
        "INTERNAL_STORAGE_ACCESS_KEY": "internal-access",
        "INTERNAL_STORAGE_SECRET_KEY": "internal-secret",
        "EXTERNAL_STORAGE_ENDPOINT": endpoint,
        "EXTERNAL_STORAGE_ACCESS_KEY": "AKIA/FAST+KEY",
        "EXTERNAL_STORAGE_SECRET_KEY": SECRET,
        "EXTERNAL_STORAGE_PROVIDER": provider,
        "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": public,
        "EXTERNAL_STORAGE_REGION": region,
    }
    return Store(load_config(values).external)


def botocore_url(
    store: Store, bucket: str, key: str, extra: dict[str, Any] | None, expires: int = 900
) -> str:
    """What Store.presign_get returned before the fast path: botocore, same client."""
    return store._presigner().generate_presigned_url(
        "get_object", Params={**(extra or {}), "Bucket": bucket, "Key": key}, ExpiresIn=expires
    )


def botocore_calls(client: Any) -> list[str]:
    """Every GetObject that ``client`` builds from now on (presigned or sent), by key."""
    calls: list[str] = []

    def seen(calls: list[str], params: dict[str, Any], **kwargs: Any) -> None:
        calls.append(params.get("Key", ""))

    client.meta.events.register("provide-client-params.s3.GetObject", partial(seen, calls))
    return calls


# -- (a) the same URL as botocore --------------------------------------------------------


@pytest.mark.parametrize("store_name", STORES)
def test_urls_equal_botocore_byte_for_byte(store_name: str) -> None:
    store = store_for(store_name)
    checked = 0
    for frozen in FROZEN:
        with frozen_botocore_clock(frozen):
            for bucket in BUCKETS:
                assert store._link_signer().fast_path(bucket)
                for key in KEYS:
                    for extra in EXTRAS:
                        ours = store.presign_get(bucket, key, 900, extra=extra)
                        # The same overrides botocore gets: the link policy's, every time.
                        sent = link_parameters(key, extra, inline=False)
                        assert ours == botocore_url(store, bucket, key, sent), (bucket, key)
                        checked += 1
    assert checked == len(FROZEN) * len(BUCKETS) * len(KEYS) * len(EXTRAS)


def test_addressing_follows_the_provider_and_public_endpoint() -> None:
    """The differential test covers these layouts; pin them so none is silently lost."""
    with frozen_botocore_clock(FROZEN[0]):
        urls = {name: store_for(name).presign_get(BUCKETS[0], "k", 60) for name in STORES}
    assert urls["minio"].startswith("http://127.0.0.1:9000/training-datasets/k?")
    assert urls["minio-public-prefix"].startswith(
        "https://files.example.com/s3/training-datasets/k?"
    )
    assert urls["aws-virtual"].startswith("https://training-datasets.s3.eu-west-1.amazonaws.com/k?")
    assert urls["aws-public-cdn"].startswith("https://cdn.example.com/training-datasets/k?")
    assert "%2Fauto%2Fs3%2Faws4_request" in urls["r2"]


# -- (c) no HTTP request -----------------------------------------------------------------


@pytest.mark.django_db  # the link audit (on by default) writes to the database, not HTTP
def test_presign_and_url_make_zero_http_requests(settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE = {
        "INTERNAL_STORAGE_ENDPOINT": "http://127.0.0.1:9",
        "INTERNAL_STORAGE_ACCESS_KEY": "internal-access",
        "INTERNAL_STORAGE_SECRET_KEY": "internal-secret",
        "EXTERNAL_STORAGE_ENDPOINT": "http://127.0.0.1:9",
        "EXTERNAL_STORAGE_ACCESS_KEY": "external-access",
        "EXTERNAL_STORAGE_SECRET_KEY": SECRET,
        "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": "http://localhost:9",
    }
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> None:
            attempts.append(what)
            raise AssertionError(f"{what} during presigning")

        return refused

    client = DualStorageClient()
    store, bucket = client.locate("datasets")
    storage = ExternalStorage()
    keys = [f"datasets/{i:05d} page.zip" for i in range(1000)]
    with (
        mock.patch.object(botocore.httpsession.URLLib3Session, "send", refuse("HTTP send")),
        mock.patch.object(socket.socket, "connect", refuse("socket connect")),
        mock.patch.object(socket.socket, "connect_ex", refuse("socket connect_ex")),
    ):
        presigned = [store.presign_get(bucket, key, 3600) for key in keys]
        from_storage = [storage.url(key) for key in keys]
    assert attempts == []
    for urls in (presigned, from_storage):
        assert len(set(urls)) == 1000
        assert all(url.startswith("http://localhost:9/training-datasets/datasets/") for url in urls)
        assert all("X-Amz-Signature=" in url for url in urls)


# -- (d) botocore signs whatever the fast path cannot match ------------------------------


def external_config() -> StoreConfig:
    return dataclasses.replace(store_for("minio").config)


def raw_client(config: StoreConfig, **credentials: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint_url,
        aws_access_key_id=credentials.get("access_key", config.access_key),
        aws_secret_access_key=credentials.get("secret_key", config.secret_key),
        aws_session_token=credentials.get("token"),
        region_name=config.region,
        config=config.provider.botocore_config(max_pool_connections=1),
    )


def test_the_fast_path_skips_botocore() -> None:
    """The control for the fallback tests: botocore signs the probes and nothing else."""
    config = external_config()
    client = raw_client(config)
    calls = botocore_calls(client)
    presigner = Presigner(client, config)
    for key in ("k1", "k2", "k3"):
        presigner.presign_get("b", key, 60, {"ResponseContentType": "text/plain"})
        presigner.presign_get("b", key, 60)
    assert presigner.fast_path("b")
    assert calls and "k1" not in calls and set(calls) == {calls[0]}  # the probe key only


@pytest.mark.parametrize(
    ("credentials", "extra"),
    [
        ({"token": "session-token/+="}, None),  # a session token: not reproduced
        ({"secret_key": "another-secret"}, None),  # a client that signs differently
        ({}, {"VersionId": "v1"}),  # a parameter the fast path does not know
        ({}, {"ResponseExpires": datetime.datetime(2030, 1, 1)}),  # a non-string override
    ],
    ids=["session-token", "other-secret", "unknown-parameter", "timestamp-override"],
)
def test_fallback_is_botocore(credentials: dict[str, str], extra: dict[str, Any] | None) -> None:
    config = external_config()
    client = raw_client(config, **credentials)
    calls = botocore_calls(client)
    presigner = Presigner(client, config)
    with frozen_botocore_clock(FROZEN[0]):
        ours = presigner.presign_get("b", "a b/k+.zip", 60, extra)
        assert calls[-1] == "a b/k+.zip"  # botocore signed it
        expected = client.generate_presigned_url(
            "get_object", Params={**(extra or {}), "Bucket": "b", "Key": "a b/k+.zip"}, ExpiresIn=60
        )
    assert ours == expected
    if "token" in credentials:
        assert not presigner.fast_path("b") and "X-Amz-Security-Token=" in ours


def test_store_falls_back_for_a_timestamp_override() -> None:
    store = store_for("minio")
    calls = botocore_calls(store._presigner())
    extra = {"ResponseExpires": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)}
    with frozen_botocore_clock(FROZEN[0]):
        store.presign_get("b", "k", 60)
        assert "k" not in calls  # signed here
        ours = store.presign_get("b", "k", 60, extra=extra)
        assert calls[-1] == "k"  # signed by botocore
        sent = link_parameters("k", extra, inline=False)
        assert ours == botocore_url(store, "b", "k", sent, expires=60)
    assert "response-expires=" in ours


def test_the_secret_stays_out_of_sight() -> None:
    store = store_for("r2")
    signer = store._link_signer()
    assert signer.fast_path("b")
    assert SECRET not in repr(signer) and SECRET not in repr(store)
    with pytest.raises(TypeError):
        vars(signer)  # slots: no attribute dict to dump


# -- the client's presigned URLs, on moto ------------------------------------------------


def test_presigned_url_names_bucket_key_and_expiry(moto_storage: DualStorageClient) -> None:
    moto_storage.upload_dataset(io.BytesIO(b"data"), "datasets/abc 123.zip")
    calls = record_api_calls(moto_storage)
    url = moto_storage.generate_dataset_presigned_url(
        dataset_key="datasets/abc 123.zip", expiration=900
    )
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert "training-datasets" in url
    assert parts.path.endswith("/datasets/abc%20123.zip")
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Signature"]
    assert MOTO_SECRET_KEY not in url
    assert calls == []  # signing makes no request


@pytest.mark.parametrize("expiration", [1, 3600, MAX_PRESIGN_SECONDS])
def test_presign_expiry_bounds_are_accepted(
    moto_storage: DualStorageClient, expiration: int
) -> None:
    assert MAX_PRESIGN_SECONDS == 604800
    url = moto_storage.generate_dataset_presigned_url("datasets/a.zip", expiration=expiration)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(expiration)]


@pytest.mark.parametrize("expiration", [0, -1, 604801, True, False, 1.5, "3600", None])
def test_presign_expiry_out_of_range_or_wrong_type_is_refused(
    moto_storage: DualStorageClient, expiration: Any
) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        moto_storage.generate_dataset_presigned_url("datasets/a.zip", expiration=expiration)
    assert isinstance(excinfo.value, ValueError)
    assert "expiration" in str(excinfo.value)

"""The ``gcs`` provider profile: Google Cloud Storage's S3-compatible XML API with HMAC keys.

Each quirk is checked on the requests a real :class:`DualStorageClient` builds: a
``before-send`` handler on the external store's botocore client records every prepared
request and answers it with a canned response, so nothing leaves the process. Where a
quirk is "we do not send X", a control with another profile shows that the same check
sees X when it is sent. The documentation behind each quirk: ``docs/providers.md``.
"""

from __future__ import annotations

import datetime
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders

from dual_storage_app.client import DualStorageClient
from dual_storage_app.config.loading import load_config
from dual_storage_app.config.providers import GCS, PROFILES, Prices, detect_provider
from dual_storage_app.config.sources import resolve
from dual_storage_app.config.validation import find_problems
from dual_storage_app.exceptions import InvalidArgument
from dual_storage_app.store.transfer import MAX_PARTS, MAX_PRESIGN_SECONDS, MiB, transfer_config
from tests.botocore_clock import frozen_botocore_clock

GCS_ENDPOINT = "https://storage.googleapis.com"
ACCESS_KEY = "GOOG1EHMACACCESSIDEXAMPLE"
SECRET_KEY = "gcs-hmac-secret-Zr4Tq8Wp"
BUCKET = "ml.training-datasets"  # a dotted name: fine path-style, broken virtual-hosted TLS
KEY = "datasets/abc-123.zip"
FROZEN = datetime.datetime(2026, 3, 4, 5, 6, 7)
GiB = 1024 * MiB

SETTINGS: dict[str, str | None] = {
    "INTERNAL_STORAGE_ENDPOINT": "http://127.0.0.1:9",  # never contacted
    "INTERNAL_STORAGE_ACCESS_KEY": "internal-access",
    "INTERNAL_STORAGE_SECRET_KEY": "internal-secret",
    "EXTERNAL_STORAGE_ENDPOINT": GCS_ENDPOINT,
    "EXTERNAL_STORAGE_ACCESS_KEY": ACCESS_KEY,
    "EXTERNAL_STORAGE_SECRET_KEY": SECRET_KEY,
    "EXTERNAL_STORAGE_PROVIDER": "gcs",
    "EXTERNAL_BUCKET_DATASETS": BUCKET,
    "RECORD_CATALOG": "false",  # no database: only the store's requests matter here
    "LINK_AUDIT": "false",
}


# -- recording the requests the client builds ----------------------------------------------


class _Body:
    """The raw body of a canned response (botocore reads it with ``stream()``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data

    def read(self, *_: Any, **__: Any) -> bytes:
        data, self._data = self._data, b""
        return data


def _xml(root: str, inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</{root}>'
    ).encode()


def _canned(operation: str, request: AWSPreparedRequest) -> AWSResponse:
    """A minimal successful answer to ``operation``."""
    status, headers, body = 200, {"ETag": '"etag-put"'}, b""
    if operation == "CreateMultipartUpload":
        body = _xml(
            "InitiateMultipartUploadResult",
            f"<Bucket>{BUCKET}</Bucket><Key>k</Key><UploadId>upload-1</UploadId>",
        )
    elif operation == "UploadPart":
        part = parse_qs(urlsplit(request.url).query)["partNumber"][0]
        headers = {"ETag": f'"etag-part-{part}"'}
    elif operation == "CompleteMultipartUpload":
        body = _xml(
            "CompleteMultipartUploadResult",
            f"<Bucket>{BUCKET}</Bucket><Key>k</Key><ETag>&quot;etag-mpu&quot;</ETag>",
        )
    elif operation == "CopyObject":
        body = _xml("CopyObjectResult", "<ETag>&quot;etag-copy&quot;</ETag>")
    elif operation == "DeleteObjects":
        body = _xml("DeleteResult", "")
    elif operation == "DeleteObject":
        status, headers = 204, {}
    return AWSResponse(request.url, status, HTTPHeaders.from_dict(headers), _Body(body))


@dataclass
class Sent:
    """Every request the external store's client built, in order, by operation name."""

    requests: list[tuple[str, AWSPreparedRequest]] = field(default_factory=list)

    def __call__(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        self.requests.append((operation, request))
        return _canned(operation, request)

    @property
    def operations(self) -> list[str]:
        return [operation for operation, _ in self.requests]

    def of(self, operation: str) -> list[AWSPreparedRequest]:
        return [request for name, request in self.requests if name == operation]


def gcs_client(**extra: str | None) -> tuple[DualStorageClient, Sent]:
    """A client whose external store is GCS (``extra`` overrides settings), and the
    recorder of every request that store's botocore client builds."""
    client = DualStorageClient(overrides={**SETTINGS, **extra})
    sent = Sent()
    # A before-send handler that returns a response replaces the HTTP request (the stubs
    # type handlers as returning None).
    client.external.client.meta.events.register("before-send.s3", sent)  # type: ignore[arg-type]
    return client, sent


def header(request: AWSPreparedRequest, name: str) -> str | None:
    """A request header as text (botocore keeps some as bytes), or None."""
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def checksum_markers(request: AWSPreparedRequest) -> list[str]:
    """What in ``request`` is one of boto3's flexible-checksum features."""
    found = [
        name
        for name in request.headers
        if name.lower().startswith("x-amz-checksum-")
        or name.lower() in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer")
        or name.lower() == "x-amz-decoded-content-length"
    ]
    if "aws-chunked" in (header(request, "Content-Encoding") or ""):
        found.append("Content-Encoding: aws-chunked")
    return found


# -- the profile and its detection -------------------------------------------------------


def test_gcs_profile_values() -> None:
    assert PROFILES["gcs"] is GCS
    assert GCS.addressing_style == "path"
    assert GCS.default_region == "auto"
    assert GCS.checksum_mode == "when_required"
    assert GCS.supports_tagging is False
    assert GCS.multipart_copy is False
    assert GCS.multi_object_delete is False
    assert GCS.uniform_part_size is False
    assert GCS.create_bucket_args("auto") == {}
    # The other profiles keep part copy and multi-object delete.
    for name in ("minio", "r2", "aws"):
        assert PROFILES[name].multipart_copy is True
        assert PROFILES[name].multi_object_delete is True


def test_gcs_list_prices() -> None:
    assert GCS.prices == Prices(
        storage_gb_month=0.020, class_a_per_million=5.00, class_b_per_million=0.40, egress_gb=0.12
    )
    config = load_config(SETTINGS, environ={})
    assert config.external.prices == GCS.prices
    assert config.external.price_origins["egress_gb"] == "the gcs profile's list price"


@pytest.mark.parametrize(
    ("endpoint", "provider"),
    [
        ("https://storage.googleapis.com", "gcs"),
        ("https://STORAGE.googleapis.com/", "gcs"),
        ("http://storage.googleapis.com:80", "gcs"),
        ("https://storage.googleapis.com.evil.example", "minio"),
        ("https://evilstorage.googleapis.com", "minio"),
        ("https://googleapis.com", "minio"),
    ],
)
def test_gcs_is_detected_from_the_endpoint_host(endpoint: str, provider: str) -> None:
    assert detect_provider(endpoint).name == provider
    overrides = {
        **SETTINGS,
        "EXTERNAL_STORAGE_ENDPOINT": endpoint,
        "EXTERNAL_STORAGE_PROVIDER": None,
    }
    config = load_config(overrides, environ={}).external
    assert config.provider.name == provider
    assert config.region == ("auto" if provider == "gcs" else "us-east-1")


def test_gcs_is_an_accepted_provider_setting_for_either_store() -> None:
    values = resolve(
        {**SETTINGS, "INTERNAL_STORAGE_PROVIDER": "gcs", "EXTERNAL_STORAGE_PROVIDER": "gcs"}, {}
    )
    assert [p.id for p in find_problems(values) if p.is_error] == []
    config = load_config(
        {**SETTINGS, "INTERNAL_STORAGE_PROVIDER": "gcs"}, environ={}
    )  # an odd choice for MinIO, but a valid one
    assert config.internal.provider is GCS


def test_unknown_provider_hint_lists_gcs() -> None:
    values = resolve({**SETTINGS, "EXTERNAL_STORAGE_PROVIDER": "b2"}, {})
    (problem,) = [p for p in find_problems(values) if p.id == "dual_storage_app.E005"]
    assert "'b2'" in problem.message
    assert "Use one of minio, r2, aws, gcs," in problem.hint


def test_client_config_pins_path_style_auto_region_and_no_flexible_checksums() -> None:
    client, _ = gcs_client()
    meta = client.external.client.meta
    assert meta.region_name == "auto"
    # botocore-stubs declare none of Config's options: read them by name.
    assert getattr(meta.config, "s3", None) == {"addressing_style": "path"}
    assert getattr(meta.config, "request_checksum_calculation", None) == "when_required"
    assert getattr(meta.config, "response_checksum_validation", None) == "when_required"


# -- requests: addressing, signing region, checksums, tagging --------------------------------


# botocore itself falls back to path style for a dotted name over HTTPS: the plain name
# shows that the profile asks for path style.
@pytest.mark.parametrize("bucket", [BUCKET, "training-datasets"])
def test_put_object_is_path_style_and_signed_for_region_auto(bucket: str) -> None:
    client, sent = gcs_client(EXTERNAL_BUCKET_DATASETS=bucket)
    with frozen_botocore_clock(FROZEN):
        result = client.upload_dataset(io.BytesIO(b"small dataset"), KEY)
    (put,) = sent.of("PutObject")
    assert put.method == "PUT"
    assert put.url == f"https://storage.googleapis.com/{bucket}/{KEY}"
    authorization = header(put, "Authorization") or ""
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260304/auto/s3/aws4_request, "
    )
    assert result.etag == "etag-put"  # from the PUT's answer: no HEAD after it


def test_explicit_region_is_the_signing_region() -> None:
    client, sent = gcs_client(EXTERNAL_STORAGE_REGION="us-central1")
    with frozen_botocore_clock(FROZEN):
        client.upload_dataset(io.BytesIO(b"x"), KEY)
    (put,) = sent.of("PutObject")
    assert f"Credential={ACCESS_KEY}/20260304/us-central1/s3/aws4_request" in (
        header(put, "Authorization") or ""
    )


def test_put_object_carries_no_flexible_checksum() -> None:
    client, sent = gcs_client()
    client.upload_dataset(io.BytesIO(b"small dataset"), KEY)
    (put,) = sent.of("PutObject")
    assert checksum_markers(put) == []
    signed = re.search(r"SignedHeaders=([^,]+)", header(put, "Authorization") or "")
    assert (
        signed is not None
        and signed.group(1) == "content-type;host;x-amz-content-sha256;x-amz-date"
    )


def test_multipart_upload_is_path_style_without_flexible_checksums_or_tags() -> None:
    client, sent = gcs_client()
    data = b"\x5a" * (17 * MiB)  # over the 16 MiB threshold: two parts
    result = client.upload_dataset(io.BytesIO(data), KEY)
    assert Counter(sent.operations) == {
        "CreateMultipartUpload": 1,
        "UploadPart": 2,
        "CompleteMultipartUpload": 1,
    }
    for _, request in sent.requests:
        assert urlsplit(request.url).netloc == "storage.googleapis.com"
        assert urlsplit(request.url).path == f"/{BUCKET}/{KEY}"
    parts = sent.of("UploadPart")
    assert sorted(parse_qs(urlsplit(p.url).query)["partNumber"][0] for p in parts) == ["1", "2"]
    for part in parts:
        assert checksum_markers(part) == [], part.url
    create = sent.of("CreateMultipartUpload")[0]
    assert checksum_markers(create) == []
    assert result.size == len(data)
    assert result.etag == "etag-mpu"


def test_control_the_aws_profile_does_send_flexible_checksums() -> None:
    """The checks above can fail: boto3's defaults (the aws profile) are seen by them."""
    client, sent = gcs_client(EXTERNAL_STORAGE_PROVIDER="aws")
    client.upload_dataset(io.BytesIO(b"small dataset"), KEY)
    (put,) = sent.of("PutObject")
    assert checksum_markers(put) != []


def test_no_tagging_request_after_an_upload() -> None:
    client, sent = gcs_client()
    result = client.upload_dataset(io.BytesIO(b"small dataset"), KEY)
    assert sent.operations == ["PutObject"]
    assert client.external.recorded_sha256(BUCKET, KEY) is None  # no GetObjectTagging either
    assert sent.operations == ["PutObject"]
    assert len(result.sha256) == 64  # still measured, for the artifact row


def test_control_a_tagging_profile_tags_after_the_upload() -> None:
    client, sent = gcs_client(EXTERNAL_STORAGE_PROVIDER="minio")
    client.upload_dataset(io.BytesIO(b"small dataset"), KEY)
    assert sent.operations == ["PutObject", "PutObjectTagging"]


# -- presigned URLs --------------------------------------------------------------------------


def test_presigned_url_is_path_style_signed_for_auto_with_the_maximum_expiry() -> None:
    client, sent = gcs_client()
    with frozen_botocore_clock(FROZEN):
        url = client.generate_dataset_presigned_url(KEY, expiration=MAX_PRESIGN_SECONDS)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.scheme == "https"
    assert parts.netloc == "storage.googleapis.com"
    assert parts.path == f"/{BUCKET}/{KEY}"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert unquote(query["X-Amz-Credential"][0]) == (f"{ACCESS_KEY}/20260304/auto/s3/aws4_request")
    assert query["X-Amz-Expires"] == ["604800"]
    assert query["X-Amz-SignedHeaders"] == ["host"]
    assert SECRET_KEY not in url
    assert sent.requests == []  # signing sends nothing


@pytest.mark.parametrize("expiration", [MAX_PRESIGN_SECONDS + 1, 30 * 24 * 3600])
def test_presigned_url_beyond_seven_days_is_refused(expiration: int) -> None:
    assert MAX_PRESIGN_SECONDS == 604800  # GCS's limit for V4 signed URLs
    client, sent = gcs_client()
    with pytest.raises(InvalidArgument, match="1 to 604800 seconds"):
        client.generate_dataset_presigned_url(KEY, expiration=expiration)
    assert sent.requests == []


# -- copies and deletes ------------------------------------------------------------------


def test_copy_is_one_copy_object_request() -> None:
    client, sent = gcs_client()
    client.external.copy(BUCKET, KEY, "datasets/copy.zip")
    assert sent.operations == ["CopyObject"]
    (copy,) = sent.of("CopyObject")
    assert copy.method == "PUT"
    assert copy.url == f"https://storage.googleapis.com/{BUCKET}/datasets/copy.zip"
    assert unquote(header(copy, "x-amz-copy-source") or "") == f"{BUCKET}/{KEY}"


def test_delete_is_one_delete_object_request() -> None:
    client, sent = gcs_client()
    client.delete("datasets", KEY)
    assert sent.operations == ["DeleteObject"]
    (delete,) = sent.of("DeleteObject")
    assert delete.method == "DELETE"
    assert delete.url == f"https://storage.googleapis.com/{BUCKET}/{KEY}"


def test_why_multi_object_delete_is_off_boto3_signs_it_with_a_crc32_header() -> None:
    """GCS documents POST ?delete, but not the S3 checksum headers boto3 >= 1.36 adds to
    it even under ``when_required``. If botocore stops adding them, revisit the flag."""
    client, sent = gcs_client()
    client.external.client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": KEY}]})
    (bulk,) = sent.of("DeleteObjects")
    assert bulk.method == "POST"
    assert bulk.url == f"https://storage.googleapis.com/{BUCKET}?delete"
    assert header(bulk, "x-amz-sdk-checksum-algorithm") == "CRC32"
    assert header(bulk, "x-amz-checksum-crc32") is not None
    assert header(bulk, "Content-MD5") is None


def test_every_bulk_delete_in_the_package_reads_the_flag() -> None:
    """A module that sends DeleteObjects must fall back to DeleteObject when the provider's
    ``multi_object_delete`` is False (today no module sends it)."""
    package = Path(__file__).resolve().parent.parent / "dual_storage_app"
    unguarded = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if re.search(r"\bdelete_objects\s*\(|\"DeleteObjects\"", text := path.read_text())
        and "multi_object_delete" not in text
    ]
    assert unguarded == []


# -- multipart limits ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, 1, 17 * MiB, 100 * GiB, 1024 * GiB, 5 * 1024 * GiB])
def test_part_sizes_stay_within_the_xml_api_limits(size: int | None) -> None:
    """Parts 5 MiB to 5 GiB, at most 10,000 of them (GCS's part-upload page: part numbers
    1 to 10,000; sizes as S3's)."""
    chunk = transfer_config(size).multipart_chunksize
    assert 5 * MiB <= chunk <= 5 * GiB
    if size is not None:
        assert -(-size // chunk) <= MAX_PARTS == 10_000

"""Provider profiles: every quirk of MinIO, Cloudflare R2, AWS S3 and Google Cloud Storage
(its S3-compatible XML API, with HMAC keys) in one place.

A profile is picked per store by ``INTERNAL_STORAGE_PROVIDER`` /
``EXTERNAL_STORAGE_PROVIDER`` or, when unset, detected from the endpoint's host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from botocore.config import Config

_AWS_REGION_HOST = re.compile(
    r"^(?:.+\.)?s3[.-](?:dualstack\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com$"
)
# A store that accepts a connection and never answers costs at most
# TOTAL_ATTEMPTS x READ_TIMEOUT (plus backoff) before the caller gets StorageUnavailable.
# READ_TIMEOUT is an idle timeout between bytes, not a limit on a whole transfer.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
TOTAL_ATTEMPTS = 5
ChecksumMode = Literal["when_required", "when_supported"]


@dataclass(frozen=True)
class Prices:
    """What a store costs, in US dollars: storage per GB-month (GB = 2**30 bytes, as the
    providers bill), Class A (writes, lists) and Class B (reads) requests per million, and
    egress per GB. The defaults are each provider's list prices; settings override them."""

    storage_gb_month: float = 0.0
    class_a_per_million: float = 0.0
    class_b_per_million: float = 0.0
    egress_gb: float = 0.0


@dataclass(frozen=True)
class ProviderProfile:
    """How to talk to one kind of S3-compatible server."""

    name: str
    addressing_style: Literal["path", "virtual"]
    default_region: str
    # boto3 >= 1.36 sends CRC32 checksums by default; MinIO (older releases), R2 and GCS
    # have rejected them (django-storages #1482, boto3 #4398/#4400; GCS: see below).
    checksum_mode: ChecksumMode
    # R2 wants every multipart part but the last to be the same size.
    uniform_part_size: bool
    # Object tags carry the SHA-256 recorded at upload, checked on download. R2 and GCS
    # have no object tagging; there, downloads verify only against a hash the caller passes.
    supports_tagging: bool = True
    # We never send ACLs: objects stay private, and R2 rejects most ACL headers.
    sends_acl: bool = False
    # UploadPartCopy: a large server-side copy may go as s3transfer's multipart copy. False:
    # copy code sends one CopyObject instead (GCS documents no part copy).
    multipart_copy: bool = True
    # DeleteObjects (POST ?delete, up to 1,000 keys). False: delete one key per DeleteObject.
    # No code in the app sends DeleteObjects today (Store.delete is one DeleteObject); code
    # that batches deletes must read this flag first.
    multi_object_delete: bool = True
    # Browser uploads: each part's presigned PUT carries ``x-amz-checksum-sha256`` and the
    # store refuses a part whose bytes do not match it (S3, R2, MinIO, SeaweedFS). False:
    # no checksum header (GCS's XML API has none); the server's read-back hash still
    # checks every part before the dataset is marked ready.
    part_checksums: bool = True
    # List prices (a self-hosted MinIO costs nothing beyond its server).
    prices: Prices = Prices()

    def region_for(self, endpoint_url: str) -> str:
        """The region to sign for when none is set: AWS's is in its host name."""
        if self.name == "aws":
            match = _AWS_REGION_HOST.match(urlsplit(endpoint_url).hostname or "")
            if match:
                return match.group(1)
        return self.default_region

    def create_bucket_args(self, region: str) -> dict[str, Any]:
        """Extra CreateBucket arguments: AWS wants the region outside us-east-1."""
        if self.name == "aws" and region != "us-east-1":
            return {"CreateBucketConfiguration": {"LocationConstraint": region}}
        return {}

    def botocore_config(
        self,
        *,
        max_pool_connections: int,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> Config:
        """The botocore client configuration for this provider."""
        return Config(
            signature_version="s3v4",
            s3={"addressing_style": self.addressing_style},
            request_checksum_calculation=self.checksum_mode,
            response_checksum_validation=self.checksum_mode,
            # "standard" retries resets, timeouts, 5xx and SlowDown with jittered
            # exponential backoff under a retry budget (no retry storms); "legacy" has no
            # budget, "adaptive" is tuned to AWS's own throttling. 5 attempts in all.
            retries={"mode": "standard", "total_max_attempts": TOTAL_ATTEMPTS},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            tcp_keepalive=True,
        )


MINIO = ProviderProfile(
    name="minio",
    addressing_style="path",
    default_region="us-east-1",
    checksum_mode="when_required",
    uniform_part_size=False,
)
R2 = ProviderProfile(
    name="r2",
    addressing_style="path",
    default_region="auto",
    checksum_mode="when_required",
    uniform_part_size=True,
    supports_tagging=False,
    # Standard storage; egress is free.
    prices=Prices(
        storage_gb_month=0.015, class_a_per_million=4.50, class_b_per_million=0.36, egress_gb=0.0
    ),
)
AWS = ProviderProfile(
    name="aws",
    addressing_style="virtual",
    default_region="us-east-1",
    checksum_mode="when_supported",
    uniform_part_size=False,
    # S3 Standard, us-east-1: PUT/LIST $0.005 and GET $0.0004 per 1,000, first egress tier.
    prices=Prices(
        storage_gb_month=0.023, class_a_per_million=5.00, class_b_per_million=0.40, egress_gb=0.09
    ),
)
# Google Cloud Storage through its XML API, which speaks S3 to S3 clients signing with HMAC
# keys. What each setting rests on (docs/providers.md has the details):
# - addressing "path": the XML API serves https://storage.googleapis.com/BUCKET/OBJECT as
#   well as BUCKET.storage.googleapis.com; only path style works over TLS for every bucket
#   name (a wildcard certificate covers one DNS label, so "my.datasets" breaks virtual
#   hosting). https://cloud.google.com/storage/docs/request-endpoints
# - region "auto": Google's own boto3 sample uses region_name="auto" with
#   endpoint_url="https://storage.googleapis.com", and its V4 signing samples put "auto" in
#   the credential scope. https://cloud.google.com/storage/docs/aws-simple-migration
#   https://cloud.google.com/storage/docs/access-control/signing-urls-manually
# - checksums "when_required": boto3 >= 1.36's default CRC32 headers (and aws-chunked
#   trailers) fail against GCS (SignatureDoesNotMatch, "Expected checksum ... did not
#   match"); GCS's own integrity header is Content-MD5.
#   https://www.beginswithdata.com/2025/05/14/aws-s3-tools-with-gcs
#   https://nvidia.github.io/multi-storage-client/references/checksum_support.html
#   https://cloud.google.com/storage/docs/xml-api/put-object
# - no object tagging: the XML API's PUT object covers upload, part, copy, compose, ACLs
#   and retention, and has no ?tagging subresource. Same page as above.
# - multipart uploads are "compatible with Amazon S3 multipart uploads"; preconditions are
#   not supported on them and their objects have no MD5.
#   https://cloud.google.com/storage/docs/multipart-uploads
# - no part copy: an object is copied by one PUT with x-goog-copy-source (boto3's
#   x-amz-copy-source is processed: x-amz-* headers with an x-goog-* equivalent are, per
#   the simple-migration page); the part upload takes only a body (partNumber 1-10,000).
#   https://cloud.google.com/storage/docs/xml-api/put-object-copy
#   https://cloud.google.com/storage/docs/xml-api/put-object-multipart
# - multi-object delete IS documented (POST ?delete, up to 1,000 objects), but its listed
#   headers carry no checksum while boto3 >= 1.36 signs DeleteObjects with
#   x-amz-checksum-crc32 even under "when_required" (the S3-style checksum headers GCS does
#   not support): single DeleteObject calls until that is proven against real GCS.
#   https://cloud.google.com/storage/docs/xml-api/post-bucket
# - presigned URLs: V4 query signing with an HMAC key, at most 604,800 s (7 days), which
#   transfer.MAX_PRESIGN_SECONDS already enforces.
#   https://cloud.google.com/storage/docs/authentication/signatures
# - prices: https://cloud.google.com/storage/pricing (2026 list prices): Standard storage in
#   a region (us-central1) $0.000027397 per GiB-hour (x 730 h = $0.020 per GiB-month),
#   Class A $0.005 and Class B $0.0004 per 1,000 operations, egress to the internet
#   $0.12 per GiB (worldwide, first 10 TiB).
GCS = ProviderProfile(
    name="gcs",
    addressing_style="path",
    default_region="auto",
    checksum_mode="when_required",
    uniform_part_size=False,
    supports_tagging=False,
    multipart_copy=False,
    multi_object_delete=False,
    part_checksums=False,
    prices=Prices(
        storage_gb_month=0.020, class_a_per_million=5.00, class_b_per_million=0.40, egress_gb=0.12
    ),
)
PROFILES: dict[str, ProviderProfile] = {p.name: p for p in (MINIO, R2, AWS, GCS)}
_GCS_HOST = "storage.googleapis.com"  # the XML API's global endpoint


def detect_provider(endpoint_url: str) -> ProviderProfile:
    """Guess the provider from an endpoint URL; anything unknown is treated as MinIO."""
    host = (urlsplit(endpoint_url).hostname or "").lower()
    if host.endswith(".r2.cloudflarestorage.com"):
        return R2
    if host == "amazonaws.com" or host.endswith(".amazonaws.com"):
        return AWS
    if host == _GCS_HOST:
        return GCS
    return MINIO

"""Provider profiles: every quirk of MinIO, Cloudflare R2 and AWS S3 in one place.

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
    # boto3 >= 1.36 sends CRC32 checksums by default; MinIO (older releases) and R2
    # have rejected them (django-storages #1482, boto3 #4398/#4400).
    checksum_mode: ChecksumMode
    # R2 wants every multipart part but the last to be the same size.
    uniform_part_size: bool
    # Object tags carry the SHA-256 recorded at upload, checked on download. R2 has no
    # object tagging; there, downloads verify only against a hash the caller passes.
    supports_tagging: bool = True
    # We never send ACLs: objects stay private, and R2 rejects most ACL headers.
    sends_acl: bool = False
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
PROFILES: dict[str, ProviderProfile] = {p.name: p for p in (MINIO, R2, AWS)}


def detect_provider(endpoint_url: str) -> ProviderProfile:
    """Guess the provider from an endpoint URL; anything unknown is treated as MinIO."""
    host = (urlsplit(endpoint_url).hostname or "").lower()
    if host.endswith(".r2.cloudflarestorage.com"):
        return R2
    if host == "amazonaws.com" or host.endswith(".amazonaws.com"):
        return AWS
    return MINIO

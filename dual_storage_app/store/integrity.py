"""The SHA-256 recorded with an object at upload, and its check on download.

The hash is known only once the last byte has streamed, after the object exists, so it
cannot travel as metadata of a multipart upload. It is recorded as an object tag
(``sha256``) right after the upload; overwriting the object clears its tags, so a stale
hash never outlives its bytes. Providers without tagging (R2) record nothing, and their
downloads verify only against a hash the caller passes (the artifact rows keep one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config.stores import StoreConfig
from ..exceptions import IntegrityError
from .errors import describe, translated
from .objects import TransferResult

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TAG = "sha256"


def record_sha256(
    client: S3Client, config: StoreConfig, bucket: str, key: str, sha256: str
) -> None:
    """Tag ``bucket/key`` with its SHA-256 (one PutObjectTagging request)."""
    if not config.provider.supports_tagging:
        return
    with translated(config, "record the SHA-256 of", bucket, key):
        client.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": sha256}]}
        )


def recorded_sha256(client: S3Client, config: StoreConfig, bucket: str, key: str) -> str | None:
    """The SHA-256 recorded at upload, or ``None`` (no tagging, or not uploaded by us)."""
    if not config.provider.supports_tagging:
        return None
    with translated(config, "read the SHA-256 of", bucket, key):
        tags = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    return next((tag["Value"] for tag in tags if tag["Key"] == TAG), None)


def check_sha256(config: StoreConfig, result: TransferResult, expected: str | None) -> None:
    """Raise ``IntegrityError`` if the bytes read do not hash to ``expected``."""
    if expected is None or result.sha256 == expected.lower():
        return
    raise IntegrityError(
        f"Download from the {describe(config, result.bucket, result.key)} has SHA-256 "
        f"{result.sha256}, but {expected} was recorded at upload; nothing was written.",
        store=config.name,
        bucket=result.bucket,
        key=result.key,
    )

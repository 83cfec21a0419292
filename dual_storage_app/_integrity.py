"""The SHA-256 recorded with an object at upload, and its check on download.

The hash is known only once the last byte has streamed, after the object exists, so it
cannot travel as metadata of a multipart upload. It is recorded as an object tag
(``sha256``) right after the upload; overwriting the object clears its tags, so a stale
hash never outlives its bytes. Providers without tagging (R2) record nothing, and their
downloads verify only against a hash the caller passes (the artifact rows keep one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import describe, translated
from .exceptions import IntegrityError

if TYPE_CHECKING:
    from .objects import TransferResult
    from .store import Store

TAG = "sha256"


def record(store: Store, bucket: str, key: str, sha256: str) -> None:
    """Tag ``bucket/key`` with its SHA-256 (one PutObjectTagging request)."""
    if not store.config.provider.supports_tagging:
        return
    with translated(store.config, "record the SHA-256 of", bucket, key):
        store.client.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": sha256}]}
        )


def recorded(store: Store, bucket: str, key: str) -> str | None:
    """The SHA-256 recorded at upload, or ``None`` (no tagging, or not uploaded by us)."""
    if not store.config.provider.supports_tagging:
        return None
    with translated(store.config, "read the SHA-256 of", bucket, key):
        tags = store.client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    return next((tag["Value"] for tag in tags if tag["Key"] == TAG), None)


def check(store: Store, result: TransferResult, expected: str | None) -> None:
    """Raise ``IntegrityError`` if the bytes read do not hash to ``expected``."""
    if expected is None or result.sha256 == expected.lower():
        return
    raise IntegrityError(
        f"Download from the {describe(store.config, result.bucket, result.key)} has SHA-256 "
        f"{result.sha256}, but {expected} was recorded at upload; nothing was written.",
        store=store.name,
        bucket=result.bucket,
        key=result.key,
    )

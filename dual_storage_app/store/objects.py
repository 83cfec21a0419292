"""Plain records returned by the client: what is stored, and what a transfer moved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ObjectInfo:
    """An object as the store describes it (from HEAD or a listing)."""

    store: str
    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None
    content_type: str | None = None
    content_encoding: str | None = None  # from HEAD; listings do not say


@dataclass(frozen=True)
class TransferResult:
    """What an upload or download moved, measured in the same pass as the bytes."""

    store: str
    bucket: str
    key: str
    size: int
    sha256: str
    etag: str
    content_type: str | None = None


@dataclass(frozen=True)
class MultipartUpload:
    """An incomplete multipart upload: parts stored (and billed) but no object yet."""

    store: str
    bucket: str
    key: str
    upload_id: str
    initiated: datetime | None

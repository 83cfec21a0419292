"""Multipart uploads whose parts someone else sends: a browser, with presigned URLs.

The server creates the upload, signs each part's ``PUT`` against the store's public
endpoint (binding the part's SHA-256 into the signature where the provider checks part
checksums), reads back what the store holds with ``ListParts`` and completes the upload
with ``If-None-Match: *``, so an existing object is never replaced.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidArgument
from ..keys import validate_key
from .errors import translated
from .objects import MultipartUpload
from .upload import refused_if_taken

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from .facade import Store

CHECKSUM_HEADER = "x-amz-checksum-sha256"
MAX_PARTS = 10_000  # S3's limit on part numbers
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's floor for every part but the last


@dataclass(frozen=True)
class StoredPart:
    """One part the store holds, as ``ListParts`` reports it."""

    number: int
    size: int
    etag: str
    sha256: str | None  # base64, when the store reports it


@dataclass(frozen=True)
class SignedPart:
    """A presigned ``PUT`` of one part, and the headers the request must carry."""

    number: int
    url: str
    headers: dict[str, str]


def sha256_base64(value: str) -> str:
    """``value`` if it is the base64 of a 32-byte digest; else :class:`InvalidArgument`."""
    try:
        digest = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        digest = b""
    if len(digest) != 32:
        raise InvalidArgument(
            f"{value[:60]!r} is not a SHA-256 digest in base64 (44 characters ending in '=')."
        )
    return value


def hex_to_base64(hex_digest: str) -> str:
    """A hex SHA-256 as the base64 form S3's checksum headers use."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def create(store: Store, bucket: str, key: str, content_type: str) -> str:
    """Start a multipart upload of ``bucket/key``; its upload id."""
    key = validate_key(key, store=store.name, bucket=bucket)
    arguments: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
    if store.config.provider.part_checksums:
        arguments["ChecksumAlgorithm"] = "SHA256"
    with translated(store.config, "start a multipart upload", bucket, key):
        answer = store.client.create_multipart_upload(**arguments)
    return answer["UploadId"]


def sign_part(
    store: Store, bucket: str, key: str, upload_id: str, number: int, sha256: str, expires: int
) -> SignedPart:
    """A presigned ``UploadPart`` for part ``number`` on the public endpoint; the store
    refuses bytes whose SHA-256 is not ``sha256`` (base64) where the provider checks."""
    arguments: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "UploadId": upload_id,
        "PartNumber": number,
    }
    headers: dict[str, str] = {}
    if store.config.provider.part_checksums:
        arguments["ChecksumSHA256"] = sha256
        headers[CHECKSUM_HEADER] = sha256
    with translated(store.config, "presign a part", bucket, key):
        url = store.presigning_client().generate_presigned_url(
            "upload_part", Params=arguments, ExpiresIn=expires
        )
    return SignedPart(number=number, url=url, headers=headers)


def sign_put(
    store: Store, bucket: str, key: str, sha256: str, content_type: str, expires: int
) -> SignedPart:
    """A presigned ``PutObject`` of a whole small file: it creates ``key`` only if it is
    free (``If-None-Match: *``) and, where the provider checks, only with those bytes."""
    arguments: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "ContentType": content_type,
        "IfNoneMatch": "*",
    }
    headers = {"Content-Type": content_type, "If-None-Match": "*"}
    if store.config.provider.part_checksums:
        arguments["ChecksumSHA256"] = sha256
        headers[CHECKSUM_HEADER] = sha256
    with translated(store.config, "presign an upload", bucket, key):
        url = store.presigning_client().generate_presigned_url(
            "put_object", Params=arguments, ExpiresIn=expires
        )
    return SignedPart(number=1, url=url, headers=headers)


def stored_parts(store: Store, bucket: str, key: str, upload_id: str) -> list[StoredPart]:
    """Every part the store holds for the upload, in part-number order."""
    found: list[StoredPart] = []
    with translated(store.config, "list the parts of an upload", bucket, key):
        paginator = store.client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=bucket, Key=key, UploadId=upload_id):
            found += [
                StoredPart(
                    number=int(part["PartNumber"]),
                    size=int(part["Size"]),
                    etag=str(part["ETag"]),
                    sha256=part.get("ChecksumSHA256"),
                )
                for part in page.get("Parts", [])
            ]
    return sorted(found, key=lambda part: part.number)


def complete(
    store: Store,
    bucket: str,
    key: str,
    upload_id: str,
    parts: Sequence[StoredPart],
    checksums: dict[int, str],
) -> str:
    """Complete the upload from the store's own part list, refusing to replace an
    existing object (:class:`ObjectExists`); the new object's ETag."""
    listed: list[CompletedPartTypeDef] = []
    for part in parts:
        entry: CompletedPartTypeDef = {"PartNumber": part.number, "ETag": part.etag}
        if store.config.provider.part_checksums and part.number in checksums:
            entry["ChecksumSHA256"] = checksums[part.number]
        listed.append(entry)
    with (
        translated(store.config, "complete a multipart upload", bucket, key),
        refused_if_taken(store.config, bucket, key),
    ):
        answer = store.client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
            IfNoneMatch="*",
        )
    return str(answer.get("ETag", ""))


def abort(store: Store, bucket: str, key: str, upload_id: str) -> bool:
    """Abort the upload; False if the store no longer knows it."""
    upload = MultipartUpload(
        store=store.name, bucket=bucket, key=key, upload_id=upload_id, initiated=None
    )
    return store.abort_multipart_upload(upload)


def part_ranges(size: int, part_size: int) -> Iterator[tuple[int, int, int]]:
    """``(number, first byte, size)`` of every part of a ``size``-byte upload."""
    count = max(1, -(-size // part_size))
    for index in range(count):
        start = index * part_size
        yield index + 1, start, min(part_size, size - start)

"""Translate botocore/s3transfer failures into the app's own exception types."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
)
from s3transfer.exceptions import RetriesExceededError

from ..config.stores import StoreConfig
from ..exceptions import (
    AccessDenied,
    DualStorageError,
    IntegrityError,
    ObjectNotFound,
    StorageUnavailable,
)

_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "403",
    "InvalidToken",
    "ExpiredToken",
}


def describe(store: StoreConfig, bucket: str | None, key: str | None) -> str:
    """``internal store (http://minio:9000), bucket 'model-weights', key 'a.pth'``."""
    text = f"{store.name} store ({store.endpoint_url})"
    if bucket:
        text += f", bucket {bucket!r}"
    if key:
        text += f", key {key!r}"
    return text


@contextmanager
def translated(
    store: StoreConfig, action: str, bucket: str | None = None, key: str | None = None
) -> Iterator[None]:
    """Re-raise any transport or S3 error inside the block as a ``DualStorageError``."""
    try:
        yield
    except DualStorageError:
        raise
    except Exception as exc:
        translated_exc = to_storage_error(exc, store, action, bucket, key)
        if translated_exc is None:
            raise
        raise translated_exc from exc


def to_storage_error(
    exc: BaseException, store: StoreConfig, action: str, bucket: str | None, key: str | None
) -> DualStorageError | None:
    """The app's error for ``exc``, or ``None`` if it is not a storage failure."""
    where = describe(store, bucket, key)
    context: dict[str, Any] = {"store": store.name, "bucket": bucket, "key": key}
    cause = _root_cause(exc)
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        context.update(code=code or None, status=status or None)
        if code in _NO_BUCKET:
            return ObjectNotFound(
                f"Cannot {action}: the bucket does not exist on the {where}. "
                "Create it (manage.py dualstorage_createbuckets) or fix the bucket setting.",
                **context,
            )
        if code in _NOT_FOUND or status == 404:
            return ObjectNotFound(f"Cannot {action}: no such object on the {where}.", **context)
        if code == "PreconditionFailed" or status == 412:
            return IntegrityError(
                f"Cannot {action}: the object changed on the {where} while it was being "
                "read (its ETag no longer matches); nothing was written. Retry the download.",
                **context,
            )
        if code in _DENIED or status == 403:
            return AccessDenied(
                f"Cannot {action}: the {where} refused the request ({code or status}). "
                f"Check {store.name.upper()}_STORAGE_ACCESS_KEY and _SECRET_KEY.",
                **context,
            )
        return StorageUnavailable(
            f"Cannot {action}: the {where} answered {code or status}.", **context
        )
    if isinstance(cause, NoCredentialsError):
        return AccessDenied(f"Cannot {action}: no credentials for the {where}.", **context)
    if isinstance(cause, (ConnectionError, HTTPClientError, RetriesExceededError)):
        return StorageUnavailable(
            f"Cannot {action}: the {where} is unreachable ({type(cause).__name__}).", **context
        )
    if isinstance(cause, BotoCoreError):
        return StorageUnavailable(
            f"Cannot {action} on the {where}: {type(cause).__name__}.", **context
        )
    return None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost botocore error behind s3transfer/boto3 wrappers, else ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found: BaseException = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ClientError, BotoCoreError)):
            return current
        if isinstance(current, RetriesExceededError) and current.last_exception is not None:
            found = current
            current = current.last_exception
            continue
        current = current.__cause__ or current.__context__
    return found

"""The app's own error types.

Every error carries the store (``internal``/``external``), bucket and key it is about,
and its message names them. No message ever contains a secret key: the values that
reach a message are names, endpoints stripped of credentials, and keys.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation


class DualStorageError(Exception):
    """Base class: something went wrong talking to one of the two stores."""

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.store = store
        self.bucket = bucket
        self.key = key


class ObjectNotFound(DualStorageError, FileNotFoundError):
    """The object (or the bucket holding it) does not exist."""


class InvalidKey(DualStorageError, ValueError, SuspiciousFileOperation):
    """An object key was refused before any request was sent.

    Also a ``SuspiciousFileOperation``, so Django answers 400 if one escapes a view.
    """


class InvalidArgument(DualStorageError, ValueError):
    """An argument other than a key was refused (for example a presign expiry)."""


class StorageUnavailable(DualStorageError):
    """The store could not be reached, timed out, or answered with a server error."""


class AccessDenied(DualStorageError):
    """The store refused the credentials or the operation."""


class IntegrityError(DualStorageError):
    """Bytes read back do not match what was recorded at upload."""


class NoPublicURL(DualStorageError, AttributeError):
    """Internal objects never get a URL that a browser could follow to the private store.

    Also an ``AttributeError``, so Django's file widgets (``getattr(value, "url", False)``)
    render an internal file without a link instead of failing.
    """


class ConfigurationError(DualStorageError, ImproperlyConfigured):
    """The settings for a store are missing or contradictory."""


def safe_reason(
    exc: DualStorageError,
    *,
    key: str | None = None,
    bucket: str | None = None,
    store: str | None = None,
) -> str:
    """Why the operation failed, fit to show in a page: it names the key, bucket and
    store (given, else the error's own), never the store's endpoint (the internal one is
    private)."""
    key = key or exc.key or ""
    bucket = bucket or exc.bucket or ""
    store = store or exc.store or "storage"
    where = f"key {key!r} in bucket {bucket!r} on the {store} store"
    if isinstance(exc, ObjectNotFound):
        return f"no object at {where}"
    if isinstance(exc, AccessDenied):
        return f"access to {where} was refused (check the store's credentials)"
    if isinstance(exc, StorageUnavailable):
        return f"the {store} store could not be reached or failed for {where}"
    if isinstance(exc, IntegrityError):
        return f"the object at {where} no longer holds the bytes its row recorded"
    return f"{type(exc).__name__} for {where}"

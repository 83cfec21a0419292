"""The app's own error types, in two trees that never mix (as django-anymail keeps them):

* :class:`DualStorageError` and its subclasses: an operation on a store failed. Each
  carries the store (``internal``/``external``), bucket and key it is about, and, when
  the store answered, the S3 error ``code`` and HTTP ``status``; its message names them.
* :class:`ConfigurationError`: the settings are wrong, before any store is asked. It is
  Django's ``ImproperlyConfigured`` and carries the system-check ids of the problems.

No message ever contains a secret key: the values that reach a message are names,
endpoints stripped of credentials, and keys.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation


class DualStorageError(Exception):
    """Base class: an operation on one of the two stores failed."""

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.store = store
        self.bucket = bucket
        self.key = key
        #: The S3 error code the store answered (``"NoSuchKey"``, ``"AccessDenied"``,
        #: ``"SlowDown"``...), or ``None`` when no answer came (refused before sending,
        #: connection failure, integrity check).
        self.code = code
        #: The HTTP status of that answer (404, 403, 503...), or ``None``.
        self.status = status


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


class ConfigurationError(ImproperlyConfigured):
    """The settings for a store are missing or contradictory: not a storage failure, so
    not a :class:`DualStorageError`; ``except DualStorageError`` does not hide it.

    ``check_ids`` are the system checks that found the problems (``manage.py check``
    explains each); :meth:`public_message` is what a page may show.
    """

    def __init__(
        self, message: str, *, store: str | None = None, check_ids: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.store = store
        self.check_ids = tuple(check_ids)

    def public_message(self) -> str:
        """The problem for a page or an API answer: the check ids, never a value (the
        message itself may hold an endpoint)."""
        found = f" ({', '.join(self.check_ids)})" if self.check_ids else ""
        return (
            f"the storage is not configured{found}; run `manage.py check` for the problems "
            "and their fixes"
        )


def safe_reason(
    exc: DualStorageError | ConfigurationError,
    *,
    key: str | None = None,
    bucket: str | None = None,
    store: str | None = None,
) -> str:
    """Why the operation failed, fit to show in a page: it names the key, bucket and
    store (given, else the error's own), never the store's endpoint (the internal one is
    private). A misconfiguration names its check ids instead."""
    if isinstance(exc, ConfigurationError):
        return exc.public_message()
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


class ObjectExists(DualStorageError, FileExistsError):
    """A write that must not replace an object (``If-None-Match: *``) found the key taken:
    another save claimed the name first. Nothing of this write was stored."""


class CatalogError(DualStorageError):
    """The object was stored, but its artifact row could not be recorded (the database
    failed). The object is kept: repeating the write records it, and
    ``manage.py dualstorage_adopt`` registers objects that have no row."""

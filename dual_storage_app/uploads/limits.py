"""The settings of browser uploads: ``settings.DUAL_STORAGE_UPLOADS``, a dict.

``MAX_BYTES`` (largest file, default 5 TiB, S3's limit), ``PART_BYTES`` (the smallest
part size handed out, default 16 MiB; larger files get larger parts so that no upload
needs more than 10,000), ``SESSION_HOURS`` (how long an unfinished upload can be resumed
before the cleanup command aborts it, default 24), ``URL_SECONDS`` (lifetime of a signed
part URL, default 900), ``SIGN_BATCH`` (parts signed per request, default 100) and
``CHECK``: where the read-back of a completed upload runs, ``"thread"`` (default: a
thread of the web process that completed it) or ``"task"`` (a task on Django's task
framework, run by a worker such as ``manage.py db_worker``; needs
``dual_storage_app.jobs`` installed), so the web process only signs and records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from ..exceptions import ConfigurationError
from ..store.multipart import MAX_PARTS, MIN_PART_BYTES

SETTING = "DUAL_STORAGE_UPLOADS"
TIB = 1024**4
CHECK_CHOICES = ("thread", "task")


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 5 * TIB
    part_bytes: int = 16 * 1024 * 1024
    session_hours: int = 24
    url_seconds: int = 900
    sign_batch: int = 100
    check: str = "thread"

    def part_size_for(self, size: int) -> int:
        """The part size of a ``size``-byte file: ``part_bytes``, or more so that the
        file fits in 10,000 parts (rounded up to a whole MiB)."""
        needed = -(-size // MAX_PARTS)
        mebibyte = 1024 * 1024
        return max(self.part_bytes, -(-needed // mebibyte) * mebibyte)


_BOUNDS: dict[str, tuple[str, int, int]] = {
    "MAX_BYTES": ("max_bytes", 1, 5 * TIB),
    "PART_BYTES": ("part_bytes", MIN_PART_BYTES, 5 * 1024**3),
    "SESSION_HOURS": ("session_hours", 1, 24 * 30),
    "URL_SECONDS": ("url_seconds", 60, 7 * 24 * 3600),
    "SIGN_BATCH": ("sign_batch", 1, 1000),
}


def upload_limits() -> UploadLimits:
    """The project's limits; a wrong key or value is a ``ConfigurationError`` naming it."""
    given: Any = getattr(settings, SETTING, None) or {}
    if not isinstance(given, dict):
        raise ConfigurationError(f"settings.{SETTING} must be a dict, not {type(given).__name__}.")
    known = {*_BOUNDS, "CHECK"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigurationError(
            f"settings.{SETTING} has unknown keys {unknown}; it takes {sorted(known)}."
        )
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name == "CHECK":
            if value not in CHECK_CHOICES:
                raise ConfigurationError(
                    f"settings.{SETTING}['CHECK'] must be one of {list(CHECK_CHOICES)}, "
                    f"not {value!r}."
                )
            values["check"] = value
            continue
        field, low, high = _BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigurationError(
                f"settings.{SETTING}[{name!r}] must be a whole number from {low} to {high}, "
                f"not {value!r}."
            )
        values[field] = value
    return UploadLimits(**values)

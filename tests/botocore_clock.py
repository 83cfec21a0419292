"""Freeze botocore's signing clock on any supported botocore (before and after 1.41)."""

from __future__ import annotations

import datetime
import types
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from botocore import auth


def fixed_datetime(moment: datetime.datetime) -> type[datetime.datetime]:
    """A ``datetime.datetime`` whose ``utcnow()`` (and ``now()``) is always ``moment``."""

    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
            return moment

        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
            return moment if tz is None else moment.replace(tzinfo=datetime.timezone.utc)

    return Fixed


def datetime_module(moment: datetime.datetime) -> types.ModuleType:
    """A stand-in for the ``datetime`` module whose clock is stopped at ``moment``."""
    module = types.ModuleType("datetime")
    module.__dict__.update(datetime.__dict__)
    module.datetime = fixed_datetime(moment)  # type: ignore[attr-defined]
    return module


@contextmanager
def frozen_botocore_clock(moment: datetime.datetime) -> Iterator[None]:
    """botocore signs at ``moment`` (naive UTC): ``botocore.auth.get_current_datetime``
    where it exists (botocore >= 1.41), else the ``datetime`` module ``botocore.auth``
    calls ``datetime.datetime.utcnow()`` on."""
    if hasattr(auth, "get_current_datetime"):
        with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
            yield
    else:
        with mock.patch("botocore.auth.datetime", datetime_module(moment)):
            yield

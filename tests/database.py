"""The test suite's database: SQLite in memory, or the PostgreSQL server a URL names."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

POSTGRES_SCHEMES = {"postgres", "postgresql"}


def database_from_url(url: str | None) -> dict[str, Any]:
    """Django's ``DATABASES["default"]`` for ``postgres://user:password@host:port/name``,
    or SQLite in memory when ``url`` is empty."""
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(
            f"DUAL_STORAGE_TEST_DATABASE_URL must be a postgres:// URL, not {parts.scheme!r}."
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        # The test database is created from this one; each test's own is test_<name>.
        "TEST": {"NAME": f"test_{unquote(parts.path.lstrip('/')) or 'dual_storage'}"},
    }


def describe(database: dict[str, Any]) -> str:
    """``PostgreSQL at 127.0.0.1:5432`` or ``SQLite (in memory)``, for the report header."""
    if database["ENGINE"].endswith("postgresql"):
        return f"PostgreSQL at {database['HOST']}:{database['PORT']}"
    return "SQLite (in memory)"

"""Where each setting's value comes from: one name per setting, one precedence.

Every setting has one name, used everywhere: as a keyword of ``overrides``, as a key of the
``DUAL_STORAGE`` Django setting, and as an environment variable. For each name the first
of these that is set (not missing, not empty) wins:

1. explicit ``overrides`` given to :func:`load_config` / ``DualStorageClient(overrides=...)``;
2. ``settings.DUAL_STORAGE[name]`` (read on every call, so ``override_settings`` works);
3. the environment variable ``name`` (the seed's ``.env`` names);
4. the legacy environment variable in :data:`LEGACY_FALLBACKS` (``AWS_S3_ENDPOINT_URL``,
   ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` configure *both* stores;
   ``S3_BUCKET_DATASETS`` names the datasets bucket). A store's endpoint, access key and
   secret key fall back *together*: once any of the three is set by a higher level, the
   legacy variables are ignored for that store, so a forgotten secret is reported instead
   of silently borrowed from ``AWS_SECRET_ACCESS_KEY``;
5. the default in :data:`DEFAULTS`.

``SCHEMA_CACHE_SECONDS`` (default 5) is how long ``get_schema`` serves a schema from this
process's cache without asking the store; after that a read revalidates it with a
conditional GET. ``0`` revalidates on every read (see
:mod:`dual_storage_app.store.schema_cache`).

``{INTERNAL,EXTERNAL}_STORAGE_PRICE_{GB_MONTH,CLASS_A,CLASS_B,EGRESS_GB}`` (US dollars per
GB-month, per million Class A / Class B requests, per GB of egress) override the provider
profile's list prices for ``manage.py dualstorage_usage``.

``RETENTION_KEEP_LAST``, ``RETENTION_KEEP_BEST``, ``RETENTION_METRIC`` and
``RETENTION_METRIC_MODE`` (``min`` or ``max``) are the project's checkpoint retention
policy (:mod:`dual_storage_app.retention`); unset, nothing is deleted.

``LINK_AUDIT`` (default ``true``) records every presigned link handed out
(:mod:`dual_storage_app.audit`); ``LINK_AUDIT_DAYS`` (default 90) is how long a record is
kept before ``dualstorage_audit --purge`` deletes it.

``RECORD_CATALOG`` (default ``true``): where the app's models are installed and Django is
set up, every write through the client records or updates the artifact row of its bucket
and key (:mod:`dual_storage_app.catalog`); ``false`` turns that off.

Reading settings never touches the network. Problems are found by :mod:`.validation`
and reported by Django's system checks, or raised as ``ConfigurationError`` by
:func:`.loading.load_config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings as django_settings

from ..exceptions import ConfigurationError
from ..kinds import REGISTRY, StoreName

SETTINGS_KEY = "DUAL_STORAGE"
# ``{STORE}_STORAGE_PRICE_<item>`` -> the field of ``providers.Prices`` it sets.
PRICE_ITEMS: dict[str, str] = {
    "GB_MONTH": "storage_gb_month",
    "CLASS_A": "class_a_per_million",
    "CLASS_B": "class_b_per_million",
    "EGRESS_GB": "egress_gb",
}

DEFAULTS: dict[str, str | None] = {
    "INTERNAL_STORAGE_ENDPOINT": None,
    "INTERNAL_STORAGE_ACCESS_KEY": None,
    "INTERNAL_STORAGE_SECRET_KEY": None,
    "INTERNAL_STORAGE_REGION": None,
    "INTERNAL_STORAGE_PROVIDER": None,
    "EXTERNAL_STORAGE_ENDPOINT": None,
    "EXTERNAL_STORAGE_ACCESS_KEY": None,
    "EXTERNAL_STORAGE_SECRET_KEY": None,
    "EXTERNAL_STORAGE_REGION": None,
    "EXTERNAL_STORAGE_PROVIDER": None,
    "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": None,
    **{spec.bucket_setting: spec.default_bucket for spec in REGISTRY.values()},
    "SCHEMA_CACHE_SECONDS": "5",
    "RECORD_CATALOG": "true",
    # Prices in US dollars; unset: the provider profile's list prices.
    **{
        f"{store}_STORAGE_PRICE_{item}": None
        for store in ("INTERNAL", "EXTERNAL")
        for item in PRICE_ITEMS
    },
    # The project's checkpoint retention policy; a job's RetentionPolicy row overrides it.
    "RETENTION_KEEP_LAST": None,
    "RETENTION_KEEP_BEST": None,
    "RETENTION_METRIC": None,
    "RETENTION_METRIC_MODE": "min",
    # The link audit: every presigned link handed out is recorded, kept this many days.
    "LINK_AUDIT": "true",
    "LINK_AUDIT_DAYS": "90",
}
LEGACY_FALLBACKS: dict[str, str] = {
    "INTERNAL_STORAGE_ENDPOINT": "AWS_S3_ENDPOINT_URL",
    "INTERNAL_STORAGE_ACCESS_KEY": "AWS_ACCESS_KEY_ID",
    "INTERNAL_STORAGE_SECRET_KEY": "AWS_SECRET_ACCESS_KEY",
    "EXTERNAL_STORAGE_ENDPOINT": "AWS_S3_ENDPOINT_URL",
    "EXTERNAL_STORAGE_ACCESS_KEY": "AWS_ACCESS_KEY_ID",
    "EXTERNAL_STORAGE_SECRET_KEY": "AWS_SECRET_ACCESS_KEY",
    "EXTERNAL_BUCKET_DATASETS": "S3_BUCKET_DATASETS",
}
# Connection settings that fall back to the legacy variables only as a group.
_CONNECTION_GROUPS: dict[str, tuple[str, ...]] = {
    f"{store}_STORAGE_{suffix}": tuple(
        f"{store}_STORAGE_{member}" for member in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY")
    )
    for store in ("INTERNAL", "EXTERNAL")
    for suffix in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY")
}


@dataclass(frozen=True)
class Resolved:
    """One setting's value and where it came from (for messages and checks)."""

    name: str
    value: str | None = field(repr=False)
    origin: str

    def __repr__(self) -> str:
        shown = "'***'" if self.name.endswith("_KEY") and self.value else repr(self.value)
        return f"Resolved(name={self.name!r}, value={shown}, origin={self.origin!r})"


def setting_name(store: StoreName, suffix: str) -> str:
    """``setting_name("internal", "ENDPOINT")`` -> ``"INTERNAL_STORAGE_ENDPOINT"``."""
    return f"{store.upper()}_STORAGE_{suffix}"


def django_overrides() -> Mapping[str, object]:
    """The ``DUAL_STORAGE`` Django setting, or ``{}`` outside a configured Django."""
    if not django_settings.configured:
        return {}
    value = getattr(django_settings, SETTINGS_KEY, None)
    return value if isinstance(value, Mapping) else {}


def resolve(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Resolved]:
    """Resolve every setting by the documented precedence."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ConfigurationError(
            f"Unknown dual-storage setting(s) {', '.join(unknown)}; "
            f"known settings are {', '.join(DEFAULTS)}."
        )
    environ = os.environ if environ is None else environ
    from_django = django_overrides()
    higher_levels = (overrides, from_django, environ)

    def set_above_legacy(name: str) -> bool:
        return any(level.get(name) not in (None, "") for level in higher_levels)

    resolved: dict[str, Resolved] = {}
    for name, default in DEFAULTS.items():
        legacy = LEGACY_FALLBACKS.get(name)
        group = _CONNECTION_GROUPS.get(name, (name,))
        candidates: list[tuple[object, str]] = [
            (overrides.get(name), "explicit overrides"),
            (from_django.get(name), f"settings.{SETTINGS_KEY}[{name!r}]"),
            (environ.get(name), f"environment variable {name}"),
        ]
        if legacy and not any(set_above_legacy(member) for member in group):
            candidates.append((environ.get(legacy), f"legacy environment variable {legacy}"))
        candidates.append((default, "default"))
        value, origin = next(
            ((str(v), o) for v, o in candidates if v not in (None, "")), (None, "unset")
        )
        resolved[name] = Resolved(name, value, origin)
    return resolved


def legacy_names(values: Mapping[str, Resolved]) -> tuple[str, ...]:
    """The legacy variables that supplied a value, sorted."""
    return tuple(
        sorted({LEGACY_FALLBACKS[r.name] for r in values.values() if "legacy" in r.origin})
    )


def where_to_set(name: str) -> str:
    """Every place a setting can be given, for error messages and check hints."""
    places = f"settings.{SETTINGS_KEY}[{name!r}] or the environment variable {name}"
    legacy = LEGACY_FALLBACKS.get(name)
    return places + (f" (or the legacy {legacy})" if legacy else "")

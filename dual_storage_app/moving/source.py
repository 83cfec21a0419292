"""Where a migration reads from (the legacy single-bucket store, or the old external
provider of a swap) and, for a swap, the new external provider it writes to.

Each value is looked up in this order: ``settings.DUAL_STORAGE_MIGRATION`` (``SOURCE_*``
keys), the environment variable ``MIGRATION_SOURCE_*``, then the legacy name the seed's
platforms used (``AWS_S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``;
as a Django setting, which django-storages reads, or an environment variable). The
buckets are ``--bucket`` names, else ``SOURCE_BUCKETS``, else ``S3_BUCKET_DATASETS``
or django-storages' ``AWS_STORAGE_BUCKET_NAME``.

A provider swap copies into the new external provider while the application still uses
the old one: ``TARGET_ENDPOINT``, ``TARGET_ACCESS_KEY``, ``TARGET_SECRET_KEY`` (and
optionally ``TARGET_REGION``, ``TARGET_PROVIDER``, ``TARGET_BUCKET``) in the same
setting, or ``MIGRATION_TARGET_*`` in the environment, name it; the kinds of the
external store then land there instead of on the configured external store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from django.conf import settings

from ..config.providers import PROFILES, detect_provider
from ..config.stores import StoreConfig
from ..exceptions import ConfigurationError
from ..kinds import StoreName
from ..store import Store

SETTING = "DUAL_STORAGE_MIGRATION"
SOURCE_NAME = cast(StoreName, "source")  # named in messages: "the source store (...)"
SWAP_TARGET_NAME = cast(StoreName, "new external")

_FALLBACKS: dict[str, tuple[str, ...]] = {
    "SOURCE_ENDPOINT": ("AWS_S3_ENDPOINT_URL",),
    "SOURCE_ACCESS_KEY": ("AWS_ACCESS_KEY_ID",),
    "SOURCE_SECRET_KEY": ("AWS_SECRET_ACCESS_KEY",),
    "SOURCE_REGION": ("AWS_S3_REGION_NAME",),
    "SOURCE_PROVIDER": (),
    "SOURCE_BUCKETS": ("S3_BUCKET_DATASETS", "AWS_STORAGE_BUCKET_NAME"),
    "TARGET_ENDPOINT": (),
    "TARGET_ACCESS_KEY": (),
    "TARGET_SECRET_KEY": (),
    "TARGET_REGION": (),
    "TARGET_PROVIDER": (),
    "TARGET_BUCKET": (),
}
_SWAP_TARGET = "TARGET_ENDPOINT", "TARGET_ACCESS_KEY", "TARGET_SECRET_KEY"


def migration_settings() -> Mapping[str, Any]:
    """``settings.DUAL_STORAGE_MIGRATION`` (``{}`` when unset)."""
    value = getattr(settings, SETTING, None) or {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"settings.{SETTING} must be a dict.")
    return value


def _lookup(name: str, environ: Mapping[str, str]) -> tuple[object, str] | None:
    """A value and where it came from, by the module's order; ``None`` when unset."""
    configured = migration_settings().get(name)
    if configured not in (None, "", [], ()):
        return configured, f"settings.{SETTING}[{name!r}]"
    if environ.get(f"MIGRATION_{name}"):
        return environ[f"MIGRATION_{name}"], f"environment variable MIGRATION_{name}"
    for legacy in _FALLBACKS[name]:
        from_django = getattr(settings, legacy, None)
        if from_django not in (None, ""):
            return from_django, f"settings.{legacy}"
        if environ.get(legacy):
            return environ[legacy], f"environment variable {legacy}"
    return None


@dataclass(frozen=True)
class MigrationSource:
    """The store a migration reads and the buckets it reads there; for a provider swap,
    the new external store it writes (``swap_target``, its datasets bucket in
    ``buckets``; ``None``: the configured stores)."""

    config: StoreConfig
    buckets: tuple[str, ...]
    origins: Mapping[str, str] = field(default_factory=dict)
    swap_target: StoreConfig | None = None

    def store(self) -> Store:
        return Store(self.config)

    def describe(self) -> str:
        return f"{self.config.endpoint_url} ({self.config.provider.name}), bucket(s) " + ", ".join(
            self.buckets
        )


def _where(name: str) -> str:
    places = [f"settings.{SETTING}[{name!r}]", f"MIGRATION_{name}"]
    places += list(_FALLBACKS[name])
    return " or ".join(places)


def load_source(
    buckets: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> MigrationSource:
    """The source store from settings and the environment; ``ConfigurationError``
    names every missing value and where to set it (never a secret's value)."""
    environ = os.environ if environ is None else environ
    found = {name: _lookup(name, environ) for name in _FALLBACKS}
    missing = [
        name
        for name in ("SOURCE_ENDPOINT", "SOURCE_ACCESS_KEY", "SOURCE_SECRET_KEY")
        if found[name] is None
    ]
    chosen = tuple(buckets)
    if not chosen and found["SOURCE_BUCKETS"] is not None:
        value = found["SOURCE_BUCKETS"][0]
        chosen = tuple(
            name.strip()
            for name in (value.split(",") if isinstance(value, str) else cast(Sequence[str], value))
            if str(name).strip()
        )
    if not chosen:
        missing.append("SOURCE_BUCKETS")
    if missing:
        raise ConfigurationError(
            "The migration source is not configured: set "
            + "; ".join(f"{name} ({_where(name)})" for name in missing)
            + ". Bucket names can also be given with --bucket."
        )
    values = {
        name: str(item[0]) for name, item in found.items() if item and name != "SOURCE_BUCKETS"
    }
    swap_given = [name for name in _SWAP_TARGET if name in values]
    if swap_given and len(swap_given) < len(_SWAP_TARGET):
        raise ConfigurationError(
            "A provider swap's target needs all of "
            + ", ".join(f"{name} ({_where(name)})" for name in _SWAP_TARGET)
            + f"; only {', '.join(swap_given)} is set."
        )
    swap_target = None
    if swap_given:
        swap_target = _store_config(SWAP_TARGET_NAME, "TARGET", values)
        if values.get("TARGET_BUCKET"):
            swap_target = replace(swap_target, buckets={"datasets": values["TARGET_BUCKET"]})
    origins = {name: item[1] for name, item in found.items() if item}
    config = _store_config(SOURCE_NAME, "SOURCE", values)
    return MigrationSource(config, chosen, origins, swap_target)


def _store_config(name: StoreName, prefix: str, values: Mapping[str, str]) -> StoreConfig:
    """The source's or the swap target's configuration from ``values``."""
    endpoint = values[f"{prefix}_ENDPOINT"].rstrip("/")
    provider_name = values.get(f"{prefix}_PROVIDER", "").lower()
    if provider_name and provider_name not in PROFILES:
        raise ConfigurationError(
            f"Unknown {prefix}_PROVIDER {provider_name!r}; use one of {', '.join(PROFILES)}."
        )
    provider = PROFILES[provider_name] if provider_name else detect_provider(endpoint)
    return StoreConfig(
        name=name,
        endpoint_url=endpoint,
        access_key=values[f"{prefix}_ACCESS_KEY"],
        secret_key=values[f"{prefix}_SECRET_KEY"],
        region=values.get(f"{prefix}_REGION") or provider.region_for(endpoint),
        provider=provider,
        buckets={},
        prices=provider.prices,
    )

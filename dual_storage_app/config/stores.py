"""The built configuration of both stores, as the engine reads it.

Plain frozen records with no Django in them, so a process without Django settings (a
training worker) can build and use them. Secrets never appear in ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..kinds import ArtifactKind, StoreName, spec_for
from .providers import Prices, ProviderProfile

DEFAULT_SCHEMA_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class StoreConfig:
    """Everything needed to talk to one store."""

    name: StoreName
    endpoint_url: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str
    provider: ProviderProfile
    buckets: Mapping[ArtifactKind, str]
    public_endpoint_url: str | None = None  # None: the store never hands out URLs
    prices: Prices = field(default_factory=Prices)
    # Where each price came from: "the r2 profile's list price" or the setting's place.
    price_origins: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetentionDefaults:
    """The project's checkpoint retention policy (``None``: that rule is not set)."""

    keep_last: int | None = None
    keep_best: int | None = None
    metric: str | None = None
    metric_mode: str = "min"  # "min": lower is better; "max": higher is better


@dataclass(frozen=True)
class DualStorageSettings:
    """Both stores' configuration, plus the legacy names that supplied any value."""

    internal: StoreConfig
    external: StoreConfig
    legacy_names: tuple[str, ...] = ()
    schema_cache_seconds: float = DEFAULT_SCHEMA_CACHE_SECONDS
    record_catalog: bool = True  # client writes record their artifact rows
    retention: RetentionDefaults = field(default_factory=RetentionDefaults)
    link_audit: bool = True  # every presigned link handed out is recorded
    link_audit_days: int = 90  # how long a record is kept

    def store(self, name: StoreName) -> StoreConfig:
        return self.internal if name == "internal" else self.external

    def store_for(self, kind: ArtifactKind) -> StoreConfig:
        """The configuration of the store that holds ``kind`` (``InvalidArgument`` if
        ``kind`` is unknown)."""
        return self.store(spec_for(kind).store)

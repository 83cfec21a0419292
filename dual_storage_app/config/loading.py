"""Build :class:`~.stores.DualStorageSettings` from the resolved settings, or refuse."""

from __future__ import annotations

from collections.abc import Mapping

from ..exceptions import ConfigurationError
from ..kinds import REGISTRY, ArtifactKind, StoreName
from .providers import PROFILES, Prices, ProviderProfile, detect_provider
from .sources import PRICE_ITEMS, Resolved, legacy_names, resolve, setting_name
from .stores import DualStorageSettings, RetentionDefaults, StoreConfig
from .validation import find_problems, parse_flag


def load_config(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> DualStorageSettings:
    """Resolve every setting and build both stores' configuration, raising
    ``ConfigurationError`` that lists every error found."""
    values = resolve(overrides, environ)
    errors = [p for p in find_problems(values) if p.is_error]
    if errors:
        raise ConfigurationError(
            "dual-storage is misconfigured: "
            + " ".join(f"[{p.id}] {p.message} {p.hint}" for p in errors),
            check_ids=sorted({p.id for p in errors}),
        )
    return DualStorageSettings(
        internal=build_store_config("internal", values),
        external=build_store_config("external", values),
        legacy_names=legacy_names(values),
        schema_cache_seconds=float(values["SCHEMA_CACHE_SECONDS"].value or 0),
        record_catalog=bool(parse_flag(values["RECORD_CATALOG"].value)),
        retention=_retention(values),
        link_audit=bool(parse_flag(values["LINK_AUDIT"].value)),
        link_audit_days=int(values["LINK_AUDIT_DAYS"].value or 90),
    )


def _optional_int(resolved: Resolved) -> int | None:
    return int(resolved.value) if resolved.value not in (None, "") else None


def _retention(values: Mapping[str, Resolved]) -> RetentionDefaults:
    return RetentionDefaults(
        keep_last=_optional_int(values["RETENTION_KEEP_LAST"]),
        keep_best=_optional_int(values["RETENTION_KEEP_BEST"]),
        metric=values["RETENTION_METRIC"].value or None,
        metric_mode=(values["RETENTION_METRIC_MODE"].value or "min").lower(),
    )


def _prices(
    store: StoreName, provider: ProviderProfile, values: Mapping[str, Resolved]
) -> tuple[Prices, dict[str, str]]:
    """The store's prices: each set one, else the provider's list price; and where each
    came from."""
    chosen: dict[str, float] = {}
    origins: dict[str, str] = {}
    for item, attribute in PRICE_ITEMS.items():
        resolved = values[setting_name(store, f"PRICE_{item}")]
        if resolved.value not in (None, ""):
            chosen[attribute] = float(str(resolved.value))
            origins[attribute] = resolved.origin
        else:
            chosen[attribute] = getattr(provider.prices, attribute)
            origins[attribute] = f"the {provider.name} profile's list price"
    return Prices(**chosen), origins


def build_store_config(store: StoreName, values: Mapping[str, Resolved]) -> StoreConfig:
    """One store's configuration from resolved (and validated) values."""

    def get(suffix: str) -> str | None:
        return values[setting_name(store, suffix)].value

    endpoint = get("ENDPOINT") or ""
    provider_name = get("PROVIDER")
    provider = PROFILES[provider_name] if provider_name else detect_provider(endpoint)
    buckets: dict[ArtifactKind, str] = {
        kind: values[spec.bucket_setting].value or ""
        for kind, spec in REGISTRY.items()
        if spec.store == store
    }
    prices, price_origins = _prices(store, provider, values)
    return StoreConfig(
        name=store,
        prices=prices,
        price_origins=price_origins,
        endpoint_url=endpoint.rstrip("/"),
        access_key=get("ACCESS_KEY") or "",
        secret_key=get("SECRET_KEY") or "",
        region=get("REGION") or provider.region_for(endpoint),
        provider=provider,
        buckets=buckets,
        public_endpoint_url=(
            (values["EXTERNAL_STORAGE_PUBLIC_ENDPOINT"].value or endpoint).rstrip("/")
            if store == "external"
            else None
        ),
    )

"""dual-storage: a private internal store and a presignable external store for Django.

:data:`PUBLIC_API` is the one list of what users import (the README documents each
name); everything else is the app's own and may change between releases.
"""

__version__ = "0.1.0"

PUBLIC_API: dict[str, tuple[str, ...]] = {
    "dual_storage_app.client": (
        "dual_storage",
        "DualStorageClient",
        "LazyDualStorageClient",
        "schema_key",
        "clear_schema_cache",
    ),
    "dual_storage_app.storages": (
        "InternalStorage",
        "ExternalStorage",
        "weights_storage",
        "checkpoints_storage",
        "schemas_storage",
        "datasets_storage",
    ),
    "dual_storage_app.models": (
        "Artifact",
        "ModelWeight",
        "TrainingCheckpoint",
        "ConfigSchema",
        "Dataset",
        "RetentionPolicy",
        "IssuedLink",
        "ARTIFACT_MODELS",
    ),
    "dual_storage_app.exceptions": (
        "DualStorageError",
        "ObjectNotFound",
        "InvalidKey",
        "InvalidArgument",
        "AccessDenied",
        "StorageUnavailable",
        "IntegrityError",
        "NoPublicURL",
        "ObjectExists",
        "CatalogError",
        "ConfigurationError",
    ),
    "dual_storage_app.kinds": ("ArtifactKind", "KINDS", "REGISTRY", "KindSpec"),
    "dual_storage_app.keys": ("validate_key", "validate_prefix"),
    "dual_storage_app.catalog": ("register", "is_publication"),
    "dual_storage_app.retention": ("plan_retention", "apply_retention"),
    "dual_storage_app.usage": ("usage_report", "growth_series"),
    "dual_storage_app.links": ("issued_to", "Holder"),
    "dual_storage_app.audit": ("purge_old_records",),
    "dual_storage_app.store": ("Store", "ObjectInfo", "TransferResult"),
    "dual_storage_app.store.transfer": ("reporting_progress",),
    "dual_storage_app.config.providers": ("PROFILES", "ProviderProfile", "Prices"),
    "dual_storage_app.urls": ("urlpatterns", "app_name"),
    "dual_storage_app.testing.server": ("LocalS3Server",),
    "dual_storage_app.testing.plugin": (
        "dual_storage_servers",
        "dual_storage_buckets",
        "dual_storage_module_buckets",
    ),
    "dual_storage_app.testing.pair": ("S3Servers", "store_settings", "fresh_buckets"),
}

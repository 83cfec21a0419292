"""The artifact kinds: the one registry every other module reads.

A kind names what an object is (``weights``, ``checkpoints``, ``schemas``,
``datasets``), which store holds it, which setting names its bucket (and that bucket's
default), the prefix its model's generated keys start with, and the artifact model that
records it. Nothing else in the package spells out that datasets live on the external
store, or lists the kinds again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .exceptions import InvalidArgument

StoreName = Literal["internal", "external"]
ArtifactKind = Literal["weights", "checkpoints", "schemas", "datasets"]
STORE_NAMES: tuple[StoreName, ...] = ("internal", "external")


@dataclass(frozen=True)
class KindSpec:
    """Where artifacts of one kind live and how they are recorded."""

    kind: ArtifactKind
    store: StoreName
    bucket_setting: str
    default_bucket: str
    key_prefix: str  # the first segment of the keys the artifact model generates
    model_name: str  # the artifact model in dual_storage_app.models

    @property
    def is_internal(self) -> bool:
        return self.store == "internal"


_SPECS = (
    KindSpec(
        kind="weights",
        store="internal",
        bucket_setting="INTERNAL_BUCKET_WEIGHTS",
        default_bucket="model-weights",
        key_prefix="weights",
        model_name="ModelWeight",
    ),
    KindSpec(
        kind="checkpoints",
        store="internal",
        bucket_setting="INTERNAL_BUCKET_CHECKPOINTS",
        default_bucket="training-checkpoints",
        key_prefix="jobs",
        model_name="TrainingCheckpoint",
    ),
    KindSpec(
        kind="schemas",
        store="internal",
        bucket_setting="INTERNAL_BUCKET_SCHEMAS",
        default_bucket="config-schemas",
        key_prefix="versions",
        model_name="ConfigSchema",
    ),
    KindSpec(
        kind="datasets",
        store="external",
        bucket_setting="EXTERNAL_BUCKET_DATASETS",
        default_bucket="training-datasets",
        key_prefix="datasets",
        model_name="Dataset",
    ),
)
REGISTRY: dict[ArtifactKind, KindSpec] = {spec.kind: spec for spec in _SPECS}
KINDS: tuple[ArtifactKind, ...] = tuple(REGISTRY)


def spec_for(kind: object) -> KindSpec:
    """The registry entry of ``kind``; ``InvalidArgument`` names the known kinds."""
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise InvalidArgument(f"Unknown artifact kind {kind!r}; use one of {', '.join(KINDS)}.")
    return REGISTRY[kind]


def kinds_on(store: StoreName) -> tuple[ArtifactKind, ...]:
    """The kinds held by ``store``, in registry order."""
    return tuple(kind for kind, spec in REGISTRY.items() if spec.store == store)

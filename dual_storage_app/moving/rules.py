"""Which artifact kind a legacy key is, and under which key it lands: the migration rules.

A rule is a glob over the source key (``*`` stays inside one ``/`` segment, ``**``
crosses them, ``?`` is one character), optionally limited to one source bucket; the
first rule that matches decides. A matching rule either maps the key to a kind (its new
key is the old one with ``strip`` removed from the front and ``prefix`` added) or, with
``skip``, leaves the object where it is. A key no rule matches is reported as unmapped
and left alone.

Rules come from a preset (:data:`PRESETS`: ``legacy`` for the single-bucket layouts the
seed's platforms used, ``datasets`` for a provider swap), from a JSON file, or from
``settings.DUAL_STORAGE_MIGRATION["RULES"]``; each is a mapping such as
``{"match": "weights/**", "kind": "weights", "strip": "weights/"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from ..exceptions import InvalidArgument, InvalidKey
from ..keys import validate_key
from ..kinds import KINDS, ArtifactKind

_RULE_FIELDS = {"match", "kind", "strip", "prefix", "bucket", "skip"}


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a rule's glob (the whole key must match)."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


@dataclass(frozen=True)
class Rule:
    """One line of the mapping: which keys it takes, and where they go."""

    match: str
    kind: ArtifactKind | None = None  # None: a skip rule
    strip: str = ""
    prefix: str = ""
    bucket: str | None = None  # only keys of this source bucket

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return glob_pattern(self.match)

    def matches(self, bucket: str, key: str) -> bool:
        return (self.bucket is None or self.bucket == bucket) and bool(self._regex.match(key))

    def target_key(self, key: str) -> str:
        """The key under which ``key`` lands in its kind's bucket."""
        return self.prefix + (key[len(self.strip) :] if key.startswith(self.strip) else key)

    def describe(self) -> str:
        where = f" in bucket {self.bucket}" if self.bucket else ""
        if self.kind is None:
            return f"{self.match}{where} -> left alone"
        change = ""
        if self.strip or self.prefix:
            change = f" (key: drop {self.strip!r}, add {self.prefix!r})"
        return f"{self.match}{where} -> {self.kind}{change}"


@dataclass(frozen=True)
class Mapped:
    """Where one source object goes (``kind`` None: a skip rule took it)."""

    kind: ArtifactKind | None
    target_key: str
    rule: Rule


def _weights(folder: str) -> Rule:
    return Rule(f"{folder}/**", "weights", strip=f"{folder}/")


LEGACY_RULES: tuple[Rule, ...] = (
    _weights("weights"),
    _weights("models"),
    _weights("model-weights"),
    Rule("checkpoints/**", "checkpoints", strip="checkpoints/"),
    Rule("training-checkpoints/**", "checkpoints", strip="training-checkpoints/"),
    Rule("jobs/**", "checkpoints"),  # the client's own layout: jobs/<job id>/...
    Rule("schemas/*.json", "schemas", strip="schemas/"),
    Rule("config-schemas/*.json", "schemas", strip="config-schemas/"),
    Rule("datasets/**", "datasets"),
    Rule("**", "datasets"),  # the legacy bucket was the datasets bucket
)
"""The single-bucket layouts: weights, checkpoints and schemas under their folder names
(the folder dropped from the key, as the client writes them), checkpoints already under
``jobs/<job id>/`` kept as they are, and everything else a dataset, key unchanged."""

DATASETS_RULES: tuple[Rule, ...] = (Rule("**", "datasets"),)
"""A provider swap: every object of the old external bucket is a dataset, key unchanged."""

PRESETS: dict[str, tuple[Rule, ...]] = {"legacy": LEGACY_RULES, "datasets": DATASETS_RULES}


def _text(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry.get(name, "")
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: {name!r} must be a string, not {value!r}.")
    return value


def rule_from(entry: object, where: str) -> Rule:
    """A :class:`Rule` from one mapping of a rules list; ``InvalidArgument`` names the
    rule (``where``) and what is wrong with it."""
    if not isinstance(entry, Mapping):
        raise InvalidArgument(f"{where} must be a mapping such as {{'match': ..., 'kind': ...}}.")
    unknown = sorted(set(entry) - _RULE_FIELDS)
    if unknown:
        raise InvalidArgument(
            f"{where} has unknown field(s) {', '.join(unknown)}; "
            f"use {', '.join(sorted(_RULE_FIELDS))}."
        )
    match = _text(entry, "match", where)
    if not match:
        raise InvalidArgument(f"{where} needs a 'match' glob such as 'weights/**'.")
    skip = entry.get("skip", False)
    if not isinstance(skip, bool):
        raise InvalidArgument(f"{where}: 'skip' must be true or false.")
    kind = entry.get("kind")
    if skip == (kind is not None):
        raise InvalidArgument(
            f"{where} needs either a 'kind' ({', '.join(KINDS)}) or 'skip': true."
        )
    if kind is not None and kind not in KINDS:
        raise InvalidArgument(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}.")
    bucket = entry.get("bucket")
    if bucket is not None and not isinstance(bucket, str):
        raise InvalidArgument(f"{where}: 'bucket' must be a bucket name.")
    return Rule(
        match=match,
        kind=cast(ArtifactKind | None, kind),
        strip=_text(entry, "strip", where),
        prefix=_text(entry, "prefix", where),
        bucket=bucket,
    )


def rules_from(entries: object, origin: str) -> tuple[Rule, ...]:
    """Rules from a list of mappings (a file's or a setting's ``origin``)."""
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence) or not entries:
        raise InvalidArgument(f"The migration rules in {origin} must be a non-empty list.")
    return tuple(
        rule_from(entry, f"rule {number} in {origin}") for number, entry in enumerate(entries, 1)
    )


def load_rules(choice: str | None, setting: object = None) -> tuple[Rule, ...]:
    """The rules to use: ``choice`` is a preset name or a JSON file's path; without one,
    the ``RULES`` setting (``setting``), else the ``legacy`` preset."""
    if choice is None:
        if setting is not None:
            return rules_from(setting, 'settings.DUAL_STORAGE_MIGRATION["RULES"]')
        return LEGACY_RULES
    if choice in PRESETS:
        return PRESETS[choice]
    path = Path(choice)
    if not path.is_file():
        raise InvalidArgument(
            f"--rules {choice!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file."
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"Cannot read the rules file {choice}: {exc}.") from None
    return rules_from(entries, choice)


def map_key(rules: Iterable[Rule], bucket: str, key: str) -> Mapped | None:
    """Where ``bucket/key`` goes under ``rules`` (``None``: no rule matches). A target
    key the app would refuse raises ``InvalidKey`` naming it."""
    for rule in rules:
        if rule.matches(bucket, key):
            target = rule.target_key(key)
            if rule.kind is not None:
                try:
                    validate_key(target)
                except InvalidKey as exc:
                    raise InvalidKey(f"{key!r} maps to a refused key: {exc}") from None
            return Mapped(rule.kind, target, rule)
    return None

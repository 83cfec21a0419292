"""Find configuration problems without any network I/O.

Shared by :func:`.loading.load_config` (which raises on errors) and by the system checks
in :mod:`dual_storage_app.checks` (which report errors and warnings with ids and hints).
Region names and endpoint hosts are judged by botocore's own rules, so what passes here
is what botocore accepts.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import InvalidRegionError
from botocore.utils import is_valid_uri, validate_region_name

from ..kinds import REGISTRY, STORE_NAMES, StoreName
from .providers import PROFILES
from .sources import DEFAULTS, Resolved, legacy_names, setting_name, where_to_set

# S3 bucket naming rules (the subset every provider accepts).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Problem:
    id: str
    message: str
    hint: str
    is_error: bool = True


def find_problems(values: Mapping[str, Resolved], *, production: bool = False) -> list[Problem]:
    """Every problem in the resolved settings, errors and warnings alike."""
    problems: list[Problem] = []
    for store in STORE_NAMES:
        problems += _store_problems(store, values)
    problems += _bucket_problems(values, production=production)
    problems += _schema_cache_problems(values)
    problems += _record_catalog_problems(values)
    problems += _price_problems(values)
    problems += _retention_problems(values)
    legacy = legacy_names(values)
    if legacy:
        problems.append(
            Problem(
                "dual_storage_app.W001",
                f"Legacy storage variables are in use: {', '.join(legacy)}.",
                "Set INTERNAL_STORAGE_* and EXTERNAL_STORAGE_* instead; the legacy names "
                "configure both stores alike.",
                is_error=False,
            )
        )
    if production and _same_server(values):
        problems.append(
            Problem(
                "dual_storage_app.W002",
                "The internal and external stores use the same endpoint while DEBUG is off.",
                "In production the internal store should be the private MinIO beside the "
                "backend and the external store R2, S3 or GCS.",
                is_error=False,
            )
        )
    return problems


def unknown_setting_problems(keys: object) -> list[Problem]:
    """Problems with the shape of ``settings.DUAL_STORAGE`` itself."""
    if not isinstance(keys, Mapping):
        return [
            Problem(
                "dual_storage_app.E007",
                f"settings.DUAL_STORAGE must be a dict, not {type(keys).__name__}.",
                "Use a dict whose keys are the environment variable names, "
                "e.g. {'INTERNAL_STORAGE_ENDPOINT': 'http://minio:9000'}.",
            )
        ]
    unknown = sorted(str(k) for k in keys if k not in DEFAULTS)
    if not unknown:
        return []
    return [
        Problem(
            "dual_storage_app.E007",
            f"Unknown key(s) in settings.DUAL_STORAGE: {', '.join(unknown)}.",
            f"Known keys: {', '.join(DEFAULTS)}.",
        )
    ]


def _store_problems(store: StoreName, values: Mapping[str, Resolved]) -> list[Problem]:
    problems: list[Problem] = []
    endpoint_name = setting_name(store, "ENDPOINT")
    endpoint = values[endpoint_name].value
    if not endpoint:
        problems.append(
            Problem(
                "dual_storage_app.E001",
                f"The {store} store has no endpoint ({endpoint_name} is not set).",
                f"Set {where_to_set(endpoint_name)}, e.g. http://localhost:30900.",
            )
        )
    elif (url_problem := _url_problem(endpoint)) is not None:
        problems.append(
            Problem(
                "dual_storage_app.E003",
                f"{endpoint_name} from {values[endpoint_name].origin} {url_problem}.",
                "Use an http(s) URL with a host and no credentials, e.g. https://s3.example.com.",
            )
        )
    missing = [
        name
        for name in (setting_name(store, "ACCESS_KEY"), setting_name(store, "SECRET_KEY"))
        if not values[name].value
    ]
    if missing:
        problems.append(
            Problem(
                "dual_storage_app.E002",
                f"The {store} store has no credentials ({' and '.join(missing)} not set).",
                "Set " + "; ".join(where_to_set(n) for n in missing) + ".",
            )
        )
    region_name = setting_name(store, "REGION")
    region = values[region_name].value
    if region and not _is_region_name(region):
        problems.append(
            Problem(
                "dual_storage_app.E009",
                f"{region_name} is {region!r}, which is not a region name.",
                "Use a region such as us-east-1, eu-west-1 or (R2, GCS) auto, or leave it unset.",
            )
        )
    provider_name = setting_name(store, "PROVIDER")
    provider = values[provider_name].value
    if provider and provider not in PROFILES:
        problems.append(
            Problem(
                "dual_storage_app.E005",
                f"{provider_name} is {provider!r}, which is not a known provider.",
                f"Use one of {', '.join(PROFILES)}, or leave it unset to detect it "
                "from the endpoint.",
            )
        )
    if store == "external":
        public = values["EXTERNAL_STORAGE_PUBLIC_ENDPOINT"].value
        if public and (url_problem := _url_problem(public)) is not None:
            problems.append(
                Problem(
                    "dual_storage_app.E004",
                    f"EXTERNAL_STORAGE_PUBLIC_ENDPOINT {url_problem}.",
                    "Use the http(s) URL a browser reaches, e.g. https://datasets.example.com; "
                    "presigned URLs are signed against it.",
                )
            )
    return problems


def _bucket_problems(values: Mapping[str, Resolved], *, production: bool) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    same_server = _same_server(values)
    for spec in REGISTRY.values():
        store, name = spec.store, spec.bucket_setting
        bucket = values[name].value or ""
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            problems.append(
                Problem(
                    "dual_storage_app.E006",
                    f"{name} is {bucket!r}, which is not a valid bucket name.",
                    "Bucket names are 3-63 characters of lowercase letters, digits, '-' and '.'.",
                )
            )
            continue
        server = "shared" if same_server else store
        other = seen.get((server, bucket))
        if other is None:
            seen[(server, bucket)] = name
            continue
        crosses_stores = other.startswith("INTERNAL") != name.startswith("INTERNAL")
        problems.append(
            Problem(
                "dual_storage_app.E008"
                if (production or not crosses_stores)
                else "dual_storage_app.W003",
                f"{other} and {name} name the same bucket {bucket!r} on the same server.",
                "Give every artifact kind its own bucket: datasets sharing a bucket with "
                "internal artifacts puts private objects where presigned links point.",
                is_error=production or not crosses_stores,
            )
        )
    return problems


def _schema_cache_problems(values: Mapping[str, Resolved]) -> list[Problem]:
    """E010: ``SCHEMA_CACHE_SECONDS`` must be a finite number of seconds, 0 or more."""
    resolved = values["SCHEMA_CACHE_SECONDS"]
    try:
        seconds = float(resolved.value or 0)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds) and seconds >= 0:
        return []
    return [
        Problem(
            "dual_storage_app.E010",
            f"SCHEMA_CACHE_SECONDS from {resolved.origin} is {resolved.value!r}, which is not "
            "a number of seconds >= 0.",
            f"Set {where_to_set(resolved.name)} to how long get_schema() may serve a schema "
            "from memory, e.g. 5; 0 revalidates with the store on every read.",
        )
    ]


TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def parse_flag(value: str | None) -> bool | None:
    """``"true"``/``"1"``/``"yes"``/``"on"`` -> True, their opposites -> False (any case),
    anything else -> None."""
    word = (value or "").strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def _record_catalog_problems(values: Mapping[str, Resolved]) -> list[Problem]:
    """E011: ``RECORD_CATALOG`` must be a boolean."""
    resolved = values["RECORD_CATALOG"]
    if parse_flag(resolved.value) is not None:
        return []
    return [
        Problem(
            "dual_storage_app.E011",
            f"RECORD_CATALOG from {resolved.origin} is {resolved.value!r}, which is not a boolean.",
            f"Set {where_to_set(resolved.name)} to true (client writes record their "
            "artifact rows) or false.",
        )
    ]


def _price_problems(values: Mapping[str, Resolved]) -> list[Problem]:
    """E012: a price must be a finite number of US dollars, 0 or more."""
    problems = []
    for name, resolved in values.items():
        if "_STORAGE_PRICE_" not in name or resolved.value in (None, ""):
            continue
        try:
            price = float(str(resolved.value))
        except ValueError:
            price = math.nan
        if not (math.isfinite(price) and price >= 0):
            problems.append(
                Problem(
                    "dual_storage_app.E012",
                    f"{name} from {resolved.origin} is {resolved.value!r}, which is not a "
                    "price (a number of US dollars >= 0).",
                    f"Set {where_to_set(name)} to a price such as 0.015, or leave it unset "
                    "for the provider's list price.",
                )
            )
    return problems


def _retention_problems(values: Mapping[str, Resolved]) -> list[Problem]:
    """E013: the retention counts are whole numbers (keep-last at least 1), the mode is
    min or max, and keeping the best needs a metric."""
    found: list[str] = []
    for name, least in (("RETENTION_KEEP_LAST", 1), ("RETENTION_KEEP_BEST", 0)):
        value = values[name].value
        if value not in (None, "") and not (str(value).isdigit() and int(str(value)) >= least):
            found.append(
                f"{name} from {values[name].origin} is {value!r}, not a whole number >= {least}"
            )
    mode = values["RETENTION_METRIC_MODE"]
    if (mode.value or "min").lower() not in ("min", "max"):
        found.append(f"RETENTION_METRIC_MODE from {mode.origin} is {mode.value!r}, not min or max")
    best = values["RETENTION_KEEP_BEST"].value
    if best not in (None, "", "0") and not values["RETENTION_METRIC"].value:
        found.append("RETENTION_KEEP_BEST is set without RETENTION_METRIC")
    return [
        Problem(
            "dual_storage_app.E013",
            f"The checkpoint retention policy is invalid: {problem}.",
            "RETENTION_KEEP_LAST keeps the newest N epochs of each job, RETENTION_KEEP_BEST "
            "the best K by RETENTION_METRIC (a key of the checkpoint's metrics), "
            "RETENTION_METRIC_MODE min (lower is better) or max.",
        )
        for problem in found
    ]


def _same_server(values: Mapping[str, Resolved]) -> bool:
    internal = values["INTERNAL_STORAGE_ENDPOINT"].value
    external = values["EXTERNAL_STORAGE_ENDPOINT"].value
    return bool(internal) and _server_id(internal) == _server_id(external)


_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _server_id(url: str | None) -> tuple[str, int | None] | None:
    """Who answers at ``url``, normalised so two spellings of one server compare equal:
    host case and a trailing dot, the scheme's default port, and every loopback name
    and address (``localhost``, ``127.0.0.0/8``, ``::1``) as one host."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        is_loopback = host in _LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    return ("loopback" if is_loopback else host, port or _DEFAULT_PORTS.get(parts.scheme))


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"must start with http:// or https:// (got scheme {parts.scheme!r})"
    if not parts.hostname:
        return "has no host"
    if not is_valid_uri(url):  # botocore's own rule: it would refuse the client
        return f"has a host name botocore refuses ({parts.hostname!r})"
    if parts.username or parts.password:
        return "must not carry credentials in the URL"
    if parts.query or parts.fragment:
        return "must not have a query string or fragment"
    return None


def _is_region_name(region: str) -> bool:
    """botocore's rule: a DNS label, not all digits."""
    try:
        validate_region_name(region)
    except InvalidRegionError:
        return False
    return True

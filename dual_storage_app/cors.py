"""The CORS rule that lets browsers upload datasets straight to the external store.

Browsers send presigned ``PUT`` requests (PutObject, UploadPart) and presigned ``GET``
requests to the external store's datasets bucket, from the site's origins. A presigned
request carries its signature, date and payload hash in the query string, so the only
request headers a browser adds are the ones the URL signed: ``x-amz-checksum-sha256``
(each part's checksum), ``content-type`` (a small file's PUT) and ``if-none-match``
(a write that must not replace an object). Each of those makes the browser send a
preflight ``OPTIONS`` first, which the bucket's CORS configuration answers.

This module builds our rule (:func:`upload_rule`, ID :data:`RULE_ID`), reads a bucket's
rules (:func:`current_rules`), puts ours while keeping every other rule
(:func:`merge_rule`, :func:`set_rule`) and checks both the rules and a real preflight
(:func:`check`). ``manage.py dualstorage_cors`` is its command. It only ever works on
the bucket it is given, which the command takes from the external store; no function
here reads the internal store.

Origins (:func:`resolve_origins`) come from ``--origin``, else
``settings.DUAL_STORAGE_CORS_ORIGINS``, else ``settings.CSRF_TRUSTED_ORIGINS``; each must be
``scheme://host[:port]`` with scheme ``http`` or ``https`` and no wildcard.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from .exceptions import ConfigurationError, InvalidArgument, ObjectNotFound
from .store import Store
from .store.errors import translated

Rule = dict[str, Any]  # one CORSRule, as boto3 reads and writes it

RULE_ID = "dual-storage-uploads"
UPLOAD_METHODS = ("GET", "HEAD", "PUT")
# Request headers a browser sends with a presigned request (everything SigV4 needs is in
# the query string: no authorization, x-amz-date or x-amz-content-sha256 header).
UPLOAD_HEADERS = ("content-type", "if-none-match", "x-amz-checksum-sha256")
# Multipart uploads need each part's ETag, which a script reads only if it is exposed.
EXPOSE_HEADERS = ("ETag",)
MAX_AGE_SECONDS = 3600
# What --check requires of the rules and asks in its preflight.
REQUIRED_PUT_HEADERS = ("content-type", "x-amz-checksum-sha256")
CHECK_KEY = "dual-storage-cors-check"
ORIGINS_SETTING = "DUAL_STORAGE_CORS_ORIGINS"
PREFLIGHT_TIMEOUT = 10.0

_NO_CONFIGURATION = "NoSuchCORSConfiguration"
_DEFAULT_PORTS = {"http": 80, "https": 443}

ChangeAction = Literal["added", "replaced", "unchanged"]


# -- origins ---------------------------------------------------------------------------


def validate_origin(value: object, *, source: str = "--origin") -> str:
    """``value`` as a browser's ``Origin`` header spells it (``https://app.example.com``,
    ``http://localhost:8000``): lower-case scheme and host, no default port.

    Refused (``InvalidArgument`` naming the value and ``source``): anything but a string,
    a scheme other than http/https, no host, user info, a path (even ``/``), a query, a
    fragment, a bad port, and any ``*`` (a wildcard lets every site upload).
    """

    def refuse(why: str) -> InvalidArgument:
        return InvalidArgument(
            f"Origin {value!r} from {source} refused: {why}. An origin is "
            "scheme://host[:port], e.g. 'https://app.example.com' or 'http://localhost:8000'."
        )

    if not isinstance(value, str) or not value.strip():
        raise refuse("it is not a non-empty string")
    text = value.strip()
    if "*" in text:
        raise refuse("wildcards are not allowed; list each origin that may upload")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"it is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise refuse("the scheme must be http or https")
    if not parts.hostname:
        raise refuse("it has no host")
    if parts.username is not None or parts.password is not None:
        raise refuse("it carries user info")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise refuse("an origin has no path, query or fragment (not even a trailing '/')")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def validate_origins(values: Iterable[object], *, source: str) -> list[str]:
    """Each of ``values`` validated (:func:`validate_origin`), duplicates dropped."""
    found: list[str] = []
    for value in values:
        origin = validate_origin(value, source=source)
        if origin not in found:
            found.append(origin)
    return found


def resolve_origins(given: Sequence[str] | None = None) -> tuple[list[str], str]:
    """The origins to allow and where they came from: ``given`` (``--origin``), else
    ``settings.DUAL_STORAGE_CORS_ORIGINS``, else ``settings.CSRF_TRUSTED_ORIGINS``.

    ``ConfigurationError`` when none of the three has any; ``InvalidArgument`` for a
    refused origin (or a setting that is not a list), naming it and its place."""
    candidates: list[tuple[str, object]] = [
        ("--origin", list(given or ())),
        (f"settings.{ORIGINS_SETTING}", getattr(settings, ORIGINS_SETTING, None)),
        ("settings.CSRF_TRUSTED_ORIGINS", getattr(settings, "CSRF_TRUSTED_ORIGINS", None)),
    ]
    for source, values in candidates:
        if not values:
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise InvalidArgument(
                f"{source} must be a list of origins such as ['https://app.example.com'], "
                f"not {type(values).__name__} {values!r}."
            )
        return validate_origins(values, source=source), source
    raise ConfigurationError(
        "No origins to allow for browser uploads: pass --origin URL (repeatable), or set "
        f"settings.{ORIGINS_SETTING} (a list such as ['https://app.example.com']), or "
        "settings.CSRF_TRUSTED_ORIGINS.",
        store="external",
    )


# -- the rule --------------------------------------------------------------------------


def upload_rule(origins: Sequence[str]) -> Rule:
    """Our rule for ``origins`` (already validated): presigned GET/HEAD/PUT with the
    headers a browser upload sends, the ETag exposed, preflights cached for an hour."""
    return {
        "ID": RULE_ID,
        "AllowedOrigins": list(origins),
        "AllowedMethods": list(UPLOAD_METHODS),
        "AllowedHeaders": list(UPLOAD_HEADERS),
        "ExposeHeaders": list(EXPOSE_HEADERS),
        "MaxAgeSeconds": MAX_AGE_SECONDS,
    }


def is_ours(rule: Mapping[str, Any]) -> bool:
    """Whether ``rule`` is the one :func:`upload_rule` makes (by its ID)."""
    return rule.get("ID") == RULE_ID


def merge_rule(rules: Sequence[Rule], rule: Rule) -> list[Rule]:
    """``rules`` with ``rule`` in place of the one with its ID (same position), or
    appended; every other rule is kept as it is."""
    merged: list[Rule] = []
    placed = False
    for existing in rules:
        if existing.get("ID") == rule.get("ID"):
            if not placed:
                merged.append(rule)
                placed = True
            continue  # a second rule with our ID: one is enough
        merged.append(existing)
    if not placed:
        merged.append(rule)
    return merged


def _normal(rule: Mapping[str, Any]) -> dict[str, Any]:
    """``rule`` compared by content: lists as sorted lists, header names lower-case,
    the store's ``MaxAgeSeconds: 0`` for an absent one."""
    normal: dict[str, Any] = {}
    for name, value in rule.items():
        if isinstance(value, (list, tuple)):
            items = [str(v).lower() if "Headers" in name else str(v) for v in value]
            normal[name] = sorted(items)
        else:
            normal[name] = value
    normal.setdefault("MaxAgeSeconds", 0)
    return normal


def same_rule(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two rules allow the same (order and header case aside)."""
    return _normal(a) == _normal(b)


# -- the bucket ------------------------------------------------------------------------


def supports_rules(store: Store) -> bool:
    """Whether the store's CORS rules are read and written through the S3 API (GCS's XML
    API has its own CORS format: set it with gcloud)."""
    return store.config.provider.name != "gcs"


def gcs_cors(origins: Sequence[str]) -> list[dict[str, Any]]:
    """Our rule in Google Cloud Storage's JSON format (``--cors-file``), where
    ``responseHeader`` lists both the request headers allowed and those exposed."""
    return [
        {
            "origin": list(origins),
            "method": list(UPLOAD_METHODS),
            "responseHeader": [*UPLOAD_HEADERS, *EXPOSE_HEADERS],
            "maxAgeSeconds": MAX_AGE_SECONDS,
        }
    ]


def _gcs_refusal(store: Store, bucket: str, action: str) -> InvalidArgument:
    return InvalidArgument(
        f"Cannot {action} of bucket {bucket!r} on the {store.name} store: Google Cloud "  # noqa: S608 - a message, not SQL
        "Storage's S3-compatible XML API does not take S3 CORS rules. Write the rule in "
        "GCS's JSON format (docs/cors.md) to cors.json and run `gcloud storage buckets "
        f"update gs://{bucket} --cors-file=cors.json` (or `gsutil cors set cors.json "
        f"gs://{bucket}`); read it with `gcloud storage buckets describe gs://{bucket} "
        "--format='default(cors_config)'`. `dualstorage_cors --check` still tests the "
        "preflight.",
        store=store.name,
        bucket=bucket,
    )


def current_rules(store: Store, bucket: str) -> list[Rule]:
    """The bucket's CORS rules (``[]`` when it has none)."""
    if not supports_rules(store):
        raise _gcs_refusal(store, bucket, "read the CORS rules")
    try:
        with translated(store.config, "read the CORS rules", bucket):
            answer = store.client.get_bucket_cors(Bucket=bucket)
    except ObjectNotFound as exc:
        if exc.code == _NO_CONFIGURATION:
            return []
        raise  # NoSuchBucket: its message says to create it
    return [dict(rule) for rule in answer.get("CORSRules", [])]


@dataclass(frozen=True)
class Change:
    """What :func:`set_rule` did: ``added`` our rule, ``replaced`` it (``previous`` is
    the old one) or left it ``unchanged`` (nothing sent); ``rules`` are the bucket's
    rules afterwards."""

    action: ChangeAction
    rule: Rule
    previous: Rule | None
    rules: list[Rule] = field(default_factory=list)

    @property
    def origins_added(self) -> list[str]:
        before = (self.previous or {}).get("AllowedOrigins", [])
        return [o for o in self.rule["AllowedOrigins"] if o not in before]

    @property
    def origins_removed(self) -> list[str]:
        before = (self.previous or {}).get("AllowedOrigins", [])
        return [o for o in before if o not in self.rule["AllowedOrigins"]]


def set_rule(store: Store, bucket: str, origins: Sequence[str]) -> Change:
    """Put our rule for ``origins`` on ``bucket``, keeping every other rule; nothing is
    sent when the bucket already has exactly this rule (idempotent)."""
    if not supports_rules(store):
        raise _gcs_refusal(store, bucket, "set the CORS rule")
    rule = upload_rule(origins)
    rules = current_rules(store, bucket)
    previous = next((r for r in rules if is_ours(r)), None)
    ours = [r for r in rules if is_ours(r)]
    if previous is not None and len(ours) == 1 and same_rule(previous, rule):
        return Change("unchanged", rule, previous, rules)
    merged = merge_rule(rules, rule)
    with translated(store.config, "set the CORS rules", bucket):
        store.client.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={"CORSRules": cast(Any, merged)},
        )
    return Change("added" if previous is None else "replaced", rule, previous, merged)


# -- checking --------------------------------------------------------------------------


def _matches(pattern: str, value: str) -> bool:
    """S3's matching of an AllowedOrigin/AllowedHeader: ``*`` is any run of characters,
    case aside."""
    parts = [re.escape(part) for part in pattern.lower().split("*")]
    return re.fullmatch(".*".join(parts), value.lower()) is not None


def _allows(rule: Mapping[str, Any], key: str, value: str) -> bool:
    return any(_matches(str(pattern), value) for pattern in rule.get(key, []))


def rule_problems(rules: Sequence[Mapping[str, Any]], origin: str) -> list[str]:
    """What ``rules`` lack for browser uploads from ``origin``: a rule allowing it PUT
    with :data:`REQUIRED_PUT_HEADERS` and exposing ETag, and one allowing it GET."""
    matching = [r for r in rules if _allows(r, "AllowedOrigins", origin)]
    if not matching:
        return ["no CORS rule on the bucket allows this origin"]
    problems: list[str] = []
    puts = [r for r in matching if "PUT" in r.get("AllowedMethods", [])]
    if not puts:
        problems.append("no CORS rule allows it PUT")
    else:
        missing = min(
            (
                [h for h in REQUIRED_PUT_HEADERS if not _allows(r, "AllowedHeaders", h)]
                for r in puts
            ),
            key=len,
        )
        if missing:
            problems.append(f"no CORS rule allows it PUT with the header(s) {', '.join(missing)}")
        elif not any(
            _allows(r, "ExposeHeaders", "etag")
            for r in puts
            if all(_allows(r, "AllowedHeaders", h) for h in REQUIRED_PUT_HEADERS)
        ):
            problems.append(
                "its PUT rule does not expose the ETag header (multipart uploads need it)"
            )
    if not any("GET" in r.get("AllowedMethods", []) for r in matching):
        problems.append("no CORS rule allows it GET")
    return problems


def preflight_url(store: Store, bucket: str) -> str:
    """Where a browser sends its requests for ``bucket``: the URL of :data:`CHECK_KEY` as
    a presigned link names it (the public endpoint, path-style or virtual-hosted as the
    store signs), without the query. Signing makes no request."""
    link = urlsplit(store.presign_get(bucket, CHECK_KEY, 60))
    return urlunsplit((link.scheme, link.netloc, link.path, "", ""))


@dataclass(frozen=True)
class Preflight:
    """A preflight's answer: HTTP status and headers (names lower-case), or the
    ``error`` that kept it from answering."""

    url: str
    origin: str
    status: int | None
    headers: Mapping[str, str]
    error: str | None = None

    def problems(self, method: str, request_headers: Sequence[str]) -> list[str]:
        """What keeps a browser at :attr:`origin` from sending ``method`` with
        ``request_headers`` after this answer."""
        where = f"the preflight OPTIONS {self.url}"
        if self.error is not None:
            return [f"{where} failed: {self.error}"]
        allow_origin = self.headers.get("access-control-allow-origin")
        if self.status is None or not 200 <= self.status < 300 or allow_origin is None:
            return [f"{where} answered {self.status} without Access-Control-Allow-Origin"]
        if allow_origin not in (self.origin, "*"):
            return [f"{where} allowed origin {allow_origin!r}, not this one"]
        problems: list[str] = []
        methods = _header_list(self.headers.get("access-control-allow-methods", ""))
        if method.lower() not in methods and "*" not in methods:
            problems.append(f"{where} does not allow {method}")
        allowed = _header_list(self.headers.get("access-control-allow-headers", ""))
        missing = [h for h in request_headers if h.lower() not in allowed and "*" not in allowed]
        if missing:
            problems.append(f"{where} does not allow the header(s) {', '.join(missing)}")
        return problems


def _header_list(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",") if item.strip()}


def preflight(
    url: str,
    origin: str,
    *,
    method: str = "PUT",
    request_headers: Sequence[str] = REQUIRED_PUT_HEADERS,
    timeout: float = PREFLIGHT_TIMEOUT,
) -> Preflight:
    """Send the preflight a browser at ``origin`` sends before ``method`` to ``url``."""
    scheme = urlsplit(url).scheme
    if scheme not in _DEFAULT_PORTS:
        return Preflight(url, origin, None, {}, f"not an http(s) URL ({scheme!r})")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ",".join(h.lower() for h in request_headers),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as exc:
        status, headers = exc.code, exc.headers
        exc.close()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Preflight(url, origin, None, {}, f"{type(exc).__name__} ({reason})")
    return Preflight(url, origin, status, {k.lower(): v for k, v in headers.items()})


def check(
    store: Store,
    bucket: str,
    origins: Sequence[str],
    *,
    rules: Sequence[Rule] | None = None,
) -> list[str]:
    """Every problem that keeps browsers at ``origins`` from uploading to ``bucket``,
    each ``"ORIGIN: what is missing"``; ``[]`` when all is well.

    Two parts: the bucket's rules (``rules``, else read from the store; skipped on GCS,
    whose rules the S3 API does not show) and a real preflight per origin
    (:func:`preflight`, to :func:`preflight_url`)."""
    if rules is None and supports_rules(store):
        rules = current_rules(store, bucket)
    url = preflight_url(store, bucket)
    problems: list[str] = []
    for origin in origins:
        found = rule_problems(rules, origin) if rules is not None else []
        found += preflight(url, origin).problems("PUT", REQUIRED_PUT_HEADERS)
        problems += [f"{origin}: {problem}" for problem in found]
    return problems

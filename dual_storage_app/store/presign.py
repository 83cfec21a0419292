"""Presigned GET URLs at ~15-30 µs each, byte-for-byte the ones botocore would make.

botocore spends ~170-260 µs per ``generate_presigned_url`` in its event system, endpoint
resolution and request construction, while a SigV4 query-string signature is one
canonical request, one SHA-256 and one HMAC once the signing key is known.
:class:`Presigner` does only that, with the parts botocore decides taken from botocore:

* the URL up to the key (scheme, host, path-style or virtual-hosted, any path prefix of
  a custom endpoint) and the credential scope come from one botocore presign of a probe
  key per bucket; the Response* query names come from botocore's S3 model; quoting is
  ``botocore.utils.percent_encode``; the clock is ``botocore.auth``'s (:func:`botocore_now`,
  for botocore before and after 1.41), so freezing one freezes both;
* before a bucket takes the fast path, the URLs we build for two probes (with and
  without Response* overrides) must equal botocore's for the same timestamp, character
  for character. Anything else (a session token, extra signed headers or parameters, an
  unknown or non-string override, an odd addressing rule) fails that check or never
  reaches it and goes to botocore's ``generate_presigned_url``: never a different URL.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from botocore import auth
from botocore.utils import percent_encode

from ..config.stores import StoreConfig
from .redaction import sensitive_variables

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SERVICE = "s3"
_PROBE_KEY = "dual-storage/presign probe+~%é#?=&.bin"
_PROBE_EXTRA = {"ResponseContentType": "a b+/c", "ResponseCacheControl": "no-cache"}
_PROBE_EXPIRES = 3600
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_SIGNING_KEYS = 4  # (date, region) pairs kept: today, yesterday near midnight


@dataclass(frozen=True)
class _Layout:
    """What botocore puts around the key for one bucket, and how it signs it."""

    base: str  # the URL up to the quoted key: "https://host/bucket/"
    path: str  # base's path: "/bucket/"
    host: str  # the Host header botocore signs (no default port)
    region: str
    credential_head: str  # percent-encoded "ACCESS_KEY/"
    credential_tail: str  # percent-encoded "/region/s3/aws4_request"


def botocore_now() -> datetime.datetime:
    """The time botocore's SigV4QueryAuth signs with, read the way it reads it.

    botocore >= 1.41 calls ``botocore.auth.get_current_datetime()`` (not in botocore-stubs);
    older releases call ``datetime.datetime.utcnow()`` through ``botocore.auth``'s own
    ``datetime`` module. Both are looked up on each call, so freezing botocore's clock
    freezes ours.
    """
    current: Callable[[], datetime.datetime] | None = getattr(auth, "get_current_datetime", None)
    if current is not None:
        return current()
    # botocore < 1.41: exactly its call (deprecated on Python >= 3.12, as botocore's is)
    now: datetime.datetime = auth.datetime.datetime.utcnow()  # type: ignore[attr-defined]
    return now


def _host(url: str) -> str:
    """The Host value SigV4 signs for ``url``: lowercase, no userinfo, no default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _response_parameters(client: S3Client) -> dict[str, str]:
    """GetObject's string Response* members and their query names, from the S3 model."""
    request = client.meta.service_model.operation_model("GetObject").input_shape
    members = request.members if request is not None else {}
    return {
        name: shape.serialization["name"]
        for name, shape in members.items()
        if name.startswith("Response")
        and shape.type_name == "string"
        and shape.serialization.get("location") == "querystring"
    }


class Presigner:
    """Presigned GET URLs for one boto3 client (its endpoint, region and addressing) and
    the credentials in ``config``; thread-safe, and it never sends a request."""

    __slots__ = ("_client", "_config", "_layouts", "_query_names", "_signing_keys")

    def __init__(self, client: S3Client, config: StoreConfig) -> None:
        self._client = client
        self._config = config  # the secret stays in the config (hidden from repr)
        self._query_names = _response_parameters(client)
        self._layouts: dict[str, _Layout | None] = {}
        self._signing_keys: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"<Presigner {self._client.meta.endpoint_url} ({self._config.provider.name})>"

    @sensitive_variables()  # frames below hold the signing key
    def presign_get(
        self, bucket: str, key: str, expires: int, extra: Mapping[str, Any] | None = None
    ) -> str:
        """The URL botocore's ``generate_presigned_url("get_object", ...)`` would return."""
        layout = self._layout(bucket)
        if (
            layout is None
            or type(key) is not str
            or type(expires) is not int
            or (extra and not self._supported(extra))
        ):
            return self._botocore(bucket, key, expires, extra)
        timestamp = botocore_now().strftime(auth.SIGV4_TIMESTAMP)
        return self._sign(layout, key, expires, extra, timestamp)

    def fast_path(self, bucket: str) -> bool:
        """Whether URLs for ``bucket`` are signed here (False: botocore signs them)."""
        return self._layout(bucket) is not None

    # -- internals ---------------------------------------------------------------

    def _supported(self, extra: Mapping[str, Any]) -> bool:
        names = self._query_names
        return all(name in names and type(value) is str for name, value in extra.items())

    def _botocore(
        self, bucket: str, key: str, expires: int, extra: Mapping[str, Any] | None
    ) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={**(extra or {}), "Bucket": bucket, "Key": key}, ExpiresIn=expires
        )

    def _sign(
        self,
        layout: _Layout,
        key: str,
        expires: int,
        extra: Mapping[str, str] | None,
        timestamp: str,
    ) -> str:
        date = timestamp[:8]
        quoted_key = percent_encode(key, safe="/~")
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={layout.credential_head}{date}{layout.credential_tail}"
            f"&X-Amz-Date={timestamp}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
        )
        canonical_query = query  # the X-Amz-* names are already in sorted order
        if extra:
            pairs = [
                (percent_encode(self._query_names[name]), percent_encode(value))
                for name, value in extra.items()
            ]
            query = "&".join(f"{name}={value}" for name, value in pairs) + f"&{query}"
            # botocore sorts (name, value) pairs; every response-* name (lowercase) sorts
            # after every X-Amz-* name (uppercase), so only the overrides need sorting. The
            # probe in _probe proves the result equal to botocore's before it is used.
            canonical_query += "".join(f"&{name}={value}" for name, value in sorted(pairs))
        canonical_request = (
            f"GET\n{layout.path}{quoted_key}\n{canonical_query}\n"
            f"host:{layout.host}\n\nhost\n{auth.UNSIGNED_PAYLOAD}"
        )
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{timestamp}\n{date}/{layout.region}/{_SERVICE}/aws4_request\n"
            f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        signing_key = self._signing_key(date, layout.region)
        signature = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{layout.base}{quoted_key}?{query}&X-Amz-Signature={signature}"

    @sensitive_variables()
    def _signing_key(self, date: str, region: str) -> bytes:
        """kSigning for (date, region) with this config's secret, derived once."""
        cached = self._signing_keys.get((date, region))
        if cached is not None:
            return cached
        signing_key = f"AWS4{self._config.secret_key}".encode()
        for part in (date, region, _SERVICE, "aws4_request"):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        if len(self._signing_keys) >= _MAX_SIGNING_KEYS:
            self._signing_keys.clear()
        self._signing_keys[(date, region)] = signing_key
        return signing_key

    def _layout(self, bucket: str) -> _Layout | None:
        try:
            return self._layouts[bucket]
        except KeyError:
            pass
        try:
            layout = self._probe(bucket)
        except Exception:  # botocore refuses this bucket: let it say so on the real call
            return None
        self._layouts[bucket] = layout
        return layout

    def _probe(self, bucket: str) -> _Layout | None:
        """The bucket's layout, taken from botocore's URL for a probe key and accepted
        only if our URLs for both probes equal botocore's."""
        bare = self._botocore(bucket, _PROBE_KEY, _PROBE_EXPIRES, None)
        base, found, _ = bare.partition(f"{percent_encode(_PROBE_KEY, safe='/~')}?")
        access_key = self._config.access_key
        credential = unquote(_query_fields(bare).get("X-Amz-Credential", ""))
        scope = credential.removeprefix(f"{access_key}/").split("/")  # date/region/s3/...
        if not found or not credential.startswith(f"{access_key}/") or len(scope) != 4:
            return None
        region = scope[1]
        if scope[2:] != [_SERVICE, "aws4_request"]:
            return None
        layout = _Layout(
            base=base,
            path=urlsplit(base).path,
            host=_host(base),
            region=region,
            credential_head=percent_encode(f"{access_key}/"),
            credential_tail=percent_encode(f"/{region}/{_SERVICE}/aws4_request"),
        )
        with_extra = self._botocore(bucket, _PROBE_KEY, _PROBE_EXPIRES, _PROBE_EXTRA)
        for url, extra in ((bare, None), (with_extra, _PROBE_EXTRA)):
            timestamp = _query_fields(url).get("X-Amz-Date", "")
            if self._sign(layout, _PROBE_KEY, _PROBE_EXPIRES, extra, timestamp) != url:
                return None
        return layout


def _query_fields(url: str) -> dict[str, str]:
    """A URL's query as ``{name: raw value}``."""
    pairs = (pair.partition("=") for pair in urlsplit(url).query.split("&"))
    return {name: value for name, _, value in pairs}

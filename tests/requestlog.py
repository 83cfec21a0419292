"""Count the HTTP requests sent to the real S3 servers, named by S3 operation.

A :class:`CountingProxy` (the fault proxy of :mod:`tests.faultproxy`, without faults)
sits in front of each server, so every request is seen at the HTTP level, whichever
boto3 client sent it, retries included. Each one is named from its method, path and
query, e.g. ``("PUT", "PutObjectTagging")`` for ``PUT /bucket/key?tagging``, and a
test compares the multiset of names with the exact list it expects, so a failure names
the request that should not have been sent.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from tests.faultproxy import FaultProxy, _Plan, _Request

Name = tuple[str, str]  # (HTTP method, S3 operation)

HEAD_OBJECT: Name = ("HEAD", "HeadObject")
GET_OBJECT: Name = ("GET", "GetObject")
GET_TAGGING: Name = ("GET", "GetObjectTagging")
PUT_OBJECT: Name = ("PUT", "PutObject")
PUT_TAGGING: Name = ("PUT", "PutObjectTagging")
CREATE_MULTIPART: Name = ("POST", "CreateMultipartUpload")
UPLOAD_PART: Name = ("PUT", "UploadPart")
COMPLETE_MULTIPART: Name = ("POST", "CompleteMultipartUpload")
LIST_OBJECTS_V2: Name = ("GET", "ListObjectsV2")


@dataclass(frozen=True)
class Request:
    """One HTTP request as the server received it."""

    store: str
    method: str
    target: str  # path and query, as sent
    range_header: str  # the Range header, "" if none
    copy_source: str  # the x-amz-copy-source header, "" if none

    @property
    def name(self) -> Name:
        return (
            self.method,
            operation(self.method, self.target, self.copy_source),
        )

    def __str__(self) -> str:
        extra = f" Range: {self.range_header}" if self.range_header else ""
        return f"{self.store}: {self.method} {unquote(self.target)}{extra} ({self.name[1]})"


def operation(method: str, target: str, copy_source: str = "") -> str:
    """The S3 operation a path-style request performs, e.g. ``UploadPart``."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    bucket, _, key = parts.path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if key:
        return _object_operation(method, query, copy_source)
    return _bucket_operation(method, query)


def _object_operation(method: str, query: dict[str, list[str]], copy_source: str) -> str:
    if "tagging" in query:
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging"}.get(
            method, f"{method} ?tagging"
        )
    if method == "HEAD":
        return "HeadObject"
    if method == "GET":
        if "uploadId" in query:
            return "ListParts"
        return "GetObject"  # ranged or whole: one GET either way (the Range is logged)
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPartCopy" if copy_source else "UploadPart"
        return "CopyObject" if copy_source else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return f"{method} object?{'&'.join(sorted(query))}"


def _bucket_operation(method: str, query: dict[str, list[str]]) -> str:
    if method == "GET":
        if "list-type" in query:
            return "ListObjectsV2"
        if "uploads" in query:
            return "ListMultipartUploads"
        return "ListObjects" if not query else f"GET bucket?{'&'.join(sorted(query))}"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(
        method, f"{method} bucket?{'&'.join(sorted(query))}"
    )


class CountingProxy(FaultProxy):
    """A fault proxy that also keeps the headers that name an operation."""

    def __init__(self, store: str, upstream: tuple[str, int]) -> None:
        super().__init__(upstream)
        self.store = store
        self.seen: list[Request] = []
        self._seen_lock = threading.Lock()

    def _plan(self, request: _Request) -> _Plan:
        seen = Request(
            self.store,
            request.method,
            request.target,
            request.headers.get("range", ""),
            request.headers.get("x-amz-copy-source", ""),
        )
        with self._seen_lock:
            self.seen.append(seen)
        return super()._plan(request)

    def take(self) -> list[Request]:
        """The requests seen since the last call, in arrival order."""
        with self._seen_lock:
            seen, self.seen = self.seen, []
        return seen


@dataclass
class Recording:
    """The requests sent to both stores inside one :meth:`RequestLog.recording` block."""

    requests: list[Request] = field(default_factory=list)

    def of(self, store: str) -> list[Request]:
        return [request for request in self.requests if request.store == store]


@dataclass
class RequestLog:
    """Counting proxies in front of the internal and external servers."""

    internal: CountingProxy
    external: CountingProxy

    @contextmanager
    def recording(self) -> Iterator[Recording]:
        """Record the requests sent by the code inside the block (none from before)."""
        self.internal.take()
        self.external.take()
        recording = Recording()
        yield recording
        recording.requests = [*self.internal.take(), *self.external.take()]


def expect(
    recording: Recording,
    what: str,
    *,
    internal: Iterable[Name] = (),
    external: Iterable[Name] = (),
) -> None:
    """Fail unless each store received exactly these requests (in any order)."""
    problems: list[str] = []
    for store, wanted in (("internal", internal), ("external", external)):
        got = Counter(request.name for request in recording.of(store))
        want = Counter(wanted)
        unexpected, missing = got - want, want - got
        if unexpected:
            problems.append(f"unexpected on the {store} store: {_counts(unexpected)}")
        if missing:
            problems.append(f"missing on the {store} store: {_counts(missing)}")
    if problems:
        sent = "\n".join(f"  {request}" for request in recording.requests) or "  (none)"
        raise AssertionError(f"{what}: {'; '.join(problems)}.\nRequests sent:\n{sent}")


def _counts(names: Counter[Name]) -> str:
    return ", ".join(
        f"{count} x {method} {operation_name}"
        for (method, operation_name), count in sorted(names.items())
    )

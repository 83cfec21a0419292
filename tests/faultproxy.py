"""A fault-injecting HTTP/1.1 proxy on loopback, between boto3 and a real S3 server.

Each client connection gets its own thread and its own upstream connection; requests
on it are relayed one at a time (boto3 never pipelines). The proxy parses just enough
HTTP/1.1 for boto3 <-> SeaweedFS traffic: a request head plus a ``Content-Length`` or
chunked body; a response head plus a ``Content-Length``, chunked or read-to-close body
(none for HEAD, 1xx, 204 and 304). The ``Host`` header is forwarded untouched, so
SigV4 signatures made for the proxy's address still verify upstream.

Faults (:class:`Fault`), set at any time from the test's thread (all state is behind
one lock), apply only to requests matching a method, a substring of the request target
and/or a predicate ``where(method, target)``, optionally skipping the first ``skip``
matches and then firing at most ``times`` times, so a test can say "reset the second
part once". A fault counts as fired when it is applied to a request, even if that
request's body then turns out shorter than the point where it would cut:

* ``reset``: after ``after`` bytes of the response body (or, with
  ``phase="request"``, of the request body), abort the client connection with an RST
  (``SO_LINGER`` 0);
* ``truncate``: send the response head with its original ``Content-Length`` and close
  cleanly (FIN) after ``after`` body bytes;
* ``flip``: XOR the response body byte at ``offset`` with 0xFF;
* ``slowdown``: answer ``503 SlowDown`` (S3's XML error) without forwarding, for a
  ``share`` of matching requests drawn from a seeded RNG. The refused request's body
  is read and dropped first, so keep-alive framing stays valid. ``max_per_request``
  caps how often the *same* request (method, target and ``Range``) is refused, which
  keeps a test deterministic against a client that retries a bounded number of times;
* ``latency``: wait ``seconds`` before forwarding (interrupted by :meth:`stop`).

``Expect: 100-continue`` is answered by the proxy itself (and dropped from the
forwarded head), so it can read, refuse or cut a request body on its own terms.

Every request is logged in :attr:`FaultProxy.log` as ``(method, target, outcome)``.

No third-party library: toxiproxy works at the TCP level only (it cannot answer an S3
error, flip a body byte or match a request by path, and it is a Go server, not a
Python package), and mitmproxy is a large asyncio/TLS stack for a job that needs a
few hundred lines of blocking sockets.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from io import BufferedReader
from typing import Literal

LOOPBACK = "127.0.0.1"
_MAX_HEAD = 64 * 1024
_IO_CHUNK = 64 * 1024
_NO_BODY_STATUSES = {204, 304}
_BEFORE_FORWARDING = ("slowdown", "latency")

FaultKind = Literal["reset", "truncate", "flip", "slowdown", "latency"]


@dataclass
class Fault:
    """One fault and the requests it applies to. Counters are updated by the proxy."""

    kind: FaultKind
    method: str | None = None  # e.g. "GET"; None: any method
    path_contains: str | None = None  # substring of the request target (path + query)
    where: Callable[[str, str], bool] | None = None  # any other test of (method, target)
    skip: int = 0  # let this many matching requests through untouched first
    times: int | None = None  # then fire at most this many times (None: always)
    phase: Literal["request", "response"] = "response"  # for "reset"
    after: int = 0  # body bytes passed before a reset or truncation
    offset: int = 0  # body byte to flip
    share: float = 1.0  # for "slowdown": the share of matching requests refused
    seed: int = 0  # for "slowdown"
    max_per_request: int | None = None  # for "slowdown": refusals of one request
    seconds: float = 0.0  # for "latency"
    matched: int = 0  # matching requests seen
    fired: int = 0  # times the fault was applied
    _rng: random.Random = field(init=False, repr=False)
    _refusals: dict[tuple[str, str, str], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - fault injection, not security
        self._refusals = {}

    def matches(self, method: str, target: str) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in target)
            and (self.where is None or self.where(method, target))
        )


@dataclass
class _Request:
    method: str
    target: str
    head: bytes  # the head to forward (Expect removed), CRLF CRLF included
    headers: dict[str, str]  # lower-case names

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.method, self.target, self.headers.get("range", ""))


@dataclass
class _Plan:
    """What the faults decided for one request."""

    refuse: bool = False
    latency: float = 0.0
    request_reset: int | None = None  # reset after this many request body bytes
    response_reset: int | None = None
    truncate: int | None = None
    flips: list[int] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        parts = [
            name
            for name, on in (
                ("slowdown", self.refuse),
                ("latency", self.latency > 0),
                ("reset-request", self.request_reset is not None),
                ("reset", self.response_reset is not None),
                ("truncate", self.truncate is not None),
                ("flip", bool(self.flips)),
            )
            if on
        ]
        return "+".join(parts) or "forwarded"


class _Abort(Exception):
    """Stop relaying on this connection (a fault fired, or a peer went away)."""


class FaultProxy:
    """``with FaultProxy(("127.0.0.1", port)) as proxy: ... proxy.url ...``"""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.log: list[tuple[str, str, str]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.1)  # so the accept loop notices stop()
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy-accept")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- configuration (thread-safe) --------------------------------------------

    def add(self, fault: Fault) -> Fault:
        """Apply ``fault`` from the next request on; returns it (its counters update)."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault and forget the log."""
        with self._lock:
            self._faults.clear()
            self.log.clear()

    def reset_after(self, after: int, **match: object) -> Fault:
        return self.add(Fault("reset", after=after, **match))  # type: ignore[arg-type]

    def truncate_after(self, after: int, **match: object) -> Fault:
        return self.add(Fault("truncate", after=after, **match))  # type: ignore[arg-type]

    def flip_byte(self, offset: int, **match: object) -> Fault:
        return self.add(Fault("flip", offset=offset, **match))  # type: ignore[arg-type]

    def slowdown(self, share: float, **match: object) -> Fault:
        return self.add(Fault("slowdown", share=share, **match))  # type: ignore[arg-type]

    def latency(self, seconds: float, **match: object) -> Fault:
        return self.add(Fault("latency", seconds=seconds, **match))  # type: ignore[arg-type]

    def requests(self, outcome: str | None = None) -> list[tuple[str, str, str]]:
        """A copy of the log, optionally only entries whose outcome contains ``outcome``."""
        with self._lock:
            return [entry for entry in self.log if outcome is None or outcome in entry[2]]

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and join every thread."""
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join()
        self._listener.close()
        with self._lock:
            live = list(self._sockets)
        for sock in live:  # wakes threads blocked in recv()
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    # -- relaying ------------------------------------------------------------------

    def _plan(self, request: _Request) -> _Plan:
        plan = _Plan()
        with self._lock:
            # Refusals are decided first: a refused request never reaches the other faults.
            for fault in sorted(self._faults, key=lambda f: f.kind not in _BEFORE_FORWARDING):
                if plan.refuse and fault.kind not in _BEFORE_FORWARDING:
                    break
                if not fault.matches(request.method, request.target):
                    continue
                fault.matched += 1
                if fault.matched <= fault.skip:
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if fault.kind == "slowdown":
                    refused = fault._refusals.get(request.identity, 0)
                    capped = fault.max_per_request is not None and refused >= fault.max_per_request
                    if capped or fault._rng.random() >= fault.share:
                        continue
                    fault._refusals[request.identity] = refused + 1
                    plan.refuse = True
                elif fault.kind == "latency":
                    plan.latency += fault.seconds
                elif fault.kind == "reset" and fault.phase == "request":
                    plan.request_reset = fault.after
                elif fault.kind == "reset":
                    plan.response_reset = fault.after
                elif fault.kind == "truncate":
                    plan.truncate = fault.after
                else:
                    plan.flips.append(fault.offset)
                fault.fired += 1
            self.log.append((request.method, request.target, plan.outcome))
        return plan

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        upstream_in: BufferedReader | None = None
        client_in = client.makefile("rb")
        self._track(client)
        try:
            while not self._stopping.is_set():
                request = _read_request(client_in)
                if request is None:
                    return  # the client closed its keep-alive connection
                if request.headers.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                plan = self._plan(request)
                if plan.latency and self._stopping.wait(plan.latency):
                    return
                if plan.refuse:
                    for _ in _body_chunks(client_in, request.headers):
                        pass  # drop the refused body so the next request parses
                    client.sendall(_slowdown_response(request))
                    continue
                if upstream is not None and not _idle_and_open(upstream):
                    assert upstream_in is not None  # the server closed it while idle
                    upstream_in.close()
                    self._untrack_and_close(upstream)
                    upstream = upstream_in = None
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    upstream_in = upstream.makefile("rb")
                    self._track(upstream)
                assert upstream_in is not None
                keep_alive = self._relay(client, client_in, upstream, upstream_in, request, plan)
                if not keep_alive:
                    return
        except (_Abort, OSError):
            return
        finally:
            client_in.close()
            self._untrack_and_close(client)
            if upstream_in is not None:
                upstream_in.close()
            if upstream is not None:
                self._untrack_and_close(upstream)

    def _relay(
        self,
        client: socket.socket,
        client_in: BufferedReader,
        upstream: socket.socket,
        upstream_in: BufferedReader,
        request: _Request,
        plan: _Plan,
    ) -> bool:
        """Relay one exchange; False when the connection must close afterwards."""
        upstream.sendall(request.head)
        sent = 0
        for prefix, data, suffix in _body_chunks(client_in, request.headers):
            if plan.request_reset is not None and sent + len(data) > plan.request_reset:
                _reset(client)
                raise _Abort
            upstream.sendall(prefix + data + suffix)
            sent += len(data)
        if plan.request_reset is not None and sent >= plan.request_reset:
            _reset(client)  # the whole body fitted within the limit: reset before replying
            raise _Abort

        status, head, headers = _read_response_head(upstream_in)
        client.sendall(head)
        has_body = request.method != "HEAD" and status >= 200 and status not in _NO_BODY_STATUSES
        position = 0
        if has_body:
            for prefix, data, suffix in _body_chunks(upstream_in, headers, to_eof=True):
                out, stop = _apply(plan, position, data)
                # Chunked framing is kept as is: a cut chunk is short of its size line.
                client.sendall(prefix + out + (suffix if stop is None else b""))
                position += len(out)
                if stop == "reset":
                    _reset(client)
                    raise _Abort
                if stop == "truncate":
                    client.shutdown(socket.SHUT_WR)
                    raise _Abort
        closes = "close" in (
            headers.get("connection", "").lower(),
            request.headers.get("connection", "").lower(),
        )
        framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "")
        return not closes and (framed or not has_body)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self._stopping.is_set():  # stop() may have shut the others down already
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _untrack_and_close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        sock.close()


def _apply(plan: _Plan, position: int, data: bytes) -> tuple[bytes, str | None]:
    """Body bytes ``data`` at ``position``, with flips applied and cut at a reset or
    truncation point; the second value names the cut, if any."""
    end = position + len(data)
    if any(position <= offset < end for offset in plan.flips):
        mutable = bytearray(data)
        for offset in plan.flips:
            if position <= offset < end:
                mutable[offset - position] ^= 0xFF
        data = bytes(mutable)
    for limit, name in ((plan.response_reset, "reset"), (plan.truncate, "truncate")):
        if limit is not None and end >= limit:
            return data[: max(0, limit - position)], name
    return data, None


def _idle_and_open(sock: socket.socket) -> bool:
    """False if a kept-alive connection was closed by the server while idle (it is
    readable while no response is due: EOF, or bytes nobody asked for)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def _reset(sock: socket.socket) -> None:
    """Abort ``sock`` with an RST instead of a FIN (the caller then closes it)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _read_head(stream: BufferedReader) -> list[bytes] | None:
    """The lines of an HTTP head (without line ends), or None at a clean EOF."""
    lines: list[bytes] = []
    total = 0
    while True:
        line = stream.readline(_MAX_HEAD)
        if not line:
            if lines:
                raise _Abort  # EOF inside a head
            return None
        total += len(line)
        if total > _MAX_HEAD:
            raise _Abort
        line = line.rstrip(b"\r\n")
        if not line:
            if not lines:
                continue  # tolerate a stray CRLF between messages
            return lines
        lines.append(line)


def _parse_headers(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def _read_request(stream: BufferedReader) -> _Request | None:
    lines = _read_head(stream)
    if lines is None:
        return None
    method, target, _version = lines[0].decode("latin-1").split(" ", 2)
    kept = [line for line in lines[1:] if not line.lower().startswith(b"expect:")]
    head = b"\r\n".join([lines[0], *kept]) + b"\r\n\r\n"
    return _Request(method, target, head, _parse_headers(lines[1:]))


def _read_response_head(stream: BufferedReader) -> tuple[int, bytes, dict[str, str]]:
    while True:
        lines = _read_head(stream)
        if lines is None:
            raise _Abort  # the server closed without answering
        status = int(lines[0].split(b" ", 2)[1])
        if status != 100:  # the proxy answers 100-continue itself; skip a stray one
            break
    return status, b"\r\n".join(lines) + b"\r\n\r\n", _parse_headers(lines[1:])


def _read_exact(stream: BufferedReader, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise _Abort  # the peer went away mid-body
    return data


def _body_chunks(
    stream: BufferedReader, headers: dict[str, str], *, to_eof: bool = False
) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Yield ``(framing before, body bytes, framing after)`` pieces of a message body.

    For a chunked body the framing is a chunk's size line and its CRLF (the terminating
    zero chunk with its trailers comes last, as framing with no data); otherwise there
    is none. ``to_eof``: a body without framing runs to EOF (responses only; a request
    without framing has no body).
    """
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = stream.readline(_MAX_HEAD)
            if not size_line.endswith(b"\n"):
                raise _Abort
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                trailer = b""
                while True:
                    line = stream.readline(_MAX_HEAD)
                    if not line:
                        raise _Abort
                    trailer += line
                    if line in (b"\r\n", b"\n"):
                        break
                yield size_line + trailer, b"", b""
                return
            data = _read_exact(stream, size)
            yield size_line, data, _read_exact(stream, 2)
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining:
            data = _read_exact(stream, min(remaining, _IO_CHUNK))
            remaining -= len(data)
            yield b"", data, b""
    elif to_eof:
        while data := stream.read1(_IO_CHUNK):
            yield b"", data, b""


def _slowdown_response(request: _Request) -> bytes:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message>"
        b"<RequestId>faultproxy</RequestId></Error>"
    )
    head = (
        "HTTP/1.1 503 Slow Down\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        "x-amz-request-id: faultproxy\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()
    return head if request.method == "HEAD" else head + body

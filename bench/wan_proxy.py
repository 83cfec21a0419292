"""A userspace WAN link on loopback: per-connection latency and bandwidth, and a request
count by S3 operation (this kernel has no netem).

:class:`WanProxy` starts ``python -m bench.wan_proxy serve`` in its own process (so its
CPU never shares an interpreter lock with a contender running in the bench's process),
listening on 127.0.0.1 in front of one upstream (the S3 server). Every accepted
connection gets its own upstream connection and, per direction, a :class:`Link`:

* a bandwidth cap: each chunk read from the sender departs at
  ``max(read time, previous departure) + len / rate``;
* a one-way delay of ``rtt / 2``: the chunk is written to the receiver at its departure
  plus the delay (EOF travels the same way, behind the last chunk);
* a bounded queue: once more than about ``2 x bandwidth-delay product + 1 MiB`` is
  queued (including what the receiver has not taken yet), the sender is not read until
  half of it has gone, as a TCP window would hold it back;
* a new connection's first byte departs ``handshake_rtts`` round trips after the accept
  (TCP + TLS 1.3: 2, since R2 and S3 are HTTPS), so a first request on a new connection
  costs ``(handshake_rtts + 1) x rtt`` and every later one ``rtt`` (plus bytes / rate).

Not modelled: TCP slow start and loss; the cap is per connection, not per host.

The client-to-server stream is parsed as HTTP/1.1 (request line, headers, then a body
by ``Content-Length`` or chunked ``Transfer-Encoding``; a body held back by ``Expect:
100-continue`` simply follows later) and each request is counted under an operation
name derived from its method, path and query (:func:`operation`). The bench reads and
resets the counters, the connection figures and the proxy's own CPU seconds through the
child's stdin/stdout (one JSON line per command); the child exits when its stdin closes,
so it cannot outlive the bench.

``python -m bench.wan_proxy capacity`` measures what aggregate throughput the proxy
carries on this machine (:func:`measure_capacity`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MiB = 1024 * 1024
_MAX_HEAD = 64 * 1024
_SLACK = 0.0005  # seconds: a chunk due this soon is written by the timer that runs now


@dataclass(frozen=True)
class LinkProfile:
    """A network between the contenders and the server. ``rtt`` in seconds, ``rate`` in
    bytes/s per connection and direction (``None``: no cap); LAN means no proxy."""

    name: str
    rtt: float = 0.0
    rate: float | None = None
    handshake_rtts: int = 2  # TCP + TLS 1.3 before a new connection's first byte

    @property
    def proxied(self) -> bool:
        return self.rtt > 0 or self.rate is not None

    @property
    def queue_limit(self) -> int:
        """Bytes queued per direction before the sender is held back."""
        if self.rate is None:
            return 16 * MiB
        return int(2 * self.rate * self.rtt) + MiB

    def describe(self) -> str:
        if not self.proxied:
            return f"{self.name}: loopback, no proxy"
        rate = "no cap" if self.rate is None else f"{self.rate * 8 / 1e6:,.0f} Mbit/s"
        return (
            f"{self.name}: {self.rtt * 1000:.0f} ms round trip, {rate} per connection and "
            f"direction, {self.handshake_rtts} round trips to open a connection"
        )


MBIT = 1_000_000 / 8  # bytes/s in one Mbit/s
PROFILES = {
    "LAN": LinkProfile("LAN"),
    "R2": LinkProfile("R2", rtt=0.100, rate=200 * MBIT),
    "FAR": LinkProfile("FAR", rtt=0.300, rate=200 * MBIT),
}


# -- request counting ------------------------------------------------------------------

# Display order of the operation names (others follow in alphabetical order).
OPERATIONS = (
    "PUT",
    "UploadPart",
    "CreateMPU",
    "CompleteMPU",
    "GET",
    "HEAD",
    "LIST",
    "DELETE",
    "PUT tagging",
    "GET tagging",
)


# A bucket GET with none of these in its query is a listing (ListObjects v1 or v2).
_BUCKET_SUBRESOURCES = {
    "acl",
    "cors",
    "lifecycle",
    "location",
    "policy",
    "tagging",
    "uploads",
    "versioning",
    "versions",
}


def operation(method: str, target: str) -> str:
    """The S3 operation a path-style request performs, in short: ``PUT`` (PutObject or
    CopyObject), ``UploadPart``, ``CreateMPU``, ``CompleteMPU``, ``GET`` (GetObject,
    ranged or whole), ``HEAD`` (an object's), ``LIST`` (ListObjects v1 or v2),
    ``DELETE`` (DeleteObject or DeleteObjects), ``PUT tagging``, ``GET tagging``, or
    ``other <method> ...`` for anything else (bucket HEAD or PUT, ListParts, aborts)."""
    path, _, query = target.partition("?")
    params = {item.partition("=")[0] for item in query.split("&") if item}
    _bucket, _, key = path.lstrip("/").partition("/")
    if key:
        if "tagging" in params and method in ("PUT", "GET"):
            return f"{method} tagging"
        if method == "PUT":
            return "UploadPart" if "partNumber" in params else "PUT"
        if method == "POST" and "uploads" in params:
            return "CreateMPU"
        if method == "POST" and "uploadId" in params:
            return "CompleteMPU"
        if method == "GET" and "uploadId" not in params:
            return "GET"
        if method == "HEAD":
            return "HEAD"
        if method == "DELETE" and "uploadId" not in params:
            return "DELETE"
        return f"other {method} object?{'&'.join(sorted(params))}"
    if method == "GET" and not params & _BUCKET_SUBRESOURCES:
        return "LIST"
    if method == "POST" and "delete" in params:
        return "DELETE"
    return f"other {method} bucket{'?' if params else ''}{'&'.join(sorted(params))}"


class RequestParser:
    """An incremental HTTP/1.1 request-stream parser that only counts: feed it the bytes
    a client sends on one connection, in any pieces; ``count(method, target)`` is called
    once per request head. Body bytes are skipped by arithmetic, never copied."""

    _HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(5)

    def __init__(self, count: Callable[[str, str], None]) -> None:
        self.count = count
        self.state = self._HEAD
        self.remaining = 0  # body bytes still to skip (a chunk's: its CRLF included)
        self.buffer = bytearray()  # a head or line cut by a read boundary
        self.broken = False  # the stream stopped parsing; nothing more is counted

    def feed(self, data: bytes) -> None:
        if self.broken:
            return
        if self.buffer:
            self.buffer += data
            data = bytes(self.buffer)
            self.buffer.clear()
        pos, end = 0, len(data)
        while pos < end:
            if self.remaining:
                step = min(self.remaining, end - pos)
                pos += step
                self.remaining -= step
                if not self.remaining:
                    self.state = self._CHUNK_SIZE if self.state == self._CHUNK_DATA else self._HEAD
                continue
            if self.state == self._HEAD and data.startswith(b"\r\n", pos):
                pos += 2  # a stray CRLF between messages
                continue
            marker = b"\r\n\r\n" if self.state == self._HEAD else b"\r\n"
            found = data.find(marker, pos)
            if found < 0:
                if end - pos > _MAX_HEAD:
                    self.broken = True
                    self.count("UNPARSED", "")
                else:
                    self.buffer += data[pos:]
                return
            try:
                self._line(data[pos:found])
            except (ValueError, IndexError):
                self.broken = True
                self.count("UNPARSED", "")
                return
            pos = found + len(marker)

    def _line(self, text: bytes) -> None:
        if self.state == self._HEAD:
            lines = text.split(b"\r\n")
            method, target, _version = lines[0].decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            self.count(method, target)
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.state = self._CHUNK_SIZE
            elif int(headers.get("content-length", "0") or 0) > 0:
                self.state = self._BODY
                self.remaining = int(headers["content-length"])
        elif self.state == self._CHUNK_SIZE:
            size = int(text.split(b";", 1)[0].strip(), 16)
            if size:
                self.state, self.remaining = self._CHUNK_DATA, size + 2
            else:
                self.state = self._TRAILER
        elif not text:  # the empty line that ends a chunked body's trailers
            self.state = self._HEAD


# -- the link ------------------------------------------------------------------------


class Link:
    """One direction of one connection: a bandwidth cap, then a delay line, with the
    sender paused while too much is queued. EOF is queued as an empty chunk."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        profile: LinkProfile,
        start: float,
        on_eof: Callable[[], None],
        parser: RequestParser | None = None,
    ) -> None:
        self.loop = loop
        self.delay = profile.rtt / 2
        self.rate = profile.rate
        self.limit = profile.queue_limit
        self.departure = start  # when the link is free for the next byte
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.on_eof = on_eof
        self.parser = parser
        self.moved = 0  # bytes read from the sender

    def feed(self, data: bytes) -> None:
        self.moved += len(data)
        if self.parser is not None:
            self.parser.feed(data)
        departure = max(self.loop.time(), self.departure)
        if self.rate:
            departure += len(data) / self.rate
        self.departure = departure
        self._push(departure + self.delay, data)

    def feed_eof(self) -> None:
        self._push(max(self.loop.time(), self.departure) + self.delay, b"")

    def _push(self, due: float, data: bytes) -> None:
        self.queue.append((due, data))
        self.queued += len(data)
        if self.timer is None:
            self.arm()
        self.throttle()

    def arm(self) -> None:
        """Schedule the next write (once the receiver is connected)."""
        if self.timer is None and self.queue and self.dst is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)

    def _flush(self) -> None:
        self.timer = None
        dst = self.dst
        assert dst is not None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + _SLACK:
            _, data = self.queue.popleft()
            if dst.is_closing():
                self.queue.clear()
                self.queued = 0
                return
            if data:
                self.queued -= len(data)
                dst.write(data)
            else:
                if dst.can_write_eof():
                    dst.write_eof()
                self.on_eof()
        self.arm()
        self.throttle()

    def throttle(self) -> None:
        """Pause or resume the sender by what is queued (here and in the receiver's
        transport)."""
        if self.src is None:
            return
        backlog = self.queued + (self.dst.get_write_buffer_size() if self.dst else 0)
        if not self.paused and backlog > self.limit:
            self.paused = True
            self.src.pause_reading()
        elif self.paused and backlog <= self.limit // 2:
            self.paused = False
            self.src.resume_reading()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0


@dataclass
class Stats:
    """What the proxy saw since the last reset."""

    requests: Counter[str] = field(default_factory=Counter)
    connections: int = 0  # connections accepted
    peak_connections: int = 0  # most open at once, of those accepted since the reset
    bytes_up: int = 0  # client -> server, whole connections closed or not
    bytes_down: int = 0

    def as_json(self, open_now: int, cpu: float) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "connections": self.connections,
            "peak_connections": self.peak_connections,
            "open_connections": open_now,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "cpu": cpu,
        }


class Connection:
    """A client connection, its upstream connection and the two links between them."""

    def __init__(self, proxy: ProxyServer, client: asyncio.Transport) -> None:
        self.proxy = proxy
        loop = proxy.loop
        profile = proxy.profile
        now = loop.time()
        self.client = client
        self.upstream: asyncio.Transport | None = None
        parser = RequestParser(proxy.count)
        self.up = Link(loop, profile, now + profile.handshake_rtts * profile.rtt, self._eof, parser)
        self.down = Link(loop, profile, now, self._eof)
        self.up.src = self.down.dst = client
        self.eofs = 0
        self.closed = False
        self.epoch = proxy.epoch
        self.task = loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            upstream, _ = await self.proxy.loop.create_connection(
                lambda: _UpstreamSide(self), *self.proxy.upstream
            )
        except OSError:
            self.close(abort=True)
            return
        if self.closed:
            upstream.abort()
            return
        self.upstream = upstream
        self.up.dst = self.down.src = upstream
        self.up.arm()
        self.down.throttle()

    def _eof(self) -> None:
        self.eofs += 1
        if self.eofs == 2:  # both directions delivered their EOF
            self.close(abort=False)

    def close(self, *, abort: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.up.cancel()
        self.down.cancel()
        for transport in (self.client, self.upstream):
            if transport is not None and abort:
                transport.abort()
            elif transport is not None:
                transport.close()
        self.proxy.forget(self)


class _ClientSide(asyncio.Protocol):
    def __init__(self, proxy: ProxyServer) -> None:
        self.proxy = proxy
        self.connection: Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.connection = self.proxy.open(transport)

    def data_received(self, data: bytes) -> None:
        assert self.connection is not None
        self.connection.up.feed(data)

    def eof_received(self) -> bool:
        assert self.connection is not None
        self.connection.up.feed_eof()
        return True  # keep the write side open until the EOF is delivered

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connection.close(abort=exc is not None)

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.connection.down.throttle()


class _UpstreamSide(asyncio.Protocol):
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def data_received(self, data: bytes) -> None:
        self.connection.down.feed(data)

    def eof_received(self) -> bool:
        self.connection.down.feed_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.close(abort=exc is not None)

    def resume_writing(self) -> None:
        self.connection.up.throttle()


class ProxyServer:
    """The proxy inside the child process's event loop."""

    def __init__(self, upstream: tuple[str, int], profile: LinkProfile) -> None:
        self.upstream = upstream
        self.profile = profile
        self.loop = asyncio.get_running_loop()
        self.stats = Stats()
        self.open_connections: set[Connection] = set()
        self.epoch = 0  # counts resets: a connection belongs to the epoch it opened in
        self.current = 0  # open connections opened in this epoch
        self.server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self.server = await self.loop.create_server(
            lambda: _ClientSide(self), LOOPBACK, port, backlog=1024
        )
        return int(self.server.sockets[0].getsockname()[1])

    def count(self, method: str, target: str) -> None:
        self.stats.requests[operation(method, target) if method != "UNPARSED" else method] += 1

    def open(self, client: asyncio.Transport) -> Connection:
        connection = Connection(self, client)
        self.open_connections.add(connection)
        self.stats.connections += 1
        self.current += 1
        self.stats.peak_connections = max(self.stats.peak_connections, self.current)
        return connection

    def forget(self, connection: Connection) -> None:
        if connection not in self.open_connections:
            return
        self.open_connections.discard(connection)
        if connection.epoch == self.epoch:
            self.current -= 1
        self.stats.bytes_up += connection.up.moved
        self.stats.bytes_down += connection.down.moved
        connection.up.moved = connection.down.moved = 0

    def snapshot(self, reset: bool) -> dict[str, Any]:
        for connection in self.open_connections:  # bytes of connections still open
            self.stats.bytes_up += connection.up.moved
            self.stats.bytes_down += connection.down.moved
            connection.up.moved = connection.down.moved = 0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        answer = self.stats.as_json(len(self.open_connections), usage.ru_utime + usage.ru_stime)
        if reset:
            self.stats = Stats()
            self.epoch += 1
            self.current = 0
        return answer

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.open_connections):
            connection.close(abort=True)
        if self.server is not None:
            await self.server.wait_closed()


async def _serve(upstream: tuple[str, int], profile: LinkProfile, port: int) -> None:
    """The child's main: serve, answer commands from stdin, stop at its EOF."""
    proxy = ProxyServer(upstream, profile)
    bound = await proxy.start(port)
    stop = asyncio.Event()
    loop = proxy.loop

    async def answer(command: str) -> dict[str, Any]:
        if command in ("stats", "take"):
            return proxy.snapshot(reset=command == "take")
        if command == "reset":
            proxy.snapshot(reset=True)
            return {"ok": True}
        return {"error": f"unknown command {command!r}"}

    def control() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            reply = asyncio.run_coroutine_threadsafe(answer(command), loop).result()
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
        loop.call_soon_threadsafe(stop.set)

    sys.stdout.write(json.dumps({"port": bound}) + "\n")
    sys.stdout.flush()
    threading.Thread(target=control, name="wan-proxy-control", daemon=True).start()
    await stop.wait()
    await proxy.close()


# -- the bench's handle ----------------------------------------------------------------


@dataclass(frozen=True)
class ProxyStats:
    """One reading of the proxy's counters (since the last reset)."""

    requests: dict[str, int]
    connections: int
    peak_connections: int
    open_connections: int
    bytes_up: int
    bytes_down: int
    cpu: float  # the proxy process's CPU seconds since it started

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def short(self) -> str:
        """``2,001 (PUT 2,000, GET 1)``: the total, then each operation's count."""
        order = {name: number for number, name in enumerate(OPERATIONS)}
        names = sorted(self.requests, key=lambda name: (order.get(name, len(order)), name))
        parts = ", ".join(f"{name} {self.requests[name]:,}" for name in names)
        return f"{self.total:,} ({parts})" if parts else "0"


class WanProxy:
    """``with WanProxy(("127.0.0.1", port), PROFILES["R2"]) as proxy: ... proxy.url``.

    The proxy runs in a child process; :meth:`take` reads its counters and resets them.
    """

    def __init__(self, upstream: tuple[str, int], profile: LinkProfile) -> None:
        self.upstream = upstream
        self.profile = profile
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command_line(self) -> list[str]:
        host, port = self.upstream
        rate = "0" if self.profile.rate is None else repr(self.profile.rate)
        return [
            sys.executable,
            "-m",
            "bench.wan_proxy",
            "serve",
            "--upstream",
            f"{host}:{port}",
            "--name",
            self.profile.name,
            "--rtt",
            repr(self.profile.rtt),
            "--rate",
            rate,
            "--handshake-rtts",
            str(self.profile.handshake_rtts),
        ]

    def start(self) -> WanProxy:
        self.process = subprocess.Popen(
            self.command_line(),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            first = self._read()
            self.port = int(first["port"])
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the WAN proxy exited ({self.process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, command: str) -> dict[str, Any]:
        with self._lock:
            assert self.process is not None and self.process.stdin is not None
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
            return self._read()

    def _stats(self, command: str) -> ProxyStats:
        raw = self._ask(command)
        return ProxyStats(
            requests=raw["requests"],
            connections=raw["connections"],
            peak_connections=raw["peak_connections"],
            open_connections=raw["open_connections"],
            bytes_up=raw["bytes_up"],
            bytes_down=raw["bytes_down"],
            cpu=raw["cpu"],
        )

    def stats(self) -> ProxyStats:
        return self._stats("stats")

    def take(self) -> ProxyStats:
        """The counters since the last reset, then reset them (one atomic step)."""
        return self._stats("take")

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        """Close the child's stdin (it stops), and kill it if it has not within 5 s."""
        process, self.process = self.process, None
        if process is None:
            return
        with suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()

    def __enter__(self) -> WanProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- capacity ------------------------------------------------------------------------

_BLOCK = b"\0" * MiB


def _blob_server(listener: socket.socket, stop: threading.Event) -> None:
    """A minimal HTTP server: ``PUT`` with a Content-Length is read and answered 200;
    ``GET /<n>`` answers ``n`` bytes. One thread per connection."""

    def serve(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = stream.readline()
                    if not line:
                        return
                    head += line
                method, target, _ = head.split(b" ", 2)
                if method == b"PUT":
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while length:
                        length -= len(stream.read(min(length, MiB)))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                else:
                    size = int(target.lstrip(b"/"))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                    while size:
                        sent = conn.send(_BLOCK[: min(size, MiB)])
                        size -= sent

    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def _client(port: int, direction: str, size: int, moved: list[int]) -> None:
    with socket.create_connection((LOOPBACK, port)) as conn, conn.makefile("rb") as stream:
        if direction == "up":
            conn.sendall(b"PUT /blob HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            left = size
            while left:
                left -= conn.send(_BLOCK[: min(left, MiB)])
            while stream.readline() not in (b"\r\n", b""):
                pass
        else:
            conn.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
            while stream.readline() not in (b"\r\n", b""):
                pass
            left = size
            while left:
                chunk = stream.read1(min(left, MiB))
                if not chunk:
                    break
                left -= len(chunk)
        moved.append(size - left)


@dataclass(frozen=True)
class Capacity:
    direction: str
    connections: int
    offered: float | None  # bytes/s the links allow in all (None: no cap)
    carried: float  # bytes/s measured
    proxy_cpu: float  # the proxy's CPU seconds per second of the run

    def describe(self) -> str:
        offered = "no cap" if self.offered is None else f"cap {self.offered / 1e6:,.0f} MB/s"
        return (
            f"{self.direction:>4}: {self.connections} connections, {offered}: "
            f"carried {self.carried / 1e6:,.0f} MB/s, proxy CPU {self.proxy_cpu:.0%} of a core"
        )


def measure_capacity(
    connections: int = 10, rate: float | None = 25e6, seconds: float = 4.0
) -> list[Capacity]:
    """Aggregate throughput through the proxy, up and down, ``connections`` at once over
    links of ``rate`` bytes/s each (1 ms round trip), each moving ``seconds`` worth."""
    listener = socket.create_server((LOOPBACK, 0))
    stop = threading.Event()
    server = threading.Thread(target=_blob_server, args=(listener, stop), daemon=True)
    server.start()
    profile = LinkProfile("capacity", rtt=0.001, rate=rate, handshake_rtts=0)
    size = int((rate or 250e6) * seconds)
    found: list[Capacity] = []
    try:
        with WanProxy(listener.getsockname()[:2], profile) as proxy:
            for direction in ("up", "down"):
                cpu_before = proxy.stats().cpu
                moved: list[int] = []
                threads = [
                    threading.Thread(target=_client, args=(proxy.port, direction, size, moved))
                    for _ in range(connections)
                ]
                started = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - started
                cpu = proxy.stats().cpu - cpu_before
                offered = None if rate is None else rate * connections
                found.append(
                    Capacity(direction, connections, offered, sum(moved) / elapsed, cpu / elapsed)
                )
    finally:
        stop.set()
        server.join()
        listener.close()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wan_proxy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the proxy (the bench starts this)")
    serve.add_argument("--upstream", required=True, help="host:port of the server")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--name", default="custom")
    serve.add_argument("--rtt", type=float, required=True, help="round trip, seconds")
    serve.add_argument("--rate", type=float, required=True, help="bytes/s (0: no cap)")
    serve.add_argument("--handshake-rtts", type=int, default=2)
    capacity = commands.add_parser("capacity", help="measure the proxy's throughput")
    capacity.add_argument("--connections", type=int, default=10)
    capacity.add_argument("--rate", type=float, default=25e6, help="bytes/s (0: no cap)")
    capacity.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        host, _, port = args.upstream.rpartition(":")
        profile = LinkProfile(args.name, args.rtt, args.rate or None, args.handshake_rtts)
        asyncio.run(_serve((host, int(port)), profile, args.port))
        return 0
    for line in measure_capacity(args.connections, args.rate or None, args.seconds):
        print(line.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench.wan_proxy: latency per round trip, the bandwidth cap, and the request count.

The proxy runs in its own process in front of a tiny HTTP server on 127.0.0.1 (a thread
here), with a 50 ms round trip, 2 round trips to open a connection and 8 Mbit/s per
connection and direction; every figure is timed through real sockets.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.wan_proxy import LinkProfile, RequestParser, WanProxy, operation

RTT = 0.050
RATE = 1_000_000  # bytes/s: 8 Mbit/s
PROFILE = LinkProfile("test", rtt=RTT, rate=RATE, handshake_rtts=2)
UPLOAD = 500_000  # 0.5 s at RATE
DOWNLOAD = 300_000  # 0.3 s at RATE
# Loopback, the proxy's timers and a busy 2-core machine add a little; never less.
LATE = 0.2


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_body(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass  # trailers
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        return len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _answer(self, body: bytes = b"") -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        size = int(self.path.rsplit("size=", 1)[1]) if "size=" in self.path else 2
        self._answer(b"x" * size)

    def do_PUT(self) -> None:
        self._answer(str(self._read_body()).encode())

    do_POST = do_PUT


@pytest.fixture(scope="module")
def proxy() -> Iterator[WanProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with WanProxy(("127.0.0.1", server.server_address[1]), PROFILE) as running:
            yield running
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def timed(
    conn: http.client.HTTPConnection, method: str, target: str, body: object = None
) -> tuple[float, bytes]:
    started = time.perf_counter()
    conn.request(method, target, body=body, encode_chunked=not isinstance(body, bytes | None))  # type: ignore[arg-type]
    data = conn.getresponse().read()
    return time.perf_counter() - started, data


def test_a_new_connection_pays_its_handshake_then_each_request_one_round_trip(
    proxy: WanProxy,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port)
    try:
        first, _ = timed(conn, "GET", "/bucket/key")
        second, _ = timed(conn, "GET", "/bucket/key")
    finally:
        conn.close()
    opening = (PROFILE.handshake_rtts + 1) * RTT
    assert opening <= first < opening + LATE
    assert RTT <= second < RTT + LATE / 2
    assert first - second >= PROFILE.handshake_rtts * RTT * 0.9


def test_a_body_moves_at_the_links_rate_each_way(proxy: WanProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port)
    try:
        timed(conn, "GET", "/bucket/warm")  # the handshake, out of the way
        up, answer = timed(conn, "PUT", "/bucket/key", b"u" * UPLOAD)
        down, data = timed(conn, "GET", f"/bucket/key?size={DOWNLOAD}")
    finally:
        conn.close()
    assert answer == str(UPLOAD).encode()
    assert len(data) == DOWNLOAD
    # The body's serialization at RATE, plus the request's round trip.
    assert UPLOAD / RATE + RTT <= up < UPLOAD / RATE + RTT + LATE
    assert DOWNLOAD / RATE + RTT <= down < DOWNLOAD / RATE + RTT + LATE


def test_requests_are_counted_by_operation_on_a_kept_alive_connection(
    proxy: WanProxy,
) -> None:
    proxy.take()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port)
    try:
        pieces = iter([b"a" * 70_000, b"b" * 5, b"c" * 1000])  # sent chunked
        _, stored = timed(conn, "PUT", "/bucket/big?partNumber=3&uploadId=abc", pieces)
        timed(conn, "POST", "/bucket/big?uploads", b"")
        timed(conn, "GET", "/bucket?list-type=2&prefix=a%2F")
        timed(conn, "PUT", "/bucket/small", b"s" * 10)
    finally:
        conn.close()
    assert stored == b"71005"  # the whole chunked body reached the server
    seen = proxy.take()
    assert seen.requests == {"UploadPart": 1, "CreateMPU": 1, "LIST": 1, "PUT": 1}
    assert seen.connections == 1
    assert seen.short() == "4 (PUT 1, UploadPart 1, CreateMPU 1, LIST 1)"
    assert seen.bytes_up > 71_005
    assert proxy.take().total == 0  # take() reset the counters


def test_the_parser_counts_requests_cut_anywhere() -> None:
    stream = (
        b"PUT /b/k?partNumber=1&uploadId=u HTTP/1.1\r\nHost: h\r\n"
        b"Expect: 100-continue\r\nContent-Length: 11\r\n\r\nhello world"
        b"PUT /b/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nabcde\r\n3\r\nfgh\r\n0\r\nx-amz-checksum: abc\r\n\r\n"
        b"POST /b/k?uploadId=u HTTP/1.1\r\nContent-Length: 4\r\n\r\n<x/>"
        b"HEAD /b/k HTTP/1.1\r\n\r\n"
        b"GET /b/k?tagging HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        b"DELETE /b/k HTTP/1.1\r\n\r\n"
    )
    expected = ["UploadPart", "PUT", "CompleteMPU", "HEAD", "GET tagging", "DELETE"]
    for piece in (1, 2, 7, len(stream)):
        seen: list[str] = []

        def count(method: str, target: str, seen: list[str] = seen) -> None:
            seen.append(operation(method, target))

        parser = RequestParser(count)
        for start in range(0, len(stream), piece):
            parser.feed(stream[start : start + piece])
        assert seen == expected, piece
        assert not parser.broken and not parser.buffer


def test_operation_names() -> None:
    assert operation("GET", "/b/k") == "GET"
    assert operation("GET", "/b?list-type=2&prefix=x") == "LIST"
    assert operation("GET", "/b?prefix=x&delimiter=%2F&max-keys=1000") == "LIST"  # v1
    assert operation("GET", "/b?uploads") == "other GET bucket?uploads"
    assert operation("POST", "/b?delete") == "DELETE"
    assert operation("PUT", "/b/k?tagging") == "PUT tagging"
    assert operation("HEAD", "/b") == "other HEAD bucket"
    assert operation("DELETE", "/b/k?uploadId=u") == "other DELETE object?uploadId"

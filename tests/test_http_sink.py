"""The HTTP sink against receivers that misbehave at the socket level."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from relay.webhooks import Webhook
from workers.sinks.base import Message
from workers.sinks.http import HttpSink


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A loopback TCP server whose connection handling the test writes."""
    listeners: list[socket.socket] = []
    stop = threading.Event()

    def serve(handle: Callable[[socket.socket], None]) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.2)
        listeners.append(listener)

        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=_run, args=(handle, conn), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/hook"

    yield serve
    stop.set()
    for listener in listeners:
        listener.close()


def _run(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
    try:
        conn.recv(65536)
        handle(conn)
    except OSError:
        pass
    finally:
        conn.close()


def _message(url: str) -> Message:
    webhook = Webhook(
        id="wh_1",
        event="ticket_started",
        url=url,
        sink="http",
        state="active",
        secret="whsec_" + "A" * 44,
        created_ms=0,
    )
    return Message(
        delivery_id="dlv_1",
        number=1,
        event_id="evt_1",
        event="ticket_started",
        received_ms=0,
        body=b'{"number": 1}',
        url=url,
        webhook=webhook,
    )


def _send(settings, url: str, timeout: float = 1.0):
    sink = HttpSink(settings)
    return sink.send(_message(url), time.monotonic() + timeout)


def _trickle(data: bytes, gap: float) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(gap)

    return handle


def test_trickled_headers_time_out(settings, raw_server):
    """A receiver that sends its status line a byte at a time is cut off."""
    url = raw_server(_trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100, 0.2))
    outcome = _send(settings, url)
    assert not outcome.delivered
    assert outcome.error == "timeout"
    assert not outcome.permanent


def test_trickled_body_times_out(settings, raw_server):
    """A receiver that trickles its body past the deadline is cut off."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n"

    def handle(conn: socket.socket) -> None:
        conn.sendall(head)
        _trickle(b"x" * 400, 0.2)(conn)

    outcome = _send(settings, raw_server(handle))
    assert outcome.error == "timeout"


def test_huge_body_is_cut_to_an_excerpt(settings, raw_server):
    """A 2xx with a huge body is a success, keeping only 2 KiB of the body."""
    size = 50 * 1024 * 1024

    def handle(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"y" * 65536
        for _ in range(size // len(chunk)):
            conn.sendall(chunk)

    outcome = _send(settings, raw_server(handle), timeout=5)
    assert outcome.delivered
    assert outcome.response == "y" * 2048


def test_reset_connection_is_transient(settings, raw_server):
    """A receiver that resets the connection gives a retryable failure."""

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )

    outcome = _send(settings, raw_server(handle))
    assert not outcome.delivered
    assert outcome.error == "connect_error"
    assert not outcome.permanent


def test_closed_port_is_a_connect_error(settings):
    """Nothing listening: a retryable connection error."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    outcome = _send(settings, f"http://127.0.0.1:{port}/hook")
    assert outcome.error == "connect_error"
    assert not outcome.permanent


def test_connections_are_reused_across_attempts(settings, raw_server):
    """Three attempts to one keep-alive receiver share one pooled connection."""
    connections = []

    def handle(conn: socket.socket) -> None:
        connections.append(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        while conn.recv(65536):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    url = raw_server(handle)
    sink = HttpSink(settings)
    for _ in range(3):
        assert sink.send(_message(url), time.monotonic() + 2).delivered
    assert len(connections) == 1


def test_private_addresses_are_refused_without_the_setting(settings, httpserver):
    """With private targets not allowed, a loopback URL is refused for good."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    guarded = settings.replace(allow_private_targets=False)
    outcome = _send(
        guarded, httpserver.url_for("/hook").replace("localhost", "127.0.0.1")
    )
    assert not outcome.delivered
    assert outcome.permanent
    assert httpserver.log == []

"""The benchmark's sink: a fast HTTP/1.1 receiver in its own process.

An asyncio protocol (no framework) that answers every POST ``200`` with the
whole response in one ``write`` on a ``TCP_NODELAY`` socket and keeps the
connection alive, so neither Nagle's algorithm nor delayed ACKs add latency
and the sink can take several times what relay sends it.

Requests are counted by *group*, the first segment of the path (``/g/x`` is
group ``g``): how many arrived, how many distinct deliveries (the
``webhook-id`` header), when the first and the last arrived, and, per
``Relay-Event-Id``, when that event first arrived (for accepted → delivered
latency). A path can be made slow: its answers wait N seconds, without
holding up any other connection.

Control routes (JSON): ``GET /_stats``, ``GET /_arrivals?group=g``,
``POST /_reset``, ``POST /_delay`` with ``{"prefix": "/slow", "seconds": 2}``.

Run: ``python -m bench.sink PORT``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#: Largest head or body accepted; a benchmark sends a few KiB at most.
_LIMIT = 1 << 20


class Group:
    """What arrived under one path group."""

    __slots__ = ("count", "first", "last", "ids", "events")

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.ids: set[str] = set()
        self.events: dict[str, float] = {}

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "unique": len(self.ids),
            "first": self.first,
            "last": self.last,
        }


class State:
    """Counters and delays shared by every connection."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.delays: list[tuple[str, float]] = []
        self.started = time.time()

    def record(self, path: str, headers: dict[str, str], now: float) -> None:
        name = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group()
            group.first = now
        group.count += 1
        group.last = now
        delivery = headers.get("webhook-id")
        if delivery is not None:
            group.ids.add(delivery)
        event = headers.get("relay-event-id")
        if event is not None and event not in group.events:
            group.events[event] = now

    def delay_for(self, path: str) -> float:
        for prefix, seconds in self.delays:
            if path.startswith(prefix):
                return seconds
        return 0.0

    def control(self, method: str, target: str, body: bytes) -> Any:
        """Answer a control route; None when ``target`` is not one."""
        parts = urlsplit(target)
        if parts.path == "/_stats":
            return {
                "groups": {n: g.summary() for n, g in self.groups.items()},
                "delays": self.delays,
                "now": time.time(),
            }
        if parts.path == "/_arrivals":
            wanted = parse_qs(parts.query).get("group", [""])[0]
            group = self.groups.get(wanted)
            return {"events": group.events if group else {}}
        if parts.path == "/_reset" and method == "POST":
            self.groups.clear()
            self.delays.clear()
            return {"reset": True}
        if parts.path == "/_delay" and method == "POST":
            asked = json.loads(body or b"{}")
            self.delays = [d for d in self.delays if d[0] != asked["prefix"]] + [
                (str(asked["prefix"]), float(asked["seconds"]))
            ]
            return {"delays": self.delays}
        return None


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: parse, count, answer, in order."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.waiting:
            self._serve()

    def _serve(self) -> None:
        """Answer every complete request in the buffer, stopping at a delay."""
        while self.transport is not None and not self.waiting:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _LIMIT:
                    self._fail()
                return
            try:
                method, target, headers = _head(bytes(self.buffer[:end]))
                length = int(headers.get("content-length", "0"))
            except ValueError:
                return self._fail()
            if length > _LIMIT:
                return self._fail()
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self._answer(method, target, headers, body)

    def _answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> None:
        assert self.transport is not None
        if target.startswith("/_"):
            shown = self.state.control(method, target, body)
            if shown is not None:
                self.transport.write(_json(shown))
                return
        path = target.split("?", 1)[0]
        self.state.record(path, headers, time.time())
        delay = self.state.delay_for(path)
        if delay <= 0:
            self.transport.write(_OK)
            return
        # Answer later; later requests on this connection wait their turn.
        self.waiting = True
        asyncio.get_running_loop().call_later(delay, self._late)

    def _late(self) -> None:
        self.waiting = False
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_OK)
        self._serve()

    def _fail(self) -> None:
        if self.transport is not None:
            self.transport.write(_BAD)
            self.transport.close()


def _head(raw: bytes) -> tuple[str, str, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("malformed header")
        headers[name.strip().lower()] = value.strip()

    return method, target, headers


def _json(value: Any) -> bytes:
    body = json.dumps(value).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )

    return head.encode() + body


async def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve on ``host:port`` until the process is stopped."""
    state = State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Connection(state), host, port, backlog=1024, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1])
    try:
        asyncio.run(serve(port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

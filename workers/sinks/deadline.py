"""An overall deadline for HTTP attempts.

A read timeout bounds each ``recv``, not the whole response: a receiver that
trickles a byte every few seconds would hold a worker forever. Connections
made through :class:`DeadlineAdapter` register with a watchdog thread while
an attempt runs; when the attempt's deadline passes, the watchdog shuts the
socket down, the blocked read returns, and the attempt fails as a timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class _Watched:
    """One attempt under watch: its deadline and connections."""

    __slots__ = ("deadline", "conns", "expired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conns: list[Any] = []
        self.expired = False


class Watchdog:
    """Shuts down the sockets of attempts that outlive their deadline."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._local = threading.local()
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[Any, _Watched]] = {}
        self._thread: threading.Thread | None = None

    def begin(self, deadline: float) -> None:
        """Start watching the calling thread's connections until ``end``."""
        self._local.attempt = _Watched(deadline)
        self._ensure_running()

    def end(self) -> bool:
        """Stop watching; True if the watchdog had to cut the attempt."""
        attempt: _Watched | None = getattr(self._local, "attempt", None)
        if attempt is None:
            return False
        self._local.attempt = None
        with self._lock:
            for conn in attempt.conns:
                self._watched.pop(id(conn), None)

        return attempt.expired

    def watch(self, conn: Any) -> None:
        """Register ``conn`` under the calling thread's attempt, if any."""
        attempt: _Watched | None = getattr(self._local, "attempt", None)
        if attempt is None:
            return
        attempt.conns.append(conn)
        with self._lock:
            self._watched[id(conn)] = (conn, attempt)

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="relay-deadline", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            with self._lock:
                late = [
                    (key, entry)
                    for key, entry in self._watched.items()
                    if entry[1].deadline <= now
                ]
                for key, _ in late:
                    del self._watched[key]
            for _, (conn, attempt) in late:
                attempt.expired = True
                _cut(conn)


def _cut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


WATCHDOG = Watchdog()


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        WATCHDOG.watch(self)
        super().request(*args, **kwargs)


class _TLSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        WATCHDOG.watch(self)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class DeadlineMixin:
    """Makes a requests adapter's pools use watched connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[misc]
        self.poolmanager.pool_classes_by_scheme = {  # type: ignore[attr-defined]
            "http": _Pool,
            "https": _TLSPool,
        }


class DeadlineAdapter(DeadlineMixin, HTTPAdapter):
    """A plain requests adapter with watched connections."""

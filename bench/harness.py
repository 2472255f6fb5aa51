"""The benchmark's stage: its Redis, its sink, relay's processes, and the
small actions every measurement is made of (create webhooks, post a
backlog, start workers, wait for the sink).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench import load
from bench.procs import (
    Procs,
    base_env,
    children,
    memory,
    procfile_line,
    sink_call,
    sink_group,
    start_redis,
    start_sink,
    start_web,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "data" / "groove-webhooks.md"
GROUP = "relay"  # relay's consumer group on the work stream
WORK = "relay:work"


def spec_ticket() -> bytes:
    """The spec's example Ticket, as compact JSON."""
    import re

    text = SPEC.read_text()
    for kind, block in re.findall(r"### (\w+)\s+```json\n(.*?)```", text, re.S):
        if kind == "Ticket":
            return json.dumps(json.loads(block), separators=(",", ":")).encode()
    raise LookupError(f"no Ticket example in {SPEC}")


@dataclasses.dataclass
class Sizes:
    """How much each measurement does; ``quick()`` and ``full()`` presets."""

    counts: list[int]
    workers: int
    events: int
    rq_events: int
    celery_events: int
    fanout: int
    intake_seconds: float
    latency_seconds: float
    isolation_events: int
    slow_events: int
    memory_events: int
    pending_events: int
    growth: list[int]
    growth_intake_seconds: float
    connections: int = 32

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            counts=[1, 2, 4, 8],
            workers=2,
            events=10_000,
            rq_events=1_000,
            celery_events=2_000,
            fanout=1_000,
            intake_seconds=8,
            latency_seconds=10,
            isolation_events=4_000,
            slow_events=200,
            memory_events=5_000,
            pending_events=2_500,
            growth=[0, 100_000, 1_000_000],
            growth_intake_seconds=3,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            counts=[1, 2],
            workers=2,
            events=400,
            rq_events=60,
            celery_events=150,
            fanout=50,
            intake_seconds=1,
            latency_seconds=2,
            isolation_events=300,
            slow_events=20,
            memory_events=300,
            pending_events=200,
            growth=[0, 1_000, 3_000],
            growth_intake_seconds=1,
        )


class Stage:
    """The processes of one run and the actions measurements share."""

    def __init__(self, sizes: Sizes, logs: Path) -> None:
        self.sizes = sizes
        self.logs = logs
        self.procs = Procs(logs)
        self.body = spec_ticket()
        self.body_file = logs / "ticket.json"
        self.redis_url = ""
        self.redis_name = ""
        self.client: redis.Redis | None = None
        self.sink_port = 0
        self.web: subprocess.Popen[bytes] | None = None
        self.web_port = 0
        self.workers: list[subprocess.Popen[bytes]] = []
        #: Peak RSS (MB) seen per kind of process: relay_worker, scheduler, web.
        self.rss: dict[str, list[dict[str, Any]]] = {}

    # --- up and down ---

    def open(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.body_file.write_bytes(self.body)
        _, self.redis_url, self.redis_name = start_redis(self.procs)
        # Flushing a million-event history takes seconds: no short timeout.
        self.client = redis.Redis.from_url(self.redis_url, socket_timeout=300)
        _, self.sink_port = start_sink(self.procs)

    def close(self) -> None:
        if self.web is not None:
            self.note_rss("web", self.web.pid)
        self.procs.stop_all()
        if self.client is not None:
            self.client.close()

    @property
    def redis(self) -> redis.Redis:
        assert self.client is not None
        return self.client

    def relay_env(self) -> dict[str, str]:
        return base_env(REDIS_URL=self.redis_url, RELAY_ALLOW_PRIVATE_TARGETS="1")

    def flush(self) -> None:
        """Empty the benchmark's Redis and the sink's counters."""
        self.redis.flushall()
        self.reset_sink()

    def reset_sink(self) -> None:
        sink_call(self.sink_port, "/_reset", {})

    def sink_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.sink_port}{path}"

    # --- relay's web process ---

    def relay_web(self) -> int:
        """relay's web process, started once, as the Procfile runs it."""
        if self.web is None:
            self.web, self.web_port = start_web(self.procs, self.relay_env(), "web")
        return self.web_port

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One call to relay's API; (status, parsed answer)."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.relay_web(), timeout=30
        )
        data = json.dumps(body).encode() if body is not None else None
        try:
            connection.request(
                method, path, body=data, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()

        return response.status, json.loads(raw) if raw else None

    def create_webhooks(self, pairs: list[tuple[str, str]]) -> list[str]:
        """Create a webhook per (event, url) through the API; their ids."""

        def create(pair: tuple[str, str]) -> str:
            status, answer = self.api(
                "POST", "/v1/webhooks", {"event": pair[0], "url": pair[1]}
            )
            if status not in (200, 201):
                raise RuntimeError(f"creating a webhook answered {status}: {answer}")
            return str(answer["webhook"]["id"])

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return list(pool.map(create, pairs))

    def post_event(self, event: str = "ticket_started") -> tuple[str, float]:
        """Post one event; (its id, the time its 202 arrived)."""
        key = f"one-{time.time_ns()}"
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.relay_web(), timeout=30
        )
        try:
            connection.request(
                "POST",
                f"/v1/events/{event}",
                body=self.body,
                headers={"Content-Type": "application/json", "Idempotency-Key": key},
            )
            response = connection.getresponse()
            answer = json.loads(response.read())
        finally:
            connection.close()
        if response.status != 202:
            raise RuntimeError(f"intake answered {response.status}: {answer}")

        return str(answer["event"]["id"]), time.time()

    def backlog(self, count: int, event: str = "ticket_started") -> int:
        """Post about ``count`` events through the API (wrk or Python
        clients, 32 connections); returns how many were stored."""
        before = int(self.redis.zcard("relay:events"))

        def enough() -> bool:
            return int(self.redis.zcard("relay:events")) - before >= count

        load.blast(
            self.relay_web(),
            f"/v1/events/{event}",
            self.body_file,
            connections=self.sizes.connections,
            seconds=count / 100 + 20,
            until=enough,
        )
        # Requests in flight when the load stopped are still being stored.
        last, now = -1, int(self.redis.zcard("relay:events"))
        while now != last:
            time.sleep(0.25)
            last, now = now, int(self.redis.zcard("relay:events"))

        return now - before

    # --- relay's workers ---

    def start_workers(
        self, count: int, name: str, **env: str
    ) -> list[subprocess.Popen[bytes]]:
        """``count`` worker processes, each the Procfile's worker line."""
        command = "exec " + procfile_line("worker")
        environ = dict(self.relay_env(), **env)
        started = [
            self.procs.start(["sh", "-c", command], f"{name}-{i}", environ)
            for i in range(count)
        ]
        self.workers.extend(started)

        return started

    def wait_workers(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` engines block reading the work stream."""

        def reading() -> bool:
            clients = self.redis.client_list()
            return sum(c.get("cmd") == "xreadgroup" for c in clients) >= count

        wait_until(reading, timeout, f"{count} relay workers")

    def stop_workers(self, workers: list[subprocess.Popen[bytes]]) -> None:
        """Note each worker's peak memory, then stop it and its children."""
        for process in workers:
            if process.poll() is None:
                self.note_rss("relay_worker", process.pid)
        for process in workers:
            self.procs.stop(process, grace=0.5)
            if process in self.workers:
                self.workers.remove(process)

    def sweep(self, keep: list[subprocess.Popen[bytes]]) -> None:
        """Stop whatever a measurement left running (after an error)."""
        self.stop_workers(list(self.workers))
        for process in list(self.procs.running):
            if process not in keep and process is not self.web:
                self.procs.stop(process, grace=0.5)

    def note_rss(self, kind: str, pid: int) -> None:
        """Keep the memory of ``pid`` (and of its children, by kind)."""
        self.rss.setdefault(kind, []).append(memory(pid))
        for child in children(pid):
            shown = memory(child)
            sub = "scheduler" if kind == "relay_worker" else f"{kind}_child"
            self.rss.setdefault(sub, []).append(shown)

    # --- the sink ---

    def wait_sink(
        self,
        group: str,
        expected: int,
        timeout: float,
        on_first: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until ``expected`` distinct deliveries reached ``group``
        (calling ``on_first`` once the first has); returns its counters, with
        ``complete`` False on a timeout."""
        until = time.monotonic() + timeout
        while True:
            found = sink_group(self.sink_port, group)
            if on_first is not None and found["count"]:
                on_first()
                on_first = None
            if found["unique"] >= expected:
                return dict(found, complete=True)
            if time.monotonic() > until:
                return dict(found, complete=False)
            time.sleep(0.02 if on_first else 0.05)

    def arrivals(self, group: str) -> dict[str, float]:
        return dict(sink_call(self.sink_port, f"/_arrivals?group={group}")["events"])

    def delay(self, prefix: str, seconds: float) -> None:
        sink_call(self.sink_port, "/_delay", {"prefix": prefix, "seconds": seconds})


def python() -> str:
    """The interpreter running the benchmark (the virtualenv's)."""
    return sys.executable

"""Delivery measurements: throughput, fan-out, latency, isolation, profile.

Rates are counted at the sink over distinct deliveries (``webhook-id``),
from its first arrival to its last, so that no system is charged for its
interpreter starting: the backlog is in place before the workers start.
Each run also counts what a delivery costs: Redis commands (those run
inside Lua scripts included), Redis CPU and the workers' CPU, from the first
delivery to the last.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import load
from bench.harness import WORK, Stage, python
from bench.peers import celery_naive, rq_naive
from bench.procs import (
    BIN,
    base_env,
    children,
    cpu_seconds,
    sink_group,
    wait_until,
)

Job = tuple[str, str, str, str]


def rate(
    found: dict[str, Any], expected: int, start: float | None = None
) -> dict[str, Any]:
    """Deliveries per second from ``start`` (default: the first arrival)."""
    first = found["first"] if start is None else start
    span = max(found["last"] - first, 1e-6)

    return {
        "deliveries": found["unique"],
        "expected": expected,
        "duplicates": found["count"] - found["unique"],
        "seconds": round(span, 3),
        "rate": round(found["unique"] / span, 1),
        "complete": bool(found.get("complete", True)),
    }


def timed(name: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``action``, telling stderr how long it took and what it found."""
    began = time.monotonic()
    found = action()
    took = time.monotonic() - began
    print(f"[bench]   {name}: {took:.1f} s, {found.get('rate')}/s", file=sys.stderr)

    return found


class Costs:
    """Redis commands and CPU, and the workers' CPU, from the first delivery."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.pids: list[int] = []
        self.redis_cpu = 0.0
        self.workers_cpu = 0.0

    def _redis_cpu(self) -> float:
        cpu = self.stage.redis.info("cpu")
        return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])

    def start(self) -> None:
        """Call at the first delivery."""
        self.stage.redis.config_resetstat()
        self.redis_cpu = self._redis_cpu()
        self.workers_cpu = sum(cpu_seconds(p) for p in self.pids)

    def per_delivery(self, deliveries: int) -> dict[str, Any]:
        """Call after the last delivery, before the workers stop."""
        stats = self.stage.redis.info("commandstats")
        calls = sum(int(v["calls"]) for v in stats.values())
        redis_cpu = self._redis_cpu() - self.redis_cpu
        workers_cpu = sum(cpu_seconds(p) for p in self.pids) - self.workers_cpu
        each = max(deliveries, 1)

        return {
            "redis_commands": round(calls / each, 1),
            "redis_cpu_ms": round(redis_cpu * 1000 / each, 3),
            "worker_cpu_ms": round(workers_cpu * 1000 / each, 3),
        }


def jobs(stage: Stage, group: str, count: int, paths: int = 1) -> list[Job]:
    """Peer jobs: (url, body, delivery id, event id)."""
    body = stage.body.decode()

    return [
        (
            stage.sink_url(f"/{group}/w{i % paths}" if paths > 1 else f"/{group}/hook"),
            body,
            f"dlv_{group}_{i}",
            f"evt_{group}_{i}",
        )
        for i in range(count)
    ]


def peer_env(stage: Stage) -> dict[str, str]:
    return base_env(BENCH_REDIS_URL=stage.redis_url)


# --- one webhook, a backlog ---


def relay_backlog(
    stage: Stage, processes: int, group: str, count: int
) -> dict[str, Any]:
    """``count`` events to one webhook, posted first; then N workers start."""
    stage.flush()
    stage.create_webhooks([("ticket_started", stage.sink_url(f"/{group}/hook"))])
    stored = stage.backlog(count)
    stage.reset_sink()
    began = time.time()
    costs = Costs(stage)
    workers = stage.start_workers(processes, f"relay-{group}")
    costs.pids = [w.pid for w in workers]
    # Bounded so that a stalled run cannot push the benchmark past its
    # budget: it is then reported incomplete, at the rate it reached.
    found = stage.wait_sink(group, stored, stored / 200 + 40, on_first=costs.start)
    spent = costs.per_delivery(found["unique"])
    stage.stop_workers(workers)
    shown = rate(found, stored)
    shown["start_to_last"] = round(found["last"] - began, 3)
    shown["per_delivery"] = spent
    # A slow tail (a few deliveries trickling) shows against the bulk.
    times = sorted(stage.arrivals(group).values())
    if len(times) >= 10:
        bulk = times[int(len(times) * 0.9) - 1] - times[0]
        shown["rate_first_90pct"] = round(0.9 * len(times) / max(bulk, 1e-6), 1)

    return shown


def ceiling_send(
    stage: Stage, processes: int, group: str, count: int, paths: int = 1
) -> dict[str, Any]:
    """The same POSTs from plain urllib3 loops in N processes."""
    stage.reset_sink()
    at = time.time() + 0.6 + 0.25 * processes
    share = [count // processes + (i < count % processes) for i in range(processes)]
    started, reports = [], []
    first = 0
    for index, size in enumerate(share):
        report = stage.logs / f"ceiling-{group}-{index}.json"
        reports.append(report)
        args = [python(), "-m", "bench.ceiling", "send", str(stage.sink_port), group]
        args += [str(first), str(size), "--paths", str(paths), "--at", str(at)]
        args += ["--body", str(stage.body_file), "--report", str(report)]
        started.append(stage.procs.start(args, f"ceiling-{group}-{index}"))
        first += size
    for process in started:
        process.wait(timeout=count / 100 + 60)
        stage.procs.stop(process)
    found = stage.wait_sink(group, count, timeout=10)
    shown = rate(found, count)
    spent = sum(json.loads(r.read_text())["cpu_seconds"] for r in reports)
    shown["per_delivery"] = {"worker_cpu_ms": round(spent * 1000 / count, 3)}

    return shown


def rq_backlog(
    stage: Stage, processes: int, group: str, count: int, stock: bool = False
) -> dict[str, Any]:
    """The RQ peer: ``count`` jobs enqueued, then N default workers start
    (``stock``: as the ``rq worker`` command starts them)."""
    stage.flush()
    rq_naive.enqueue(stage.redis_url, jobs(stage, group, count))
    command = rq_naive.worker_command(stage.redis_url, stock)
    env = peer_env(stage)
    workers = [
        stage.procs.start(command, f"rq-{group}-{i}", env) for i in range(processes)
    ]
    costs = Costs(stage)
    costs.pids = [w.pid for w in workers]
    found = stage.wait_sink(group, count, count / 5 + 60, on_first=costs.start)
    spent = costs.per_delivery(found["unique"])
    for process in workers:
        stage.procs.stop(process, grace=0.5)
    shown = rate(found, count)
    shown["per_delivery"] = spent

    return shown


def celery_backlog(
    stage: Stage, processes: int, group: str, count: int
) -> dict[str, Any]:
    """The Celery peer: ``count`` tasks sent, then one worker with N children."""
    stage.flush()
    celery_naive.enqueue(stage.redis_url, jobs(stage, group, count))
    worker = stage.procs.start(
        celery_naive.worker_command(processes), f"celery-{group}", peer_env(stage)
    )
    costs = Costs(stage)
    costs.pids = [worker.pid]
    found = stage.wait_sink(group, count, count / 20 + 60, on_first=costs.start)
    spent = costs.per_delivery(found["unique"])
    stage.procs.stop(worker, grace=1.0)
    shown = rate(found, count)
    shown["per_delivery"] = spent

    return shown


def throughput(stage: Stage, n: int) -> dict[str, Any]:
    """relay, the urllib3 ceiling and both peers at ``n`` processes."""
    sizes = stage.sizes
    found: dict[str, Any] = {
        "relay": timed("relay", lambda: relay_backlog(stage, n, f"r{n}", sizes.events)),
        "ceiling": timed(
            "ceiling", lambda: ceiling_send(stage, n, f"c{n}", sizes.events)
        ),
        "rq": timed("rq", lambda: rq_backlog(stage, n, f"q{n}", sizes.rq_events)),
        "celery": timed(
            "celery", lambda: celery_backlog(stage, n, f"k{n}", sizes.celery_events)
        ),
    }
    if n == sizes.workers:
        found["rq_stock"] = timed(
            "rq (stock rq worker)",
            lambda: rq_backlog(stage, n, f"s{n}", sizes.rq_events // 3, stock=True),
        )
    relay = found["relay"]["rate"]
    found["ratios"] = {
        "relay_vs_ceiling": round(relay / found["ceiling"]["rate"], 3),
        "relay_vs_rq": round(relay / found["rq"]["rate"], 1),
        "relay_vs_celery": round(relay / found["celery"]["rate"], 2),
    }

    return found


# --- fan-out ---


def warm_relay(stage: Stage, processes: int) -> None:
    """Have every worker read an item (and load the webhooks) before timing."""
    for _ in range(3 * processes):
        stage.post_event("ticket_closed")
        time.sleep(0.05)
    wait_until(lambda: stage.redis.xlen(WORK) == 0, 30, "the warm-up items")


def relay_fanout(stage: Stage, processes: int, webhooks: int) -> dict[str, Any]:
    """One event to ``webhooks`` webhooks: from the post to the last arrival."""
    stage.flush()
    stage.create_webhooks(
        [("ticket_started", stage.sink_url(f"/fan/w{i}")) for i in range(webhooks)]
    )
    workers = stage.start_workers(processes, "relay-fanout")
    stage.wait_workers(processes)
    warm_relay(stage, processes)
    stage.reset_sink()
    sent = time.time()
    stage.post_event()
    found = stage.wait_sink("fan", webhooks, timeout=60)
    stage.stop_workers(workers)

    return rate(found, webhooks, start=sent)


def peer_fanout(
    stage: Stage, kind: str, processes: int, webhooks: int
) -> dict[str, Any]:
    """A peer's ``webhooks`` jobs of one event: from the first enqueue to the
    last arrival, with the workers already running."""
    stage.flush()
    env = peer_env(stage)
    enqueue: Callable[[str, list[Job]], None]
    if kind == "rq":
        command = rq_naive.worker_command(stage.redis_url)
        workers = [
            stage.procs.start(command, f"rq-fan-{i}", env) for i in range(processes)
        ]
        wait_until(
            lambda: rq_naive.workers_ready(stage.redis_url) >= processes,
            30,
            "RQ workers",
        )
        enqueue = rq_naive.enqueue
    else:
        command = celery_naive.worker_command(processes)
        workers = [stage.procs.start(command, "celery-fan", env)]
        enqueue = celery_naive.enqueue
    enqueue(stage.redis_url, jobs(stage, "warm", processes))
    stage.wait_sink("warm", processes, timeout=60)
    stage.reset_sink()
    sent = time.time()
    enqueue(stage.redis_url, jobs(stage, "pfan", webhooks, paths=webhooks))
    found = stage.wait_sink("pfan", webhooks, timeout=webhooks / 5 + 60)
    for process in workers:
        stage.procs.stop(process, grace=0.5)

    return rate(found, webhooks, start=sent)


def fanout(stage: Stage, processes: int) -> dict[str, Any]:
    """One event to many webhooks, for relay, the ceiling and the peers."""
    webhooks = stage.sizes.fanout

    return {
        "webhooks": webhooks,
        "relay": timed("relay", lambda: relay_fanout(stage, processes, webhooks)),
        "ceiling": timed(
            "ceiling",
            lambda: ceiling_send(stage, processes, "cfan", webhooks, paths=webhooks),
        ),
        "rq": timed("rq", lambda: peer_fanout(stage, "rq", processes, webhooks)),
        "celery": timed(
            "celery", lambda: peer_fanout(stage, "celery", processes, webhooks)
        ),
    }


# --- latency ---


def latency(stage: Stage, processes: int, per_second: float) -> dict[str, Any]:
    """Accepted → delivered at a steady rate (a fifth of the maximum)."""
    stage.flush()
    stage.create_webhooks([("ticket_started", stage.sink_url("/lat/hook"))])
    workers = stage.start_workers(processes, "relay-latency")
    stage.wait_workers(processes)
    for _ in range(10):
        stage.post_event()
    stage.wait_sink("lat", 10, timeout=30)
    stage.reset_sink()
    seconds = stage.sizes.latency_seconds
    posted = load.paced(
        stage.relay_web(),
        "/v1/events/ticket_started",
        stage.body,
        rate=per_second,
        seconds=seconds,
    )
    accepted = posted["accepted"]
    stage.wait_sink("lat", len(accepted), timeout=30)
    arrived = stage.arrivals("lat")
    stage.stop_workers(workers)
    waits = [(arrived[e] - done) * 1000 for e, _, done in accepted if e in arrived]
    intake = [(done - sent) * 1000 for _, sent, done in accepted]

    return {
        "rate": round(per_second, 1),
        "seconds": seconds,
        "planned": posted["planned"],
        "accepted": len(accepted),
        "delivered": len(waits),
        "failures": posted["failures"],
        "p50_ms": round(load.percentile(waits, 50), 1),
        "p90_ms": round(load.percentile(waits, 90), 1),
        "p99_ms": round(load.percentile(waits, 99), 1),
        "max_ms": round(max(waits, default=float("nan")), 1),
        "intake_p50_ms": round(load.percentile(intake, 50), 1),
        "intake_p99_ms": round(load.percentile(intake, 99), 1),
    }


# --- isolation ---


def isolation(stage: Stage, processes: int) -> dict[str, Any]:
    """The fast webhook's rate alone, and behind a webhook taking 2 s."""
    events = stage.sizes.isolation_events
    alone = relay_backlog(stage, processes, "isoa", events)
    stage.flush()
    stage.create_webhooks(
        [
            ("ticket_started", stage.sink_url("/isob/hook")),
            ("ticket_closed", stage.sink_url("/isoslow/hook")),
        ]
    )
    # The slow webhook's events go first: the worst place for them.
    slow_stored = stage.backlog(stage.sizes.slow_events, "ticket_closed")
    stored = stage.backlog(events)
    stage.reset_sink()
    stage.delay("/isoslow/", 2.0)
    workers = stage.start_workers(processes, "relay-isolation")
    found = stage.wait_sink("isob", stored, timeout=stored / 50 + 60)
    slowed = sink_group(stage.sink_port, "isoslow")
    stage.stop_workers(workers)
    stage.reset_sink()
    # From the first arrival at either: a slow start counts against relay.
    starts = [x for x in (found["first"], slowed["first"]) if x]
    mixed = rate(found, stored, start=min(starts))
    mixed["slow_delivered_meanwhile"] = slowed["unique"]
    mixed["slow_events"] = slow_stored

    return {
        "alone": alone,
        "with_slow": mixed,
        "slow_seconds": 2.0,
        "ratio": round(mixed["rate"] / alone["rate"], 3),
    }


# --- profile ---


def _sampler(pid: int, raw: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording ``pid`` into ``raw`` until stopped, or None. Only
    stacks holding the GIL: the Python work, not the waiting."""
    spy = shutil.which("py-spy", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if spy is None:
        return None
    args = [spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
    args += ["--gil", "--rate", "250", "--output", str(raw)]

    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _summary(sampler: subprocess.Popen[bytes] | None, raw: Path) -> dict[str, Any]:
    """Stop ``sampler`` (py-spy writes on SIGINT) and summarize what it wrote."""
    from bench.profile import summarize

    if sampler is None:
        return {"skipped": "py-spy is not installed"}
    sampler.send_signal(signal.SIGINT)
    try:
        sampler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        sampler.kill()
    if not raw.exists():
        return {"skipped": "py-spy wrote nothing"}
    found = summarize(raw)
    found["raw"] = str(raw)

    return found


def profile(stage: Stage, processes: int, count: int) -> dict[str, Any]:
    """Where the CPU goes, by py-spy: in one relay worker delivering the
    one-webhook backlog, and in one gunicorn worker under intake."""
    stage.flush()
    stage.create_webhooks([("ticket_started", stage.sink_url("/profile/hook"))])
    stored = stage.backlog(count)
    stage.reset_sink()
    workers = stage.start_workers(processes, "relay-profile")
    stage.wait_workers(processes)
    raw = stage.logs / "profile-worker.txt"
    sampler = _sampler(workers[0].pid, raw)
    found = stage.wait_sink("profile", stored, timeout=stored / 100 + 60)
    worker = _summary(sampler, raw)
    stage.stop_workers(workers)
    worker["run"] = rate(found, stored)
    worker["sampled"] = "py-spy record --gil on one relay worker"

    stage.flush()
    assert stage.web is not None
    raw = stage.logs / "profile-web.txt"
    sampler = _sampler(children(stage.web.pid)[0], raw)
    seconds = max(2.0, stage.sizes.intake_seconds / 2)
    intake = load.blast(
        stage.relay_web(),
        "/v1/events/ticket_started",
        stage.body_file,
        connections=stage.sizes.connections,
        seconds=seconds,
    )
    web = _summary(sampler, raw)
    web["run"] = {"rate": intake["rate"]}
    web["sampled"] = "py-spy record --gil on one gunicorn worker under intake"
    stage.flush()

    return {"worker": worker, "web": web}

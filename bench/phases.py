"""The measurements around delivery: the sink's own ceiling, intake, memory
and growth with history. Each takes the :class:`~bench.harness.Stage` and
starts what it needs from an empty Redis.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Any

from bench import fill, load
from bench.delivery import warm_relay
from bench.harness import WORK, Stage
from bench.procs import BIN, base_env, free_port, start_web, wait_until

QUEUE = "relay"  # relay's RQ queue (the key prefix without its colon)

# --- the sink's own ceiling ---


def sink_ceiling(stage: Stage, seconds: float) -> dict[str, Any]:
    """What the sink takes at 32 connections: it must be far above relay."""
    stage.reset_sink()
    found = load.blast(
        stage.sink_port,
        "/sinkceiling/hook",
        stage.body_file,
        connections=stage.sizes.connections,
        seconds=seconds,
    )
    found["counted_by_sink"] = stage.wait_sink("sinkceiling", 0, 1)["count"]
    stage.reset_sink()

    return found


# --- intake ---


def intake(stage: Stage) -> dict[str, Any]:
    """relay's intake against bare Flask under the same gunicorn settings.

    Only the web process runs (no workers): this measures the web tier.
    """
    seconds = stage.sizes.intake_seconds
    conns = stage.sizes.connections
    path = "/v1/events/ticket_started"
    stage.flush()
    port = stage.relay_web()
    load.blast(port, path, stage.body_file, connections=conns, seconds=1)  # warm
    relay = load.blast(port, path, stage.body_file, connections=conns, seconds=seconds)
    relay["stored"] = int(stage.redis.zcard("relay:events"))
    stage.note_rss("web", stage.web.pid if stage.web else 0)
    stage.flush()
    bare, bare_port = start_web(
        stage.procs, base_env(), "ceiling-web", app="bench.ceiling:create_app()"
    )
    load.blast(bare_port, path, stage.body_file, connections=conns, seconds=1)
    flask = load.blast(
        bare_port, path, stage.body_file, connections=conns, seconds=seconds
    )
    stage.procs.stop(bare)

    return {
        "relay": relay,
        "bare_flask": flask,
        "ratio": round(relay["rate"] / flask["rate"], 3) if flask["rate"] else None,
    }


# --- memory ---


def _used(stage: Stage) -> int:
    """Redis's allocated bytes, less client buffers (they vary with how many
    connections are open, not with what is stored)."""
    info = stage.redis.info("memory")

    return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))


def memory(stage: Stage, processes: int) -> dict[str, Any]:
    """Redis bytes per stored event and per pending delivery."""
    sizes = stage.sizes
    payload = len(stage.body)
    stage.flush()
    time.sleep(0.2)
    empty = _used(stage)
    queued_events = stage.backlog(sizes.memory_events)
    queued = _used(stage)
    # At rest: workers take the fan-out items (no webhook is subscribed);
    # measured between two idle states with the same connections open.
    workers = stage.start_workers(processes, "relay-memory")
    stage.wait_workers(processes)
    drained = (lambda: stage.redis.xlen(WORK) == 0, 60, "the fan-out items")
    wait_until(*drained)
    time.sleep(0.3)
    before = _used(stage)
    stored = stage.backlog(sizes.memory_events)
    wait_until(*drained)
    time.sleep(0.3)
    per_event = (_used(stage) - before) / stored
    stage.stop_workers(workers)
    event = {
        "events": stored,
        "payload_bytes": payload,
        "bytes_per_event_queued": round((queued - empty) / queued_events),
        "bytes_per_event": round(per_event),
        "overhead_per_event": round(per_event - payload),
    }

    return {
        "event": event,
        "pending": _deliveries(stage, processes, per_event, "hold"),
        "retrying": _deliveries(stage, processes, per_event, "down"),
    }


def _deliveries(
    stage: Stage, processes: int, per_event: float, receiver: str
) -> dict[str, Any]:
    """Redis bytes per delivery beyond its event, for two webhooks per event
    whose receiver either holds every request (``hold``: the deliveries wait,
    parked behind their slow webhook, never attempted) or is down (``down``:
    a closed port; deliveries fail and wait for a retry, an RQ job scheduled
    an hour on so that none runs meanwhile, or are held back by the
    webhook's breaker)."""
    stage.flush()
    if receiver == "hold":
        stage.delay("/hold/", 600)
        urls = [stage.sink_url(f"/hold/w{i}") for i in range(2)]
        events = stage.sizes.pending_events
        env: dict[str, str] = {}
    else:
        port = free_port()  # nothing listens there
        urls = [f"http://127.0.0.1:{port}/down/w{i}" for i in range(2)]
        events = stage.sizes.pending_events // 4
        env = {"RELAY_RETRY_SCHEDULE": "3600,3600"}
    stage.create_webhooks([("ticket_started", url) for url in urls])
    workers = stage.start_workers(processes, f"relay-{receiver}", **env)
    stage.wait_workers(processes)
    warm_relay(stage, processes)
    time.sleep(0.3)
    before = _used(stage)
    stored = stage.backlog(events)
    wanted = stored * len(urls)

    def settled() -> bool:
        created = stage.redis.zcard("relay:pending") >= wanted
        return created and stage.redis.xlen(WORK) < 100

    wait_until(settled, 120, f"{wanted} {receiver} deliveries")
    time.sleep(1.0)
    after = _used(stage)
    breakdown = _breakdown(stage, wanted)
    stage.stop_workers(workers)
    stage.reset_sink()

    return {
        "deliveries": wanted,
        "events": stored,
        "bytes_per_delivery": round((after - before - stored * per_event) / wanted),
        "breakdown_bytes_per_delivery": breakdown,
    }


def _breakdown(stage: Stage, deliveries: int) -> dict[str, float]:
    """Where a pending delivery's bytes are, by key kind (MEMORY USAGE)."""
    client = stage.redis
    sample = [m.decode() for m in client.zrange("relay:pending", 0, 49)]
    per_hash = (
        statistics.mean(
            int(client.memory_usage(f"relay:dlv:{d}", samples=0) or 0) for d in sample
        )
        if sample
        else 0.0
    )
    shown = {"delivery_hash": round(per_hash, 1)}
    shown["pending_index"] = round(
        int(client.memory_usage("relay:pending", samples=0) or 0) / deliveries, 1
    )
    per_webhook = 0
    parked = 0
    for key in client.scan_iter("relay:wh:*:deliveries", count=1000):
        per_webhook += int(client.memory_usage(key, samples=0) or 0)
    for key in client.scan_iter("relay:parked:*", count=1000):
        parked += int(client.memory_usage(key, samples=0) or 0)
    shown["webhook_index"] = round(per_webhook / deliveries, 1)
    shown["parked_lists"] = round(parked / deliveries, 1)
    jobs = 0
    for key in client.scan_iter("rq:job:*", count=1000):
        jobs += int(client.memory_usage(key, samples=0) or 0)
    scheduled = int(client.memory_usage(f"rq:scheduled:{QUEUE}", samples=0) or 0)
    shown["rq_jobs"] = round((jobs + scheduled) / deliveries, 1)
    shown["work_stream"] = round(
        int(client.memory_usage(WORK, samples=0) or 0) / deliveries, 1
    )

    return shown


# --- growth ---


def _timed_get(stage: Stage, path: str, times: int) -> dict[str, float]:
    took = []
    for _ in range(times):
        began = time.perf_counter()
        status, _ = stage.api("GET", path)
        took.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")

    return {
        "p50_ms": round(statistics.median(took), 2),
        "p95_ms": round(load.percentile(took, 95), 2),
    }


def _cli_ms(stage: Stage, args: list[str], times: int) -> float:
    env = stage.relay_env()
    took = []
    for _ in range(times):
        began = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True, timeout=120)
        took.append((time.perf_counter() - began) * 1000)

    return round(statistics.median(took), 1)


def growth(stage: Stage) -> dict[str, Any]:
    """Listings and intake with 0 .. 1,000,000 stored events and dead letters."""
    relay = str(BIN / "relay")
    stage.flush()
    webhook_ids = stage.create_webhooks(
        [("ticket_started", stage.sink_url(f"/grow/w{i}")) for i in range(50)]
    )
    has_cli = (
        subprocess.run(
            [relay, "dead-letters", "list", "--help"],
            capture_output=True,
            env=stage.relay_env(),
        ).returncode
        == 0
    )
    startup = _cli_ms(stage, [relay, "--version"], 3)
    rows = []
    stored = 0
    for size in sorted(set(stage.sizes.growth)):
        began = time.perf_counter()
        fill.fill(
            stage.redis,
            first=stored,
            count=size - stored,
            body=stage.body,
            webhook_ids=webhook_ids,
        )
        filled = time.perf_counter() - began
        stored = size
        row: dict[str, Any] = {
            "events": int(stage.redis.zcard("relay:events")),
            "dead_letters": int(stage.redis.zcard("relay:dead")),
            "fill_seconds": round(filled, 1),
            "redis_used_mb": round(_used(stage) / 2**20, 1),
            "webhooks_list": _timed_get(stage, "/v1/webhooks", 30),
            "dead_letters_api": _timed_get(stage, "/v1/dead-letters?limit=50", 30),
        }
        if has_cli:
            row["dead_letters_cli_ms"] = _cli_ms(
                stage, [relay, "dead-letters", "list"], 3
            )
        found = load.blast(
            stage.relay_web(),
            "/v1/events/ticket_started",
            stage.body_file,
            connections=stage.sizes.connections,
            seconds=stage.sizes.growth_intake_seconds,
        )
        row["intake"] = {k: found[k] for k in ("rate", "p50_ms", "p99_ms")}
        rows.append(row)
    stage.note_rss("web", stage.web.pid if stage.web else 0)

    return {"cli_startup_ms": startup, "has_cli": has_cli, "sizes": rows}

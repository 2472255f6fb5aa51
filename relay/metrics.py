"""Prometheus metrics: counted where things happen, and read from Redis.

Two kinds of figures make up ``GET /metrics``:

- **Counted in a process** with prometheus-client: events received (web),
  attempts, finished deliveries and attempt durations (workers). Under
  gunicorn, and with a worker process beside the web one, these use
  prometheus-client's multiprocess mode: every process writes its counts to
  files in one folder (``PROMETHEUS_MULTIPROC_DIR``; by default a folder
  under the system's temporary directory named after the Redis URL, see
  :func:`multiprocess_dir`) and a scrape adds them up. Workers on other
  machines write to their own disk, which no scrape reads.
- **Read from Redis at scrape time** (:mod:`relay.figures`, one round trip):
  queue depth, scheduled retries, pending deliveries and the age of the
  oldest one per webhook, dead letters, open breakers, workers, the
  scheduler, and the per-minute counters of the delivery store. These are
  true for the whole relay, wherever its workers run.

Counting costs no Redis round trip: an increment is a write to memory (or
to a memory-mapped file in multiprocess mode).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from relay import figures
from relay.config import Settings
from relay.connection import redacted
from relay.stores import Stores

ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Buckets of the attempt duration histogram, in seconds: receivers answer
#: in tens of milliseconds when well, and an attempt stops at its timeout
#: (15 s by default).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)

#: Windows of the per-minute counters shown as gauges: name -> whole minutes.
WINDOWS = {"1m": 1, "5m": 5, "1h": 60}

#: The attempt outcomes that finish a delivery.
_FINISHED = ("delivered", "dead")


@dataclasses.dataclass(frozen=True)
class _Instruments:
    registry: CollectorRegistry
    events: Counter
    attempts: Counter
    deliveries: Counter
    duration: Histogram


_made: _Instruments | None = None
_lock = threading.Lock()


def _instruments() -> _Instruments:
    """The counters of this process, made on first use (after
    :func:`use_multiprocess` has had its say)."""
    global _made
    if _made is not None:
        return _made
    with _lock:
        if _made is None:
            if os.environ.get(ENV) and not getattr(
                values.ValueClass, "_multiprocess", False
            ):
                # prometheus-client chose its value class when imported, maybe
                # before the folder was set: choose again.
                values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
            registry = CollectorRegistry()
            _made = _Instruments(
                registry=registry,
                events=Counter(
                    "relay_events_received",
                    "Events received, by event name and outcome "
                    "(accepted, duplicate, invalid).",
                    ["event", "outcome"],
                    registry=registry,
                ),
                attempts=Counter(
                    "relay_attempts",
                    "Delivery attempts, by sink and outcome (the delivery's "
                    "state after it: delivered, retrying, dead; stale when "
                    "another attempt was recorded first).",
                    ["sink", "outcome"],
                    registry=registry,
                ),
                deliveries=Counter(
                    "relay_deliveries",
                    "Deliveries finished by an attempt, by sink and outcome "
                    "(delivered, dead).",
                    ["sink", "outcome"],
                    registry=registry,
                ),
                duration=Histogram(
                    "relay_attempt_duration_seconds",
                    "Time an attempt took, from sending to the answer, by sink.",
                    ["sink"],
                    buckets=DURATION_BUCKETS,
                    registry=registry,
                ),
            )

    return _made


def event_received(event: str, outcome: str) -> None:
    """Count an event received (``accepted``, ``duplicate``, ``invalid``)."""
    _instruments().events.labels(event, outcome).inc()


def attempt_made(sink: str, outcome: str, seconds: float) -> None:
    """Count an attempt by the delivery's state after it, and its duration."""
    made = _instruments()
    made.attempts.labels(sink, outcome).inc()
    made.duration.labels(sink).observe(seconds)
    if outcome in _FINISHED:
        made.deliveries.labels(sink, outcome).inc()


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    """The current value of one of this process's samples (for tests)."""
    return _instruments().registry.get_sample_value(name, labels or {})


# --- multiprocess mode ---------------------------------------------------------


def multiprocess_dir(settings: Settings) -> Path:
    """The folder the processes of one relay share for their counts:
    ``PROMETHEUS_MULTIPROC_DIR``, else ``relay-metrics-<digest>`` under the
    temporary directory, the digest of the Redis URL (without its password)
    and key prefix, so that the web and worker processes of one relay on
    one machine find the same folder without being told."""
    chosen = os.environ.get(ENV)
    if chosen:
        return Path(chosen)
    where = f"{redacted(settings.redis_url)}\x1f{settings.key_prefix}"
    digest = hashlib.sha256(where.encode()).hexdigest()[:12]

    return Path(tempfile.gettempdir()) / f"relay-metrics-{digest}"


def use_multiprocess(settings: Settings) -> Path:
    """Count in the shared folder from now on, in this process and the ones
    it starts; returns the folder.

    Files left by processes that have exited are removed first: their counts
    go, which Prometheus reads as a counter reset, as after any restart.
    """
    folder = multiprocess_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in glob.glob(str(folder / "*.db")):
        pid = Path(path).stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            Path(path).unlink(missing_ok=True)
    os.environ[ENV] = str(folder)

    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True

    return True


def process_exited(pid: int) -> None:
    """Forget the live gauges of an exited process (gunicorn's ``child_exit``)."""
    if os.environ.get(ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# --- the scrape ----------------------------------------------------------------


class _Counted:
    """This process's instruments, for a scrape outside multiprocess mode."""

    def collect(self) -> Iterable[Metric]:
        return _instruments().registry.collect()


class RedisCollector:
    """Gauges read from Redis at scrape time (:func:`relay.figures.read`)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "relay_redis_up", "1 when the figures below could be read from Redis."
        )
        try:
            found = figures.read(self.stores)
        except Exception:  # any failure is shown as relay_redis_up 0
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges(found)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def gauges(found: figures.Figures) -> Iterator[Metric]:
    """The gauges of one reading of the figures."""
    depth = GaugeMetricFamily(
        "relay_queue_depth",
        "Items on the work stream: unread, and read but not yet finished.",
        labels=["state"],
    )
    if found.unread is not None:
        depth.add_metric(["unread"], found.unread)
    depth.add_metric(["in_progress"], found.unacknowledged)
    yield depth
    yield _gauge(
        "relay_scheduled_retries",
        "Attempts scheduled in RQ for a later time.",
        found.scheduled_retries,
    )
    yield _gauge(
        "relay_pending_deliveries",
        "Deliveries not yet finished (not delivered, dead or dropped).",
        found.pending,
    )
    oldest = GaugeMetricFamily(
        "relay_oldest_pending_delivery_age_seconds",
        "Age of the oldest unfinished delivery of each webhook (among the "
        "oldest pending deliveries): how late its events are.",
        labels=["webhook_id"],
    )
    for webhook_id, created_ms in sorted(found.oldest_pending.items()):
        age = max(0.0, (found.taken_ms - created_ms) / 1000)
        oldest.add_metric([webhook_id], age)
    yield oldest
    yield _gauge("relay_dead_letters", "Dead letters kept.", found.dead_letters)
    breakers = GaugeMetricFamily(
        "relay_breakers_open",
        "Webhooks whose circuit breaker is open, or half open (probing).",
        labels=["state"],
    )
    breakers.add_metric(["open"], found.breakers_open)
    breakers.add_metric(["half_open"], found.breakers_probing)
    yield breakers
    yield _gauge("relay_workers", "Workers registered with RQ.", found.workers)
    yield _gauge(
        "relay_scheduler_up",
        "1 when RQ's scheduler holds the lock of relay's queue.",
        1 if found.scheduler else 0,
    )
    yield from _recent(found)


def _recent(found: figures.Figures) -> Iterator[Metric]:
    outcomes = GaugeMetricFamily(
        "relay_recent_outcomes",
        "Outcomes over the last whole minutes, counted in Redis by every "
        "worker: delivered, retrying (an attempt failed, another is "
        "scheduled), failed (attempts), dead, retried (dead letters sent again).",
        labels=["outcome", "window"],
    )
    duration = GaugeMetricFamily(
        "relay_recent_attempt_duration_seconds",
        "Mean attempt duration over the last whole minutes (every worker).",
        labels=["window"],
    )
    for window, count in WINDOWS.items():
        sums = found.window(count)
        for name in ("delivered", "retrying", "failed", "dead", "retried"):
            outcomes.add_metric([name, window], getattr(sums, name))
        mean = sums.mean_duration_ms
        if mean is not None:
            duration.add_metric([window], mean / 1000)
    yield outcomes
    yield duration


def exposition(stores: Stores, accept: str = "") -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``, in the text format the
    ``Accept`` header asks for (Prometheus's, or OpenMetrics)."""
    registry = CollectorRegistry()
    if os.environ.get(ENV):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Counted())
    registry.register(RedisCollector(stores))
    encode, content_type = choose_encoder(accept)

    return encode(registry), content_type

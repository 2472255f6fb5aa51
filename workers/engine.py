"""The delivery engine: reads the work stream and makes attempts concurrently.

Intake appends an item per event to the ``work`` stream; RQ's ``due`` jobs
and dead-letter retries append an item per attempt. Each worker process
reads items in batches through a consumer group, fans events out into
deliveries, and runs attempts on a thread pool, at most
``webhook_concurrency`` at once per webhook so that a slow receiver cannot
take every slot. Attempts beyond that wait in memory, and past a bound are
parked in Redis, per webhook, and put back on the stream a few at a time.

An item is acknowledged only once every attempt it started is recorded
(or parked). Items a dead worker held are taken over by another after
``recovery_after`` seconds; the attempt-number check in the delivery store
and a per-delivery lock make a repeated item harmless, and never let two
attempts of one delivery run at once.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from relay import deliveries as states
from relay import ids
from relay.breakers import BUSY
from relay.connection import connect
from relay.deliveries import Delivery
from relay.events import Event
from relay.stores import Stores
from relay.webhooks import Webhook
from workers.deliver import Deliverer
from workers.sinks.base import Sink

log = logging.getLogger(__name__)

GROUP = "relay"

#: Attempts waiting in memory per webhook before more are parked in Redis.
_WAITING_PER_WEBHOOK = 256
#: Attempts waiting in memory (all webhooks) above which no more are read.
_QUEUED_HIGH = 128
#: A webhook whose attempts take this long on average is slow: attempts
#: beyond its concurrency are parked at once instead of waiting in memory.
_SLOW_SECONDS = 0.5
#: ...or whose slots have all been taken this long without one finishing. A
#: fast webhook taken for slow while the machine is busy is pulled back (see
#: ``_pull``), so erring early costs little.
_STALLED_SECONDS = 0.25
#: Parked attempts put back per webhook and pass: a few times what one
#: worker runs at once, so a webhook that was only briefly slow drains fast.
_UNPARK_FACTOR = 4
#: How long after parking for a webhook this worker still pulls its parked
#: attempts back early when the webhook turns out fast.
_PULL_FOR = 60.0
#: How long a parked webhook waits before its next few items are put back.
_PARK_MS = 1000
#: Seconds between unparking passes, and between housekeeping passes.
_UNPARK_EVERY = 0.2
#: Consumers idle this long with nothing pending are removed from the group.
_CONSUMER_IDLE_MS = 3600 * 1000

# Park one attempt behind its webhook. KEYS: parked list, parked index.
# ARGV: item, webhook id, wake time.
_PARK = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 'LT', ARGV[3], ARGV[2])
return 1
"""

# Put up to ARGV[3] parked items of each webhook due by ARGV[1] back on the
# stream. KEYS: parked index, work stream. ARGV: now, prefix, per webhook,
# next wake delay.
_UNPARK = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 50)
local moved = 0
for _, webhook in ipairs(due) do
  local list = ARGV[2] .. 'parked:' .. webhook
  local items = redis.call('LPOP', list, tonumber(ARGV[3]))
  if items then
    for _, item in ipairs(items) do
      local sep = string.find(item, '|', 1, true)
      redis.call('XADD', KEYS[2], '*', 'd', string.sub(item, 1, sep - 1),
        'n', string.sub(item, sep + 1), 'p', '1')
      moved = moved + 1
    end
  end
  if redis.call('LLEN', list) > 0 then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[4]), webhook)
  else
    redis.call('ZREM', KEYS[1], webhook)
  end
end
return moved
"""


@dataclasses.dataclass
class _Job:
    """One attempt to make: which item asked for it, and what it needs."""

    entry_id: str
    delivery: Delivery
    number: int
    webhook: Webhook | None = None
    event: Event | None = None


class Engine:
    """Reads work items and makes attempts; one per worker process."""

    def __init__(
        self,
        stores: Stores,
        *,
        sinks: dict[str, Sink] | None = None,
        name: str | None = None,
    ) -> None:
        self.stores = stores
        self.settings = stores.settings
        self.keys = stores.deliveries.keys
        self.client = stores.client
        self.name = (
            name or f"{socket.gethostname()}.{os.getpid()}.{ids.new_id('')[-6:]}"
        )
        self.deliverer = Deliverer(stores, sinks)
        self._reader: redis.Redis | None = None
        self._pool = ThreadPoolExecutor(
            self.settings.worker_concurrency, thread_name_prefix="relay-attempt"
        )
        self._lock = threading.Lock()
        self._open: dict[str, dict[str, int]] = {}
        self._acks: list[str] = []
        self._busy: collections.Counter[str] = collections.Counter()
        self._waiting: dict[str, collections.deque[_Job]] = {}
        self._latency: dict[str, float] = {}
        self._parked_for: dict[str, float] = {}
        self._pulled: dict[str, float] = {}
        self._progress: dict[str, float] = {}
        self._queued = 0
        self._inflight = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._webhooks_version = -1
        self._webhooks: dict[str, Webhook] = {}
        self._by_event: dict[str, list[Webhook]] = {}
        self._next_unpark = 0.0
        self._next_keepalive = 0.0
        self._next_cleanup = 0.0
        self._park = self.client.register_script(_PARK)
        self._unpark = self.client.register_script(_UNPARK)

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Join the consumer group and start reading in a thread."""
        self.ensure_group()
        self._thread = threading.Thread(
            target=self._run, name="relay-engine", daemon=True
        )
        self._thread.start()
        log.info(
            "engine started consumer=%s concurrency=%d",
            self.name,
            self.settings.worker_concurrency,
        )

    def stop(self, grace: float = 25.0) -> None:
        """Stop reading, let attempts in flight finish, hand the rest back.

        Attempts that have not started go back on the stream at once, so
        another worker takes them without waiting for recovery.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=grace)
        until = time.monotonic() + grace
        while self._inflight > 0 and time.monotonic() < until:
            time.sleep(0.05)
        self._hand_back()
        self._flush_acks()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._reader is not None:
            self._reader.close()
        log.info("engine stopped consumer=%s in_flight=%d", self.name, self._inflight)

    def ensure_group(self) -> None:
        """Create the consumer group (reading from the stream's start)."""
        try:
            self.client.xgroup_create(self.keys.work, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @property
    def idle(self) -> bool:
        """True when nothing is in flight, waiting or unacknowledged here."""
        with self._lock:
            return not self._open and not self._acks and self._inflight == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(block_ms=500)
            except redis.RedisError as exc:
                log.warning("engine redis error consumer=%s error=%s", self.name, exc)
                self._reader = None
                self._stop.wait(1.0)
            except Exception:
                log.exception("engine error consumer=%s", self.name)
                self._stop.wait(1.0)

    # --- one pass ----------------------------------------------------------

    def step(self, block_ms: int = 0) -> int:
        """Housekeeping, then read and start one batch; returns items read."""
        self._flush_acks()
        self._housekeeping()
        # TODO: one event fanned out to many new webhooks whose receivers all
        # hang takes every slot here until their timeouts (other workers read
        # on); a cap on attempts to not-yet-proven webhooks would bound it.
        if (
            self._inflight >= self.settings.worker_concurrency
            or self._queued >= _QUEUED_HIGH
        ):
            self._stop.wait(0.005)
            return 0
        reader = self._reader_client()
        found: Any = reader.xreadgroup(
            GROUP,
            self.name,
            {self.keys.work: ">"},
            count=self.settings.worker_batch,
            block=block_ms or None,
        )
        entries = found[0][1] if found else []
        self.process(entries)

        return len(entries)

    def _reader_client(self) -> redis.Redis:
        if self._reader is None:
            self._reader = connect(self.settings, blocking=True)

        return self._reader

    def process(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Turn stream entries into attempts and start them."""
        if not entries:
            return
        fanouts: list[tuple[str, str]] = []
        unparked: set[str] = set()
        attempts: list[tuple[str, str, int]] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if b"f" in fields:
                fanouts.append((entry_id, fields[b"f"].decode()))
            elif b"d" in fields:
                attempts.append(
                    (entry_id, fields[b"d"].decode(), int(fields.get(b"n", b"1")))
                )
                if b"p" in fields:
                    unparked.add(entry_id)
            else:
                log.warning("work item unreadable entry_id=%s; dropped", entry_id)
                self._ack(entry_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.webhooks_version)
        for _, event_id in fanouts:
            pipe.hmget(self.keys.event(event_id), ["event", "received_at", "body"])
        for _, delivery_id, _ in attempts:
            pipe.hgetall(self.keys.delivery(delivery_id))
        results = pipe.execute()
        self._refresh_webhooks(int(results[0] or 0))
        events = [
            _event(event_id, row)
            for (_, event_id), row in zip(
                fanouts, results[1 : 1 + len(fanouts)], strict=True
            )
        ]
        jobs = self._fan_out(fanouts, events)
        jobs += self._attempts(attempts, results[1 + len(fanouts) :])
        with self._lock:
            # Every attempt of an item is registered before any starts, so a
            # fast one cannot acknowledge an item whose others are unstarted.
            now = time.monotonic()
            for job in jobs:
                self._open.setdefault(job.entry_id, {})[job.delivery.id] = job.number
                if job.entry_id in unparked:
                    # Its webhook has more parked: pull them while it is fast.
                    self._parked_for[job.delivery.webhook_id] = now
        for job in jobs:
            self._dispatch(job)

    def _fan_out(
        self, fanouts: list[tuple[str, str]], events: list[Event | None]
    ) -> list[_Job]:
        pipe = self.client.pipeline(transaction=False)
        planned: list[tuple[str, Event, list[Webhook]]] = []
        for (entry_id, event_id), event in zip(fanouts, events, strict=True):
            if event is None:
                log.warning(
                    "fan-out dropped event_id=%s reason=event_expired", event_id
                )
                self._ack(entry_id)
                continue
            targets = [
                w
                for w in self._by_event.get(event.event, [])
                if w.active and w.created_ms <= event.received_ms
            ]
            if not targets:
                log.info(
                    "fan-out event_id=%s event=%s webhooks=0", event.id, event.event
                )
                self._ack(entry_id)
                continue
            self.stores.deliveries.fan_out(
                pipe, event.id, event.event, event.received_ms, [w.id for w in targets]
            )
            planned.append((entry_id, event, targets))
        jobs: list[_Job] = []
        now = ids.now_ms()
        for (entry_id, event, targets), rows in zip(
            planned, pipe.execute(), strict=True
        ):
            log.info(
                "fan-out event_id=%s event=%s webhooks=%d",
                event.id,
                event.event,
                len(targets),
            )
            before = len(jobs)
            for webhook, (raw_id, attempts, state) in zip(targets, rows, strict=True):
                if int(attempts) != 0 or _text(state) != states.PENDING:
                    continue  # attempted before this item was taken over
                delivery = Delivery(
                    id=_text(raw_id),
                    event_id=event.id,
                    event=event.event,
                    webhook_id=webhook.id,
                    state=states.PENDING,
                    attempts=0,
                    cycle=0,
                    created_ms=now,
                    updated_ms=now,
                )
                jobs.append(_Job(entry_id, delivery, 1, webhook, event))
            if len(jobs) == before:
                self._ack(entry_id)

        return jobs

    def _attempts(
        self, attempts: list[tuple[str, str, int]], rows: list[dict[bytes, bytes]]
    ) -> list[_Job]:
        jobs: list[_Job] = []
        wanted: list[_Job] = []
        for (entry_id, delivery_id, number), row in zip(attempts, rows, strict=True):
            if not row:
                log.info("attempt skipped delivery_id=%s reason=unknown", delivery_id)
                self._ack(entry_id)
                continue
            delivery = Delivery.from_hash(row)
            if delivery.state in states.FINISHED or delivery.attempts != number - 1:
                self._ack(entry_id)
                continue
            job = _Job(
                entry_id, delivery, number, self._webhooks.get(delivery.webhook_id)
            )
            wanted.append(job)
        if not wanted:
            return jobs
        pipe = self.client.pipeline(transaction=False)
        for job in wanted:
            pipe.hmget(
                self.keys.event(job.delivery.event_id), ["event", "received_at", "body"]
            )
        for job, row in zip(wanted, pipe.execute(), strict=True):
            job.event = _event(job.delivery.event_id, row)
            jobs.append(job)

        return jobs

    # --- running attempts --------------------------------------------------

    def _dispatch(self, job: _Job) -> None:
        """Start ``job``, queue it behind its webhook, park it or settle it."""
        webhook = self._webhooks.get(job.delivery.webhook_id)
        if job.event is None:
            return self._finish(job, states.DROPPED, "event_expired")
        if webhook is None:
            return self._finish(job, states.DROPPED, "webhook_deleted")
        if not webhook.active:
            return self._finish(job, states.DEAD, "webhook_disabled")
        job.webhook = webhook
        with self._lock:
            if self._busy[webhook.id] < self.settings.webhook_concurrency:
                if not self._busy[webhook.id]:
                    self._progress[webhook.id] = time.monotonic()
                self._busy[webhook.id] += 1
                self._inflight += 1
                start = True
            else:
                start = False
                if not self._is_slow(webhook.id):
                    queue = self._waiting.setdefault(webhook.id, collections.deque())
                    if len(queue) < _WAITING_PER_WEBHOOK:
                        queue.append(job)
                        self._queued += 1
                        return None
        if start:
            self._pool.submit(self._attempt, job)
        else:
            self._park_job(job)

        return None

    def _attempt(self, job: _Job) -> None:
        assert job.webhook is not None and job.event is not None
        token = f"{self.name}:{job.number}"
        done = True
        began = time.monotonic()
        try:
            wait = self.deliverer.begin(job.delivery, job.webhook, token)
            if wait == BUSY:
                # Another worker is attempting this delivery: leave the item
                # unacknowledged; recovery brings it back if that one dies.
                log.info("attempt busy delivery_id=%s", job.delivery.id)
                done = False
            elif wait is not None:
                # The webhook's breaker is open: wait behind it, uncounted.
                self._park_job(job, wait_ms=int(wait * 1000), settle=False)
            else:
                result = self.deliverer.attempt(
                    job.delivery, job.webhook, job.event, job.number, token
                )
                if isinstance(result, float):
                    # Nothing was sent: wait behind the webhook, uncounted.
                    self._park_job(job, wait_ms=int(result * 1000), settle=False)
                else:
                    self._observe(job.webhook.id, time.monotonic() - began)
        except Exception:
            log.exception("attempt not recorded delivery_id=%s", job.delivery.id)
            done = False
        finally:
            self._release(job, done)

    def _release(self, job: _Job, done: bool) -> None:
        assert job.webhook is not None
        webhook_id = job.webhook.id
        following: _Job | None = None
        with self._lock:
            self._inflight -= 1
            queue = self._waiting.get(webhook_id)
            if queue and not self._stop.is_set():
                following = queue.popleft()
                self._queued -= 1
                self._inflight += 1
            else:
                self._busy[webhook_id] -= 1
                if self._busy[webhook_id] <= 0:
                    del self._busy[webhook_id]
                    if not queue:
                        self._waiting.pop(webhook_id, None)
            if not done:
                self._open.pop(job.entry_id, None)
        if done:
            self._settle(job)
        if following is not None:
            self._pool.submit(self._attempt, following)
        else:
            self._pull(webhook_id)

    def _pull(self, webhook_id: str) -> None:
        """Bring a webhook's parked attempts back sooner once it has capacity
        here and is not slow (it may have been parked while only briefly
        slow), at most every unparking pass."""
        now = time.monotonic()
        with self._lock:
            parked_at = self._parked_for.get(webhook_id)
            if parked_at is None or self._is_slow(webhook_id):
                return
            if now - parked_at > _PULL_FOR:
                del self._parked_for[webhook_id]
                return
            if now - self._pulled.get(webhook_id, 0.0) < _UNPARK_EVERY:
                return
            self._pulled[webhook_id] = now
        self.client.zadd(self.keys.parked, {webhook_id: ids.now_ms()}, xx=True, lt=True)

    def _observe(self, webhook_id: str, seconds: float) -> None:
        """Keep a moving average of a webhook's attempt time."""
        with self._lock:
            last = self._latency.get(webhook_id, seconds)
            self._latency[webhook_id] = last * 0.7 + seconds * 0.3
            self._progress[webhook_id] = time.monotonic()

    def _is_slow(self, webhook_id: str) -> bool:
        """Slow: attempts take long on average, or all slots have been
        taken without one finishing for a while. Call with the lock held."""
        if self._latency.get(webhook_id, 0.0) >= _SLOW_SECONDS:
            return True
        stalled = time.monotonic() - self._progress.get(webhook_id, time.monotonic())

        return (
            self._busy[webhook_id] >= self.settings.webhook_concurrency
            and stalled >= _STALLED_SECONDS
        )

    def _finish(self, job: _Job, state: str, reason: str) -> None:
        self.deliverer.settle(job.delivery, job.number, state, reason)
        self._settle(job)

    def _park_job(
        self, job: _Job, wait_ms: int = _PARK_MS, settle: bool = True
    ) -> None:
        assert job.webhook is not None
        with self._lock:
            self._parked_for[job.webhook.id] = time.monotonic()
        self._park(
            keys=[
                self.keys.parked_list(job.webhook.id),
                self.keys.parked,
            ],
            args=[
                f"{job.delivery.id}|{job.number}",
                job.webhook.id,
                ids.now_ms() + wait_ms,
            ],
        )
        if settle:
            self._settle(job)

    def _settle(self, job: _Job) -> None:
        with self._lock:
            open_ = self._open.get(job.entry_id)
            if open_ is None:
                return
            open_.pop(job.delivery.id, None)
            if not open_:
                del self._open[job.entry_id]
                self._acks.append(job.entry_id)

    def _ack(self, entry_id: str) -> None:
        with self._lock:
            if entry_id not in self._open:
                self._acks.append(entry_id)

    def _flush_acks(self) -> None:
        with self._lock:
            acks, self._acks = self._acks, []
        if not acks:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.keys.work, GROUP, *acks)
        pipe.xdel(self.keys.work, *acks)
        pipe.execute()

    def _hand_back(self) -> None:
        """Re-queue attempts that never started, and acknowledge their items."""
        with self._lock:
            waiting = [job for queue in self._waiting.values() for job in queue]
            self._waiting.clear()
            self._queued = 0
        if not waiting:
            return
        pipe = self.client.pipeline(transaction=True)
        for job in waiting:
            self.stores.deliveries.enqueue_attempt(job.delivery.id, job.number, pipe)
        pipe.execute()
        for job in waiting:
            self._settle(job)
        log.info("engine handed back attempts=%d", len(waiting))

    # --- housekeeping ------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_unpark:
            self._next_unpark = now + _UNPARK_EVERY
            self._unpark(
                keys=[self.keys.parked, self.keys.work],
                args=[
                    ids.now_ms(),
                    self.keys.prefix,
                    self.settings.webhook_concurrency * _UNPARK_FACTOR,
                    _PARK_MS,
                ],
            )
        self._park_slow()
        every = max(0.5, self.settings.recovery_after / 4)
        if now >= self._next_keepalive:
            self._next_keepalive = now + every
            self._keep_alive()
            self._recover()
        if now >= self._next_cleanup:
            self._next_cleanup = now + 60
            self._remove_idle_consumers()

    def _park_slow(self) -> None:
        """Move the waiting attempts of slow webhooks from memory to Redis."""
        with self._lock:
            slow = [w for w, q in self._waiting.items() if q and self._is_slow(w)]
            moved: list[_Job] = []
            for webhook_id in slow:
                moved.extend(self._waiting[webhook_id])
                self._waiting[webhook_id].clear()
            self._queued -= len(moved)
        for job in moved:
            self._park_job(job)

    def _keep_alive(self) -> None:
        """Reset the idle time of items still being worked on here."""
        with self._lock:
            held = list(self._open)
        for start in range(0, len(held), 500):
            self.client.xclaim(
                self.keys.work,
                GROUP,
                self.name,
                0,
                list(held[start : start + 500]),
                justid=True,
            )

    def _recover(self) -> None:
        """Take over items that another (dead) worker left unacknowledged."""
        idle_ms = int(self.settings.recovery_after * 1000)
        reply = self.client.xautoclaim(
            self.keys.work,
            GROUP,
            self.name,
            idle_ms,
            "0-0",
            count=self.settings.worker_batch,
        )
        entries = [e for e in reply[1] if e and e[1]]
        if entries:
            log.warning(
                "engine recovered items=%d consumer=%s", len(entries), self.name
            )
            self.process(entries)

    def _remove_idle_consumers(self) -> None:
        for consumer in self.client.xinfo_consumers(self.keys.work, GROUP):
            name = _text(consumer["name"])
            if (
                name != self.name
                and consumer["pending"] == 0
                and consumer["idle"] > _CONSUMER_IDLE_MS
            ):
                self.client.xgroup_delconsumer(self.keys.work, GROUP, name)

    def _refresh_webhooks(self, version: int) -> None:
        """Reload every webhook when any has changed since the last load."""
        if version == self._webhooks_version:
            return
        loaded = self.stores.webhooks.every()
        by_event: dict[str, list[Webhook]] = {}
        for webhook in loaded:
            by_event.setdefault(webhook.event, []).append(webhook)
        self._webhooks = {w.id: w for w in loaded}
        self._by_event = by_event
        self._webhooks_version = version


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _event(event_id: str, row: list[bytes | None]) -> Event | None:
    name, received, body = row
    if name is None or received is None or body is None:
        return None

    return Event(event_id, name.decode(), int(received), body)

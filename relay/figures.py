"""The figures every process shares, read from Redis in one round trip.

``/metrics`` turns them into gauges at scrape time and the console draws its
charts from them, so both show the same numbers, whichever machine the
workers run on: the work stream's depth, retries scheduled in RQ, pending
deliveries and the age of the oldest per webhook, dead letters, open
breakers, workers and the scheduler, and the per-minute counters the
delivery store keeps (``Keys.stats``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from relay import defaults, ids
from relay.connection import text
from relay.stores import Stores

#: The per-minute counters, as ``Keys.stats`` names them.
COUNTERS = (
    "delivered",
    "retrying",
    "failed",
    "dead",
    "retried",
    "attempts",
    "duration_ms",
)

#: Minutes read: the hour before the current minute, and the current one.
MINUTES = 61

# The oldest pending delivery of each webhook among the ARGV[2] oldest, and
# the breakers open or probing. KEYS: pending, set of tripped breakers.
# ARGV: key prefix, how many pending deliveries to read. Key names follow
# ``Keys`` (``dlv:<id>``, ``breaker:<id>``).
_SCRAPE = """
local oldest, seen = {}, {}
local found = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
for i = 1, #found, 2 do
  local webhook = redis.call('HGET', ARGV[1] .. 'dlv:' .. found[i], 'webhook_id')
  if webhook and not seen[webhook] then
    seen[webhook] = true
    oldest[#oldest + 1] = webhook
    oldest[#oldest + 1] = found[i + 1]
  end
end
local open, probing = 0, 0
for _, webhook in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local state = redis.call('HGET', ARGV[1] .. 'breaker:' .. webhook, 'state')
  if state == 'open' then open = open + 1
  elseif state == 'half_open' then probing = probing + 1 end
end
return {oldest, open, probing}
"""


@dataclasses.dataclass(frozen=True)
class Minute:
    """The counts of one minute (minutes since the epoch)."""

    minute: int
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    retried: int = 0
    attempts: int = 0
    duration_ms: int = 0

    @property
    def mean_duration_ms(self) -> float | None:
        """The mean attempt duration of the minute; None without attempts."""
        return self.duration_ms / self.attempts if self.attempts else None


@dataclasses.dataclass(frozen=True)
class Figures:
    """What Redis says about the whole relay at one moment."""

    taken_ms: int
    unread: int | None
    unacknowledged: int
    queue_jobs: int
    scheduled_retries: int
    pending: int
    oldest_pending: dict[str, int]
    dead_letters: int
    breakers_open: int
    breakers_probing: int
    workers: int
    scheduler: bool
    minutes: list[Minute]

    def window(self, count: int) -> Minute:
        """The sums over the ``count`` whole minutes before the current one."""
        chosen = self.minutes[-1 - count : -1]
        sums = {name: sum(getattr(m, name) for m in chosen) for name in COUNTERS}

        return Minute(chosen[0].minute if chosen else 0, **sums)


def read(stores: Stores, *, sample: int = defaults.OLDEST_PENDING_SAMPLE) -> Figures:
    """Read the figures in one pipeline; ``sample`` bounds the pending
    deliveries read for the oldest per webhook."""
    client = stores.client
    keys = stores.deliveries.keys
    queue = Queue(stores.settings.queue_name, connection=client)
    scheduled = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    now = ids.now_ms()
    first = now // 60_000 - MINUTES + 1
    pipe = client.pipeline(transaction=False)
    pipe.xinfo_groups(keys.work)
    pipe.xlen(keys.work)
    pipe.llen(queue.key)
    pipe.zcard(scheduled.key)
    pipe.zcard(keys.pending)
    pipe.zcard(keys.dead)
    pipe.scard(WORKERS_BY_QUEUE_KEY % queue.name)
    pipe.exists(RQScheduler.get_locking_key(queue.name))
    pipe.eval(_SCRAPE, 2, keys.pending, keys.open_breakers, keys.prefix, sample)
    for minute in range(first, first + MINUTES):
        pipe.hgetall(keys.stats(minute))
    groups, length, jobs, retries, pending, dead, workers, lock, scrape, *rest = (
        pipe.execute(raise_on_error=False)
    )
    for answer in (length, jobs, retries, pending, dead, workers, lock, scrape):
        if isinstance(answer, Exception):
            raise answer
    unacknowledged, unread = stream_depth(groups, int(length))
    oldest, open_count, probing = scrape
    pairs = [text(x) for x in oldest]

    return Figures(
        taken_ms=now,
        unread=unread,
        unacknowledged=unacknowledged,
        queue_jobs=int(jobs),
        scheduled_retries=int(retries),
        pending=int(pending),
        oldest_pending={
            pairs[i]: int(float(pairs[i + 1])) for i in range(0, len(pairs), 2)
        },
        dead_letters=int(dead),
        breakers_open=int(open_count),
        breakers_probing=int(probing),
        workers=int(workers),
        scheduler=bool(lock),
        minutes=[_minute(first + i, raw) for i, raw in enumerate(rest)],
    )


def stream_depth(groups: Any, length: int) -> tuple[int, int | None]:
    """Items read but not acknowledged, and items not read yet (None when the
    server cannot say), over every consumer group of the work stream."""
    if isinstance(groups, Exception):  # no stream yet: nothing to read
        return 0, length
    if not groups:  # no worker has read it yet
        return 0, length
    unacknowledged = 0
    unread: int | None = 0
    for group in groups:
        unacknowledged += int(group["pending"])
        lag = group.get("lag")
        unread = None if lag is None or unread is None else unread + int(lag)

    return unacknowledged, unread


def _minute(minute: int, raw: dict[Any, Any]) -> Minute:
    counts = {text(k): int(v) for k, v in raw.items()}

    return Minute(minute, **{n: counts.get(n, 0) for n in COUNTERS})

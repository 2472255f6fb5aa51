"""A snapshot of how the relay is doing, for ``relay stats``.

Queue depths come from the work stream and its consumer group, and from
RQ's queue and scheduled-job registry (retries waiting for their time);
outcomes of the last hour from the per-minute counters the delivery store
keeps (``Keys.stats``); workers alive from RQ's worker registry.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import redis
from rq import Queue, Worker
from rq.registry import ScheduledJobRegistry

from relay import ids
from relay.figures import stream_depth
from relay.stores import Stores

#: The counters of a minute, in the order they are shown.
COUNTERS = ("delivered", "failed", "dead", "retried")

#: Dead letters whose webhook is read per round trip.
_CHUNK = 1000


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The relay's queues and recent outcomes at one moment."""

    taken_ms: int
    stream_length: int
    unacknowledged: int
    unread: int | None
    queue_jobs: int
    scheduled_retries: int
    pending: int
    oldest_pending_ms: int | None
    dead_letters: int
    dead_by_webhook: list[tuple[str, str | None, int]]
    last_hour: dict[str, int]
    workers: list[str]
    open_breakers: list[tuple[str, str]]

    def public(self) -> dict[str, Any]:
        """The snapshot as ``relay stats --json`` shows it."""
        oldest = self.oldest_pending_ms

        return {
            "at": ids.iso(self.taken_ms),
            "work_stream": {
                "length": self.stream_length,
                "unacknowledged": self.unacknowledged,
                "unread": self.unread,
            },
            "queue": {
                "jobs": self.queue_jobs,
                "scheduled_retries": self.scheduled_retries,
            },
            "pending": {
                "count": self.pending,
                "oldest_created_at": ids.iso(oldest) if oldest else None,
            },
            "dead_letters": {
                "count": self.dead_letters,
                "by_webhook": [
                    {"webhook_id": w, "url": url, "count": n}
                    for w, url, n in self.dead_by_webhook
                ],
            },
            "last_hour": self.last_hour,
            "workers": self.workers,
            "open_breakers": [
                {"webhook_id": w, "state": state} for w, state in self.open_breakers
            ],
        }


def snapshot(stores: Stores, *, top: int = 10) -> Snapshot:
    """Read the snapshot; ``top`` webhooks with the most dead letters."""
    client = stores.client
    keys = stores.deliveries.keys
    now = ids.now_ms()
    minute = now // 60_000
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.work)
    pipe.zcard(keys.pending)
    pipe.zrange(keys.pending, 0, 0, withscores=True)
    pipe.zcard(keys.dead)
    for past in range(minute - 59, minute + 1):
        pipe.hgetall(keys.stats(past))
    length, pending, oldest, dead, *minutes = pipe.execute()
    last_hour = dict.fromkeys(COUNTERS, 0)
    for counts in minutes:
        for name, value in counts.items():
            if name.decode() in last_hour:
                last_hour[name.decode()] += int(value)
    unacknowledged, unread = _group_depth(client, keys.work)
    queue = Queue(stores.settings.queue_name, connection=client)
    registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    scheduled = registry.get_job_count(cleanup=False)

    return Snapshot(
        taken_ms=now,
        stream_length=int(length),
        unacknowledged=unacknowledged,
        unread=unread,
        queue_jobs=queue.count,
        scheduled_retries=int(scheduled),
        pending=int(pending),
        oldest_pending_ms=int(oldest[0][1]) if oldest else None,
        dead_letters=int(dead),
        dead_by_webhook=_dead_by_webhook(stores, top),
        last_hour=last_hour,
        workers=sorted(w.name for w in Worker.all(queue=queue)),
        open_breakers=_open_breakers(stores),
    )


def _open_breakers(stores: Stores) -> list[tuple[str, str]]:
    """Webhooks whose breaker is open or probing, with its state."""
    tripped = stores.breakers.tripped()
    found = stores.breakers.many(tripped)

    return [(w, b.state) for w, b in zip(tripped, found, strict=True)]


def _group_depth(client: redis.Redis, stream: str) -> tuple[int, int | None]:
    """Items read but not acknowledged, and items not read yet."""
    if not client.exists(stream):
        return 0, 0

    return stream_depth(client.xinfo_groups(stream), int(client.xlen(stream)))


def _dead_by_webhook(stores: Stores, top: int) -> list[tuple[str, str | None, int]]:
    """The ``top`` webhooks by dead letters: (id, url or None, count)."""
    # TODO: this reads every dead letter's webhook id (pipelined, a thousand
    # a round trip): fine for the thousands an operator keeps; millions would
    # need a count per webhook kept by the delivery store.
    keys = stores.deliveries.keys
    members = stores.client.zrange(keys.dead, 0, -1)
    counts: collections.Counter[str] = collections.Counter()
    for start in range(0, len(members), _CHUNK):
        pipe = stores.client.pipeline(transaction=False)
        for member in members[start : start + _CHUNK]:
            pipe.hget(keys.delivery(_text(member)), "webhook_id")
        counts.update(_text(w) for w in pipe.execute() if w)
    leaders = counts.most_common(top)
    webhooks = {w.id: w for w in stores.webhooks.many([w for w, _ in leaders])}

    return [(w, webhooks[w].url if w in webhooks else None, n) for w, n in leaders]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

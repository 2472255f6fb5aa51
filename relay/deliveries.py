"""The delivery store: deliveries, their attempts, and dead letters.

A delivery is one event bound for one webhook; its id is sent as
``webhook-id`` and stays the same across attempts. Its ``attempts`` count
doubles as a version: an attempt ``n`` is recorded only over ``n - 1``
recorded ones, so a late or repeated worker can never record twice.

States: ``pending`` (not yet attempted), ``retrying`` (failed, next attempt
scheduled), ``delivered``, ``dead`` (attempts spent or a permanent failure;
kept until retried or purged) and ``dropped`` (deliberately not sent, with a
reason: its webhook or event is gone).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import redis

from relay import defaults, ids, jsonio
from relay.config import Settings
from relay.connection import Keys, text
from relay.errors import NotFound, ValidationFailed

PENDING = "pending"
RETRYING = "retrying"
DELIVERED = "delivered"
DEAD = "dead"
DROPPED = "dropped"
FINISHED = (DELIVERED, DEAD, DROPPED)

# Create each (delivery, webhook) of an event unless it exists. ARGV: prefix,
# event id, event name, now, then delivery id / webhook id pairs. Returns, per
# delivery, its recorded attempts and state.
_FAN_OUT = """
local prefix, event_id, name, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local found = {}
for i = 5, #ARGV, 2 do
  local id, webhook = ARGV[i], ARGV[i + 1]
  local key = prefix .. 'dlv:' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'id', id, 'event_id', event_id, 'event', name,
      'webhook_id', webhook, 'state', 'pending', 'attempts', 0, 'cycle', 0,
      'created_at', now, 'updated_at', now)
    redis.call('ZADD', prefix .. 'wh:' .. webhook .. ':deliveries', now, id)
    redis.call('ZADD', prefix .. 'pending', now, id)
    found[#found + 1] = {id, 0, 'pending'}
  else
    local seen = redis.call('HMGET', key, 'attempts', 'state')
    found[#found + 1] = {id, tonumber(seen[1]), seen[2]}
  end
end
return found
"""

# Record attempt ARGV[2] (or, with an empty attempt, a state change without
# one) if attempt ARGV[2] - 1 is the last recorded. KEYS: delivery, attempts,
# lock, pending, dead, event, this minute's stats. ARGV: id, n, lock token,
# attempt JSON, state, now, next_at, last_error, ttl of finished records, ttl
# of stats, the attempt's duration in ms.
_RECORD = """
local recorded = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '-1')
local n = tonumber(ARGV[2])
if recorded ~= n - 1 then return 0 end
local state = ARGV[5]
local attempts = n - 1
if ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[4])
  attempts = n
end
redis.call('HSET', KEYS[1], 'attempts', attempts, 'state', state,
  'updated_at', ARGV[6], 'next_at', ARGV[7], 'last_error', ARGV[8])
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
if state == 'delivered' or state == 'dropped' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  redis.call('EXPIRE', KEYS[2], ARGV[9])
elseif state == 'dead' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
  redis.call('HSET', KEYS[1], 'dead_at', ARGV[6])
  if redis.call('EXISTS', KEYS[6]) == 1 then
    redis.call('HINCRBY', KEYS[6], 'dead', 1)
    redis.call('PERSIST', KEYS[6])
  end
end
if state == 'delivered' then redis.call('HINCRBY', KEYS[7], 'delivered', 1)
elseif ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[7], 'failed', 1) end
if state == 'dead' then redis.call('HINCRBY', KEYS[7], 'dead', 1) end
if ARGV[4] ~= '' then
  if state == 'retrying' then redis.call('HINCRBY', KEYS[7], 'retrying', 1) end
  redis.call('HINCRBY', KEYS[7], 'attempts', 1)
  redis.call('HINCRBY', KEYS[7], 'duration_ms', ARGV[11])
end
redis.call('EXPIRE', KEYS[7], ARGV[10])
return 1
"""

# Send a dead letter again with a fresh schedule. KEYS: delivery, dead,
# pending, event, work stream, this minute's stats. ARGV: id, now, retention,
# url override, ttl of stats.
_REVIVE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then return 0 end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts'))
redis.call('HSET', KEYS[1], 'state', 'pending', 'cycle', attempts,
  'updated_at', ARGV[2], 'next_at', '', 'dead_at', '')
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'url', ARGV[4]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then
  if redis.call('HINCRBY', KEYS[4], 'dead', -1) <= 0 then
    redis.call('EXPIRE', KEYS[4], ARGV[3])
  end
end
redis.call('XADD', KEYS[5], '*', 'd', ARGV[1], 'n', attempts + 1)
redis.call('HINCRBY', KEYS[6], 'retried', 1)
redis.call('EXPIRE', KEYS[6], ARGV[5])
return 1
"""

#: How long a minute's counts (``Keys.stats``) are kept: the last hour is
#: what ``relay stats`` shows, and a second hour covers clock skew.
STATS_TTL = 2 * 3600


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One event bound for one webhook, and where it stands."""

    id: str
    event_id: str
    event: str
    webhook_id: str
    state: str
    attempts: int
    cycle: int
    created_ms: int
    updated_ms: int
    next_ms: int | None = None
    last_error: str | None = None
    url: str | None = None
    dead_ms: int | None = None

    @classmethod
    def from_hash(cls, fields: dict[Any, Any]) -> Delivery:
        text = {k.decode(): v.decode() for k, v in fields.items()}

        def number(name: str) -> int | None:
            value = text.get(name)
            return int(value) if value else None

        return cls(
            id=text["id"],
            event_id=text["event_id"],
            event=text["event"],
            webhook_id=text["webhook_id"],
            state=text["state"],
            attempts=int(text["attempts"]),
            cycle=int(text.get("cycle") or 0),
            created_ms=int(text["created_at"]),
            updated_ms=int(text["updated_at"]),
            next_ms=number("next_at"),
            last_error=text.get("last_error") or None,
            url=text.get("url") or None,
            dead_ms=number("dead_at"),
        )

    def public(self, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The delivery as the API shows it."""
        shown: dict[str, Any] = {
            "id": self.id,
            "event_id": self.event_id,
            "event": self.event,
            "webhook_id": self.webhook_id,
            "state": self.state,
            "attempt_count": self.attempts,
            "created_at": ids.iso(self.created_ms),
            "updated_at": ids.iso(self.updated_ms),
            "next_attempt_at": ids.iso(self.next_ms) if self.next_ms else None,
            "last_error": self.last_error,
        }
        if self.url:
            shown["url"] = self.url
        if self.dead_ms:
            shown["dead_at"] = ids.iso(self.dead_ms)
        if attempts is not None:
            shown["attempts"] = attempts

        return shown


def attempt_record(
    number: int,
    started_ms: int,
    duration_ms: int,
    *,
    status: int | None,
    error: str | None,
    message: str,
    response: str,
) -> dict[str, Any]:
    """One attempt as stored and shown."""
    return {
        "number": number,
        "at": ids.iso(started_ms),
        "duration_ms": duration_ms,
        "status": status,
        "error": error,
        "message": message,
        "response": response,
    }


class DeliveryStore:
    """Creates deliveries, records attempts, lists and revives dead letters."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._fan_out = client.register_script(_FAN_OUT)
        self._record = client.register_script(_RECORD)
        self._revive = client.register_script(_REVIVE)

    # --- writing -----------------------------------------------------------

    def fan_out(
        self,
        pipe: redis.client.Pipeline,
        event_id: str,
        event: str,
        received_ms: int,
        webhook_ids: list[str],
    ) -> list[str]:
        """Queue, on ``pipe``, the creation of a delivery per webhook.

        Ids derive from the event and webhook, so running this again after a
        crash creates nothing twice. Returns the delivery ids, in order; the
        pipeline's result for this call lists ``[id, attempts, state]``.
        """
        delivery_ids = [
            ids.derived_id(ids.DELIVERY, received_ms, event_id, w) for w in webhook_ids
        ]
        pairs = [
            x for pair in zip(delivery_ids, webhook_ids, strict=True) for x in pair
        ]
        self._fan_out(
            keys=[self.keys.pending],
            args=[self.keys.prefix, event_id, event, ids.now_ms(), *pairs],
            client=pipe,
        )

        return delivery_ids

    def record(
        self,
        pipe: redis.client.Pipeline,
        delivery: Delivery,
        number: int,
        state: str,
        *,
        attempt: dict[str, Any] | None,
        lock_token: str = "",
        next_ms: int | None = None,
        last_error: str | None = None,
    ) -> None:
        """Queue, on ``pipe``, attempt ``number``'s outcome and new state.

        The pipeline's result for this call is 1 when recorded, 0 when
        another attempt was recorded first (nothing changes then).
        """
        now = ids.now_ms()
        self._record(
            keys=[
                self.keys.delivery(delivery.id),
                self.keys.attempts(delivery.id),
                self.keys.lock(delivery.id),
                self.keys.pending,
                self.keys.dead,
                self.keys.event(delivery.event_id),
                self.keys.stats(now // 60_000),
            ],
            args=[
                delivery.id,
                number,
                lock_token,
                jsonio.dumps(attempt) if attempt is not None else "",
                state,
                now,
                next_ms or "",
                last_error or "",
                self.settings.event_retention,
                STATS_TTL,
                int(attempt.get("duration_ms") or 0) if attempt is not None else 0,
            ],
            client=pipe,
        )

    def revive(self, delivery_id: str, *, url: str | None = None) -> Delivery:
        """Send a dead letter again with a fresh retry schedule.

        Raises :class:`NotFound` for an unknown id and
        :class:`ValidationFailed` for a delivery that is not dead.
        """
        delivery = self.get(delivery_id)
        now = ids.now_ms()
        done = self._revive(
            keys=[
                self.keys.delivery(delivery_id),
                self.keys.dead,
                self.keys.pending,
                self.keys.event(delivery.event_id),
                self.keys.work,
                self.keys.stats(now // 60_000),
            ],
            args=[
                delivery_id,
                now,
                self.settings.event_retention,
                url or "",
                STATS_TTL,
            ],
        )
        if not done:
            raise ValidationFailed(
                f"delivery {delivery_id} is {delivery.state}, not dead; "
                "only dead letters can be retried"
            )

        return self.get(delivery_id)

    def enqueue_attempt(
        self, delivery_id: str, number: int, pipe: Any | None = None
    ) -> None:
        """Put attempt ``number`` of a delivery on the work stream."""
        target = self.client if pipe is None else pipe
        target.xadd(self.keys.work, {"d": delivery_id, "n": number})

    # --- reading -----------------------------------------------------------

    def find(self, delivery_id: str) -> Delivery | None:
        """The delivery, or None."""
        fields = self.client.hgetall(self.keys.delivery(delivery_id))

        return Delivery.from_hash(fields) if fields else None

    def get(self, delivery_id: str) -> Delivery:
        """The delivery; raises :class:`NotFound` for an unknown id."""
        delivery = self.find(delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery has id {delivery_id!r}")

        return delivery

    def many(self, delivery_ids: list[str]) -> list[Delivery]:
        """The deliveries of ``delivery_ids`` that exist, in that order."""
        pipe = self.client.pipeline(transaction=False)
        for delivery_id in delivery_ids:
            pipe.hgetall(self.keys.delivery(delivery_id))

        return [Delivery.from_hash(f) for f in pipe.execute() if f]

    def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of the delivery, first to last."""
        raw = self.client.lrange(self.keys.attempts(delivery_id), 0, -1)

        return [jsonio.loads(item) for item in raw]

    def page_for_webhook(
        self,
        webhook_id: str,
        *,
        limit: int = defaults.PAGE_SIZE,
        cursor: str | None = None,
    ) -> tuple[list[Delivery], str | None]:
        """A webhook's deliveries, newest first, and the next page's cursor."""
        return self._page(self.keys.webhook_deliveries(webhook_id), limit, cursor)

    def dead_page(
        self,
        *,
        limit: int = defaults.PAGE_SIZE,
        cursor: str | None = None,
        webhook_id: str | None = None,
        event: str | None = None,
        since_ms: int | None = None,
        keep: Callable[[Delivery], bool] | None = None,
    ) -> tuple[list[Delivery], str | None]:
        """Dead letters, newest first, filtered, and the next page's cursor.

        ``keep``, when given, is a further filter (see :mod:`relay.operations`).
        """

        def wanted(d: Delivery) -> bool:
            return (
                (webhook_id is None or d.webhook_id == webhook_id)
                and (event is None or d.event == event)
                and (keep is None or keep(d))
            )

        return self._page(self.keys.dead, limit, cursor, wanted, since_ms)

    def _page(
        self,
        index: str,
        limit: int,
        cursor: str | None,
        keep: Any = None,
        since_ms: int | None = None,
    ) -> tuple[list[Delivery], str | None]:
        """Walk ``index`` (scored by time) newest first, past ``cursor``.

        The cursor is ``<score>:<id>`` of the last item shown. Filtering
        reads at most 20 pages' worth before it answers with what it found
        and a cursor to go on from.
        """
        top, after = _parse_cursor(cursor)
        floor = since_ms if since_ms is not None else "-inf"
        found: list[Delivery] = []
        scanned = 0
        while scanned <= limit * 20:
            members, more = self._members_after(index, top, after, floor, limit)
            if not members:
                return found, None
            scanned += len(members)
            loaded = self._load([m for m, _ in members])
            for position, (delivery, (member, score)) in enumerate(
                zip(loaded, members, strict=True)
            ):
                top, after = score, member
                if delivery is None or (keep is not None and not keep(delivery)):
                    continue
                found.append(delivery)
                if len(found) == limit:
                    rest = more or position < len(members) - 1
                    return found, f"{score}:{member}" if rest else None
            if not more:
                return found, None

        return found, f"{top}:{after}"

    def _members_after(
        self, index: str, top: int | str, after: str | None, floor: Any, limit: int
    ) -> tuple[list[tuple[str, int]], bool]:
        """Up to ``limit + 1`` members below (``top``, ``after``), newest
        first, and whether the index holds more beyond them."""
        members: list[tuple[str, int]] = []
        upper = top
        if after is not None:
            same: list[Any] = self.client.zrevrangebyscore(
                index, top, top, withscores=True
            )
            members = [(text(m), int(s)) for m, s in same if text(m) < after]
            upper = f"({top}"
        rest: list[Any] = self.client.zrevrangebyscore(
            index, upper, floor, start=0, num=limit + 1, withscores=True
        )
        members += [(text(m), int(s)) for m, s in rest]

        return members, len(rest) > limit

    def _load(self, members: list[str]) -> list[Delivery | None]:
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.hgetall(self.keys.delivery(member))

        return [Delivery.from_hash(f) if f else None for f in pipe.execute()]

    def dead_count(self) -> int:
        """How many dead letters are kept."""
        return int(self.client.zcard(self.keys.dead))


def _parse_cursor(cursor: str | None) -> tuple[int | str, str | None]:
    if not cursor:
        return "+inf", None
    score, _, member = cursor.partition(":")
    if not score.isdigit() or not member:
        raise ValidationFailed(f"the cursor {cursor!r} is not one this API gave")

    return int(score), member

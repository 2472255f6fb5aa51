"""What an operator does to dead letters and events: one implementation for
the ``relay`` command and the API.

Dead letters are chosen by id, or by a :class:`DeadLetterFilter` (webhook,
event, sink, error class, time of death); a :class:`Selection` is taken
first, so a bulk operation acts on a fixed set even while new dead letters
arrive. Bulk operations (:meth:`Operations.retry`, :meth:`Operations.purge`,
:meth:`Operations.replay`) yield one :class:`Result` per item, paced to a
rate when asked, so that a caller can show progress and count errors in a
:class:`Tally`. Each item is changed atomically (a Lua script per item).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from relay import catalogue, ids
from relay.deliveries import DEAD, Delivery
from relay.errors import NotFound, ValidationFailed
from relay.stores import Stores
from relay.webhooks import Webhook, reach_problem, url_problem

T = TypeVar("T")

#: Dead letters read from the store per round trip while selecting.
_BATCH = 500

# Purge one dead letter. KEYS: delivery, attempts, dead, the webhook's
# deliveries, event. ARGV: id, retention. Returns 0 (and changes nothing but
# a stale index entry) when the delivery is no longer a dead letter.
_PURGE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'dead' then
  if not state then redis.call('ZREM', KEYS[3], ARGV[1]) end
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('EXISTS', KEYS[5]) == 1 then
  if redis.call('HINCRBY', KEYS[5], 'dead', -1) <= 0 then
    redis.call('EXPIRE', KEYS[5], ARGV[2])
  end
end
return 1
"""

# Replay one event to one webhook: a new delivery and its first attempt, or
# nothing when the event has expired. KEYS: delivery, the webhook's
# deliveries, pending, event, work stream. ARGV: delivery id, event id, event
# name, webhook id, now.
_REPLAY = """
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'event_id', ARGV[2], 'event', ARGV[3],
  'webhook_id', ARGV[4], 'state', 'pending', 'attempts', 0, 'cycle', 0,
  'created_at', ARGV[5], 'updated_at', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('XADD', KEYS[5], '*', 'd', ARGV[1], 'n', 1)
return 1
"""

# --- parsing what operators type ----------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")
_RATE = re.compile(r"(\d+(?:\.\d+)?)(?:/([smh]))?")


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``30m``, ``2h``, ``30d``, ``1w`` or ``1h30m``."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + unit for n, unit in parts) != compact:
        raise ValidationFailed(
            f"{text!r} is not a duration; write a number and a unit "
            "(s, m, h, d, w), as 90s, 30m, 2h or 30d"
        )

    return sum(int(n) * _UNITS[unit] for n, unit in parts)


def parse_time(text: str, now_ms: int | None = None) -> int:
    """Milliseconds since the epoch of an ISO 8601 time or a duration ago.

    ``2026-01-01T00:00Z`` is that instant (UTC when no offset is written);
    ``2h`` is two hours before ``now_ms``.
    """
    try:
        seconds = parse_duration(text)
    except ValidationFailed:
        pass
    else:
        return (ids.now_ms() if now_ms is None else now_ms) - seconds * 1000
    try:
        stamp = datetime.fromisoformat(text.strip())
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)
    except (ValueError, OverflowError):  # overflow: year 1 with an offset
        raise ValidationFailed(
            f"{text!r} is neither an ISO 8601 time (2026-01-01T00:00Z) "
            "nor a duration ago (2h)"
        ) from None


def parse_rate(text: str) -> float | None:
    """Items per second of ``5/s``, ``100/m`` or ``3600/h``; None for ``off``."""
    compact = text.strip().lower()
    if compact in ("off", "0", "0/s", "0/m", "0/h"):
        return None
    found = _RATE.fullmatch(compact)
    if found is None or float(found[1]) <= 0:
        raise ValidationFailed(
            f"{text!r} is not a rate; write a count per second, minute or "
            "hour, as 5/s or 100/m (or off)"
        )

    return float(found[1]) / _UNITS[found[2] or "s"]


def error_class(last_error: str | None) -> str:
    """The class of a delivery's last error: ``http_400`` of
    ``"http_400: 400 from the receiver"``."""
    return (last_error or "").split(":", 1)[0].strip()


# --- what operations take and give -------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to take; every criterion given must match.

    ``error`` matches the error class or its start (``http_4``); the times
    bound the time of death: at or after ``since_ms``, before ``before_ms``.
    """

    webhook_id: str | None = None
    event: str | None = None
    sink: str | None = None
    error: str | None = None
    since_ms: int | None = None
    before_ms: int | None = None

    @property
    def narrows(self) -> bool:
        """True when any criterion is given."""
        return any(v is not None for v in dataclasses.astuple(self))

    @classmethod
    def from_text(
        cls,
        *,
        webhook: str | None = None,
        event: str | None = None,
        sink: str | None = None,
        error: str | None = None,
        since: str | None = None,
        older_than: str | None = None,
    ) -> DeadLetterFilter:
        """The filter of the API's fields: ``since`` an ISO 8601 time or a
        duration ago, ``older_than`` a duration."""
        before = None
        if older_than is not None:
            before = ids.now_ms() - parse_duration(older_than) * 1000

        return cls(
            webhook_id=webhook,
            event=event,
            sink=sink,
            error=error,
            since_ms=parse_time(since) if since is not None else None,
            before_ms=before,
        )


@dataclasses.dataclass(frozen=True)
class Selection:
    """The dead letters an operation acts on, and the ids it cannot take."""

    dead_letters: list[Delivery]
    problems: list[tuple[str, str]]

    @property
    def total(self) -> int:
        return len(self.dead_letters) + len(self.problems)


@dataclasses.dataclass(frozen=True)
class Result:
    """What one item of a bulk operation came to: ``error`` None is success."""

    id: str
    error: str | None = None
    delivery_id: str | None = None


@dataclasses.dataclass
class Tally:
    """Counts of a bulk operation, kept as its results arrive."""

    total: int
    done: int = 0
    errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def seen(self) -> int:
        return self.done + len(self.errors)

    def add(self, result: Result) -> None:
        """Count ``result``."""
        if result.error is None:
            self.done += 1
        else:
            self.errors.append((result.id, result.error))

    def line(self, verb: str) -> str:
        """The summary: ``retried 1,204 of 1,204; 0 errors``."""
        count = len(self.errors)
        noun = "error" if count == 1 else "errors"

        return f"{verb} {self.done:,} of {self.total:,}; {count:,} {noun}"

    def public(self, verb: str) -> dict[str, Any]:
        """The counts as the API and ``--json`` show them."""
        return {
            "matched": self.total,
            verb: self.done,
            "errors": [{"id": i, "message": m} for i, m in self.errors],
        }


@dataclasses.dataclass(frozen=True)
class ReplayPlan:
    """The stored events of a window that a replay sends to one webhook."""

    webhook: Webhook
    event: str
    since_ms: int
    until_ms: int
    event_ids: list[str]

    def public(self, tally: Tally | None = None) -> dict[str, Any]:
        """The replay as shown: the plan's events (a dry run, without
        ``tally``) or what came of sending them."""
        shown: dict[str, Any] = {
            "webhook_id": self.webhook.id,
            "event": self.event,
            "since": ids.iso(self.since_ms),
            "until": ids.iso(self.until_ms),
            "dry_run": tally is None,
        }
        if tally is None:
            shown.update(matched=len(self.event_ids), event_ids=self.event_ids)
        else:
            shown.update(tally.public("replayed"))

        return shown


def selection_problem(
    ids_given: Sequence[str], everything: bool, narrows: bool, *, all_name: str = "all"
) -> str | None:
    """Why ids, ``all`` and filters do not name dead letters together, or None."""
    if ids_given and (everything or narrows):
        return f"name dead letters by id, or by filters, or with {all_name}: one way"
    if everything and narrows:
        return f"{all_name} takes every dead letter; give filters or {all_name}"
    if not ids_given and not everything and not narrows:
        return f"name the dead letters: by id, with {all_name}, or with filters"

    return None


def paced(items: Iterable[T], rate: float | None) -> Iterator[T]:
    """``items``, at most ``rate`` per second (all at once for None)."""
    started = time.monotonic()
    for index, item in enumerate(items):
        if rate:
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        yield item


class Operations:
    """Selects, retries, purges and exports dead letters; replays events."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.keys = stores.deliveries.keys
        self._purge = stores.client.register_script(_PURGE)
        self._replay = stores.client.register_script(_REPLAY)
        self._webhooks: dict[str, Webhook | None] = {}

    def webhook(self, webhook_id: str) -> Webhook | None:
        """The webhook, or None if deleted; read once per operation."""
        if webhook_id not in self._webhooks:
            self._webhooks[webhook_id] = self.stores.webhooks.find(webhook_id)

        return self._webhooks[webhook_id]

    # --- choosing ------------------------------------------------------------

    def dead_letters(
        self, chosen: DeadLetterFilter, *, limit: int | None = None
    ) -> Iterator[Delivery]:
        """Dead letters matching ``chosen``, newest first, at most ``limit``."""
        cursor: str | None = None
        found = 0
        while limit is None or found < limit:
            page, cursor = self.dead_page(chosen, limit=_BATCH, cursor=cursor)
            for delivery in page[: None if limit is None else limit - found]:
                found += 1
                yield delivery
            if cursor is None:
                return

    def dead_page(
        self, chosen: DeadLetterFilter, *, limit: int, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        """One page of dead letters matching ``chosen``, and the next cursor."""
        return self.stores.deliveries.dead_page(
            limit=limit,
            cursor=cursor,
            webhook_id=chosen.webhook_id,
            event=chosen.event,
            since_ms=chosen.since_ms,
            keep=self._matcher(chosen),
        )

    def _matcher(self, chosen: DeadLetterFilter) -> Callable[[Delivery], bool]:
        def keep(d: Delivery) -> bool:
            if chosen.before_ms is not None and (d.dead_ms or 0) >= chosen.before_ms:
                return False
            if chosen.error is not None and not error_class(d.last_error).startswith(
                chosen.error
            ):
                return False
            if chosen.sink is not None:
                webhook = self.webhook(d.webhook_id)
                return webhook is not None and webhook.sink == chosen.sink
            return True

        return keep

    def select(
        self,
        delivery_ids: Sequence[str] = (),
        chosen: DeadLetterFilter | None = None,
        *,
        everything: bool = False,
        limit: int | None = None,
    ) -> Selection:
        """The dead letters named by id, or matching ``chosen``, or all.

        Raises :class:`ValidationFailed` when they are not named exactly one
        way. Ids that are unknown or not dead letters are ``problems``.
        """
        chosen = chosen or DeadLetterFilter()
        problem = selection_problem(delivery_ids, everything, chosen.narrows)
        if problem is not None:
            raise ValidationFailed(problem)
        if not delivery_ids:
            return Selection(list(self.dead_letters(chosen, limit=limit)), [])
        unique = list(dict.fromkeys(delivery_ids))
        found = {d.id: d for d in self.stores.deliveries.many(unique)}
        chosen_ones: list[Delivery] = []
        problems: list[tuple[str, str]] = []
        for delivery_id in unique:
            delivery = found.get(delivery_id)
            if delivery is None:
                problems.append((delivery_id, f"no delivery has id {delivery_id!r}"))
            elif delivery.state != DEAD:
                problems.append(
                    (delivery_id, f"is {delivery.state}, not a dead letter")
                )
            else:
                chosen_ones.append(delivery)

        return Selection(chosen_ones, problems)

    # --- acting --------------------------------------------------------------

    def check_url(self, dead_letters: Iterable[Delivery], url: str) -> None:
        """Raise :class:`ValidationFailed` unless ``url`` suits the sink of
        every webhook the dead letters belong to."""
        sinks = {w.sink for d in dead_letters if (w := self.webhook(d.webhook_id))}
        candidates: list[str | None] = [*sorted(sinks)] or [None]
        for sink in candidates:
            problem = url_problem(url, sink) or reach_problem(url, self.stores.settings)
            if problem is not None:
                raise ValidationFailed(
                    f"the URL {problem}", details={"fields": {"url": [problem]}}
                )

    def retry(
        self,
        dead_letters: Sequence[Delivery],
        *,
        url: str | None = None,
        rate: float | None = None,
    ) -> Iterator[Result]:
        """Send dead letters again with a fresh schedule (to ``url`` if given).

        The URL is checked before anything is sent. A dead letter whose
        webhook is deleted or disabled is not sent: it would come straight
        back.
        """
        if url is not None:
            self.check_url(dead_letters, url)

        return (self._retry_one(d, url) for d in paced(dead_letters, rate))

    def _retry_one(self, delivery: Delivery, url: str | None) -> Result:
        webhook = self.webhook(delivery.webhook_id)
        if webhook is None:
            return Result(
                delivery.id, f"its webhook {delivery.webhook_id} was deleted; purge it"
            )
        if not webhook.active:
            return Result(
                delivery.id,
                f"its webhook {webhook.id} is disabled; enable it first",
            )
        try:
            self.stores.deliveries.revive(delivery.id, url=url)
        except (NotFound, ValidationFailed) as exc:
            return Result(delivery.id, exc.message)

        return Result(delivery.id)

    def purge(self, dead_letters: Sequence[Delivery]) -> Iterator[Result]:
        """Delete dead letters with their attempts, and let go of their events."""
        retention = self.stores.settings.event_retention
        for delivery in dead_letters:
            done = self._purge(
                keys=[
                    self.keys.delivery(delivery.id),
                    self.keys.attempts(delivery.id),
                    self.keys.dead,
                    self.keys.webhook_deliveries(delivery.webhook_id),
                    self.keys.event(delivery.event_id),
                ],
                args=[delivery.id, retention],
            )
            yield Result(delivery.id, None if done else "is no longer a dead letter")

    def shown(self, delivery: Delivery, *, attempts: bool = False) -> dict[str, Any]:
        """A dead letter as listed and exported: the delivery, and where its
        webhook sends (``webhook_url``, ``sink``; None when deleted)."""
        webhook = self.webhook(delivery.webhook_id)
        found = self.stores.deliveries.attempts(delivery.id) if attempts else None

        return {
            **delivery.public(found),
            "webhook_url": webhook.url if webhook else None,
            "sink": webhook.sink if webhook else None,
        }

    def preview(self, selection: Selection) -> dict[str, Any]:
        """What a dry run shows: the dead letters it would take, and the ids
        it could not."""
        return {
            "dry_run": True,
            "matched": len(selection.dead_letters),
            "dead_letters": [self.shown(d) for d in selection.dead_letters],
            "errors": [{"id": i, "message": m} for i, m in selection.problems],
        }

    # --- replay --------------------------------------------------------------

    def plan_replay(
        self,
        webhook_id: str,
        since_ms: int,
        until_ms: int | None = None,
        event: str | None = None,
    ) -> ReplayPlan:
        """The stored events of ``event`` (default: the webhook's) received in
        ``[since_ms, until_ms)``, to be sent again to the webhook."""
        webhook = self.stores.webhooks.get(webhook_id)
        if not webhook.active:
            raise ValidationFailed(
                f"webhook {webhook_id} is disabled; enable it before a replay"
            )
        name = event or webhook.event
        if name not in catalogue.EVENTS:
            raise ValidationFailed(
                f"{name!r} is not an event; use one of: "
                + ", ".join(catalogue.EVENT_NAMES)
            )
        until_ms = ids.now_ms() if until_ms is None else until_ms
        since_ms = max(since_ms, 0)  # nothing was received before 1970
        if since_ms >= until_ms:
            raise ValidationFailed("the window is empty: since must be before until")
        chosen: list[str] = []
        window = self.stores.events.ids_between(since_ms, until_ms, batch=_BATCH)
        while batch := list(itertools.islice(window, _BATCH)):
            pipe = self.stores.client.pipeline(transaction=False)
            for event_id in batch:
                pipe.hget(self.keys.event(event_id), "event")
            names = pipe.execute()
            chosen += [
                e for e, n in zip(batch, names, strict=True) if n == name.encode()
            ]

        return ReplayPlan(webhook, name, since_ms, until_ms, chosen)

    def replay(
        self, plan: ReplayPlan, *, rate: float | None = None
    ) -> Iterator[Result]:
        """Send each event of ``plan`` to its webhook as a new delivery."""
        for event_id in paced(plan.event_ids, rate):
            delivery_id = ids.new_id(ids.DELIVERY)
            done = self._replay(
                keys=[
                    self.keys.delivery(delivery_id),
                    self.keys.webhook_deliveries(plan.webhook.id),
                    self.keys.pending,
                    self.keys.event(event_id),
                    self.keys.work,
                ],
                args=[delivery_id, event_id, plan.event, plan.webhook.id, ids.now_ms()],
            )
            if done:
                yield Result(event_id, delivery_id=delivery_id)
            else:
                yield Result(event_id, "has expired since the replay began")

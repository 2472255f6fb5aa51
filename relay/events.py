"""The event store: intake (idempotent, one round trip) and lookups."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Any

import redis

from relay import ids, jsonio
from relay.config import Settings
from relay.connection import Keys, text

# Idempotency check, store, index and enqueue, atomically: an event is either
# stored *and* enqueued, or neither. Returns {1, id} when stored, {0, first id}
# when the key was seen within its lifetime.
_RECEIVE = """
local first = redis.call('GET', KEYS[1])
if first then return {0, first} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
redis.call('HSET', KEYS[2], 'event', ARGV[2], 'received_at', ARGV[3], 'body', ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[7])
redis.call('XADD', KEYS[4], '*', 'f', ARGV[1])
return {1, ARGV[1]}
"""


@dataclasses.dataclass(frozen=True)
class Event:
    """One stored event: its name, when it arrived, and its body as received."""

    id: str
    event: str
    received_ms: int
    body: bytes

    @property
    def received_at(self) -> str:
        return ids.iso(self.received_ms)

    def payload(self) -> Any:
        """The body parsed as JSON."""
        return jsonio.loads(self.body)

    def summary(self) -> dict[str, Any]:
        """The event without its payload, as intake answers it."""
        return {"id": self.id, "event": self.event, "received_at": self.received_at}


@dataclasses.dataclass(frozen=True)
class Received:
    """The result of intake: the event, and whether it was seen before."""

    event: Event
    duplicate: bool


def idempotency_digest(event: str, key: str | None, payload: Any) -> str:
    """The digest an intake is de-duplicated by.

    A producer's ``Idempotency-Key`` when it sends one; otherwise the
    payload's canonical content, since a producer's retry resends the same
    content.
    """
    if key is not None:
        material = b"key\x1f" + event.encode() + b"\x1f" + key.encode()
    else:
        material = b"body\x1f" + event.encode() + b"\x1f" + jsonio.canonical(payload)

    return hashlib.sha256(material).hexdigest()


class EventStore:
    """Stores events and enqueues them for fan-out."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._receive = client.register_script(_RECEIVE)

    def receive(self, event: str, body: bytes, digest: str) -> Received:
        """Store ``body`` as a new ``event`` and enqueue its fan-out.

        If ``digest`` was seen within the idempotency window, nothing is
        stored and the first event is returned with ``duplicate`` set.
        """
        received_ms = ids.now_ms()
        event_id = ids.new_id(ids.EVENT, received_ms)
        cutoff = received_ms - self.settings.event_retention * 1000
        created, stored_id = self._receive(
            keys=[
                self.keys.idempotency(digest),
                self.keys.event(event_id),
                self.keys.events,
                self.keys.work,
            ],
            args=[
                event_id,
                event,
                received_ms,
                body,
                self.settings.idempotency_ttl,
                self.settings.event_retention,
                cutoff,
            ],
        )
        if created:
            return Received(Event(event_id, event, received_ms, body), False)
        first = self.get(stored_id.decode())
        if first is None:
            # The first event has expired while its key lives on: show what
            # the key still says.
            stored = stored_id.decode()
            first = Event(stored, event, ids.id_ms(stored), b"")

        return Received(first, True)

    def get(self, event_id: str) -> Event | None:
        """The stored event, or None if unknown or expired."""
        fields: list[Any] = self.client.hmget(
            self.keys.event(event_id), ["event", "received_at", "body"]
        )
        name, received, body = fields
        if name is None:
            return None

        return Event(event_id, name.decode(), int(received), body)

    def ids_between(
        self, since_ms: int, until_ms: int, *, batch: int = 500
    ) -> Iterator[str]:
        """Ids of events received in ``[since_ms, until_ms)``, oldest first."""
        offset = 0
        while True:
            chunk = self.client.zrangebyscore(
                self.keys.events, since_ms, f"({until_ms}", start=offset, num=batch
            )
            if not chunk:
                return
            for raw in chunk:
                yield text(raw)
            offset += len(chunk)

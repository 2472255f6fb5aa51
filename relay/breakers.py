"""Circuit breakers: one per webhook, shared by every worker through Redis.

A webhook whose attempts keep failing stops being hammered: after
``threshold`` failures in a row its breaker opens, and attempts wait
(uncounted) until a pause has passed; then one attempt probes. A success
closes the breaker; a failed probe opens it again for twice as long, up to
a ceiling. Only failures that say the receiver is unwell count (timeouts,
connection errors, 429 and 5xx); a refused payload does not.

The same record tells when a webhook has failed without a success for
``disable_after`` seconds (with at least a few failures spread over it):
the rule that disables it.

States: ``closed`` (attempts go), ``open`` (attempts wait until
``open_until``), ``half_open`` (one probe is in flight).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis

from relay import ids
from relay.config import Settings
from relay.connection import Keys, text

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# Take a delivery's lock if its webhook's breaker lets an attempt go, in one
# round trip. KEYS: breaker, lock. ARGV: now ms, probe ttl ms, lock token,
# lock ttl ms. Returns -1 when the lock is held elsewhere, 0 when the attempt
# may go (the lock is now held), else the ms to wait.
_BEGIN = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'closed' then
  local now = tonumber(ARGV[1])
  local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if state == 'open' and now < open_until then return open_until - now end
  local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
  if state == 'half_open' and now < probe_until then return probe_until - now end
  local probe_end = now + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', probe_end)
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 0
"""

#: What :meth:`BreakerStore.begin` answers when another attempt holds the lock.
BUSY = -1.0

# Record an outcome. KEYS: breaker, set of webhooks with an open breaker.
# ARGV: ok (1/0), now ms, threshold, base pause ms, longest pause ms, disable
# after ms, fewest failures to disable, webhook id.
# Returns {state, failures, disable (1/0)}.
_RECORD = """
local now = tonumber(ARGV[2])
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[8])
  return {'closed', 0, 0}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures == 1 then redis.call('HSET', KEYS[1], 'first_failure', now) end
redis.call('HSET', KEYS[1], 'last_failure', now)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[3])) then
  local opened = redis.call('HINCRBY', KEYS[1], 'opened', 1)
  local pause = math.min(tonumber(ARGV[4]) * 2 ^ (opened - 1), tonumber(ARGV[5]))
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + pause)
  redis.call('SADD', KEYS[2], ARGV[8])
  state = 'open'
end
local first = tonumber(redis.call('HGET', KEYS[1], 'first_failure'))
local disable = 0
if now - first >= tonumber(ARGV[6]) and failures >= tonumber(ARGV[7]) then
  disable = 1
end
return {state, failures, disable}
"""


@dataclasses.dataclass(frozen=True)
class Breaker:
    """A webhook's breaker as the API and CLI show it."""

    state: str = CLOSED
    failures: int = 0
    open_until_ms: int | None = None
    first_failure_ms: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "failures": self.failures,
            "open_until": ids.iso(self.open_until_ms) if self.open_until_ms else None,
            "failing_since": (
                ids.iso(self.first_failure_ms) if self.first_failure_ms else None
            ),
        }


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What an outcome did to a breaker."""

    state: str
    failures: int
    disable: bool


def verdict(reply: Any) -> Verdict:
    """The :class:`Verdict` in a reply of the record script."""
    state, failures, disable = reply

    return Verdict(text(state), int(failures), bool(disable))


class BreakerStore:
    """Reads and moves the breakers of webhooks."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._begin = client.register_script(_BEGIN)
        self._record = client.register_script(_RECORD)

    def key(self, webhook_id: str) -> str:
        return self.keys.breaker(webhook_id)

    def begin(
        self, webhook_id: str, lock_key: str, token: str, lock_ms: int
    ) -> float | None:
        """Take an attempt's lock if the breaker lets it go: None when taken,
        :data:`BUSY` when another attempt holds it, else seconds to wait."""
        probe_ms = int((self.settings.delivery_timeout + 5) * 1000)
        answer = int(
            self._begin(
                keys=[self.key(webhook_id), lock_key],
                args=[ids.now_ms(), probe_ms, token, lock_ms],
            )
        )
        if answer == 0:
            return None

        return BUSY if answer < 0 else answer / 1000

    def record(self, webhook_id: str, ok: bool) -> Verdict:
        """Count a success (closes the breaker) or a failure."""
        return verdict(self._call_record(webhook_id, ok, self.client))

    def record_on(self, pipe: Any, webhook_id: str, ok: bool) -> None:
        """Queue :meth:`record` on ``pipe``; read its reply with
        :func:`verdict`."""
        self._call_record(webhook_id, ok, pipe)

    def _call_record(self, webhook_id: str, ok: bool, client: Any) -> Any:
        settings = self.settings
        return self._record(
            keys=[self.key(webhook_id), self.keys.open_breakers],
            args=[
                1 if ok else 0,
                ids.now_ms(),
                settings.breaker_threshold,
                int(settings.breaker_pause * 1000),
                int(settings.breaker_pause_max * 1000),
                int(settings.disable_after * 1000),
                settings.disable_min_failures,
                webhook_id,
            ],
            client=client,
        )

    def get(self, webhook_id: str) -> Breaker:
        """The webhook's breaker (closed when it has no record)."""
        return self.many([webhook_id])[0]

    def many(self, webhook_ids: list[str]) -> list[Breaker]:
        """The breakers of ``webhook_ids``, in order."""
        pipe = self.client.pipeline(transaction=False)
        for webhook_id in webhook_ids:
            pipe.hgetall(self.key(webhook_id))
        found = []
        for raw in pipe.execute():
            text = {k.decode(): v.decode() for k, v in raw.items()}
            state = text.get("state", CLOSED)
            found.append(
                Breaker(
                    state=state,
                    failures=int(text.get("failures", 0)),
                    open_until_ms=int(text["open_until"])
                    if state == OPEN and "open_until" in text
                    else None,
                    first_failure_ms=int(text["first_failure"])
                    if "first_failure" in text
                    else None,
                )
            )

        return found

    def tripped(self) -> list[str]:
        """Ids of webhooks whose breaker is open or probing."""
        return sorted(text(m) for m in self.client.smembers(self.keys.open_breakers))

"""History for the growth measurements: stored events and dead letters.

Writes relay's own key layout (see ``relay/connection.py``: ``Keys``) the way
intake (``relay/events.py``: ``_RECEIVE``) and a dead attempt
(``relay/deliveries.py``: ``_FAN_OUT`` then ``_RECORD``) leave it, only
faster: a Lua loop makes a few thousand records per call. Events are recent
(inside the retention window) and their fan-out items already handled; each
dead letter has one recorded attempt.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from relay import ids

# KEYS: none. ARGV: prefix, first number, count, id time part, received ms,
# body, event name, retention, idempotency ttl.
_EVENTS = """
local prefix, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local stamp, ms, body, name = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
for i = first, first + count - 1 do
  local id = 'evt_' .. stamp .. string.format('%016d', i)
  local digest = redis.sha1hex(id) .. string.format('%024d', i)
  redis.call('SET', prefix .. 'idem:' .. digest, id, 'EX', ARGV[9])
  redis.call('HSET', prefix .. 'evt:' .. id, 'event', name, 'received_at', ms,
    'body', body)
  redis.call('EXPIRE', prefix .. 'evt:' .. id, ARGV[8])
  redis.call('ZADD', prefix .. 'events', ms, id)
end
return count
"""

# ARGV: prefix, first number, count, id time part, ms, event name, attempt
# JSON, then the webhook ids to spread the dead letters over.
_DEAD = """
local prefix, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local stamp, ms, name, attempt = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local webhooks = #ARGV - 7
for i = first, first + count - 1 do
  local id = 'dlv_' .. stamp .. string.format('%016d', i)
  local event = 'evt_' .. stamp .. string.format('%016d', i)
  local webhook = ARGV[8 + (i % webhooks)]
  local key = prefix .. 'dlv:' .. id
  redis.call('HSET', key, 'id', id, 'event_id', event, 'event', name,
    'webhook_id', webhook, 'state', 'dead', 'attempts', 1, 'cycle', 0,
    'created_at', ms, 'updated_at', ms, 'next_at', '',
    'last_error', 'http_404: 404 from the receiver; not retried', 'dead_at', ms)
  redis.call('RPUSH', key .. ':attempts', attempt)
  redis.call('ZADD', prefix .. 'dead', ms, id)
  redis.call('ZADD', prefix .. 'wh:' .. webhook .. ':deliveries', ms, id)
end
return count
"""

_CHUNK = 5000


def fill(
    client: redis.Redis,
    *,
    first: int,
    count: int,
    body: bytes,
    webhook_ids: list[str],
    event: str = "ticket_started",
    prefix: str = "relay:",
) -> None:
    """Store events ``first .. first + count - 1`` and as many dead letters."""
    now = ids.now_ms()
    stamp = ids.new_id("", now)[:10]
    attempt = json.dumps(
        {
            "number": 1,
            "at": ids.iso(now),
            "duration_ms": 3,
            "status": 404,
            "error": "http_404",
            "message": "404 from the receiver; not retried",
            "response": "not found",
        }
    )
    events = client.register_script(_EVENTS)
    dead = client.register_script(_DEAD)
    for start in range(first, first + count, _CHUNK):
        size = min(_CHUNK, first + count - start)
        common: list[Any] = [prefix, start, size, stamp, now]
        events(args=[*common, body, event, 7 * 24 * 3600, 24 * 3600])
        dead(args=[*common, event, attempt, *webhook_ids])

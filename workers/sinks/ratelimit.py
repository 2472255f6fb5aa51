"""A rate limit shared by every worker: one token bucket per URL, in Redis.

Slack takes about one message per second per incoming webhook. Workers on
many machines send to the same webhook, so the bucket lives in Redis and is
taken from in one Lua script, on the server's clock. A bucket is keyed by a
digest of the URL (``<prefix>rate:<name>:<digest>``): a Slack webhook URL
is a credential and is never written to Redis in plain text.

:meth:`TokenBucket.take` answers how long to wait: ``0.0`` when a token was
taken (send now), else the seconds until one is due (send nothing; the sink
defers). :meth:`TokenBucket.pause` empties a bucket for a while, for a
receiver that answered ``429`` with a ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import math

import redis

# Take a token, or pause the bucket. KEYS[1]: the bucket. ARGV: rate (tokens
# per second), burst (tokens held at most), pause (seconds; 0 to take a
# token), ttl (ms). Returns the seconds to wait as a string ("0": taken).
_BUCKET = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local pause = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'until')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
local paused = tonumber(state[3]) or 0
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if pause > 0 then
  paused = math.max(paused, now + pause)
  tokens = 0
elseif paused > now then
  wait = paused - now
elseif tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now),
  'until', tostring(paused))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return tostring(wait)
"""


class TokenBucket:
    """Keeps sends to each URL within ``rate`` per second, bursts of ``burst``."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        name: str,
        *,
        rate: float,
        burst: int = 1,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.prefix = prefix
        self.name = name
        self.rate = rate
        self.burst = burst
        self._script = client.register_script(_BUCKET)

    def key(self, url: str) -> str:
        """The bucket's key for ``url``: a digest, never the URL itself."""
        digest = hashlib.sha256(url.encode()).hexdigest()[:32]

        return f"{self.prefix}rate:{self.name}:{digest}"

    def take(self, url: str) -> float:
        """Take a token for ``url``: 0.0 if taken, else the seconds to wait."""
        return self._run(url, 0.0)

    def pause(self, url: str, seconds: float) -> None:
        """Let nothing through to ``url`` for ``seconds``."""
        if seconds > 0:
            self._run(url, seconds)

    def _run(self, url: str, pause: float) -> float:
        # Keep a bucket while it could hold state: a full refill, or a pause.
        ttl_ms = math.ceil((self.burst / self.rate + pause + 60) * 1000)
        wait = self._script(
            keys=[self.key(url)], args=[self.rate, self.burst, pause, ttl_ms]
        )

        return float(wait)

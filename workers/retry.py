"""The retry policy: what an outcome means, and when to try again."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

from relay import defaults
from relay.config import Settings

#: HTTP statuses worth another attempt: the receiver may recover.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient_status(status: int) -> bool:
    """True if a non-2xx ``status`` may succeed on a later attempt."""
    return status in TRANSIENT_STATUSES or status >= 500


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta or HTTP date), if any."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now

    return max(0.0, when.timestamp() - now)


def next_delay(
    settings: Settings,
    attempt_in_cycle: int,
    asked: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt, or None when the schedule is spent.

    ``attempt_in_cycle`` counts attempts since the delivery was created or
    last revived (1 after the first). The delay is the schedule's step with
    jitter, lengthened to what a ``Retry-After`` asked for (up to a bound).
    """
    schedule = settings.retry_schedule
    if attempt_in_cycle > len(schedule):
        return None
    spread = settings.retry_jitter
    uniform = rng.uniform if rng is not None else random.uniform
    delay = schedule[attempt_in_cycle - 1] * uniform(1 - spread, 1 + spread)
    if asked is not None:
        delay = max(delay, min(asked, defaults.RETRY_AFTER_MAX))

    return delay

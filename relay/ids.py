"""Identifiers and timestamps.

Ids are a resource prefix and 26 characters of Crockford base32: 48 bits of
milliseconds since the epoch, then 80 random bits (the ULID layout). They sort
by creation time, which lets listings page by id.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

EVENT = "evt_"
WEBHOOK = "wh_"
DELIVERY = "dlv_"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def new_id(prefix: str, ms: int | None = None) -> str:
    """A fresh time-sortable id for ``prefix`` (at ``ms``, default now)."""
    ms = now_ms() if ms is None else ms
    rand = int.from_bytes(os.urandom(10), "big")

    return prefix + _encode(ms, 10) + _encode(rand, 16)


def derived_id(prefix: str, ms: int, *parts: str) -> str:
    """An id at ``ms`` whose random part is a digest of ``parts``.

    The same parts give the same id, so a step that is run again after a
    crash creates nothing new.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:10]

    return prefix + _encode(ms, 10) + _encode(int.from_bytes(digest, "big"), 16)


def id_ms(identifier: str) -> int:
    """The creation time, in ms, encoded in an id made here."""
    body = identifier.split("_", 1)[-1][:10]
    value = 0
    for char in body:
        value = value * 32 + _ALPHABET.index(char)

    return value


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, for ms since the epoch."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)

    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"

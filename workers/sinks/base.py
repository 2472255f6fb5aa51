"""What every sink takes and gives: a message in, an outcome out."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from relay.webhooks import Webhook


@dataclasses.dataclass(frozen=True)
class Message:
    """One attempt of one delivery, as a sink sends it.

    ``accepted`` (email only) maps the recipients that accepted the delivery
    on an earlier attempt to their reply, so that a retry skips them.
    """

    delivery_id: str
    number: int
    event_id: str
    event: str
    received_ms: int
    body: bytes
    url: str
    webhook: Webhook
    accepted: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one attempt came to.

    ``error`` is a short class (``timeout``, ``connect_error``, ``http_503``)
    for filters and metrics; ``message`` says it for a person.
    ``permanent`` skips the rest of the schedule; ``disable`` also disables
    the webhook (the destination is gone for good). ``defer`` means
    nothing was sent: the attempt waits that many seconds (a rate limit or
    an open breaker) and is not counted.
    """

    delivered: bool
    status: int | None = None
    error: str | None = None
    message: str = ""
    response: str = ""
    retry_after: float | None = None
    permanent: bool = False
    disable: bool = False
    details: dict[str, Any] | None = None
    defer: float | None = None


def deferred(seconds: float, why: str) -> Outcome:
    """An outcome that sends nothing and asks to wait ``seconds``."""
    return Outcome(False, error="deferred", message=why, defer=max(0.0, seconds))


class Sink(Protocol):
    """Sends a message to a webhook's destination."""

    kind: str

    def send(self, message: Message, deadline: float) -> Outcome:
        """Send ``message``; give up at ``deadline`` (``time.monotonic()``)."""
        ...

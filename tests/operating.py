"""Helpers for the operator tests: run ``relay`` in-process, and make webhooks,
events and dead letters directly through the stores (no HTTP failures)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from click.testing import CliRunner, Result

from relay import ids
from relay.cli import main
from relay.deliveries import Delivery, attempt_record
from relay.events import idempotency_digest


def relay(settings, *args: str, input: str | None = None) -> Result:
    """Run ``relay <args>`` against the test Redis; a bug raises, not exits."""
    return CliRunner().invoke(
        main,
        list(args),
        obj=settings,
        env={"REDIS_URL": settings.redis_url},
        input=input,
        catch_exceptions=False,
    )


def ok(result: Result) -> str:
    """The standard output of a command that must have succeeded."""
    assert result.exit_code == 0, (result.stdout, result.stderr)

    return result.stdout


def document(result: Result) -> Any:
    """The one JSON document a ``--json`` command printed."""
    return json.loads(ok(result))


def failed(result: Result, status: int = 1) -> str:
    """The one-line error of a command that must have failed with ``status``."""
    assert result.exit_code == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.stderr

    return lines[0]


def webhook(stores, url="https://receiver.example/hook", event="ticket_started"):
    """A new webhook, created through the store."""
    created, _ = stores.webhooks.create(event, url)

    return created


def events(stores, count=1, event="ticket_started", ages_s=None) -> list[str]:
    """Store ``count`` distinct events (received ``ages_s`` seconds ago)."""
    made = []
    for n in range(count):
        href = f"https://x.example/{n}/{uuid.uuid4()}"  # distinct: no duplicates
        body = json.dumps({"number": n, "href": href}).encode()
        digest = idempotency_digest(event, None, json.loads(body))
        made.append(stores.events.receive(event, body, digest).event.id)
    if ages_s is not None:
        now = ids.now_ms()
        for event_id, age in zip(made, ages_s, strict=True):
            at = now - int(age * 1000)
            stores.client.zadd("relay:events", {event_id: at})
            stores.client.hset(f"relay:evt:{event_id}", "received_at", at)
    stores.client.xtrim("relay:work", maxlen=0)

    return made


def dead_letters(
    stores,
    hook,
    count=1,
    *,
    error="http_400",
    message="400 from the receiver; not retried",
    status=400,
    age_s=0,
) -> list[str]:
    """Make ``count`` dead letters of ``hook``, dead ``age_s`` seconds ago,
    the way the delivery engine records them."""
    event_ids = events(stores, count, hook.event)
    now = ids.now_ms()
    pipe = stores.client.pipeline(transaction=False)
    made = [
        stores.deliveries.fan_out(pipe, e, hook.event, now, [hook.id])[0]
        for e in event_ids
    ]
    pipe.execute()
    pipe = stores.client.pipeline(transaction=False)
    for delivery_id, event_id in zip(made, event_ids, strict=True):
        delivery = Delivery(
            delivery_id, event_id, hook.event, hook.id, "pending", 0, 0, now, now
        )
        attempt = attempt_record(
            1, now, 12, status=status, error=error, message=message, response="nope"
        )
        stores.deliveries.record(
            pipe,
            delivery,
            1,
            "dead",
            attempt=attempt,
            last_error=f"{error}: {message}",
        )
    pipe.execute()
    if age_s:
        dead_at = now - int(age_s * 1000)
        stores.client.zadd("relay:dead", dict.fromkeys(made, dead_at))
        for delivery_id in made:
            stores.client.hset(f"relay:dlv:{delivery_id}", "dead_at", dead_at)

    return made


def states(stores, delivery_ids) -> list[str]:
    """The state of each delivery (``gone`` once purged)."""
    found = [stores.deliveries.find(d) for d in delivery_ids]

    return [d.state if d else "gone" for d in found]

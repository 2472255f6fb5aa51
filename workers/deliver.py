"""Delivering one attempt: send through the sink, classify, record.

:class:`Deliverer` makes attempt ``n`` of a delivery and records its outcome
with the delivery's next state in one transaction; a retry is scheduled
through RQ in that same transaction (``workers.deliver.due`` at the next
attempt's time), so an outcome is never recorded without its follow-up.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Queue, get_current_job

from relay import deliveries as states
from relay import ids, metrics
from relay.breakers import Verdict, verdict
from relay.connection import Keys
from relay.deliveries import Delivery, attempt_record
from relay.events import Event
from relay.stores import Stores
from relay.webhooks import Webhook
from workers import alerts, retry
from workers.sinks import email
from workers.sinks.base import Message, Outcome, Sink
from workers.sinks.email import EmailSink
from workers.sinks.http import HttpSink
from workers.sinks.slack import SlackSink

log = logging.getLogger(__name__)

#: How long RQ keeps the record of a failed ``due`` job (for operators).
_FAILURE_TTL = 7 * 24 * 3600


def due(delivery_id: str, number: int, prefix: str) -> None:
    """RQ job: attempt ``number`` of a delivery is due; hand it to workers."""
    job = get_current_job()
    assert job is not None
    job.connection.xadd(Keys(prefix).work, {"d": delivery_id, "n": number})


class Deliverer:
    """Makes attempts and records their outcomes."""

    def __init__(self, stores: Stores, sinks: dict[str, Sink] | None = None):
        self.stores = stores
        self.settings = stores.settings
        self.queue = Queue(self.settings.queue_name, connection=stores.client)
        http = HttpSink(self.settings)
        self.sinks: dict[str, Sink] = {
            "http": http,
            "slack": SlackSink(self.settings, stores.client, http=http.http),
            "email": EmailSink(self.settings),
        }
        self.sinks.update(sinks or {})

    def attempt(
        self,
        delivery: Delivery,
        webhook: Webhook,
        event: Event,
        number: int,
        lock_token: str,
    ) -> str | float:
        """Make attempt ``number`` and record it; returns the new state.

        When the sink defers (nothing sent), nothing is recorded, the lock is
        released, and the seconds to wait are returned instead.
        """
        message = Message(
            delivery_id=delivery.id,
            number=number,
            event_id=event.id,
            event=event.event,
            received_ms=event.received_ms,
            body=event.body,
            url=delivery.url or webhook.url,
            webhook=webhook,
            accepted=self._accepted(delivery, webhook, number),
        )
        started_ms = ids.now_ms()
        began = time.monotonic()
        outcome = self._send(message, began + self.settings.delivery_timeout)
        if outcome.defer is not None:
            self.release(delivery.id, lock_token)
            return outcome.defer
        duration_ms = int((time.monotonic() - began) * 1000)
        state, delay = self._next(delivery, number, outcome)
        record = attempt_record(
            number,
            started_ms,
            duration_ms,
            status=outcome.status,
            error=outcome.error,
            message=outcome.message,
            response=outcome.response,
        )
        if outcome.details:
            record["details"] = outcome.details
        counted = outcome.delivered or not outcome.permanent
        recorded, verdict = self._record(
            delivery, number, state, record, lock_token, delay, outcome, counted
        )
        shown = state if recorded else "stale"
        metrics.attempt_made(webhook.sink, shown, duration_ms / 1000)
        log.info(
            "attempt",
            extra={
                "event_id": event.id,
                "delivery_id": delivery.id,
                "webhook_id": webhook.id,
                "sink": webhook.sink,
                "attempt": number,
                "status": outcome.status,
                "error": outcome.error,
                "duration_ms": duration_ms,
                "state": shown,
            },
        )
        reason = outcome.message if outcome.disable else self._judge(webhook, verdict)
        if reason and recorded:
            self._disable(webhook, reason)

        return state

    def begin(self, delivery: Delivery, webhook: Webhook, token: str) -> float | None:
        """Take the delivery's lock if its webhook's breaker lets the attempt
        go (one round trip): None when taken, :data:`BUSY` when another
        attempt holds it, else the seconds to wait behind the breaker."""
        lock_ms = int((self.settings.delivery_timeout + 10) * 1000)

        return self.stores.breakers.begin(
            webhook.id, self.stores.deliveries.keys.lock(delivery.id), token, lock_ms
        )

    def _judge(self, webhook: Webhook, verdict: Verdict | None) -> str | None:
        """A reason to disable the webhook when its breaker says it has failed
        for too long, else None."""
        if verdict is None:
            return None
        if verdict.state == "open":
            log.info(
                "breaker open webhook_id=%s failures=%d", webhook.id, verdict.failures
            )
        if not verdict.disable:
            return None
        days = self.settings.disable_after / 86400

        return (
            f"every attempt failed for {days:g} days "
            f"({verdict.failures} failures in a row)"
        )

    def _disable(self, webhook: Webhook, reason: str) -> None:
        """Disable the webhook, say so at WARNING, and send the alert."""
        self.stores.webhooks.disable(webhook.id, reason)
        log.warning(
            "webhook disabled webhook_id=%s url=%s reason=%s",
            webhook.id,
            webhook.url,
            reason,
        )
        alerts.send(self.settings, webhook, reason)

    def _accepted(
        self, delivery: Delivery, webhook: Webhook, number: int
    ) -> dict[str, str]:
        """Email recipients that took the delivery on an earlier attempt."""
        if webhook.sink != "email" or number <= 1:
            return {}

        return email.accepted_before(self.stores.deliveries.attempts(delivery.id))

    def release(self, delivery_id: str, lock_token: str) -> None:
        """Give up the delivery's lock if this attempt still holds it."""
        key = self.stores.deliveries.keys.lock(delivery_id)
        if self.stores.client.get(key) == lock_token.encode():
            self.stores.client.delete(key)

    def settle(self, delivery: Delivery, number: int, state: str, reason: str) -> None:
        """Finish a delivery without an attempt (its webhook or event is gone)."""
        pipe = self.stores.client.pipeline(transaction=True)
        self.stores.deliveries.record(
            pipe, delivery, number, state, attempt=None, last_error=reason
        )
        pipe.execute()
        log.warning(
            "delivery %s delivery_id=%s webhook_id=%s event_id=%s reason=%s",
            state,
            delivery.id,
            delivery.webhook_id,
            delivery.event_id,
            reason,
        )

    def _send(self, message: Message, deadline: float) -> Outcome:
        sink = self.sinks[message.webhook.sink]
        try:
            return sink.send(message, deadline)
        except Exception as exc:  # a sink bug must not lose the delivery
            log.exception("sink failed delivery_id=%s", message.delivery_id)
            return Outcome(False, error="sink_error", message=repr(exc)[:300])

    def _next(
        self, delivery: Delivery, number: int, outcome: Outcome
    ) -> tuple[str, float | None]:
        if outcome.delivered:
            return states.DELIVERED, None
        if outcome.permanent:
            return states.DEAD, None
        delay = retry.next_delay(
            self.settings, number - delivery.cycle, outcome.retry_after
        )
        if delay is None:
            return states.DEAD, None

        return states.RETRYING, delay

    def _record(
        self,
        delivery: Delivery,
        number: int,
        state: str,
        record: dict[str, Any],
        lock_token: str,
        delay: float | None,
        outcome: Outcome,
        counted: bool,
    ) -> tuple[bool, Verdict | None]:
        """Record the attempt, schedule its retry and count it in the
        webhook's breaker, in one transaction.

        Successes and failures that say the receiver is unwell are counted;
        a refused payload (a permanent 4xx) says nothing of its health.
        """
        when = None
        if delay is not None:
            # RQ's scheduler keeps whole seconds and runs a job once its
            # second has begun: round up so that no attempt comes early.
            due = datetime.now(UTC) + timedelta(seconds=delay)
            when = due.replace(microsecond=0) + timedelta(seconds=1)
        pipe = self.stores.client.pipeline(transaction=True)
        self.stores.deliveries.record(
            pipe,
            delivery,
            number,
            state,
            attempt=record,
            lock_token=lock_token,
            next_ms=int(when.timestamp() * 1000) if when else None,
            last_error=None if outcome.delivered else _summary(outcome),
        )
        if when is not None:
            self.queue.enqueue_at(
                when,
                "workers.deliver.due",
                delivery.id,
                number + 1,
                self.settings.key_prefix,
                job_id=f"relay-due-{delivery.id}-{number + 1}",
                result_ttl=0,
                failure_ttl=_FAILURE_TTL,
                pipeline=pipe,
            )
        if counted:
            self.stores.breakers.record_on(pipe, delivery.webhook_id, outcome.delivered)
        replies = pipe.execute()
        judged = verdict(replies[-1]) if counted else None

        return bool(replies[0]), judged


def _summary(outcome: Outcome) -> str:
    return f"{outcome.error}: {outcome.message}"[:300]

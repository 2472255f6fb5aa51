"""The Slack sink: a message for people, posted to an incoming webhook.

Each event becomes a one-line ``text`` and Block Kit ``blocks`` (see
:mod:`workers.sinks.render`), POSTed as JSON to the webhook's URL. Slack
takes about one message per second per webhook, so every worker takes a
token from a bucket shared in Redis first; without one, nothing is sent and
the attempt is deferred, uncounted, until a token is due.

Slack's answers, and what they come to:

======================================  =====================================
``200 ok``                              delivered
``429`` (with ``Retry-After``), ``5xx`` transient: retried on the schedule,
                                        not before ``Retry-After``
``400 invalid_payload``                 permanent (a relay or template bug):
                                        dead letter at once, with what was sent
``403 action_prohibited``,              permanent, and the webhook is disabled:
``404 no_service``/``channel_not_found``, the channel or the webhook is gone
``410 channel_is_archived``
other ``3xx``/``4xx``                   permanent
======================================  =====================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import redis
import requests

from relay import defaults, jsonio
from relay.config import Settings
from workers import retry
from workers.sinks import render
from workers.sinks.base import Message, Outcome, deferred
from workers.sinks.http import exchange, session
from workers.sinks.ratelimit import TokenBucket

#: Statuses meaning the webhook or its channel is gone: disable the webhook.
GONE_STATUSES = frozenset({403, 404, 410})
#: Characters of the sent message kept with an attempt Slack refused.
SENT_CHARS = 8192

_CODE = re.compile(r"[a-z][a-z0-9_]{1,63}")


class SlackSink:
    """Posts each message to its Slack incoming webhook, at Slack's rate."""

    kind = "slack"

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        http: requests.Session | None = None,
        rate: float = defaults.SLACK_RATE,
        burst: int = defaults.SLACK_BURST,
    ) -> None:
        self.settings = settings
        self.http = http or session(settings)
        self.bucket = TokenBucket(
            client, settings.key_prefix, "slack", rate=rate, burst=burst
        )

    def send(self, message: Message, deadline: float) -> Outcome:
        """Post the message for ``message``'s event, or defer for a token."""
        try:
            payload = render.slack_payload(
                render.view(
                    message.event,
                    message.body,
                    event_id=message.event_id,
                    delivery_id=message.delivery_id,
                    received_ms=message.received_ms,
                )
            )
        except render.RenderError as exc:
            return Outcome(
                False, error="render_error", permanent=True, message=str(exc)[:300]
            )
        wait = self.bucket.take(message.url)
        if wait > 0:
            return deferred(
                wait, f"Slack's rate for this webhook: next message in {wait:.2f}s"
            )
        body = jsonio.dumps(payload)
        outcome = self._post(message.url, body, deadline)
        if outcome.status == 429:
            # Hold back every worker's messages to this webhook, not only this one.
            asked = min(outcome.retry_after or 1.0, defaults.RETRY_AFTER_MAX)
            self.bucket.pause(message.url, asked)

        return outcome

    def _post(self, url: str, body: bytes, deadline: float) -> Outcome:
        found = exchange(self.http, url, body, _HEADERS, deadline)
        if isinstance(found, Outcome):
            return found

        return classify(found.status, found.headers, found.excerpt, body)


def slack_code(excerpt: str) -> str | None:
    """Slack's error string (``channel_is_archived``) from an answer, if any."""
    text = excerpt.strip()

    return text if _CODE.fullmatch(text) else None


_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def classify(
    status: int, headers: Mapping[str, str], excerpt: str, sent: bytes = b""
) -> Outcome:
    """The outcome of Slack's answer ``status`` with body ``excerpt``."""
    if 200 <= status < 300:
        return Outcome(True, status=status, response=excerpt)
    code = slack_code(excerpt)
    error = code or f"http_{status}"
    said = f"{status} {code}" if code else str(status)
    if retry.is_transient_status(status):
        return Outcome(
            False,
            status=status,
            error=error,
            response=excerpt,
            retry_after=retry.retry_after(headers),
            message=f"Slack answered {said}; will retry",
        )
    if status in GONE_STATUSES:
        return Outcome(
            False,
            status=status,
            error=error,
            response=excerpt,
            permanent=True,
            disable=True,
            message=f"Slack answered {said}: the webhook or its channel is gone",
        )
    if 300 <= status < 400:
        where = headers.get("Location", "elsewhere")
        return Outcome(
            False,
            status=status,
            error=error,
            response=excerpt,
            permanent=True,
            message=f"redirect to {where} not followed; check the webhook URL",
        )
    why = (
        "Slack could not read the message (a relay or template bug)"
        if code == "invalid_payload"
        else "Slack refused the message"
    )

    return Outcome(
        False,
        status=status,
        error=error,
        response=excerpt,
        permanent=True,
        message=f"{why}: {said}; not retried",
        details={"sent": sent[:SENT_CHARS].decode("utf-8", "replace")},
    )

"""Alerts: telling a person that relay disabled a webhook.

Every disable is logged at WARNING. With ``RELAY_ALERT_URL`` set, a JSON
message is also posted there: ``{"text": ...}`` is what a Slack incoming
webhook shows, and the other fields are for any other HTTP receiver.
"""

from __future__ import annotations

import logging
import threading

import requests

from relay import defaults, ids
from relay.config import Settings
from relay.webhooks import Webhook

log = logging.getLogger(__name__)


def message(webhook: Webhook, reason: str) -> dict[str, str]:
    """The alert's body."""
    text = (
        f"relay disabled webhook {webhook.id} ({webhook.event} → {webhook.url}): "
        f"{reason}. Fix the receiver, then enable it: relay webhooks enable "
        f"{webhook.id}"
    )

    return {
        "text": text,
        "webhook_id": webhook.id,
        "event": webhook.event,
        "url": webhook.url,
        "reason": reason,
        "disabled_at": ids.iso(ids.now_ms()),
    }


def send(settings: Settings, webhook: Webhook, reason: str) -> threading.Thread | None:
    """Post the alert in the background (an attempt never waits for it)."""
    if not settings.alert_url:
        return None
    thread = threading.Thread(
        target=_post, args=(settings.alert_url, message(webhook, reason)), daemon=True
    )
    thread.start()

    return thread


def _post(url: str, body: dict[str, str]) -> None:
    try:
        answer = requests.post(
            url, json=body, timeout=defaults.ALERT_TIMEOUT, allow_redirects=False
        )
        if answer.status_code >= 300:
            log.warning("alert refused status=%d", answer.status_code)
    except requests.RequestException as exc:
        log.warning("alert not sent error=%s", exc)

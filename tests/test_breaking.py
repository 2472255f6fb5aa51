"""Failing webhooks: breakers hold their deliveries, long failure disables
them with an alert, and a healthy webhook never waits for a failing one."""

from __future__ import annotations

import pytest
from payloads import TICKET
from werkzeug import Response


def _subscribe(client, url):
    answer = client.post("/v1/webhooks", json={"event": "ticket_started", "url": url})
    return answer.get_json()["webhook"]


def _post(client, number):
    answer = client.post("/v1/events/ticket_started", json={**TICKET, "number": number})
    assert answer.status_code == 202


def _states(stores, webhook_id):
    found, _ = stores.deliveries.page_for_webhook(webhook_id, limit=200)
    return [d.state for d in found]


def test_open_breaker_holds_deliveries_until_the_receiver_recovers(
    client, stores, engine_with, wait_for, httpserver
):
    """After failures in a row the breaker opens; a probe later closes it."""
    health = {"up": False}
    httpserver.expect_request("/hook").respond_with_handler(
        lambda request: Response(
            "ok" if health["up"] else "down", status=200 if health["up"] else 503
        )
    )
    engine_with(breaker_threshold=2, breaker_pause=1.5, retry_schedule=(0.2,) * 6)
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    for number in range(6):
        _post(client, number)

    def opened():
        shown = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
        return shown if shown["breaker"]["state"] == "open" else None

    shown = wait_for(opened, what="the breaker to open")
    assert shown["breaker"]["failures"] >= 2
    held = len(httpserver.log)
    # While open, nothing more reaches the receiver (attempts wait, uncounted).
    wait_for(lambda: stores.client.zcard("relay:parked") > 0, what="parked attempts")
    assert len(httpserver.log) == held
    health["up"] = True
    wait_for(
        lambda: _states(stores, webhook["id"]) == ["delivered"] * 6,
        timeout=30,
        what="all delivered after recovery",
    )
    closed = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
    assert closed["breaker"]["state"] == "closed"
    attempts = [len(stores.deliveries.attempts(d)) for d in _ids(stores, webhook)]
    assert max(attempts) < 6  # waiting behind the breaker burnt no schedule


def _ids(stores, webhook):
    found, _ = stores.deliveries.page_for_webhook(webhook["id"], limit=200)
    return [d.id for d in found]


def test_long_failure_disables_the_webhook_and_alerts(
    client, stores, engine_with, wait_for, httpserver
):
    """Failing for RELAY_DISABLE_AFTER disables the webhook, alerts, and
    dead-letters what was pending."""
    httpserver.expect_request("/hook").respond_with_data("down", status=503)
    httpserver.expect_request("/alert", method="POST").respond_with_data("ok")
    engine_with(
        breaker_threshold=100,
        disable_after=1.0,
        disable_min_failures=3,
        retry_schedule=(0.2,) * 20,
        alert_url=httpserver.url_for("/alert"),
    )
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    for number in range(3):
        _post(client, number)

    def disabled():
        shown = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
        return shown if shown["state"] == "disabled" else None

    shown = wait_for(disabled, timeout=30, what="the webhook to be disabled")
    assert "failed for" in shown["disabled_reason"]
    wait_for(lambda: [r for r, _ in httpserver.log if r.path == "/alert"], what="alert")
    alert = next(r for r, _ in httpserver.log if r.path == "/alert").get_json()
    assert alert["webhook_id"] == webhook["id"]
    assert "relay webhooks enable" in alert["text"]
    wait_for(
        lambda: _states(stores, webhook["id"]) == ["dead"] * 3,
        timeout=30,
        what="pending deliveries dead-lettered",
    )


@pytest.mark.slow
def test_a_healthy_webhook_gets_every_event_while_a_failing_one_retries(
    client, stores, engine, wait_for, httpserver
):
    """1,000 events: the healthy receiver gets all of them while the failing
    one's deliveries are still being retried."""
    httpserver.expect_request("/bad").respond_with_data("down", status=500)
    httpserver.expect_request("/good").respond_with_data("ok")
    failing = _subscribe(client, httpserver.url_for("/bad"))
    _subscribe(client, httpserver.url_for("/good"))
    for number in range(1000):
        _post(client, number)

    def healthy_count():
        return sum(1 for r, _ in httpserver.log if r.path == "/good")

    wait_for(lambda: healthy_count() == 1000, timeout=120, what="1,000 deliveries")
    unfinished = [s for s in _states_all(stores, failing["id"]) if s != "dead"]
    assert unfinished, "the failing webhook finished first: nothing was shown"


def _states_all(stores, webhook_id):
    found, cursor, states = None, None, []
    while True:
        found, cursor = stores.deliveries.page_for_webhook(
            webhook_id, limit=200, cursor=cursor
        )
        states += [d.state for d in found]
        if not cursor:
            return states

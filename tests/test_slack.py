"""The Slack sink end to end, with a real HTTP server standing in for Slack.

Webhooks are created with ``sink: "slack"`` and a loopback URL; the delivery
engine runs in this process over the test Redis.
"""

from __future__ import annotations

import json
import time

import pytest
from payloads import EXAMPLES
from slack_format import problems
from werkzeug import Response

from relay.catalogue import EVENTS
from relay.webhooks import Webhook
from workers.sinks import render
from workers.sinks.base import Message
from workers.sinks.ratelimit import TokenBucket
from workers.sinks.slack import SlackSink, classify, slack_code

HOOK = "/services/T0000/B0000/XXXXXXXX"


def _subscribe(client, url, event="ticket_started"):
    answer = client.post(
        "/v1/webhooks", json={"event": event, "url": url, "sink": "slack"}
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["webhook"]


def _post(client, event, payload):
    answer = client.post(f"/v1/events/{event}", json=payload)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["event"]["id"]


def _settled(client, webhook_id, *states):
    found = client.get(f"/v1/webhooks/{webhook_id}/deliveries").get_json()
    deliveries = found["deliveries"]
    if deliveries and all(d["state"] in states for d in deliveries):
        return client.get(f"/v1/deliveries/{deliveries[0]['id']}").get_json()[
            "delivery"
        ]
    return None


def _answers(*replies):
    """A handler answering with each (status, body, headers) in turn, noting when."""
    remaining = list(replies)
    seen: list[float] = []

    def handler(request):
        seen.append(time.monotonic())
        status, body, headers = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return Response(body, status=status, headers=headers)

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_each_event_reaches_slack_as_a_valid_message(
    client, engine, wait_for, httpserver, event
):
    """Each of the 14 events arrives as a valid incoming-webhook message."""
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    example = EXAMPLES[EVENTS[event]]
    webhook = _subscribe(client, httpserver.url_for(HOOK), event)
    event_id = _post(client, event, example)

    delivery = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    (request, _), *_ = httpserver.log
    assert request.headers["Content-Type"].startswith("application/json")
    sent = json.loads(request.get_data())
    assert problems(sent) == []
    shown = render.view(event, json.dumps(example).encode(), event_id=event_id)
    assert sent["text"] == render.slack_escape(shown.summary)
    assert event_id in json.dumps(sent)
    assert [a["status"] for a in delivery["attempts"]] == [200]
    assert delivery["attempts"][0]["response"] == "ok"


def test_too_many_requests_waits_for_retry_after(client, engine, wait_for, httpserver):
    """A 429 with Retry-After: 2 holds the next attempt back at least 2 s."""
    handler = _answers((429, "rate_limited", {"Retry-After": "2"}), (200, "ok", {}))
    httpserver.expect_request(HOOK).respond_with_handler(handler)
    webhook = _subscribe(client, httpserver.url_for(HOOK))
    _post(client, "ticket_started", EXAMPLES["Ticket"])

    first = wait_for(lambda: _settled(client, webhook["id"], "retrying"))
    from datetime import datetime

    attempted = datetime.fromisoformat(first["attempts"][0]["at"])
    scheduled = datetime.fromisoformat(first["next_attempt_at"])
    assert (scheduled - attempted).total_seconds() >= 2
    assert first["attempts"][0]["error"] == "rate_limited"
    delivered = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    assert [a["status"] for a in delivered["attempts"]] == [429, 200]
    assert handler.seen[1] - handler.seen[0] >= 2


@pytest.mark.parametrize(
    ("status", "body", "state", "disabled"),
    [
        (400, "invalid_payload", "dead", False),
        (403, "action_prohibited", "dead", True),
        (404, "channel_not_found", "dead", True),
        (404, "no_service", "dead", True),
        (410, "channel_is_archived", "dead", True),
        (500, "rollup_error", "retrying", False),
    ],
)
def test_slack_errors(
    client, engine, wait_for, httpserver, status, body, state, disabled
):
    """Slack's documented errors dead-letter, retry or disable as the issue says."""
    httpserver.expect_request(HOOK).respond_with_data(body, status=status)
    webhook = _subscribe(client, httpserver.url_for(HOOK))
    _post(client, "ticket_started", EXAMPLES["Ticket"])

    delivery = wait_for(lambda: _settled(client, webhook["id"], state))
    first = delivery["attempts"][0]
    assert (first["status"], first["error"], first["response"]) == (status, body, body)
    shown = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
    assert (shown["state"] == "disabled") == disabled
    if disabled:
        assert body in shown["disabled_reason"]


def test_invalid_payload_keeps_what_was_sent(
    client, engine, wait_for, httpserver, stores
):
    """A 400 invalid_payload is dead-lettered with the message relay sent."""
    httpserver.expect_request(HOOK).respond_with_data("invalid_payload", status=400)
    webhook = _subscribe(client, httpserver.url_for(HOOK))
    _post(client, "ticket_started", EXAMPLES["Ticket"])

    delivery = wait_for(lambda: _settled(client, webhook["id"], "dead"))
    (attempt,) = stores.deliveries.attempts(delivery["id"])
    (request, _), *_ = httpserver.log
    assert json.loads(attempt["details"]["sent"]) == json.loads(request.get_data())
    assert "bug" in attempt["message"]


def test_ten_events_go_out_no_faster_than_slacks_rate(
    client, engine, wait_for, httpserver
):
    """Ten events in one second to one webhook are sent one per second."""
    handler = _answers((200, "ok", {}))
    httpserver.expect_request(HOOK).respond_with_handler(handler)
    webhook = _subscribe(client, httpserver.url_for(HOOK))
    began = time.monotonic()
    for number in range(1, 11):
        _post(client, "ticket_started", {**EXAMPLES["Ticket"], "number": number})
    assert time.monotonic() - began < 1

    wait_for(
        lambda: (
            len(handler.seen) == 10 and _settled(client, webhook["id"], "delivered")
        ),
        timeout=40,
        what="ten messages",
    )
    seen = sorted(handler.seen)
    gaps = [later - earlier for earlier, later in zip(seen, seen[1:], strict=False)]
    assert min(gaps) >= 0.8, gaps
    assert seen[-1] - seen[0] >= 9 * 0.95
    deliveries = client.get(f"/v1/webhooks/{webhook['id']}/deliveries").get_json()
    for listed in deliveries["deliveries"]:
        shown = client.get(f"/v1/deliveries/{listed['id']}").get_json()["delivery"]
        assert len(shown["attempts"]) == 1  # waiting for a token is not an attempt


# --- the sink, the bucket and the classification, without the engine ----------


def _message(url):
    webhook = Webhook(
        id="wh_1",
        event="ticket_started",
        url=url,
        sink="slack",
        state="active",
        secret="whsec_x",
        created_ms=0,
    )
    return Message(
        delivery_id="dlv_1",
        number=1,
        event_id="evt_1",
        event="ticket_started",
        received_ms=0,
        body=json.dumps(EXAMPLES["Ticket"]).encode(),
        url=url,
        webhook=webhook,
    )


def test_sink_defers_without_sending_when_no_token_is_left(
    settings, stores, httpserver
):
    """A second message within the second is deferred, and nothing is sent."""
    httpserver.expect_request(HOOK).respond_with_data("ok")
    sink = SlackSink(settings, stores.client)
    message = _message(httpserver.url_for(HOOK))

    first = sink.send(message, time.monotonic() + 2)
    second = sink.send(message, time.monotonic() + 2)
    assert first.delivered
    assert second.defer is not None and 0.5 < second.defer <= 1.0
    assert not second.delivered and second.error == "deferred"
    assert len(httpserver.log) == 1


def test_bucket_is_shared_by_workers_and_keyed_by_a_digest(stores):
    """Two workers' buckets share one Redis key per URL, which hides the URL."""
    url = "https://hooks.slack.com/services/T1/B1/secret-token"
    one = TokenBucket(stores.client, "relay:", "slack", rate=1.0)
    two = TokenBucket(stores.client, "relay:", "slack", rate=1.0)
    assert one.take(url) == 0.0
    assert 0.5 < two.take(url) <= 1.0
    assert two.take("https://hooks.slack.com/services/T1/B1/other") == 0.0
    keys = [key.decode() for key in stores.client.keys("relay:rate:*")]
    assert len(keys) == 2
    assert all("secret-token" not in key and "hooks" not in key for key in keys)


@pytest.mark.parametrize(("burst", "free"), [(1, 1), (3, 3)])
def test_bucket_lets_a_burst_through(stores, burst, free):
    """A bucket lets ``burst`` messages through at once, then waits."""
    bucket = TokenBucket(stores.client, "relay:", "slack", rate=2.0, burst=burst)
    waits = [bucket.take("https://x.test/a") for _ in range(burst + 1)]
    assert waits[:free] == [0.0] * free
    assert 0.25 < waits[free] <= 0.5


def test_bucket_pause_holds_every_sender_back(stores):
    """After a pause (a 429's Retry-After) no token is given until it ends."""
    bucket = TokenBucket(stores.client, "relay:", "slack", rate=10.0, burst=5)
    bucket.pause("https://x.test/a", 3)
    assert 2.5 < bucket.take("https://x.test/a") <= 3.0
    assert bucket.take("https://x.test/b") == 0.0


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (200, "ok", {}, (True, False, False, None)),
        (429, "rate_limited", {"Retry-After": "2"}, (False, False, False, 2.0)),
        (500, "rollup_error", {}, (False, False, False, None)),
        (503, "<html>down</html>", {}, (False, False, False, None)),
        (400, "invalid_payload", {}, (False, True, False, None)),
        (400, "user_not_found", {}, (False, True, False, None)),
        (403, "action_prohibited", {}, (False, True, True, None)),
        (404, "channel_not_found", {}, (False, True, True, None)),
        (404, "no_service", {}, (False, True, True, None)),
        (410, "channel_is_archived", {}, (False, True, True, None)),
        (301, "", {"Location": "https://elsewhere"}, (False, True, False, None)),
        (413, "too big", {}, (False, True, False, None)),
    ],
)
def test_classify(status, body, headers, expected):
    """Slack's answers map to delivered, transient, permanent or disabled."""
    outcome = classify(status, headers, body, b'{"text": "x"}')
    got = (outcome.delivered, outcome.permanent, outcome.disable, outcome.retry_after)
    assert got == expected
    assert outcome.response == body
    assert outcome.error == (slack_code(body) or f"http_{status}") or outcome.delivered


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("invalid_payload", "invalid_payload"),
        ("channel_is_archived\n", "channel_is_archived"),
        ("<html>oops</html>", None),
        ("ok then", None),
        ("", None),
    ],
)
def test_slack_code(body, code):
    """Only a bare Slack error string counts as Slack's error code."""
    assert slack_code(body) == code

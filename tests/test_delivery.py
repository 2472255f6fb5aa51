"""End to end: intake, fan-out, signed HTTP delivery, retries, dead letters.

A real Redis, the delivery engine running in this process, RQ's scheduler
run by the test, and a real HTTP server on loopback as the receiver.
"""

from __future__ import annotations

import json

import pytest
from payloads import TICKET
from standardwebhooks.webhooks import Webhook as Verifier
from werkzeug import Response

RAW_TICKET = json.dumps(TICKET, indent=1).encode()


def _subscribe(client, url, event="ticket_started", **extra):
    answer = client.post("/v1/webhooks", json={"event": event, "url": url, **extra})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["webhook"]


def _post(client, body=RAW_TICKET, event="ticket_started"):
    answer = client.post(
        f"/v1/events/{event}", data=body, content_type="application/json"
    )
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["event"]["id"]


def _deliveries(client, webhook_id):
    answer = client.get(f"/v1/webhooks/{webhook_id}/deliveries")
    return answer.get_json()["deliveries"]


def _delivery(client, delivery_id):
    return client.get(f"/v1/deliveries/{delivery_id}").get_json()["delivery"]


def _settled(client, webhook_id, *states):
    found = _deliveries(client, webhook_id)
    if found and all(d["state"] in states for d in found):
        return _delivery(client, found[0]["id"])
    return None


def _responses(*statuses):
    """A handler answering each request with the next status (the last repeats)."""
    remaining = list(statuses)

    def handler(request):
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return Response("nope" if status >= 300 else "ok", status=status)

    return handler


def test_event_arrives_signed_and_byte_for_byte(client, engine, wait_for, httpserver):
    """A posted event reaches the webhook's URL as posted, with a valid signature."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    event_id = _post(client)

    wait_for(lambda: httpserver.log, what="the request")
    request, _ = httpserver.log[0]
    assert request.get_data() == RAW_TICKET
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Relay-Event"] == "ticket_started"
    assert request.headers["User-Agent"].startswith("relay/")
    verified = Verifier(webhook["secret"]).verify(
        request.get_data(), dict(request.headers)
    )
    assert verified == TICKET
    delivery = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    assert delivery["id"] == request.headers["webhook-id"]
    assert delivery["event_id"] == event_id
    assert [a["status"] for a in delivery["attempts"]] == [200]


def test_failing_receiver_gets_retries_with_the_same_id(
    client, engine, wait_for, httpserver
):
    """A receiver answering 500 twice then 200 gets three attempts, one webhook-id."""
    httpserver.expect_request("/hook").respond_with_handler(_responses(500, 500, 200))
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)

    delivery = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    ids = {request.headers["webhook-id"] for request, _ in httpserver.log}
    assert ids == {delivery["id"]}
    assert [a["status"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["number"] for a in delivery["attempts"]] == [1, 2, 3]


def test_gone_disables_the_webhook(client, engine, wait_for, httpserver):
    """A 410 dead-letters the delivery at once and disables its webhook."""
    httpserver.expect_request("/hook").respond_with_data("gone", status=410)
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)

    delivery = wait_for(lambda: _settled(client, webhook["id"], "dead"))
    assert len(delivery["attempts"]) == 1
    shown = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
    assert shown["state"] == "disabled"
    assert "410" in shown["disabled_reason"]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_permanent_failures_skip_the_schedule(
    client, engine, wait_for, httpserver, status
):
    """A permanent 4xx dead-letters the delivery after a single attempt."""
    httpserver.expect_request("/hook").respond_with_data("no", status=status)
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)

    delivery = wait_for(lambda: _settled(client, webhook["id"], "dead"))
    assert [a["status"] for a in delivery["attempts"]] == [status]
    assert (
        client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]["state"]
        == "active"
    )


def test_redirects_are_not_followed(client, engine, wait_for, httpserver):
    """A redirect is recorded as a failure, and its target is never requested."""
    httpserver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/elsewhere")}
    )
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)

    delivery = wait_for(lambda: _settled(client, webhook["id"], "dead"))
    assert [a["status"] for a in delivery["attempts"]] == [302]
    assert [r.path for r, _ in httpserver.log] == ["/hook"]


def test_retry_after_sets_the_next_attempt(client, engine, wait_for, httpserver):
    """A 429 with Retry-After: 2 schedules the next attempt at least 2 s later."""
    httpserver.expect_request("/hook").respond_with_handler(
        lambda request: Response("slow down", status=429, headers={"Retry-After": "2"})
    )
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)

    delivery = wait_for(lambda: _settled(client, webhook["id"], "retrying"))
    from datetime import datetime

    attempted = datetime.fromisoformat(delivery["attempts"][0]["at"])
    scheduled = datetime.fromisoformat(delivery["next_attempt_at"])
    assert (scheduled - attempted).total_seconds() >= 2


def test_unanswered_delivery_becomes_a_dead_letter_and_can_be_retried(
    client, engine, wait_for, httpserver, settings
):
    """A receiver that never answers in time ends in a dead letter; a retry sends it."""
    import time

    answers = {"hang": True}

    def handler(request):
        if answers["hang"]:
            time.sleep(settings.delivery_timeout + 1)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(handler)
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)

    delivery = wait_for(
        lambda: _settled(client, webhook["id"], "dead"), timeout=30, what="dead"
    )
    assert [a["error"] for a in delivery["attempts"]] == ["timeout"] * 3
    listed = client.get("/v1/dead-letters").get_json()["dead_letters"]
    assert [d["id"] for d in listed] == [delivery["id"]]

    answers["hang"] = False
    retried = client.post(f"/v1/dead-letters/{delivery['id']}/retry")
    assert retried.status_code == 202
    delivered = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    assert delivered["attempts"][-1]["status"] == 200
    assert client.get("/v1/dead-letters").get_json()["dead_letters"] == []


def test_retrying_a_live_delivery_is_refused(client, engine, wait_for, httpserver):
    """Only a dead letter can be retried; a delivered one answers 422."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)
    delivery = wait_for(lambda: _settled(client, webhook["id"], "delivered"))

    answer = client.post(f"/v1/dead-letters/{delivery['id']}/retry")
    assert answer.status_code == 422
    assert client.post("/v1/dead-letters/dlv_nope/retry").status_code == 404


def test_fan_out_reaches_every_active_webhook_once(
    client, engine, wait_for, httpserver
):
    """Each active webhook of the event gets one delivery; others get none."""
    for path in ("/a", "/b", "/c"):
        httpserver.expect_request(path).respond_with_data("ok")
    first = _subscribe(client, httpserver.url_for("/a"))
    second = _subscribe(client, httpserver.url_for("/b"))
    other_event = _subscribe(client, httpserver.url_for("/c"), event="ticket_closed")
    _post(client)

    wait_for(lambda: _settled(client, first["id"], "delivered"))
    wait_for(lambda: _settled(client, second["id"], "delivered"))
    assert sorted(r.path for r, _ in httpserver.log) == ["/a", "/b"]
    assert _deliveries(client, other_event["id"]) == []


def test_webhook_created_after_the_event_does_not_receive_it(
    client, stores, wait_for, httpserver, engine
):
    """Fan-out skips webhooks created after the event was received."""
    httpserver.expect_request("/late").respond_with_data("ok")
    engine.stop(grace=1)  # hold fan-out until the late webhook exists
    _post(client)
    late = _subscribe(client, httpserver.url_for("/late"))
    from workers.engine import Engine

    fresh = Engine(stores, name="second")
    fresh.start()
    try:
        wait_for(lambda: stores.client.xlen("relay:work") == 0, what="fan-out")
    finally:
        fresh.stop(grace=1)
    assert _deliveries(client, late["id"]) == []
    assert httpserver.log == []


def test_deleted_webhook_drops_its_pending_delivery(
    client, engine, wait_for, httpserver, stores
):
    """A delivery whose webhook was deleted is dropped, with the reason kept."""
    httpserver.expect_request("/hook").respond_with_data("down", status=503)
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    _post(client)
    first = wait_for(lambda: _settled(client, webhook["id"], "retrying"))
    assert client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 204

    def dropped():
        found = stores.deliveries.find(first["id"])
        return found if found and found.state == "dropped" else None

    delivery = wait_for(dropped, what="the drop")
    assert delivery.last_error == "webhook_deleted"
    assert len(httpserver.log) == 1


def test_rotated_secret_signs_alongside_the_old_one_for_a_day(
    client, engine, wait_for, httpserver
):
    """After a rotation, deliveries carry signatures that both secrets verify."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    webhook = _subscribe(client, httpserver.url_for("/hook"))
    rotated = client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.get_json()["webhook"]["secret"]
    assert new_secret.startswith("whsec_") and new_secret != webhook["secret"]
    _post(client)

    wait_for(lambda: httpserver.log, what="the request")
    request, _ = httpserver.log[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (webhook["secret"], new_secret):
        verified = Verifier(secret).verify(request.get_data(), dict(request.headers))
        assert verified == TICKET
    shown = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
    assert shown["secret"] == new_secret[:10] + "…"
    assert client.post("/v1/webhooks/wh_nope/rotate-secret").status_code == 404

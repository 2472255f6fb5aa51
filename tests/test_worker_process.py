"""Worker processes under faults: killed, stopped, and taken over."""

from __future__ import annotations

import signal
import threading

import pytest
from payloads import TICKET
from processes import relay_env, start_worker, stop_group, wait_until
from werkzeug import Response

pytestmark = pytest.mark.slow


def _setup(client, url):
    webhook = client.post(
        "/v1/webhooks", json={"event": "ticket_started", "url": url}
    ).get_json()["webhook"]
    client.post("/v1/events/ticket_started", json=TICKET)
    return webhook


def _state(stores, webhook_id):
    found, _ = stores.deliveries.page_for_webhook(webhook_id)
    return found[0] if found else None


def test_killed_worker_mid_attempt_is_recovered(
    client, stores, redis_url, httpserver, tmp_path
):
    """SIGKILL during an attempt: another worker attempts again and it arrives."""
    arrived = threading.Event()
    release = threading.Event()
    calls = []

    def handler(request):
        calls.append(request.headers["webhook-id"])
        if len(calls) == 1:
            arrived.set()
            release.wait(20)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(handler)
    env = relay_env(redis_url)
    first = start_worker(env, tmp_path / "first.log")
    second = None
    try:
        webhook = _setup(client, httpserver.url_for("/hook"))
        assert arrived.wait(20), "the first attempt never arrived"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        release.set()
        second = start_worker(env, tmp_path / "second.log")

        def delivered():
            found = _state(stores, webhook["id"])
            return found if found and found.state == "delivered" else None

        delivery = wait_until(delivered, 60, "delivery after recovery")
    finally:
        release.set()
        stop_group(first)
        if second is not None:
            stop_group(second)
    assert calls == [delivery.id, delivery.id]
    attempts = stores.deliveries.attempts(delivery.id)
    assert [a["status"] for a in attempts] == [200]


def test_sigterm_lets_the_attempt_in_flight_finish(
    client, stores, redis_url, httpserver, tmp_path
):
    """SIGTERM during an attempt: it finishes and is recorded, then the worker exits."""
    arrived = threading.Event()

    def handler(request):
        arrived.set()
        threading.Event().wait(1.5)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(handler)
    worker = start_worker(relay_env(redis_url), tmp_path / "worker.log")
    try:
        webhook = _setup(client, httpserver.url_for("/hook"))
        assert arrived.wait(20), "the attempt never arrived"
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    finally:
        stop_group(worker)
    assert code == 0
    delivery = _state(stores, webhook["id"])
    assert delivery.state == "delivered"
    assert len(httpserver.log) == 1


def test_two_items_for_one_attempt_make_one_request(
    client, stores, redis_url, httpserver, tmp_path
):
    """The same attempt queued twice, with two workers, reaches the receiver once."""
    release = threading.Event()

    def handler(request):
        release.wait(1)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(handler)
    env = relay_env(redis_url)
    webhook = client.post(
        "/v1/webhooks",
        json={"event": "ticket_started", "url": httpserver.url_for("/hook")},
    ).get_json()["webhook"]
    workers = [start_worker(env, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        client.post("/v1/events/ticket_started", json=TICKET)
        delivery = wait_until(lambda: _state(stores, webhook["id"]), 20, "fan-out")
        stores.deliveries.enqueue_attempt(delivery.id, 1)
        stores.deliveries.enqueue_attempt(delivery.id, 1)

        def delivered():
            found = _state(stores, webhook["id"])
            return found if found and found.state == "delivered" else None

        wait_until(delivered, 30, "delivery")
        release.set()
        wait_until(lambda: stores.client.xlen("relay:work") == 0, 30, "drained")
    finally:
        for worker in workers:
            stop_group(worker)
    assert len(httpserver.log) == 1
    assert len(stores.deliveries.attempts(delivery.id)) == 1

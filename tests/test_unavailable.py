"""Redis unreachable or too slow: a 503 with Retry-After, never a 202."""

from __future__ import annotations

import socket
import threading

import pytest
from payloads import TICKET

from relay.app import create_app


@pytest.fixture
def closed_port():
    """A loopback port on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    return port


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    held, stop = [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def client_for(settings, port, **changes):
    """A test client of an app whose Redis URL points at ``port``."""
    app = create_app(
        settings.replace(redis_url=f"redis://127.0.0.1:{port}/0", **changes)
    )
    app.config["TESTING"] = True

    return app.test_client()


def assert_unavailable(response):
    """``response`` is a JSON 503 that tells the caller when to retry."""
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "store_unavailable"
    assert error["message"]


#: (method, path, body) of requests that need Redis.
NEEDS_REDIS = [
    ("POST", "/v1/events/ticket_started", TICKET),
    ("POST", "/v1/events", {"event": "ticket_closed", "payload": TICKET}),
    ("POST", "/v1/webhooks", {"event": "ticket_started", "url": "https://e.com/h"}),
    ("GET", "/v1/webhooks", None),
    ("GET", "/v1/webhooks/wh_1", None),
    ("GET", "/v1/webhooks/wh_1/secret", None),
    ("DELETE", "/v1/webhooks/wh_1", None),
    ("GET", "/v1/events/evt_1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), NEEDS_REDIS)
def test_unreachable_redis_is_503_with_retry_after(
    settings, closed_port, method, path, body
):
    """With nothing listening at the Redis URL, a request answers 503 + Retry-After."""
    client = client_for(settings, closed_port)

    response = client.open(path, method=method, json=body)

    assert_unavailable(response)


def test_unreachable_redis_never_accepts_an_event(settings, closed_port):
    """Repeated intake while Redis is unreachable is refused every time."""
    client = client_for(settings, closed_port)

    answers = [
        client.post(
            "/v1/events/ticket_started",
            json={**TICKET, "number": n},
            headers={"Idempotency-Key": f"k-{n}"},
        )
        for n in range(3)
    ]

    for response in answers:
        assert_unavailable(response)


def test_invalid_input_is_still_rejected_without_redis(settings, closed_port):
    """A bad payload is 422 even when Redis is unreachable: validation comes first."""
    client = client_for(settings, closed_port)

    response = client.post("/v1/events/ticket_started", json={"number": "x"})

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/events/ticket_started", TICKET),
        ("/v1/events", {"event": "ticket_closed", "payload": TICKET}),
    ],
)
def test_slow_redis_is_503_with_retry_after(settings, silent_port, path, body):
    """A Redis that accepts but never answers makes intake answer 503 + Retry-After."""
    client = client_for(settings, silent_port, redis_timeout=0.5)

    response = client.post(path, json=body)

    assert_unavailable(response)


def test_healthz_is_503_when_redis_is_slow(settings, silent_port):
    """``/healthz`` answers 503 when Redis accepts but never answers."""
    client = client_for(settings, silent_port, redis_timeout=0.5)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"

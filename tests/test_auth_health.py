"""The API token on ``/v1/`` routes, and ``/healthz``."""

from __future__ import annotations

import re
import socket

import pytest
from payloads import TICKET

from relay.app import create_app

TOKEN = "t0ken"


@pytest.fixture
def guarded(settings, redis_client):
    """An app that requires the API token ``t0ken``."""
    app = create_app(settings.replace(api_token=TOKEN), redis_client)
    app.config["TESTING"] = True

    return app


@pytest.fixture
def closed_port():
    """A loopback port on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    return port


def v1_requests(app):
    """(method, path) for every method of every ``/v1/`` route of ``app``."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = rule.rule.replace("<event>", "ticket_started")
        path = re.sub(r"<[^>]+>", "x_1", path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))

    return found


def send(client, method, path, headers=None, query=None):
    """Send a request with a valid Ticket as its body."""
    return client.open(
        path, method=method, json=TICKET, headers=headers or {}, query_string=query
    )


def test_the_guarded_routes_are_every_v1_route(guarded):
    """The routes checked below include every route of the issue under ``/v1/``."""
    routes = set(v1_requests(guarded))

    assert {
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/webhooks/x_1"),
        ("DELETE", "/v1/webhooks/x_1"),
        ("GET", "/v1/webhooks/x_1/secret"),
        ("POST", "/v1/events/ticket_started"),
        ("POST", "/v1/events"),
        ("GET", "/v1/events/ticket_started"),
        ("GET", "/v1/event-types"),
    } <= routes


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, None),
        ({"Authorization": "Bearer wrong"}, None),
        ({"Authorization": "Bearer t0ke"}, None),
        ({"Authorization": "Bearer t0ken0"}, None),
        ({"Authorization": "Bearer T0KEN"}, None),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": "Bearer  t0ken"}, None),
        ({"Authorization": "t0ken"}, None),
        ({"Authorization": "Basic dDBrZW46"}, None),
        ({"Authorization": "Token t0ken"}, None),
        ({}, {"access_token": "wrong"}),
        ({}, {"access_token": ""}),
        ({}, {"token": TOKEN}),
        ({"X-Api-Token": TOKEN}, None),
    ],
    ids=[
        "none",
        "wrong bearer",
        "bearer prefix",
        "bearer longer",
        "bearer other case",
        "bearer empty",
        "bearer extra space",
        "no scheme",
        "basic",
        "other scheme",
        "wrong query",
        "empty query",
        "other query name",
        "other header",
    ],
)
def test_without_the_right_token_every_v1_route_is_401(
    guarded, redis_client, headers, query
):
    """Every ``/v1/`` route answers a JSON 401 to a missing or wrong token."""
    client = guarded.test_client()
    wrong = []
    for method, path in v1_requests(guarded):
        response = send(client, method, path, headers, query)
        error = response.get_json()["error"] if response.is_json else {}
        if response.status_code != 401 or error.get("code") != "unauthorized":
            wrong.append((method, path, response.status_code))
        elif response.headers.get("WWW-Authenticate") != "Bearer":
            wrong.append((method, path, "no WWW-Authenticate"))

    assert wrong == []
    assert redis_client.keys("relay:*") == []


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": f"Bearer {TOKEN}"}, None),
        ({"Authorization": f"bearer {TOKEN}"}, None),
        ({}, {"access_token": TOKEN}),
    ],
    ids=["bearer", "bearer lower case", "query"],
)
def test_with_the_token_every_v1_route_is_served(guarded, headers, query):
    """With the token as a Bearer header or ``?access_token=`` no route is 401."""
    client = guarded.test_client()
    answers = {
        (method, path): send(client, method, path, headers, query).status_code
        for method, path in v1_requests(guarded)
    }

    assert [key for key, status in answers.items() if status in (401, 500)] == []
    assert answers[("POST", "/v1/events/ticket_started")] == 202
    assert answers[("GET", "/v1/event-types")] == 200


def test_the_token_opens_the_whole_walk_through(guarded):
    """With the token a webhook is created, an event accepted and both read back."""
    client = guarded.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    webhook = client.post(
        "/v1/webhooks",
        json={"event": "ticket_started", "url": "https://example.com/hook"},
        headers=auth,
    )
    event = client.post("/v1/events/ticket_started", json=TICKET, headers=auth)

    assert webhook.status_code == 201
    assert event.status_code == 202
    webhook_id = webhook.get_json()["webhook"]["id"]
    secret = client.get(
        f"/v1/webhooks/{webhook_id}/secret", query_string={"access_token": TOKEN}
    )
    assert secret.get_json()["secret"] == webhook.get_json()["webhook"]["secret"]


def test_without_a_configured_token_the_api_is_open(client):
    """When no API token is set, ``/v1/`` routes need no credentials."""
    assert client.get("/v1/event-types").status_code == 200
    assert client.get("/v1/webhooks").status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}], ids=["none", "wrong"]
)
def test_healthz_needs_no_token(guarded, headers):
    """``/healthz`` answers 200 with Redis up, whatever token is sent."""
    response = guarded.test_client().get("/healthz", headers=headers)

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "redis": "ok"}


def test_healthz_is_200_when_redis_answers(client):
    """``/healthz`` answers 200 when Redis answers."""
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_healthz_is_503_when_redis_is_unreachable(settings, closed_port):
    """``/healthz`` answers a JSON 503 when nothing listens at the Redis URL."""
    app = create_app(
        settings.replace(
            redis_url=f"redis://127.0.0.1:{closed_port}/0", api_token=TOKEN
        )
    )

    response = app.test_client().get("/healthz")

    assert response.status_code == 503
    assert response.is_json
    assert response.get_json()["status"] == "unavailable"

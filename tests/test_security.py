"""Producer signatures, the API rate limit, and tokens kept out of logs."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from payloads import TICKET
from standardwebhooks.webhooks import Webhook as Signer

from relay import jsonio
from relay.app import create_app
from relay.gunicorn_conf import scrub

SECRET = "whsec_" + base64.b64encode(b"p" * 32).decode()
BODY = jsonio.dumps(TICKET)


def _signed(
    body: bytes, *, at: float | None = None, msg_id: str = "msg_1", secret=SECRET
):
    stamp = int(time.time() if at is None else at)
    signature = Signer(secret).sign(
        msg_id, datetime.fromtimestamp(stamp, tz=UTC), body.decode()
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
    }


@pytest.fixture
def signed_client(settings, redis_client):
    """A client of an app that requires producers to sign their posts."""
    return create_app(
        settings.replace(inbound_secret=SECRET), redis_client
    ).test_client()


def _post(client, headers, body=BODY):
    return client.post(
        "/v1/events/ticket_started",
        data=body,
        headers=headers,
        content_type="application/json",
    )


def test_a_signed_post_is_accepted(signed_client, redis_client):
    """A post signed with RELAY_INBOUND_SECRET is stored and enqueued."""
    assert _post(signed_client, _signed(BODY)).status_code == 202
    assert redis_client.xlen("relay:work") == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="unsigned"),
        pytest.param(_signed(BODY, secret="whsec_" + "Q" * 43 + "="), id="other-key"),
        pytest.param(_signed(BODY, at=time.time() - 600), id="too-old"),
        pytest.param(_signed(BODY, at=time.time() + 600), id="from-the-future"),
        pytest.param({**_signed(BODY), "webhook-signature": "v1"}, id="malformed"),
        pytest.param({**_signed(BODY), "webhook-signature": "v1,@@@"}, id="not-base64"),
        pytest.param({**_signed(BODY), "webhook-timestamp": "soon"}, id="bad-time"),
    ],
)
def test_unsigned_or_badly_signed_posts_are_refused(
    signed_client, redis_client, headers
):
    """Without a valid signature within 5 minutes: 401, nothing stored."""
    answer = _post(signed_client, headers)
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "unauthorized"
    assert redis_client.xlen("relay:work") == 0
    assert redis_client.keys("relay:evt:*") == []


def test_a_tampered_body_is_refused(signed_client, redis_client):
    """A signature over other bytes does not cover this body."""
    headers = _signed(BODY)
    assert (
        _post(signed_client, headers, BODY.replace(b"matt", b"mallory")).status_code
        == 401
    )


def test_the_envelope_route_checks_signatures_too(signed_client):
    """POST /v1/events needs the same signature."""
    body = jsonio.dumps({"event": "ticket_started", "payload": TICKET})
    answer = signed_client.post(
        "/v1/events", data=body, content_type="application/json"
    )
    assert answer.status_code == 401
    answer = signed_client.post(
        "/v1/events", data=body, content_type="application/json", headers=_signed(body)
    )
    assert answer.status_code == 202


def test_a_producers_message_id_deduplicates(signed_client, redis_client):
    """The same signed message id twice is one event, even with other content."""
    first = _post(signed_client, _signed(BODY, msg_id="msg_7"))
    other = jsonio.dumps({**TICKET, "title": "changed"})
    again = _post(signed_client, _signed(other, msg_id="msg_7"), other)
    assert again.status_code == 200
    assert again.get_json()["event"]["id"] == first.get_json()["event"]["id"]
    assert redis_client.xlen("relay:work") == 1


def test_rate_limit_answers_429_with_retry_after(settings, redis_client):
    """Past RELAY_RATE_LIMIT a token gets 429 with Retry-After; others are not."""
    app = create_app(settings.replace(rate_limit="3/minute"), redis_client)
    client = app.test_client()
    answers = [
        client.get("/v1/webhooks", headers={"Authorization": "Bearer a"})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]["code"] == "rate_limited"
    other = client.get("/v1/webhooks", headers={"Authorization": "Bearer b"})
    assert other.status_code == 200
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "GET /v1/webhooks?access_token=s3cret HTTP/1.1",
            "GET /v1/webhooks?access_token=[scrubbed] HTTP/1.1",
        ),
        (
            "event=x&access_token=s3cret&limit=2",
            "event=x&access_token=[scrubbed]&limit=2",
        ),
        ("ACCESS_TOKEN=abc", "ACCESS_TOKEN=[scrubbed]"),
        ("GET /v1/webhooks?limit=2 HTTP/1.1", "GET /v1/webhooks?limit=2 HTTP/1.1"),
    ],
)
def test_access_tokens_are_scrubbed_from_access_logs(line, expected):
    """The web process's access log never shows an access_token value."""
    assert scrub(line) == expected

"""Bad requests: each is a JSON error with the right status, and stores nothing."""

from __future__ import annotations

import io
import json

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from payloads import TICKET

from relay.app import create_app

EVENT = "/v1/events/ticket_started"
ENVELOPE = "/v1/events"
WEBHOOKS = "/v1/webhooks"
ROUTES = [EVENT, ENVELOPE, WEBHOOKS]
JSON = "application/json"

EVENT_NAMES = [
    "ticket_started",
    "ticket_opened",
    "ticket_closed",
    "ticket_assigned",
    "ticket_priority_changed",
    "ticket_deleted",
    "ticket_tagged",
    "ticket_moved",
    "customer_replied",
    "customer_added",
    "agent_invited",
    "agent_archived",
    "note_added",
    "agent_replied",
]

PROPERTY = hypothesis.settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def nested(levels, opener=b"[", closer=b"]", inner=b""):
    """``levels`` of arrays (or objects) around ``inner``."""
    return opener * levels + inner + closer * levels


def ticket_with(field):
    """A valid Ticket body whose ``weird`` field is the raw JSON ``field``."""
    return b'{"number": 1, "href": "h", "weird": ' + field + b"}"


def assert_error(response, status, code=None):
    """``response`` is ``status`` with the body ``{"error": {code, message...}}``."""
    assert response.status_code == status, response.get_data()[:300]
    assert response.mimetype == JSON
    body = response.get_json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code

    return error


def assert_nothing_stored(redis_client):
    """No event, idempotency key, work item or webhook exists in Redis."""
    assert redis_client.xlen("relay:work") == 0
    assert redis_client.keys("relay:evt:*") == []
    assert redis_client.keys("relay:*") == []


#: (name, body, status, code): malformed bodies, sent as application/json.
MALFORMED = [
    ("not JSON", b"hello", 400, "bad_request"),
    ("truncated", b'{"number": 1,', 400, "bad_request"),
    ("trailing garbage", b'{"number": 1, "href": "h"} x', 400, "bad_request"),
    ("two documents", b"{}{}", 400, "bad_request"),
    ("single quotes", b"{'number': 1}", 400, "bad_request"),
    ("trailing comma", b'{"number": 1, "href": "h",}', 400, "bad_request"),
    ("comment", b'{"number": 1 /* one */, "href": "h"}', 400, "bad_request"),
    ("empty", b"", 400, "bad_request"),
    ("white space only", b" \r\n\t ", 400, "bad_request"),
    ("5000 nested arrays", nested(5000), 400, "bad_request"),
    ("5000 nested objects", nested(5000, b'{"a":', b"}", b"1"), 400, "bad_request"),
    ("5000 nested in a ticket", ticket_with(nested(5000)), 400, "bad_request"),
    ("300 nested in a ticket", ticket_with(nested(300)), 400, "bad_request"),
    ("NaN", ticket_with(b"NaN"), 400, "bad_request"),
    ("Infinity", ticket_with(b"Infinity"), 400, "bad_request"),
    ("-Infinity", ticket_with(b"-Infinity"), 400, "bad_request"),
    ("number beyond a double", ticket_with(b"1e400"), 400, "bad_request"),
    ("lone high surrogate", ticket_with(b'"\\ud800"'), 400, "bad_request"),
    ("lone low surrogate", ticket_with(b'"a\\udc00b"'), 400, "bad_request"),
    ("surrogate in a key", b'{"\\ud83d": 1}', 400, "bad_request"),
    ("invalid UTF-8", ticket_with(b'"\xff\xfe"'), 400, "bad_request"),
    ("overlong UTF-8", ticket_with(b'"\xc0\xaf"'), 400, "bad_request"),
    ("encoded surrogate", ticket_with(b'"\xed\xa0\x80"'), 400, "bad_request"),
    ("UTF-16", json.dumps(TICKET).encode("utf-16"), 400, "bad_request"),
    ("top-level array", b'[{"number": 1, "href": "h"}]', 422, "validation_failed"),
    ("top-level empty array", b"[]", 422, "validation_failed"),
    ("top-level string", b'"ticket_started"', 422, "validation_failed"),
    ("top-level number", b"42", 422, "validation_failed"),
    ("top-level float", b"-1.5e3", 422, "validation_failed"),
    ("top-level true", b"true", 422, "validation_failed"),
    ("top-level null", b"null", 422, "validation_failed"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [row[1:] for row in MALFORMED],
    ids=[row[0] for row in MALFORMED],
)
def test_a_malformed_body_is_a_json_error(
    client, redis_client, route, body, status, code
):
    """Unparseable JSON is 400 and a top-level non-object 422; nothing is stored."""
    response = client.post(route, data=body, content_type=JSON)

    assert_error(response, status, code)
    assert_nothing_stored(redis_client)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        "json",
        None,
    ],
)
def test_a_body_not_declared_as_json_is_415(client, redis_client, route, content_type):
    """A body whose content type is missing or not JSON is 415, nothing stored."""
    headers = {} if content_type is None else {"Content-Type": content_type}

    response = client.post(route, data=json.dumps(TICKET), headers=headers)

    assert_error(response, 415, "unsupported_media_type")
    assert_nothing_stored(redis_client)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/vnd.helpdesk+json",
        "APPLICATION/JSON",
    ],
)
def test_json_content_types_with_parameters_or_suffix_are_accepted(
    client, content_type
):
    """``application/json`` with parameters, or any ``+json`` type, is JSON."""
    response = client.post(EVENT, data=json.dumps(TICKET), content_type=content_type)

    assert response.status_code == 202


#: (event, payload, fields named in details.fields) for payload schema errors.
SCHEMA_VIOLATIONS = [
    ("ticket_started", {}, {"number", "href"}),
    ("ticket_started", {"number": "1", "href": "h"}, {"number"}),
    ("ticket_started", {"number": 1.5, "href": "h"}, {"number"}),
    ("ticket_started", {"number": None, "href": "h"}, {"number"}),
    ("ticket_closed", {"number": 1, "href": 5}, {"href"}),
    ("ticket_closed", {"number": 1, "href": "h", "title": 3}, {"title"}),
    ("ticket_moved", {"number": 1, "href": "h", "created_at": "today"}, {"created_at"}),
    ("ticket_moved", {"number": 1, "href": "h", "links": {"x": "y"}}, {"links"}),
    ("ticket_moved", {"number": 1, "href": "h", "links": []}, {"links"}),
    ("customer_added", {"email": "", "href": "h"}, {"email"}),
    ("customer_added", {"href": "h", "custom": []}, {"email", "custom"}),
    ("agent_invited", {"href": "h"}, {"email"}),
    ("agent_archived", {"email": ["a@b"], "href": "h"}, {"email"}),
    ("note_added", {"body": "b", "href": "h", "note": "yes"}, {"note"}),
    ("customer_replied", {"href": "h"}, {"body"}),
]


@pytest.mark.parametrize(("event", "payload", "fields"), SCHEMA_VIOLATIONS)
def test_a_schema_violation_is_422_field_by_field(
    client, redis_client, event, payload, fields
):
    """A payload that breaks its schema is 422 naming each bad field; none stored."""
    response = client.post(f"/v1/events/{event}", json=payload)

    error = assert_error(response, 422, "validation_failed")
    assert set(error["details"]["fields"]) == fields
    assert all(error["details"]["fields"].values())
    assert_nothing_stored(redis_client)


@pytest.mark.parametrize(("event", "payload", "fields"), SCHEMA_VIOLATIONS[:6])
def test_a_schema_violation_in_an_envelope_is_422(
    client, redis_client, event, payload, fields
):
    """The envelope form reports schema violations the same way."""
    response = client.post(ENVELOPE, json={"event": event, "payload": payload})

    error = assert_error(response, 422, "validation_failed")
    assert set(error["details"]["fields"]) == fields
    assert_nothing_stored(redis_client)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v1/nothing"),
        ("POST", "/v2/events/ticket_started"),
        ("GET", "/v1/webhooks/wh_1/secret/again"),
        ("POST", "/v1/events/ticket_started/more"),
        ("POST", "/v1/events/ticket_exploded"),
        ("GET", "/v1/events/evt_missing"),
        ("DELETE", "/v1/webhooks/wh_missing"),
    ],
)
def test_an_unknown_route_or_resource_is_404(client, redis_client, method, path):
    """A path that names no route, event or id is a JSON 404."""
    response = client.open(path, method=method, json=TICKET)

    assert_error(response, 404, "not_found")
    assert_nothing_stored(redis_client)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/webhooks"),
        ("DELETE", "/v1/webhooks"),
        ("PATCH", "/v1/webhooks/wh_1"),
        ("POST", "/v1/webhooks/wh_1"),
        ("GET", "/v1/events"),
        ("DELETE", "/v1/events/ticket_started"),
        ("POST", "/v1/event-types"),
        ("POST", "/healthz"),
    ],
)
def test_a_wrong_method_is_405(client, redis_client, method, path):
    """A route asked with a method it does not serve is a JSON 405 with Allow."""
    response = client.open(path, method=method, json=TICKET)

    assert_error(response, 405, "method_not_allowed")
    assert method not in response.headers["Allow"]
    assert response.headers["Allow"]
    assert_nothing_stored(redis_client)


@pytest.fixture
def small_client(settings, redis_client):
    """A test client of an app that accepts bodies of at most 256 bytes."""
    app = create_app(settings.replace(max_body_bytes=256), redis_client)
    app.config["TESTING"] = True

    return app.test_client()


def sized(size):
    """A valid Ticket body of exactly ``size`` bytes."""
    head = b'{"number": 1, "href": "h", "pad": "'
    body = head + b"x" * (size - len(head) - 2) + b'"}'
    assert len(body) == size

    return body


def chunked(client, path, body, terminated=True):
    """POST ``body`` without Content-Length, as a chunked upload arrives."""
    extra = {"wsgi.input_terminated": True} if terminated else {}

    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type=JSON,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides=extra,
    )


@pytest.mark.parametrize("route", ROUTES)
def test_a_body_over_the_limit_is_413(small_client, redis_client, route):
    """A body longer than the configured maximum is 413 and stores nothing."""
    response = small_client.post(route, data=sized(257), content_type=JSON)

    assert_error(response, 413, "payload_too_large")
    assert_nothing_stored(redis_client)


def test_a_body_at_the_limit_is_accepted(small_client):
    """A body exactly as long as the maximum is accepted."""
    response = small_client.post(EVENT, data=sized(256), content_type=JSON)

    assert response.status_code == 202


@pytest.mark.parametrize(
    "body",
    [sized(257), sized(5000), b'{"number": 1, "href": "h"}' + b" " * 300],
    ids=["one byte over", "far over", "valid JSON then white space"],
)
def test_a_chunked_body_over_the_limit_is_413(small_client, redis_client, body):
    """A body sent without Content-Length that runs over the limit is 413."""
    response = chunked(small_client, EVENT, body)

    assert_error(response, 413, "payload_too_large")
    assert_nothing_stored(redis_client)


def test_a_chunked_body_within_the_limit_is_stored_whole(small_client, stores):
    """A chunked body up to the limit is accepted and stored byte for byte."""
    response = chunked(small_client, EVENT, sized(256))

    assert response.status_code == 202
    assert stores.events.get(response.get_json()["event"]["id"]).body == sized(256)


def test_a_chunked_body_the_server_did_not_terminate_is_read_as_empty(
    client, redis_client
):
    """Without a server that ends the stream, a length-less body is never read."""
    response = chunked(client, EVENT, json.dumps(TICKET).encode(), terminated=False)

    assert_error(response, 400, "bad_request")
    assert_nothing_stored(redis_client)


def test_nesting_up_to_the_limit_is_accepted_and_read_back(client):
    """A payload nested 200 levels deep is accepted and can be read back."""
    body = ticket_with(nested(199))

    response = client.post(EVENT, data=body, content_type=JSON)

    assert response.status_code == 202
    shown = client.get(f"/v1/events/{response.get_json()['event']['id']}")
    assert shown.status_code == 200
    assert shown.get_json()["event"]["payload"] == json.loads(body)


# --- properties -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

tickets = st.fixed_dictionaries(
    {"number": st.integers() | json_values, "href": st.text() | json_values},
    optional={
        "title": st.text() | json_values,
        "created_at": st.datetimes().map(lambda d: d.isoformat()) | json_values,
        "links": st.dictionaries(
            st.text(max_size=8),
            st.fixed_dictionaries({"href": st.text()}) | json_values,
            max_size=3,
        ),
        "extra": json_values,
    },
)

webhook_bodies = st.fixed_dictionaries(
    {
        "event": st.sampled_from(EVENT_NAMES) | st.text(),
        "url": st.builds(
            str.__add__,
            st.sampled_from(
                [
                    "http://",
                    "https://",
                    "mailto:",
                    "https://hooks.slack.com/",
                    "",
                    "ftp://",
                    "http://[",
                ]
            ),
            st.text(),
        )
        | json_values,
    },
    optional={
        "sink": st.sampled_from(["http", "slack", "email"]) | st.text(),
        "description": st.text() | json_values,
    },
)


def encode(value, ascii_only):
    """``value`` as JSON bytes; unpaired surrogates become escapes or raw bytes."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def snapshot(redis_client):
    """What intake and webhook creation can change in Redis."""
    return (
        redis_client.xlen("relay:work"),
        len(redis_client.keys("relay:evt:*")),
        redis_client.zcard("relay:whs"),
    )


def check_answer(response, route, before, after):
    """A documented success that stored as much as it says, or an error that
    stored nothing."""
    assert response.status_code != 500
    assert response.mimetype == JSON
    if response.status_code >= 400:
        assert_error(response, response.status_code)
        assert response.status_code in {400, 413, 415, 422}
        assert after == before
        return
    body = response.get_json()
    if route == WEBHOOKS:
        assert response.status_code in {200, 201}
        assert body["webhook"]["id"].startswith("wh_")
        grew = 1 if response.status_code == 201 else 0
        assert after == (before[0], before[1], before[2] + grew)
    else:
        assert response.status_code in {200, 202}
        assert body["event"]["id"].startswith("evt_")
        grew = 1 if response.status_code == 202 else 0
        assert after == (before[0] + grew, before[1] + grew, before[2])


def post_and_check(client, redis_client, route, body):
    """POST ``body`` to ``route`` as JSON and check the answer and the store."""
    before = snapshot(redis_client)
    response = client.post(route, data=body, content_type=JSON)
    check_answer(response, route, before, snapshot(redis_client))


@pytest.mark.parametrize("route", ROUTES)
@PROPERTY
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_never_fail(client, redis_client, route, body):
    """Any bytes posted as JSON get a documented answer, never a 500."""
    post_and_check(client, redis_client, route, body)


@pytest.mark.parametrize("route", ROUTES)
@PROPERTY
@given(value=json_values, ascii_only=st.booleans())
def test_arbitrary_json_never_fails(client, redis_client, route, value, ascii_only):
    """Any JSON value, unicode and surrogates included, gets a documented answer."""
    post_and_check(client, redis_client, route, encode(value, ascii_only))


@PROPERTY
@given(payload=tickets, ascii_only=st.booleans())
def test_ticket_like_payloads_never_fail(client, redis_client, payload, ascii_only):
    """Ticket-shaped payloads with arbitrary field values get a documented answer."""
    post_and_check(client, redis_client, EVENT, encode(payload, ascii_only))


@PROPERTY
@given(payload=tickets, event=st.sampled_from(EVENT_NAMES) | st.text())
def test_envelopes_never_fail(client, redis_client, payload, event):
    """Envelopes with any event name and ticket-shaped payload get a documented
    answer."""
    body = encode({"event": event, "payload": payload}, True)
    post_and_check(client, redis_client, ENVELOPE, body)


@PROPERTY
@given(body=webhook_bodies, ascii_only=st.booleans())
def test_webhook_like_bodies_never_fail(client, redis_client, body, ascii_only):
    """Webhook-shaped bodies with arbitrary events and URLs get a documented
    answer."""
    post_and_check(client, redis_client, WEBHOOKS, encode(body, ascii_only))

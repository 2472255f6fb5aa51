"""Event intake: ``POST /v1/events[/<event>]``, reading events back, the catalogue
and the OpenAPI document."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from payloads import EXAMPLES, TICKET

#: The 14 events of the spec and the payload kind each carries, in its order.
EVENT_KINDS = {
    "ticket_started": "Ticket",
    "ticket_opened": "Ticket",
    "ticket_closed": "Ticket",
    "ticket_assigned": "Ticket",
    "ticket_priority_changed": "Ticket",
    "ticket_deleted": "Ticket",
    "ticket_tagged": "Ticket",
    "ticket_moved": "Ticket",
    "customer_replied": "Message",
    "customer_added": "Customer",
    "agent_invited": "Agent",
    "agent_archived": "Agent",
    "note_added": "Message",
    "agent_replied": "Message",
}

#: A Ticket as a producer might really send it: odd spacing and key order,
#: escapes, numbers in forms a re-serializer would change, unknown fields.
RAW_TICKET = (
    b'{ "zz_custom" :  {"nested": [1, 2.50, "caf\\u00e9", null], "ok": true},\n'
    b'\t"href":"https://api.groovehq.com/v1/tickets/7" ,  "number" : 7,\r\n'
    b'  "title": "caf\xc3\xa9 \xf0\x9f\x8e\x89", "weight": 1.0e2, "tags": [ ] }'
)


def post_raw(client, event, body, **headers):
    """POST ``body`` bytes as JSON to ``/v1/events/<event>``."""
    return client.post(
        f"/v1/events/{event}",
        data=body,
        content_type="application/json",
        headers=headers,
    )


def work_items(redis_client):
    """The fields of every item in the ``relay:work`` stream, oldest first."""
    return [fields for _, fields in redis_client.xrange("relay:work")]


def accepted_id(response):
    """The event id of a 202 intake answer."""
    assert response.status_code == 202, response.get_json()

    return response.get_json()["event"]["id"]


@pytest.mark.parametrize(("event", "kind"), list(EVENT_KINDS.items()))
def test_each_spec_example_is_accepted_by_its_events(
    client, stores, redis_client, event, kind
):
    """The spec's example of a payload kind is accepted (202) by each event of it."""
    response = client.post(f"/v1/events/{event}", json=EXAMPLES[kind])

    assert response.status_code == 202
    body = response.get_json()
    assert list(body) == ["event"]
    assert set(body["event"]) == {"id", "event", "received_at"}
    assert body["event"]["id"].startswith("evt_")
    assert body["event"]["event"] == event
    assert datetime.fromisoformat(body["event"]["received_at"]).tzinfo is not None
    stored = stores.events.get(body["event"]["id"])
    assert stored.event == event
    assert json.loads(stored.body) == EXAMPLES[kind]
    assert work_items(redis_client) == [{b"f": body["event"]["id"].encode()}]


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("ticket_started", "Agent"),
        ("ticket_closed", "Message"),
        ("customer_added", "Ticket"),
        ("agent_invited", "Ticket"),
        ("note_added", "Customer"),
    ],
)
def test_a_payload_of_another_kind_is_422(client, redis_client, event, kind):
    """An event given another kind's example is 422 and nothing is stored."""
    response = client.post(f"/v1/events/{event}", json=EXAMPLES[kind])

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"]["fields"]
    assert redis_client.xlen("relay:work") == 0
    assert redis_client.keys("relay:evt:*") == []


def test_the_stored_body_is_byte_for_byte_what_was_posted(client, stores):
    """The body is stored exactly as sent, spacing, order and number forms kept."""
    event_id = accepted_id(post_raw(client, "ticket_closed", RAW_TICKET))

    stored = stores.events.get(event_id)

    assert stored.body == RAW_TICKET
    assert stored.event == "ticket_closed"


def test_unknown_fields_are_kept(client):
    """Fields the schema does not know are kept and shown back in the payload."""
    event_id = accepted_id(post_raw(client, "ticket_closed", RAW_TICKET))

    payload = client.get(f"/v1/events/{event_id}").get_json()["event"]["payload"]

    assert payload == json.loads(RAW_TICKET)
    assert payload["zz_custom"] == {"nested": [1, 2.5, "café", None], "ok": True}
    assert payload["tags"] == []


def test_each_accepted_event_appends_one_work_item(client, redis_client):
    """Every accepted event adds exactly one item, ``f`` = its id, to the stream."""
    ids = [
        accepted_id(client.post(f"/v1/events/{event}", json=EXAMPLES[kind]))
        for event, kind in EVENT_KINDS.items()
    ]

    assert redis_client.xlen("relay:work") == 14
    assert work_items(redis_client) == [{b"f": i.encode()} for i in ids]
    assert len(set(ids)) == 14


def test_an_unknown_event_name_is_404_naming_the_14(client, redis_client):
    """Posting to an unknown event name is 404 and lists the 14 events."""
    response = client.post("/v1/events/ticket_exploded", json=TICKET)

    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "not_found"
    assert error["details"]["events"] == list(EVENT_KINDS)
    assert all(name in error["message"] for name in EVENT_KINDS)
    assert redis_client.xlen("relay:work") == 0


def test_the_envelope_form_is_accepted(client, stores, redis_client):
    """``POST /v1/events`` with ``{"event", "payload"}`` stores and enqueues it."""
    payload = {**EXAMPLES["Customer"], "vip": {"tier": 3}}

    response = client.post(
        "/v1/events", json={"event": "customer_added", "payload": payload}
    )

    event_id = accepted_id(response)
    assert response.get_json()["event"]["event"] == "customer_added"
    stored = stores.events.get(event_id)
    assert stored.event == "customer_added"
    assert json.loads(stored.body) == payload
    assert work_items(redis_client) == [{b"f": event_id.encode()}]


def test_the_envelope_forwards_the_payload_as_its_own_document(client, stores):
    """The stored body of an envelope is its payload alone, as compact JSON."""
    body = (
        b'{"payload": {"href": "h", "number": 3, "x": [1, {"y": 2}]},'
        b' "event": "ticket_moved"}'
    )

    response = client.post("/v1/events", data=body, content_type="application/json")

    stored = stores.events.get(accepted_id(response))
    assert stored.body == b'{"href":"h","number":3,"x":[1,{"y":2}]}'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "ticket_exploded", "payload": TICKET}, "event"),
        ({"event": 7, "payload": TICKET}, "event"),
        ({"payload": TICKET}, "event"),
        ({"event": "ticket_started"}, "payload"),
        ({"event": "ticket_started", "payload": [TICKET]}, "_schema"),
        ({"event": "ticket_started", "payload": "x"}, "_schema"),
        ({"event": "ticket_started", "payload": {"href": "h"}}, "number"),
    ],
)
def test_a_bad_envelope_is_422(client, redis_client, body, field):
    """An envelope with an unknown event or a missing or bad payload is 422."""
    response = client.post("/v1/events", json=body)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed"
    assert field in error["details"]["fields"]
    assert redis_client.xlen("relay:work") == 0
    assert redis_client.keys("relay:evt:*") == []


def test_an_unknown_envelope_event_lists_the_14(client):
    """An envelope naming an unknown event is answered with the 14 names."""
    response = client.post("/v1/events", json={"event": "nope", "payload": TICKET})

    assert response.get_json()["error"]["details"]["events"] == list(EVENT_KINDS)


def test_the_same_idempotency_key_twice_answers_the_first_event(client, redis_client):
    """A repeat with the same Idempotency-Key is 200 with the first id, not enqueued."""
    first = client.post(
        "/v1/events/ticket_started", json=TICKET, headers={"Idempotency-Key": "k-1"}
    )
    again = client.post(
        "/v1/events/ticket_started", json=TICKET, headers={"Idempotency-Key": "k-1"}
    )

    event_id = accepted_id(first)
    assert again.status_code == 200
    assert again.get_json()["event"] == {**first.get_json()["event"], "duplicate": True}
    assert again.get_json()["event"]["id"] == event_id
    assert redis_client.xlen("relay:work") == 1
    assert len(redis_client.keys("relay:evt:*")) == 1


def test_a_repeat_is_recognised_for_24_hours(client, redis_client):
    """The record that makes a repeat answer 200 lives for 24 hours, no more."""
    accepted_id(
        client.post(
            "/v1/events/ticket_started", json=TICKET, headers={"Idempotency-Key": "k"}
        )
    )

    (key,) = redis_client.keys("relay:idem:*")

    assert 24 * 3600 - 60 < redis_client.ttl(key) <= 24 * 3600


def test_the_idempotency_key_wins_over_changed_content(client, stores, redis_client):
    """A repeat with the same key but other content still answers the first event."""
    first = client.post(
        "/v1/events/ticket_started", json=TICKET, headers={"Idempotency-Key": "k-2"}
    )
    changed = {**TICKET, "title": "changed"}
    again = client.post(
        "/v1/events/ticket_started", json=changed, headers={"Idempotency-Key": "k-2"}
    )

    event_id = accepted_id(first)
    assert again.status_code == 200
    assert again.get_json()["event"]["id"] == event_id
    assert json.loads(stores.events.get(event_id).body) == TICKET
    assert redis_client.xlen("relay:work") == 1


def test_different_idempotency_keys_are_different_events(client, redis_client):
    """The same content under two different keys is stored twice."""
    ids = {
        accepted_id(
            client.post(
                "/v1/events/ticket_started", json=TICKET, headers={"Idempotency-Key": k}
            )
        )
        for k in ("k-a", "k-b")
    }

    assert len(ids) == 2
    assert redis_client.xlen("relay:work") == 2


def test_without_a_key_the_same_content_is_deduplicated(client, redis_client):
    """With no key, the same content again (in any key order) answers 200."""
    first = post_raw(client, "ticket_closed", b'{"number": 1, "href": "h"}')
    again = post_raw(client, "ticket_closed", b'{ "href":"h","number":1 }')

    event_id = accepted_id(first)
    assert again.status_code == 200
    assert again.get_json()["event"]["id"] == event_id
    assert again.get_json()["event"]["duplicate"] is True
    assert redis_client.xlen("relay:work") == 1


def test_the_envelope_is_deduplicated_with_the_direct_form(client, redis_client):
    """The same event and content sent in both forms is one event."""
    first = client.post("/v1/events/ticket_started", json=TICKET)
    again = client.post(
        "/v1/events", json={"event": "ticket_started", "payload": TICKET}
    )

    assert again.status_code == 200
    assert again.get_json()["event"]["id"] == accepted_id(first)
    assert redis_client.xlen("relay:work") == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("ticket_closed", TICKET), ("ticket_closed", {**TICKET, "number": 2})),
        (("ticket_closed", TICKET), ("ticket_closed", {**TICKET, "extra": None})),
        (("ticket_closed", TICKET), ("ticket_opened", TICKET)),
        (("agent_invited", EXAMPLES["Agent"]), ("agent_archived", EXAMPLES["Agent"])),
    ],
)
def test_different_content_or_event_is_not_deduplicated(
    client, redis_client, first, second
):
    """Other content, or the same content for another event, is a new event."""
    one = accepted_id(client.post(f"/v1/events/{first[0]}", json=first[1]))
    two = accepted_id(client.post(f"/v1/events/{second[0]}", json=second[1]))

    assert one != two
    assert redis_client.xlen("relay:work") == 2


@pytest.mark.parametrize("key", ["", "k" * 256, "bad\x7fkey"])
def test_a_malformed_idempotency_key_is_400(client, redis_client, key):
    """An empty, over-long or unprintable Idempotency-Key is 400, nothing stored."""
    response = client.post(
        "/v1/events/ticket_started", json=TICKET, headers={"Idempotency-Key": key}
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"
    assert redis_client.xlen("relay:work") == 0
    assert redis_client.keys("relay:evt:*") == []


def test_get_event_returns_it_with_its_payload(client):
    """``GET /v1/events/<id>`` shows id, event, received_at and the payload."""
    accepted = client.post("/v1/events/note_added", json=EXAMPLES["Message"])
    summary = accepted.get_json()["event"]

    response = client.get(f"/v1/events/{summary['id']}")

    assert response.status_code == 200
    assert response.get_json() == {"event": {**summary, "payload": EXAMPLES["Message"]}}


@pytest.mark.parametrize(
    "event_id", ["evt_01M8Y5QMC9EN8MQ9CS8SWVP21X", "nope", "x" * 300]
)
def test_get_an_unknown_event_is_404(client, event_id):
    """An id that names no stored event answers a JSON 404."""
    client.post("/v1/events/ticket_started", json=TICKET)

    response = client.get(f"/v1/events/{event_id}")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_event_types_lists_the_14_with_kind_and_schema(client):
    """``GET /v1/event-types`` gives each event, its payload kind and JSON Schema."""
    response = client.get("/v1/event-types")

    assert response.status_code == 200
    types = response.get_json()["event_types"]
    assert len(types) == 14
    assert {t["name"]: t["payload"] for t in types} == EVENT_KINDS
    for entry in types:
        assert set(entry) == {"name", "payload", "schema"}
        schema = entry["schema"]
        assert schema["type"] == "object"
        assert set(EXAMPLES[entry["payload"]]) <= set(schema["properties"])
        assert "href" in schema["required"]


def test_event_type_schemas_require_what_validation_requires(client):
    """Each kind's JSON Schema lists the fields the intake insists on."""
    types = client.get("/v1/event-types").get_json()["event_types"]

    required = {t["payload"]: set(t["schema"]["required"]) for t in types}

    assert required == {
        "Ticket": {"number", "href"},
        "Customer": {"email", "href"},
        "Message": {"body", "href"},
        "Agent": {"email", "href"},
    }


def test_openapi_describes_every_route(app, client):
    """``/openapi.json`` has a path and operation for every route the app serves."""
    response = client.get("/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static",) or rule.rule.startswith("/openapi"):
            continue
        if rule.endpoint.startswith(("console.", "probes.")):
            continue  # pages and probes, not the API (/readyz, /metrics)
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        assert path in paths, path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], (method, path)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/webhooks", "post"),
        ("/v1/webhooks", "get"),
        ("/v1/webhooks/{webhook_id}", "get"),
        ("/v1/webhooks/{webhook_id}", "delete"),
        ("/v1/webhooks/{webhook_id}/secret", "get"),
        ("/v1/events/{event}", "post"),
        ("/v1/events", "post"),
        ("/v1/events/{event}", "get"),
        ("/v1/event-types", "get"),
        ("/healthz", "get"),
    ],
)
def test_openapi_describes_the_routes_of_the_issue(client, path, method):
    """Every route the issue names is in the OpenAPI document with its method."""
    paths = client.get("/openapi.json").get_json()["paths"]

    assert method in paths[path]

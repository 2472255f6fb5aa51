"""``/v1/events`` and ``/v1/event-types``: intake and the event catalogue."""

from __future__ import annotations

import functools
import logging
from typing import Any

import flask
from apispec import APISpec
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from standardwebhooks.webhooks import Webhook as Signer

from relay import __version__, catalogue, jsonio, metrics, schemas
from relay.api import Blueprint, parse, read_body, require_object, stores
from relay.errors import BadRequest, NotFound, Unauthorized, ValidationFailed
from relay.events import idempotency_digest

log = logging.getLogger(__name__)

blp = Blueprint("events", __name__, url_prefix="/v1")

_IDEMPOTENCY_KEY_MAX = 255
_KINDS = {name: schema for name, schema in schemas.PAYLOADS.items()}
_PAYLOAD_DOC = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"oneOf": [type(s) for s in schemas.PAYLOADS.values()]}
        }
    },
}


def _unknown_event(event: str) -> NotFound:
    return NotFound(
        f"{event!r} is not an event; use one of: " + ", ".join(catalogue.EVENT_NAMES),
        details={"events": list(catalogue.EVENT_NAMES)},
    )


def _idempotency_key() -> str | None:
    key = flask.request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > _IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise BadRequest(
            "the Idempotency-Key header must be 1 to "
            f"{_IDEMPOTENCY_KEY_MAX} printable characters"
        )

    return key


@functools.lru_cache(maxsize=4)
def _signer(secret: str) -> Signer:
    return Signer(secret)


def _verify_producer(body: bytes) -> str | None:
    """Check the producer's signature when ``RELAY_INBOUND_SECRET`` is set.

    Returns the producer's ``webhook-id`` (its message id) when signed.
    """
    secret = stores().settings.inbound_secret
    if not secret:
        return None
    headers = flask.request.headers
    try:
        _signer(secret).verify(body, dict(headers), json_parse=False)
    except Exception as exc:  # malformed headers raise more than one type
        raise Unauthorized(
            "sign the request with RELAY_INBOUND_SECRET (Standard Webhooks "
            "webhook-id, webhook-timestamp within 5 minutes, webhook-signature)"
        ) from exc

    return headers.get("webhook-id")


def _accept(event: str, payload: Any, body: bytes, signed_id: str | None) -> Any:
    """Validate ``payload``, store ``body`` as ``event`` and answer."""
    errors = schemas.payload_errors(event, payload)
    if errors:
        metrics.event_received(event, "invalid")
        raise ValidationFailed(
            f"the payload is not a valid {catalogue.EVENTS[event]}",
            details={"fields": errors},
        )
    # A signing producer's message id identifies its retries as well as an
    # Idempotency-Key would.
    key = _idempotency_key() or signed_id
    digest = idempotency_digest(event, key, payload)
    received = stores().events.receive(event, body, digest)
    summary = received.event.summary()
    outcome = "duplicate" if received.duplicate else "accepted"
    metrics.event_received(event, outcome)
    log.info(
        "event_received",
        extra={
            "event_id": summary["id"],
            "event": event,
            "outcome": outcome,
            "bytes": len(body),
        },
    )
    if received.duplicate:
        summary["duplicate"] = True
        return flask.current_app.json.response({"event": summary}), 200

    return flask.current_app.json.response({"event": summary}), 202


@blp.route("/events/<event>", methods=["POST"])
@blp.doc(
    requestBody=_PAYLOAD_DOC,
    parameters=[
        {
            "name": "event",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": list(catalogue.EVENT_NAMES)},
        }
    ],
)
@blp.alt_response(202, schema=schemas.AcceptedEvent, description="Stored and enqueued")
@blp.alt_response(200, schema=schemas.AcceptedEvent, description="Seen before")
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown event name")
@blp.alt_response(422, schema=schemas.ErrorBody, description="Invalid payload")
def receive(event: str) -> Any:
    """Receive one event; the body is the payload, forwarded byte for byte.

    A repeat within 24 hours (same ``Idempotency-Key``, or the same content
    when no key is sent) answers 200 with the first event and stores nothing.
    """
    if event not in catalogue.EVENTS:
        raise _unknown_event(event)
    body = read_body()
    signed_id = _verify_producer(body)

    return _accept(event, parse(body), body, signed_id)


@blp.route("/events", methods=["POST"])
@blp.doc(
    requestBody={
        "required": True,
        "content": {"application/json": {"schema": schemas.EventEnvelopeBody}},
    }
)
@blp.alt_response(202, schema=schemas.AcceptedEvent, description="Stored and enqueued")
@blp.alt_response(200, schema=schemas.AcceptedEvent, description="Seen before")
@blp.alt_response(422, schema=schemas.ErrorBody, description="Invalid event or payload")
def receive_envelope() -> Any:
    """Receive one event given as ``{"event": name, "payload": {...}}``.

    The payload is forwarded as its own JSON document.
    """
    raw = read_body()
    signed_id = _verify_producer(raw)
    body = require_object(parse(raw))
    event = body.get("event")
    if not isinstance(event, str) or event not in catalogue.EVENTS:
        raise ValidationFailed(
            "event must be one of: " + ", ".join(catalogue.EVENT_NAMES),
            details={
                "fields": {"event": [f"unknown event {event!r}"]},
                "events": list(catalogue.EVENT_NAMES),
            },
        )
    if "payload" not in body:
        raise ValidationFailed(
            "the body has no payload",
            details={"fields": {"payload": ["Missing data for required field."]}},
        )
    payload = body["payload"]

    return _accept(event, payload, jsonio.dumps(payload), signed_id)


# The same path parameter as intake's (``{event}``), since OpenAPI forbids two
# templated paths that differ only in a parameter's name: here it is an id.
@blp.route("/events/<event>", methods=["GET"])
@blp.response(200, schemas.StoredEventEnvelope)
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown or expired id")
def show(event: str) -> Any:
    """One stored event with its payload (``event`` is its id, ``evt_…``)."""
    found = stores().events.get(event)
    if found is None:
        raise NotFound(f"no event has id {event!r} (or it has expired)")

    return {"event": {**found.summary(), "payload": found.payload()}}


def _json_schemas() -> dict[str, dict[str, Any]]:
    spec = APISpec("relay", __version__, "3.1.0")
    converter = OpenAPIConverter("3.1.0", lambda schema: None, spec)
    found = {}
    for kind, schema in _KINDS.items():
        body: dict[str, Any] = converter.schema2jsonschema(schema)  # type: ignore[no-untyped-call]
        body["title"] = kind
        body["additionalProperties"] = True
        found[kind] = body

    return found


_EVENT_TYPES: list[dict[str, Any]] | None = None


@blp.route("/event-types", methods=["GET"])
@blp.response(200, schemas.EventTypeList)
def event_types() -> Any:
    """The 14 events, the payload each carries, and its JSON Schema."""
    global _EVENT_TYPES
    if _EVENT_TYPES is None:
        kinds = _json_schemas()
        _EVENT_TYPES = [
            {"name": name, "payload": kind, "schema": kinds[kind]}
            for name, kind in catalogue.EVENTS.items()
        ]

    return {"event_types": _EVENT_TYPES}

"""marshmallow schemas: the four payload kinds and the API's own shapes.

Payload schemas validate what a producer sends and keep every field they do
not know (``unknown = INCLUDE``): relay forwards what it was given. The API
schemas describe requests and responses for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from relay import catalogue, defaults

SINKS = ("http", "slack", "email")
WEBHOOK_STATES = ("active", "disabled")
DELIVERY_STATES = ("pending", "delivered", "retrying", "dead", "dropped")


class _Payload(Schema):
    class Meta:
        unknown = INCLUDE


def _hrefs(links: dict[str, Any]) -> None:
    """Each link is an object with a string ``href`` (other keys are kept)."""
    for name, link in links.items():
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            raise ValidationError(f"links.{name} must be an object with an href")


def _links() -> fields.Dict:
    """Hypermedia links, as the helpdesk nests them: ``{name: {"href"}}``.

    Checked by one function rather than a nested schema per link: intake
    validates every payload, and a schema load per link was its largest cost.
    """
    return fields.Dict(
        keys=fields.String(),
        values=fields.Dict(),
        validate=_hrefs,
        metadata={
            "additionalProperties": {
                "type": "object",
                "properties": {"href": {"type": "string"}},
                "required": ["href"],
            }
        },
    )


def _text() -> fields.String:
    return fields.String(allow_none=True)


class Ticket(_Payload):
    """A helpdesk ticket (the eight ``ticket_*`` events)."""

    number = fields.Integer(required=True, strict=True)
    title = _text()
    href = fields.String(required=True)
    assignee = _text()
    assigned_group = _text()
    closed_by = _text()
    priority = _text()
    resolution_time = fields.Raw(allow_none=True)
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    links = _links()


class Customer(_Payload):
    """A helpdesk customer (``customer_added``)."""

    email = fields.String(required=True, validate=validate.Length(min=1))
    href = fields.String(required=True)
    first_name = _text()
    last_name = _text()
    about = _text()
    twitter_username = _text()
    title = _text()
    company_name = _text()
    phone_number = _text()
    location = _text()
    website_url = _text()
    linkedin_username = _text()
    custom = fields.Dict(allow_none=True)
    links = _links()


class Message(_Payload):
    """A message on a ticket; a note is a message with ``note: true``."""

    body = fields.String(required=True)
    href = fields.String(required=True)
    note = fields.Boolean(truthy={True}, falsy={False})
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    links = _links()


class Agent(_Payload):
    """A helpdesk agent (``agent_invited``, ``agent_archived``)."""

    email = fields.String(required=True, validate=validate.Length(min=1))
    href = fields.String(required=True)
    first_name = _text()
    last_name = _text()
    links = _links()


#: Payload kind -> an instance of its schema (schemas are reusable).
PAYLOADS: dict[str, Schema] = {
    catalogue.TICKET: Ticket(),
    catalogue.CUSTOMER: Customer(),
    catalogue.MESSAGE: Message(),
    catalogue.AGENT: Agent(),
}


def payload_errors(event: str, payload: Any) -> dict[str, Any] | None:
    """Field-by-field errors of ``payload`` as ``event``'s payload, or None."""
    if not isinstance(payload, dict):
        return {"_schema": [f"{event} carries a JSON object, not {_kind(payload)}"]}
    schema = PAYLOADS[catalogue.EVENTS[event]]
    errors = schema.validate(payload)

    return errors or None


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


# --- API shapes -----------------------------------------------------------


class WebhookCreate(Schema):
    """Body of ``POST /v1/webhooks``."""

    event = fields.String(
        required=True,
        metadata={"enum": list(catalogue.EVENT_NAMES)},
    )
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=defaults.URL_MAX_LENGTH),
    )
    sink = fields.String(validate=validate.OneOf(SINKS))
    description = fields.String(
        allow_none=True,
        validate=validate.Length(max=defaults.DESCRIPTION_MAX_LENGTH),
    )


class Webhook(Schema):
    """A subscription as the API shows it."""

    id = fields.String()
    event = fields.String()
    url = fields.String()
    sink = fields.String(validate=validate.OneOf(SINKS))
    state = fields.String(validate=validate.OneOf(WEBHOOK_STATES))
    secret = fields.String(
        metadata={"description": "In full only in the answer to create."}
    )
    description = fields.String(allow_none=True)
    created_at = fields.String()
    disabled_reason = fields.String(allow_none=True)
    breaker = fields.Dict(
        metadata={"description": "state, failures, open_until, failing_since"}
    )


class WebhookEnvelope(Schema):
    webhook = fields.Nested(Webhook)


class WebhookPage(Schema):
    webhooks = fields.List(fields.Nested(Webhook))
    next = fields.String(allow_none=True)


class WebhookQuery(Schema):
    event = fields.String()
    state = fields.String(validate=validate.OneOf(WEBHOOK_STATES))
    limit = fields.Integer(
        validate=validate.Range(min=1, max=defaults.PAGE_SIZE_MAX),
        load_default=defaults.PAGE_SIZE,
    )
    cursor = fields.String()


class EventEnvelopeBody(Schema):
    """Body of ``POST /v1/events``: the event name beside its payload."""

    event = fields.String(required=True)
    payload = fields.Dict(required=True)


class EventSummary(Schema):
    id = fields.String()
    event = fields.String()
    received_at = fields.String()
    duplicate = fields.Boolean()


class AcceptedEvent(Schema):
    event = fields.Nested(EventSummary)


class StoredEvent(Schema):
    id = fields.String()
    event = fields.String()
    received_at = fields.String()
    payload = fields.Dict()


class StoredEventEnvelope(Schema):
    event = fields.Nested(StoredEvent)


class EventType(Schema):
    name = fields.String()
    payload = fields.String()
    schema = fields.Dict()


class EventTypeList(Schema):
    event_types = fields.List(fields.Nested(EventType))


class ErrorDetail(Schema):
    """What went wrong: a stable code, a sentence, and details."""

    code = fields.String()
    message = fields.String()
    details = fields.Raw()


class ErrorBody(Schema):
    """Every API error: ``{"error": {...}}``."""

    error = fields.Nested(ErrorDetail)


class Attempt(Schema):
    """One try of a delivery and its outcome."""

    number = fields.Integer()
    at = fields.String()
    duration_ms = fields.Integer()
    status = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    message = fields.String()
    response = fields.String()
    details = fields.Dict(
        metadata={"description": "Per-recipient results (email) and the like."}
    )


class Delivery(Schema):
    """One event bound for one webhook."""

    id = fields.String()
    event_id = fields.String()
    event = fields.String()
    webhook_id = fields.String()
    state = fields.String(validate=validate.OneOf(DELIVERY_STATES))
    attempt_count = fields.Integer()
    created_at = fields.String()
    updated_at = fields.String()
    next_attempt_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    dead_at = fields.String()
    url = fields.String(
        metadata={"description": "The URL a retry sends to instead of the webhook's."}
    )
    attempts = fields.List(fields.Nested(Attempt))


class DeliveryEnvelope(Schema):
    delivery = fields.Nested(Delivery)


class DeliveryPage(Schema):
    deliveries = fields.List(fields.Nested(Delivery))
    next = fields.String(allow_none=True)


class DeadLetterPage(Schema):
    dead_letters = fields.List(fields.Nested(Delivery))
    next = fields.String(allow_none=True)


class PageQuery(Schema):
    limit = fields.Integer(
        validate=validate.Range(min=1, max=defaults.PAGE_SIZE_MAX),
        load_default=defaults.PAGE_SIZE,
    )
    cursor = fields.String()


class DeadLetterQuery(PageQuery):
    webhook = fields.String()
    event = fields.String()
    since = fields.AwareDateTime(default_timezone=None)
    sink = fields.String(validate=validate.OneOf(SINKS))
    error = fields.String(
        metadata={"description": "The last error's class, or its start: http_4"}
    )


_MOMENT = "An ISO 8601 time (2026-01-01T00:00Z), or a duration ago (2h)."


class _Ids(fields.List[str]):
    """A list of ids; a bad item fails the list with one message (marshmallow
    would key it by the item's number, which JSON cannot carry as a key)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            raise ValidationError("must be a list of ids (strings)") from exc


class DeadLetterSelection(Schema):
    """Which dead letters a bulk operation takes: ``ids``, ``all``, or filters."""

    ids = _Ids(validate=validate.Length(min=1))
    all = fields.Boolean(load_default=False)
    webhook = fields.String()
    event = fields.String(validate=validate.OneOf(catalogue.EVENT_NAMES))
    sink = fields.String(validate=validate.OneOf(SINKS))
    error = fields.String(
        metadata={"description": "The last error's class, or its start: http_4"}
    )
    since = fields.String(metadata={"description": "Dead since. " + _MOMENT})
    limit = fields.Integer(validate=validate.Range(min=1))
    dry_run = fields.Boolean(load_default=False)


class DeadLetterRetry(DeadLetterSelection):
    """Body of ``POST /v1/dead-letters/retry``."""

    url = fields.String(
        validate=validate.Length(min=1, max=defaults.URL_MAX_LENGTH),
        metadata={"description": "Send to this URL instead of the webhook's."},
    )


class DeadLetterPurge(DeadLetterSelection):
    """Body of ``POST /v1/dead-letters/purge``."""

    older_than = fields.String(
        metadata={"description": "Dead for longer than a duration: 30d."}
    )


class BulkError(Schema):
    id = fields.String()
    message = fields.String()


class BulkOutcome(Schema):
    """What a bulk operation on dead letters came to (or would take)."""

    dry_run = fields.Boolean()
    matched = fields.Integer()
    retried = fields.Integer()
    purged = fields.Integer()
    errors = fields.List(fields.Nested(BulkError))
    dead_letters = fields.List(
        fields.Nested(Delivery), metadata={"description": "In a dry run only."}
    )


class ReplayRequest(Schema):
    """Body of ``POST /v1/replays``."""

    webhook = fields.String(required=True)
    since = fields.String(
        required=True, metadata={"description": "Events received from. " + _MOMENT}
    )
    until = fields.String(metadata={"description": "...and before. " + _MOMENT})
    event = fields.String(
        validate=validate.OneOf(catalogue.EVENT_NAMES),
        metadata={"description": "Events of this name (default: the webhook's)."},
    )
    dry_run = fields.Boolean(load_default=False)


class Replay(Schema):
    """A replay: its window, and what it sent (or would send, in a dry run)."""

    webhook_id = fields.String()
    event = fields.String()
    since = fields.String()
    until = fields.String()
    dry_run = fields.Boolean()
    matched = fields.Integer()
    replayed = fields.Integer()
    errors = fields.List(fields.Nested(BulkError))
    event_ids = fields.List(fields.String(), metadata={"description": "Dry run."})


class ReplayEnvelope(Schema):
    replay = fields.Nested(Replay)

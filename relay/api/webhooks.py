"""``/v1/webhooks``: subscriptions, as in the helpdesk API, extended."""

from __future__ import annotations

from typing import Any

import flask

from relay import schemas
from relay.api import Blueprint, read_json, require_object, stores
from relay.errors import ValidationFailed

blp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks")

_CREATE_FIELDS = schemas.WebhookCreate()


@blp.route("", methods=["POST"])
@blp.doc(
    requestBody={
        "required": True,
        "content": {"application/json": {"schema": schemas.WebhookCreate}},
    }
)
@blp.alt_response(201, schema=schemas.WebhookEnvelope, description="Created")
@blp.alt_response(200, schema=schemas.WebhookEnvelope, description="Exists already")
@blp.alt_response(422, schema=schemas.ErrorBody, description="Invalid event or URL")
def create() -> Any:
    """Subscribe a URL to an event.

    The answer carries the signing secret in full; no other answer does.
    The same event and URL again returns the existing webhook with 200.
    """
    body = require_object(read_json())
    errors = _CREATE_FIELDS.validate(body)
    if errors:
        raise ValidationFailed(
            "the webhook cannot be created", details={"fields": errors}
        )
    webhook, created = stores().webhooks.create(
        body["event"],
        body["url"],
        sink=body.get("sink"),
        description=body.get("description"),
    )
    shown: dict[str, Any] = {"webhook": webhook.public(reveal_secret=created)}
    if not created:
        shown["notice"] = (
            "a webhook for this event and URL exists; it is returned unchanged"
        )
    location = flask.url_for("webhooks.show", webhook_id=webhook.id)

    return shown, 201 if created else 200, {"Location": location}


@blp.route("", methods=["GET"])
@blp.arguments(schemas.WebhookQuery, location="query", as_kwargs=True)
@blp.response(200, schemas.WebhookPage)
def index(
    limit: int,
    event: str | None = None,
    state: str | None = None,
    cursor: str | None = None,
) -> Any:
    """List webhooks, oldest first, a page at a time (``next`` is the cursor)."""
    found, after = stores().webhooks.page(
        event=event, state=state, limit=limit, cursor=cursor
    )

    return {"webhooks": [w.public() for w in found], "next": after}


@blp.route("/<webhook_id>", methods=["GET"])
@blp.response(200, schemas.WebhookEnvelope)
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown id")
def show(webhook_id: str) -> Any:
    """One webhook (its secret shortened) and its circuit breaker."""
    shown = stores().webhooks.get(webhook_id).public()
    shown["breaker"] = stores().breakers.get(webhook_id).public()

    return {"webhook": shown}


@blp.route("/<webhook_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown id")
def delete(webhook_id: str) -> Any:
    """Delete a webhook; its unfinished deliveries are dropped."""
    stores().webhooks.delete(webhook_id)

    return ""


@blp.route("/<webhook_id>/rotate-secret", methods=["POST"])
@blp.alt_response(200, schema=schemas.WebhookEnvelope, description="Rotated")
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown id")
def rotate_secret(webhook_id: str) -> Any:
    """Issue a new signing secret, shown in full here.

    For 24 hours deliveries carry a signature from each secret, so the
    receiver can switch to the new one without rejecting any.
    """
    webhook = stores().webhooks.rotate_secret(webhook_id)

    return {"webhook": webhook.public(reveal_secret=True)}


@blp.route("/<webhook_id>/secret", methods=["GET"])
@blp.alt_response(200, description="The signing secret in full")
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown id")
def secret(webhook_id: str) -> Any:
    """The webhook's signing secret in full, for a receiver that lost it."""
    return {"secret": stores().webhooks.get(webhook_id).secret}

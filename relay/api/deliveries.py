"""Deliveries and dead letters: what happened to each event, and retry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay import schemas
from relay.api import Blueprint, read_json, stores
from relay.deliveries import Delivery

blp = Blueprint("deliveries", __name__, url_prefix="/v1")


def _shown(delivery: Delivery, *, attempts: bool = False) -> dict[str, Any]:
    found = stores().deliveries.attempts(delivery.id) if attempts else None

    return delivery.public(found)


@blp.route("/deliveries/<delivery_id>", methods=["GET"])
@blp.response(200, schemas.DeliveryEnvelope)
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown id")
def show(delivery_id: str) -> Any:
    """One delivery with every attempt."""
    delivery = stores().deliveries.get(delivery_id)

    return {"delivery": _shown(delivery, attempts=True)}


@blp.route("/webhooks/<webhook_id>/deliveries", methods=["GET"])
@blp.arguments(schemas.PageQuery, location="query", as_kwargs=True)
@blp.response(200, schemas.DeliveryPage)
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown webhook")
def for_webhook(webhook_id: str, limit: int, cursor: str | None = None) -> Any:
    """A webhook's deliveries, newest first, a page at a time."""
    stores().webhooks.get(webhook_id)
    found, after = stores().deliveries.page_for_webhook(
        webhook_id, limit=limit, cursor=cursor
    )

    return {"deliveries": [_shown(d) for d in found], "next": after}


@blp.route("/dead-letters", methods=["GET"])
@blp.arguments(schemas.DeadLetterQuery, location="query", as_kwargs=True)
@blp.response(200, schemas.DeadLetterPage)
def dead_letters(
    limit: int,
    cursor: str | None = None,
    webhook: str | None = None,
    event: str | None = None,
    since: datetime | None = None,
) -> Any:
    """Dead letters, newest first, filtered by webhook, event and age."""
    found, after = stores().deliveries.dead_page(
        limit=limit,
        cursor=cursor,
        webhook_id=webhook,
        event=event,
        since_ms=int(since.timestamp() * 1000) if since else None,
    )

    return {"dead_letters": [_shown(d) for d in found], "next": after}


@blp.route("/dead-letters/<delivery_id>", methods=["GET"])
@blp.response(200, schemas.DeliveryEnvelope)
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown id")
def dead_letter(delivery_id: str) -> Any:
    """One dead letter (a delivery) with every attempt."""
    delivery = stores().deliveries.get(delivery_id)

    return {"delivery": _shown(delivery, attempts=True)}


@blp.route("/dead-letters/<delivery_id>/retry", methods=["POST"])
@blp.alt_response(202, schema=schemas.DeliveryEnvelope, description="Queued")
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown id")
@blp.alt_response(422, schema=schemas.ErrorBody, description="Not a dead letter")
def retry(delivery_id: str) -> Any:
    """Send a dead letter again with a fresh retry schedule."""
    from flask import request

    url = None
    if request.content_length:
        body = read_json()
        url = body.get("url") if isinstance(body, dict) else None
    delivery = stores().deliveries.revive(delivery_id, url=url)

    return {"delivery": _shown(delivery)}, 202

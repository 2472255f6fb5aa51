"""Replays: send stored events of a time window to a webhook again."""

from __future__ import annotations

from typing import Any

from relay import schemas
from relay.api import Blueprint, stores
from relay.operations import Operations, Tally, parse_time

blp = Blueprint("replays", __name__, url_prefix="/v1")


@blp.route("/replays", methods=["POST"])
@blp.arguments(schemas.ReplayRequest)
@blp.alt_response(202, schema=schemas.ReplayEnvelope, description="Queued")
@blp.alt_response(200, schema=schemas.ReplayEnvelope, description="Dry run")
@blp.alt_response(404, schema=schemas.ErrorBody, description="Unknown webhook")
@blp.alt_response(422, schema=schemas.ErrorBody, description="Invalid window")
def create(body: dict[str, Any]) -> Any:
    """Send the window's events to the webhook again, each as a new delivery.

    Events are those of ``event`` (default: the webhook's) received in
    ``[since, until)``; each keeps its event id and gets a new delivery id.
    """
    ops = Operations(stores())
    until = body.get("until")
    plan = ops.plan_replay(
        body["webhook"],
        parse_time(body["since"]),
        parse_time(until) if until is not None else None,
        body.get("event"),
    )
    if body["dry_run"]:
        return {"replay": plan.public()}, 200
    # TODO: a large window is replayed within the request; the CLI's
    # `relay replay --rate` paces big ones instead.
    tally = Tally(len(plan.event_ids))
    for result in ops.replay(plan):
        tally.add(result)

    return {"replay": plan.public(tally)}, 202

"""``/healthz``: the process is up and Redis answers."""

from __future__ import annotations

from typing import Any

import redis

from relay.api import Blueprint, stores

blp = Blueprint("health", __name__)


@blp.route("/healthz", methods=["GET"])
@blp.alt_response(200, description="Up, and Redis answers")
@blp.alt_response(503, description="Redis does not answer")
def healthz() -> Any:
    """Liveness for load balancers; needs no token."""
    try:
        stores().client.ping()
    except redis.RedisError as exc:
        return {"status": "unavailable", "redis": type(exc).__name__}, 503

    return {"status": "ok", "redis": "ok"}

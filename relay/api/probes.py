"""``/readyz`` and ``/metrics``: for platform checks and Prometheus.

They stay out of the OpenAPI document, as they are not part of the API:
``/readyz`` answers 503 whenever no worker runs, which is its purpose, and
``/metrics`` answers in Prometheus's text format.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import flask
import redis
from rq import Queue, Worker
from rq.scheduler import RQScheduler

from relay import metrics
from relay.api import stores
from relay.errors import Unauthorized
from relay.stores import Stores

blp = flask.Blueprint("probes", __name__)


def readiness(found: Stores) -> tuple[dict[str, Any], list[str]]:
    """What ``/readyz`` reports, and what is missing for the relay to work:
    Redis answering, a worker whose heartbeat is recent, and RQ's scheduler
    holding the lock of relay's queue (it runs the retries)."""
    try:
        found.client.ping()
    except redis.RedisError as exc:
        return {"redis": type(exc).__name__}, ["redis"]
    queue = Queue(found.settings.queue_name, connection=found.client)
    now = datetime.now(UTC)
    alive = [
        w.name
        for w in Worker.all(queue=queue)
        if w.last_heartbeat is not None
        and (now - _utc(w.last_heartbeat)).total_seconds() <= w.worker_ttl
    ]
    scheduler = bool(found.client.exists(RQScheduler.get_locking_key(queue.name)))
    missing = [] if alive else ["workers"]
    if not scheduler:
        missing.append("scheduler")
    shown = {
        "redis": "ok",
        "workers": len(alive),
        "scheduler": "ok" if scheduler else "missing",
    }

    return shown, missing


def _utc(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@blp.route("/readyz", methods=["GET"])
def readyz() -> Any:
    """Ready: Redis answers, a worker is alive and the scheduler runs."""
    shown, missing = readiness(stores())
    if missing:
        return {"status": "unavailable", "missing": missing, **shown}, 503

    return {"status": "ok", **shown}


@blp.route("/metrics", methods=["GET"])
def scrape() -> Any:
    """Every metric in Prometheus's text format; ``RELAY_METRICS_TOKEN``,
    when set, is required as ``Authorization: Bearer <token>``."""
    token = stores().settings.metrics_token
    if token:
        header = flask.request.headers.get("Authorization", "")
        given = header[7:] if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized(
                "send the metrics token as 'Authorization: Bearer <token>'"
            )
    body, content_type = metrics.exposition(
        stores(), flask.request.headers.get("Accept", "")
    )

    return flask.Response(body, content_type=content_type)

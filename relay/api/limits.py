"""A per-token rate limit on the API (``RELAY_RATE_LIMIT``, e.g. ``100/second``).

Counted in Redis by flask-limiter, so every web process shares one budget.
A request over the limit answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib

import flask
from flask_limiter import Limiter

from relay.config import Settings


def _client() -> str:
    """Who a request counts against: its token (hashed), else its address."""
    request = flask.request
    header = request.headers.get("Authorization", "")
    token = header[7:] if header[:7].lower() == "bearer " else None
    token = token or request.args.get("access_token")
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]

    return "addr:" + (request.remote_addr or "unknown")


def install(app: flask.Flask, settings: Settings) -> Limiter | None:
    """Limit every ``/v1/`` route of ``app`` when a rate limit is set."""
    if not settings.rate_limit:
        return None
    options: dict[str, str | int] = {}
    if settings.redis_url.startswith("rediss://") and not settings.redis_tls_verify:
        options["ssl_cert_reqs"] = "none"

    return Limiter(
        key_func=_client,
        app=app,
        default_limits=[settings.rate_limit],
        default_limits_exempt_when=lambda: not flask.request.path.startswith("/v1/"),
        storage_uri=settings.redis_url,
        storage_options=options,
        strategy="moving-window",
        headers_enabled=True,
        swallow_errors=True,
        key_prefix=settings.key_prefix + "limit",
    )

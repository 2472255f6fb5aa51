"""The web process: the Flask application factory.

Configuration is layered as defaults, then the environment
(:func:`relay.config.from_env`), then the ``settings`` a caller passes (tests,
``relay dev``). The stores live in ``app.extensions["relay"]``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import flask
import redis
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from relay import __version__, console, defaults
from relay.api import (
    deliveries,
    events,
    health,
    limits,
    probes,
    replays,
    too_large,
    webhooks,
)
from relay.config import Settings, from_env
from relay.errors import (
    ApiError,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
    Unauthorized,
)
from relay.jsonio import OrjsonProvider
from relay.stores import Stores

log = logging.getLogger(__name__)


class _Api(Api):  # type: ignore[misc]
    """flask-smorest's Api with relay's error shape."""

    def handle_http_exception(self, error: HTTPException) -> Any:
        return _http_error(error)


def create_app(
    settings: Settings | None = None, client: redis.Redis | None = None
) -> flask.Flask:
    """Build the web app over ``settings`` (default: from the environment)."""
    settings = from_env() if settings is None else settings
    app = flask.Flask("relay")
    app.json_provider_class = OrjsonProvider
    app.json = OrjsonProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="relay",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "access_token": {
                        "type": "apiKey",
                        "in": "query",
                        "name": "access_token",
                    },
                }
            },
            "security": [{"bearer": []}, {"access_token": []}],
        },
    )
    app.extensions["relay"] = Stores.open(settings, client)
    api = _Api(app)
    for blueprint in (webhooks.blp, events.blp, deliveries.blp, health.blp):
        api.register_blueprint(blueprint)
    api.register_blueprint(replays.blp)
    app.register_blueprint(probes.blp)
    console.install(app)
    limits.install(app, settings)
    app.before_request(_authenticate)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(StoreUnavailable, _unavailable)
    app.register_error_handler(redis.ConnectionError, _unavailable)
    app.register_error_handler(redis.TimeoutError, _unavailable)
    app.register_error_handler(Exception, _unexpected)

    return app


def _authenticate() -> None:
    """Require the API token on every ``/v1/`` route when one is set."""
    token = flask.current_app.extensions["relay"].settings.api_token
    if not token or not flask.request.path.startswith("/v1/"):
        return
    request = flask.request
    header = request.headers.get("Authorization", "")
    given = header[7:] if header[:7].lower() == "bearer " else None
    if given is None:
        given = request.args.get("access_token")
    if given is None or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized(
            "send the API token as 'Authorization: Bearer <token>' "
            "or ?access_token=<token>"
        )


def _api_error(error: ApiError) -> Any:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}

    return error.to_dict(), error.status, headers


def _unavailable(error: Exception) -> Any:
    log.warning("redis unavailable path=%s error=%s", flask.request.path, error)
    body = {
        "error": {
            "code": "store_unavailable",
            "message": "the event store is unavailable; nothing was stored, "
            "retry shortly",
        }
    }

    return body, 503, {"Retry-After": str(defaults.UNAVAILABLE_RETRY_AFTER)}


def _http_error(error: HTTPException) -> Any:
    status = error.code or 500
    if status == 413:
        return _api_error(too_large())
    if status == 404:
        return _api_error(NotFound(f"no route for {flask.request.path}"))
    if status == 429:
        body = {
            "error": {
                "code": "rate_limited",
                "message": f"more than {error.description} for this token; "
                "retry after the time in Retry-After",
            }
        }
        return body, 429
    if status == 405:
        allowed = ", ".join(getattr(error, "valid_methods", None) or [])
        failure = MethodNotAllowed(
            f"{flask.request.method} is not allowed here; use {allowed}"
        )
        return failure.to_dict(), 405, {"Allow": allowed}
    body = {
        "error": {
            "code": (error.name or "error").lower().replace(" ", "_"),
            "message": error.description or error.name,
        }
    }

    return body, status


def _unexpected(error: Exception) -> Any:
    if isinstance(error, HTTPException):
        return _http_error(error)
    log.exception("unhandled error path=%s", flask.request.path)
    body = {"error": {"code": "internal_error", "message": "an internal error"}}

    return body, 500

"""The HTTP API: one blueprint per resource, and what they share.

Bodies are read by :func:`read_json` only: it checks the content type and
size and parses strictly, so every malformed request becomes a JSON error
from :mod:`relay.errors`, never a 500.
"""

from __future__ import annotations

from typing import Any

import flask
import marshmallow as ma
from flask_smorest import Blueprint as _Blueprint
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from relay import jsonio
from relay.errors import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from relay.stores import Stores

#: Deepest nesting of arrays and objects accepted in a body. orjson parses up
#: to 1024 levels but serializes only about 255, and relay serializes every
#: payload again (its idempotency digest, its answers) inside levels of its own.
MAX_NESTING = 200


def stores() -> Stores:
    """The stores of the running app."""
    return flask.current_app.extensions["relay"]  # type: ignore[no-any-return]


def is_json(mimetype: str) -> bool:
    """True for ``application/json`` and ``application/*+json``."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def read_body() -> bytes:
    """The request body as bytes, after the content type and size checks."""
    request = flask.request
    if not is_json(request.mimetype):
        shown = request.content_type or "none"
        raise UnsupportedMediaType(
            f"send the body as application/json (Content-Type was {shown})"
        )
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise too_large() from exc
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(body) >= limit:
        # A body without Content-Length (chunked) is read only up to the limit,
        # and werkzeug then stops without saying whether more was sent.
        if request.environ["wsgi.input"].read(1):
            raise too_large()

    return body


def too_large() -> PayloadTooLarge:
    limit = flask.current_app.config["MAX_CONTENT_LENGTH"]

    return PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")


def parse(body: bytes) -> Any:
    """Parse ``body`` strictly; malformed JSON is a :class:`BadRequest`."""
    if not body:
        raise BadRequest("the body is empty; send a JSON object")
    try:
        value = jsonio.loads(body)
    except jsonio.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", details=str(exc)) from exc
    # Fewer brackets than the limit cannot nest past it: walk only when the
    # bytes leave the question open.
    brackets = body.count(b"[") + body.count(b"{")
    if brackets > MAX_NESTING and _deeper_than(value, MAX_NESTING):
        raise BadRequest(f"the body is nested deeper than {MAX_NESTING} levels")

    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """True if ``value`` nests arrays and objects more than ``limit`` deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)

    return False


def read_json() -> Any:
    """The request body, checked and parsed."""
    return parse(read_body())


def require_object(value: Any, what: str = "the body") -> dict[str, Any]:
    """``value`` if it is a JSON object, else a :class:`ValidationFailed`."""
    if not isinstance(value, dict):
        raise ValidationFailed(f"{what} must be a JSON object")

    return value


_LOCATIONS = {"json", "query", "querystring", "view_args", "headers", "form"}


class _Parser(FlaskParser):
    """webargs parser that reads bodies through :func:`read_json` and
    reports invalid arguments as :class:`ValidationFailed`."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        return require_object(read_json())

    def handle_error(
        self,
        error: ma.ValidationError,
        req: flask.Request,
        schema: ma.Schema,
        **kwargs: Any,
    ) -> Any:
        messages = error.normalized_messages()  # type: ignore[no-untyped-call]
        if len(messages) == 1 and next(iter(messages)) in _LOCATIONS:
            messages = next(iter(messages.values()))
        raise ValidationFailed(
            "the request is not valid", details={"fields": _string_keys(messages)}
        )


def _string_keys(value: Any) -> Any:
    """``value`` with every mapping key a string (marshmallow numbers the
    items of a list; JSON objects need string keys)."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]

    return value


class Blueprint(_Blueprint):  # type: ignore[misc]
    """A flask-smorest blueprint that uses relay's parser."""

    ARGUMENTS_PARSER = _Parser()

"""Strict, fast JSON for the whole relay (orjson).

The standard library's parser accepts ``NaN`` and lone surrogates and raises
``RecursionError`` on deep nesting; orjson rejects all three as malformed,
which is what a relay that forwards JSON to other systems needs.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import JSONProvider

JSONDecodeError = orjson.JSONDecodeError


def loads(data: bytes | str) -> Any:
    """Parse ``data``; raises :class:`JSONDecodeError` on anything not JSON."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Serialize ``value`` compactly."""
    return orjson.dumps(value)


def canonical(value: Any) -> bytes:
    """Serialize ``value`` with sorted keys: equal content, equal bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class OrjsonProvider(JSONProvider):
    """Flask's JSON provider backed by orjson."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._prepare_response_obj(args, kwargs)
        app: Any = self._app  # a Flask app; its sansio type has no body

        return app.response_class(orjson.dumps(obj), mimetype="application/json")

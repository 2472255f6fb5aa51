"""Log lines: one JSON object per line in production, readable in a terminal.

A line is a constant event name (the message) plus fields passed through
``extra``::

    log.info("attempt", extra={"delivery_id": d.id, "status": 200})

renders as ``{"time": …, "level": "info", "logger": …, "msg": "attempt",
"delivery_id": …, "status": 200}`` with ``RELAY_LOG_FORMAT=json``, and as
``12:00:01.250 INFO  workers.deliver attempt delivery_id=dlv_… status=200``
with ``text``. The event name is under ``msg`` because ``event`` is relay's
word for a received event, a field of many lines.

:func:`configure` sets up the root logger once per process from
``RELAY_LOG_LEVEL`` and ``RELAY_LOG_FORMAT`` (default: text on a terminal,
JSON otherwise). Fields whose name says they hold a secret (``secret``,
``token``, ``signature``, ``password``, ``authorization``) or a whole payload
(``payload``, ``body``) are written as ``[redacted]``: a safety net, since
callers are expected never to pass them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from relay import defaults
from relay.errors import ConfigError

FORMATS = ("json", "text")

#: Attributes every LogRecord has; anything else on a record came in ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

#: Parts of field names whose values are never written.
_SENSITIVE = ("secret", "token", "signature", "password", "authorization")
_WHOLE = frozenset({"payload", "body"})
REDACTED = "[redacted]"


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record carries (its ``extra``), with secrets redacted."""
    found: dict[str, Any] = {}
    for name, value in record.__dict__.items():
        if name in _STANDARD or name.startswith("_"):
            continue
        lowered = name.lower()
        if lowered in _WHOLE or any(part in lowered for part in _SENSITIVE):
            value = REDACTED
        found[name] = value

    return found


def _stamp(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created, tz=UTC)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _stamp(record).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in fields(record).items():
            line.setdefault(name, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)

        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger msg key=value …`` on one line (then a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _stamp(record).strftime("%H:%M:%S.%f")[:-3],
            f"{record.levelname:<5}",
            record.name,
            record.getMessage(),
        ]
        parts += [f"{k}={_shown(v)}" for k, v in fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)

        return line


def _shown(value: Any) -> str:
    """A field's value for the text format: quoted when it has spaces."""
    text = "-" if value is None else str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return orjson.dumps(text).decode()

    return text


def _level(raw: str) -> int:
    level = logging.getLevelName(raw.strip().upper())
    if not isinstance(level, int):
        raise ConfigError(
            f"RELAY_LOG_LEVEL={raw!r} is not a level; use DEBUG, INFO, WARNING or ERROR"
        )

    return level


def configure(
    *,
    level: str | None = None,
    fmt: str | None = None,
    stream: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send every log line to ``stream`` (stdout) in one format; returns the
    handler. Calling it again replaces the handler it installed before."""
    environ = os.environ if environ is None else environ
    stream = sys.stdout if stream is None else stream
    level = level or environ.get("RELAY_LOG_LEVEL") or defaults.LOG_LEVEL
    fmt = (fmt or environ.get("RELAY_LOG_FORMAT") or "").strip().lower()
    if not fmt:
        fmt = "text" if _is_terminal(stream) else "json"
    if fmt not in FORMATS:
        raise ConfigError(f"RELAY_LOG_FORMAT={fmt!r} is not a format; use json or text")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._relay = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_relay", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(level))

    return handler


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)

    return bool(isatty and isatty())

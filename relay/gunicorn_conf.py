"""gunicorn settings for the web process.

``gunicorn -c python:relay.gunicorn_conf 'relay.app:create_app()'`` (the
Procfile's ``web`` line). Binds ``$PORT``, runs ``$WEB_CONCURRENCY`` workers,
and writes the access log to stdout with ``access_token`` values scrubbed.
relay's own lines follow ``RELAY_LOG_FORMAT`` (:mod:`relay.logs`); the
workers count into one folder for ``/metrics`` (:mod:`relay.metrics`).
"""

from __future__ import annotations

import os
import re
from typing import Any

from gunicorn.glogging import Logger

from relay import logs as _logs
from relay import metrics as _metrics
from relay.config import from_env as _from_env

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"
# A dyno gets 30 s between SIGTERM and SIGKILL.
graceful_timeout = 25
logger_class = "relay.gunicorn_conf.ScrubbingLogger"


def on_starting(server: Any) -> None:
    """In the master, before the workers fork (they inherit both): relay's
    log format, and the folder the workers count into."""
    _logs.configure()
    _metrics.use_multiprocess(_from_env())


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: forget its live gauges (prometheus-client's rule)."""
    _metrics.process_exited(worker.pid)


_TOKEN = re.compile(r"(access_token=)[^&\s]*", re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` with every ``access_token`` query value replaced."""
    return _TOKEN.sub(r"\1[scrubbed]", text)


class ScrubbingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, never writing an ``access_token`` to the log."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> Any:
        found = super().atoms(resp, req, environ, request_time)
        if "access_token" not in environ.get("QUERY_STRING", "").lower():
            return found
        for name in ("r", "q", "{raw_uri}e", "{query_string}e"):
            if isinstance(found.get(name), str):
                found[name] = scrub(found[name])

        return found

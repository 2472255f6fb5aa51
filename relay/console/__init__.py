"""The console: server-rendered pages for operators at ``/console``.

Webhooks with their state, success rate and last attempt (enable, disable,
delete); a webhook's deliveries and each delivery's attempts; dead letters
with filters and Retry; charts of the last hour. Templates are Jinja (every
value escaped), the charts are SVG drawn on the server, and the little
JavaScript there is (``static/console.js``) is served by relay itself.
Logging in is :mod:`relay.console.auth`.
"""

from __future__ import annotations

import flask

from relay.console import auth, views


def install(app: flask.Flask) -> None:
    """Serve the console from ``app``, with its session cookie settings."""
    app.config.update(
        SESSION_COOKIE_NAME="relay_console",
        SESSION_COOKIE_PATH=auth.PREFIX,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=auth.SESSION_LIFETIME,
    )
    app.session_interface = auth.ConsoleSessions()
    app.register_blueprint(views.blp)

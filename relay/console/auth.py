"""Logging in to the console: a signed session cookie and CSRF tokens.

The console asks for the API token once, in a form, and keeps a Flask
session cookie (signed, not encrypted: it holds nothing secret) for twelve
hours. The cookie is signed with ``RELAY_SECRET_KEY`` when set; otherwise
with a key derived from the API token and random bytes kept in Redis
(``Keys.console_salt``), so that every web process, on every machine,
signs alike, and changing the token ends every session. The session also
holds a digest of the token it was opened with: a changed token ends
sessions under ``RELAY_SECRET_KEY`` too.

Every form carries the session's CSRF token; a POST without it is refused.
Without an API token the console is open, as the API is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

import flask
import redis
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

from relay.errors import BadRequest
from relay.stores import Stores

#: How long a console login lasts.
SESSION_LIFETIME = timedelta(hours=12)

#: Where the console lives; the session cookie is sent there only.
PREFIX = "/console"

_KEY = "relay.console.key"


def _stores(app: flask.Flask) -> Stores:
    return app.extensions["relay"]  # type: ignore[no-any-return]


def secret_key(app: flask.Flask) -> bytes:
    """The key console sessions are signed with (read once per process)."""
    cached: bytes | None = app.extensions.get(_KEY)
    if cached is not None:
        return cached
    stores = _stores(app)
    settings = stores.settings
    if settings.secret_key:
        key = settings.secret_key.encode()
    else:
        salt_key = stores.deliveries.keys.console_salt
        stores.client.set(salt_key, secrets.token_hex(32), nx=True)
        raw = stores.client.get(salt_key)
        salt = raw if isinstance(raw, bytes) else str(raw or "").encode()
        token = (settings.api_token or "").encode()
        key = hmac.new(salt, b"relay console\x1f" + token, hashlib.sha256).digest()
    app.extensions[_KEY] = key

    return key


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, for the console's paths only, signed
    with :func:`secret_key`; the cookie is ``Secure`` over HTTPS."""

    def open_session(self, app: flask.Flask, request: flask.Request) -> Any:
        if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
            return None  # the API keeps no session
        try:
            return super().open_session(app, request)
        except redis.RedisError:  # no key to read the cookie with: a blank one
            return self.session_class()

    def save_session(
        self, app: flask.Flask, session: Any, response: flask.Response
    ) -> None:
        try:
            super().save_session(app, session, response)
        except redis.RedisError:  # no key to sign with: the cookie stays as it was
            pass

    def get_signing_serializer(self, app: flask.Flask) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            secret_key(app),
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )

    def get_cookie_secure(self, app: flask.Flask) -> bool:
        secure = bool(app.config["SESSION_COOKIE_SECURE"])

        return secure or (flask.has_request_context() and flask.request.is_secure)


def _token() -> str | None:
    return _stores(flask.current_app).settings.api_token


def _fingerprint(token: str) -> str:
    key = secret_key(flask.current_app)

    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]


def open_console() -> bool:
    """True when no API token is set: the console needs no login."""
    return not _token()


def logged_in() -> bool:
    """True when this session may use the console."""
    token = _token()
    if not token:
        return True
    shown = flask.session.get("auth")

    return isinstance(shown, str) and hmac.compare_digest(shown, _fingerprint(token))


def log_in(given: str) -> bool:
    """Open a session if ``given`` is the API token; False if it is not."""
    token = _token()
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        return False
    flask.session.clear()
    flask.session["auth"] = _fingerprint(token)
    flask.session["csrf"] = secrets.token_urlsafe(32)
    flask.session.permanent = True

    return True


def log_out() -> None:
    """End the session."""
    flask.session.clear()


def csrf_token() -> str:
    """The session's CSRF token, made on first use."""
    token = flask.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        flask.session["csrf"] = token

    return token


def check_csrf() -> None:
    """Refuse a form posted without this session's CSRF token."""
    expected = flask.session.get("csrf")
    given = flask.request.form.get("csrf", "")
    if not isinstance(expected, str) or not hmac.compare_digest(
        expected.encode(), given.encode()
    ):
        raise BadRequest(
            "the form has expired or did not come from this console; "
            "reload the page and try again"
        )

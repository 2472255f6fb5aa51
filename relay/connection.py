"""Redis connections, and the key names relay uses in Redis."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from relay import defaults
from relay.config import Settings


def connect(settings: Settings, *, blocking: bool = False) -> redis.Redis:
    """A client for ``settings.redis_url`` with explicit timeouts.

    ``rediss://`` URLs use TLS; with ``redis_tls_verify`` off the server's
    certificate is not checked (hosted Redis offerings often present a
    self-signed one). A ``blocking`` client (for workers, which wait on
    the queue) has no read timeout.
    """
    options: dict[str, object] = {
        "socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT,
        "socket_timeout": None if blocking else settings.redis_timeout,
        "health_check_interval": 30,
    }
    if settings.redis_url.startswith("rediss://") and not settings.redis_tls_verify:
        options["ssl_cert_reqs"] = "none"

    return redis.Redis.from_url(settings.redis_url, **options)


def text(value: Any) -> str:
    """A Redis reply (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def redacted(url: str) -> str:
    """``url`` with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""

    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class Keys:
    """Every Redis key name relay uses, under one prefix.

    ``Keys("relay:").event("evt_1")`` is ``relay:evt:evt_1``. Names are built
    here only, so the layout can be read in one place:

    - ``evt:<id>`` hash: event name, received_at (ms), body (bytes as
      received), dead (count of dead letters holding it)
    - ``events`` sorted set: event ids by received_at, for replay windows
    - ``idem:<digest>`` string: the event id an idempotency key maps to
    - ``work`` stream: fan-out and attempt items for workers
    - ``wh:<id>`` hash: a webhook; ``whs`` / ``whs:event:<name>`` /
      ``whs:state:<state>`` sorted sets of webhook ids (lexical order);
      ``whs:url:<digest>`` string: the webhook for an (event, url) pair;
      ``whs:version`` counter bumped on every change
    - ``dlv:<id>`` hash: a delivery; ``dlv:<id>:attempts`` list of attempts
    - ``wh:<id>:deliveries`` sorted set: a webhook's delivery ids by time
    - ``pending`` sorted set: unfinished delivery ids by creation time
    - ``dead`` sorted set: dead-letter (delivery) ids by time of death
    - ``parked`` sorted set: webhooks with parked attempts, by wake time;
      ``parked:<webhook id>`` list: its parked attempts (``id|number``)
    - ``lock:<delivery id>`` string: held while an attempt is in flight
    - ``breaker:<webhook id>`` hash: the webhook's circuit breaker and the
      failures counted towards disabling it; ``breakers:open`` set: the
      webhooks whose breaker is not closed
    - ``stats:<minute>`` hash: counts of one minute (minutes since the
      epoch): ``delivered``, ``failed`` (attempts), ``dead``, ``retried``
      (dead letters sent again), ``retrying`` (failed attempts with another
      scheduled), ``attempts`` and their total ``duration_ms``
    - ``console:salt`` string: random bytes the console's session key is
      derived from (with the API token)
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events = prefix + "events"
        self.work = prefix + "work"
        self.webhooks = prefix + "whs"
        self.webhooks_version = prefix + "whs:version"
        self.pending = prefix + "pending"
        self.dead = prefix + "dead"
        self.parked = prefix + "parked"
        self.console_salt = prefix + "console:salt"

    def event(self, event_id: str) -> str:
        return f"{self.prefix}evt:{event_id}"

    def idempotency(self, digest: str) -> str:
        return f"{self.prefix}idem:{digest}"

    def webhook(self, webhook_id: str) -> str:
        return f"{self.prefix}wh:{webhook_id}"

    def webhooks_by_event(self, event: str) -> str:
        return f"{self.prefix}whs:event:{event}"

    def webhooks_by_state(self, state: str) -> str:
        return f"{self.prefix}whs:state:{state}"

    def webhook_url(self, digest: str) -> str:
        return f"{self.prefix}whs:url:{digest}"

    def webhook_deliveries(self, webhook_id: str) -> str:
        return f"{self.prefix}wh:{webhook_id}:deliveries"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}dlv:{delivery_id}"

    def attempts(self, delivery_id: str) -> str:
        return f"{self.prefix}dlv:{delivery_id}:attempts"

    def lock(self, delivery_id: str) -> str:
        return f"{self.prefix}lock:{delivery_id}"

    @property
    def open_breakers(self) -> str:
        return f"{self.prefix}breakers:open"

    def parked_list(self, webhook_id: str) -> str:
        return f"{self.prefix}parked:{webhook_id}"

    def breaker(self, webhook_id: str) -> str:
        return f"{self.prefix}breaker:{webhook_id}"

    def stats(self, minute: int) -> str:
        return f"{self.prefix}stats:{minute}"

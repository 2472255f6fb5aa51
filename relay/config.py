"""Settings, layered: the defaults module, then ``RELAY_*`` environment
variables (plus the platform's ``REDIS_URL`` and ``PORT``), then explicit
overrides (tests, ``relay dev``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from relay import defaults
from relay.errors import ConfigError
from relay.netguard import IPNetwork, parse_networks


@dataclasses.dataclass(frozen=True)
class Settings:
    """The relay's configuration, read once per process."""

    redis_url: str = defaults.REDIS_URL
    redis_tls_verify: bool = True
    redis_timeout: float = defaults.REDIS_SOCKET_TIMEOUT
    key_prefix: str = defaults.KEY_PREFIX
    api_token: str | None = None
    metrics_token: str | None = None
    secret_key: str | None = None
    inbound_secret: str | None = None
    rate_limit: str | None = None
    max_body_bytes: int = defaults.MAX_BODY_BYTES
    allow_private_targets: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    idempotency_ttl: int = defaults.IDEMPOTENCY_TTL
    event_retention: int = defaults.EVENT_RETENTION
    delivery_timeout: float = defaults.DELIVERY_TIMEOUT
    retry_schedule: tuple[float, ...] = defaults.RETRY_SCHEDULE
    retry_jitter: float = defaults.RETRY_JITTER
    worker_concurrency: int = defaults.WORKER_CONCURRENCY
    webhook_concurrency: int = defaults.WEBHOOK_CONCURRENCY
    worker_batch: int = defaults.WORKER_BATCH
    recovery_after: float = defaults.RECOVERY_AFTER
    breaker_threshold: int = defaults.BREAKER_THRESHOLD
    breaker_pause: float = defaults.BREAKER_PAUSE
    breaker_pause_max: float = defaults.BREAKER_PAUSE_MAX
    disable_after: float = defaults.DISABLE_AFTER
    disable_min_failures: int = defaults.DISABLE_MIN_FAILURES
    alert_url: str | None = None
    smtp_url: str | None = None
    mail_from: str = defaults.MAIL_FROM
    mail_console: bool = False
    port: int = defaults.PORT

    @property
    def queue_name(self) -> str:
        """The RQ queue that relay's scheduled work runs on."""
        return self.key_prefix.rstrip(":") or "relay"

    @property
    def max_attempts(self) -> int:
        """Attempts a delivery gets: one, then one per schedule step."""
        return len(self.retry_schedule) + 1

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _schedule(value: str) -> tuple[float, ...]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    steps = tuple(float(p) for p in parts)
    if any(step < 0 for step in steps):
        raise ValueError("negative delay")
    return steps


#: Environment variable -> (settings field, parser).
_ENV: dict[str, tuple[str, Any]] = {
    "REDIS_URL": ("redis_url", str),
    "RELAY_REDIS_TLS_VERIFY": ("redis_tls_verify", _flag),
    "RELAY_REDIS_TIMEOUT": ("redis_timeout", float),
    "RELAY_KEY_PREFIX": ("key_prefix", str),
    "RELAY_API_TOKEN": ("api_token", str),
    "RELAY_METRICS_TOKEN": ("metrics_token", str),
    "RELAY_SECRET_KEY": ("secret_key", str),
    "RELAY_INBOUND_SECRET": ("inbound_secret", str),
    "RELAY_RATE_LIMIT": ("rate_limit", str),
    "RELAY_MAX_BODY_BYTES": ("max_body_bytes", int),
    "RELAY_ALLOW_PRIVATE_TARGETS": ("allow_private_targets", _flag),
    "RELAY_ALLOWED_NETWORKS": ("allowed_networks", parse_networks),
    "RELAY_IDEMPOTENCY_TTL": ("idempotency_ttl", int),
    "RELAY_EVENT_RETENTION": ("event_retention", int),
    "RELAY_DELIVERY_TIMEOUT": ("delivery_timeout", float),
    "RELAY_RETRY_SCHEDULE": ("retry_schedule", _schedule),
    "RELAY_RETRY_JITTER": ("retry_jitter", float),
    "RELAY_WORKER_CONCURRENCY": ("worker_concurrency", int),
    "RELAY_WEBHOOK_CONCURRENCY": ("webhook_concurrency", int),
    "RELAY_WORKER_BATCH": ("worker_batch", int),
    "RELAY_RECOVERY_AFTER": ("recovery_after", float),
    "RELAY_BREAKER_THRESHOLD": ("breaker_threshold", int),
    "RELAY_BREAKER_PAUSE": ("breaker_pause", float),
    "RELAY_DISABLE_AFTER": ("disable_after", float),
    "RELAY_ALERT_URL": ("alert_url", str),
    "RELAY_SMTP_URL": ("smtp_url", str),
    "RELAY_MAIL_FROM": ("mail_from", str),
    "RELAY_MAIL_CONSOLE": ("mail_console", _flag),
    "PORT": ("port", int),
}


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``environ`` (default: the process environment).

    An empty variable counts as unset. A value that does not parse raises
    :class:`~relay.errors.ConfigError` naming the variable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (field, parse) in _ENV.items():
        raw = environ.get(name, "")
        if not raw:
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r} is not valid: {exc}") from exc
    values.update(overrides)

    return Settings(**values)

"""The webhook store: subscriptions of a URL to one event name."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from relay import catalogue, defaults, ids, netguard
from relay.config import Settings
from relay.connection import Keys, text
from relay.errors import NotFound, ValidationFailed

ACTIVE = "active"
DISABLED = "disabled"
STATES = (ACTIVE, DISABLED)
SLACK_HOST = "hooks.slack.com"

# Create unless the (event, url) pair exists; returns the existing id or nil.
_CREATE = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
redis.call('ZADD', KEYS[5], 0, ARGV[1])
redis.call('INCR', KEYS[6])
return false
"""

# Delete a webhook and its index entries; returns 1 if it existed.
_DELETE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
for i = 3, #KEYS - 1 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('INCR', KEYS[#KEYS])
return 1
"""

# Move a webhook between states; returns 0 if it does not exist.
_SET_STATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(ARGV, 3))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('INCR', KEYS[4])
return 1
"""


# Keep the current secret as the previous one until ARGV[2] and set ARGV[1].
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'secret')
if not current then return 0 end
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'previous_secret', current,
  'previous_until', ARGV[2])
redis.call('INCR', KEYS[2])
return 1
"""


@dataclasses.dataclass(frozen=True)
class Webhook:
    """A subscription: deliver ``event`` to ``url`` through ``sink``."""

    id: str
    event: str
    url: str
    sink: str
    state: str
    secret: str
    created_ms: int
    description: str | None = None
    disabled_reason: str | None = None
    disabled_ms: int | None = None
    previous_secret: str | None = None
    previous_until_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    def signing_secrets(self, now_ms: int) -> list[str]:
        """The secrets to sign with: the current one, and for a day after a
        rotation the one before it, so receivers can switch without a gap."""
        found = [self.secret]
        if self.previous_secret and (self.previous_until_ms or 0) > now_ms:
            found.append(self.previous_secret)

        return found

    def public(self, *, reveal_secret: bool = False) -> dict[str, Any]:
        """The webhook as the API shows it; the secret only when revealed."""
        secret = self.secret if reveal_secret else mask_secret(self.secret)
        shown: dict[str, Any] = {
            "id": self.id,
            "event": self.event,
            "url": self.url,
            "sink": self.sink,
            "state": self.state,
            "secret": secret,
            "description": self.description,
            "created_at": ids.iso(self.created_ms),
        }
        if self.state == DISABLED:
            shown["disabled_reason"] = self.disabled_reason
            shown["disabled_at"] = (
                ids.iso(self.disabled_ms) if self.disabled_ms else None
            )

        return shown

    @classmethod
    def from_hash(cls, fields: dict[Any, Any]) -> Webhook:
        text = {k.decode(): v.decode() for k, v in fields.items()}
        disabled = text.get("disabled_at")

        return cls(
            id=text["id"],
            event=text["event"],
            url=text["url"],
            sink=text["sink"],
            state=text["state"],
            secret=text["secret"],
            created_ms=int(text["created_at"]),
            description=text.get("description") or None,
            disabled_reason=text.get("disabled_reason") or None,
            disabled_ms=int(disabled) if disabled else None,
            previous_secret=text.get("previous_secret") or None,
            previous_until_ms=int(text["previous_until"])
            if text.get("previous_until")
            else None,
        )


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def mask_secret(secret: str) -> str:
    """Enough of ``secret`` to tell two apart, never enough to sign."""
    return secret[:10] + "…"


def implied_sink(url: str) -> str:
    """The sink a URL implies: mailto → email, Slack's host → slack, else http."""
    parts = urlsplit(url)
    if parts.scheme == "mailto":
        return "email"
    if parts.hostname == SLACK_HOST:
        return "slack"

    return "http"


def mail_recipients(url: str) -> list[str]:
    """The addresses of a ``mailto:`` URL, in order."""
    path = unquote(urlsplit(url).path)

    return [a.strip() for a in path.split(",") if a.strip()]


def url_problem(url: str, sink: str | None) -> str | None:
    """Why ``url`` cannot be a webhook URL (for ``sink``), or None."""
    if len(url) > defaults.URL_MAX_LENGTH:
        return f"is longer than {defaults.URL_MAX_LENGTH} characters"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "contains white space or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:  # for example an unclosed IPv6 bracket: http://[::1
        return "is not a well-formed URL"
    sink = sink or implied_sink(url)
    if sink == "email":
        if parts.scheme != "mailto":
            return "must be a mailto: URL for the email sink"
        addresses = mail_recipients(url)
        if not addresses or any(a.count("@") != 1 for a in addresses):
            return "must name one or more addresses, as mailto:a@example.com"
        return None
    if parts.scheme not in ("http", "https"):
        return "must be an absolute http:// or https:// URL (or mailto: for email)"
    if not parts.hostname:
        return "has no host"
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "has an invalid port"

    return None


class WebhookStore:
    """Creates, finds, lists, changes and deletes webhooks."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        self._create = client.register_script(_CREATE)
        self._delete = client.register_script(_DELETE)
        self._set_state = client.register_script(_SET_STATE)
        self._rotate = client.register_script(_ROTATE)

    def create(
        self,
        event: str,
        url: str,
        *,
        sink: str | None = None,
        description: str | None = None,
    ) -> tuple[Webhook, bool]:
        """Subscribe ``url`` to ``event``; returns (webhook, created).

        An existing subscription of the same URL to the same event is
        returned unchanged with ``created`` False.
        """
        check(event, url, sink, self.settings)
        sink = sink or implied_sink(url)
        webhook = Webhook(
            id=ids.new_id(ids.WEBHOOK),
            event=event,
            url=url,
            sink=sink,
            state=ACTIVE,
            secret=new_secret(),
            created_ms=ids.now_ms(),
            description=description,
        )
        fields = {
            "id": webhook.id,
            "event": event,
            "url": url,
            "sink": sink,
            "state": ACTIVE,
            "secret": webhook.secret,
            "created_at": webhook.created_ms,
            "description": description or "",
        }
        existing = self._create(
            keys=[
                self._url_key(event, url),
                self.keys.webhook(webhook.id),
                self.keys.webhooks,
                self.keys.webhooks_by_event(event),
                self.keys.webhooks_by_state(ACTIVE),
                self.keys.webhooks_version,
            ],
            args=[webhook.id, *[str(x) for pair in fields.items() for x in pair]],
        )
        if existing is None:
            return webhook, True

        return self.get(text(existing)), False

    def find(self, webhook_id: str) -> Webhook | None:
        """The webhook, or None."""
        fields = self.client.hgetall(self.keys.webhook(webhook_id))

        return Webhook.from_hash(fields) if fields else None

    def get(self, webhook_id: str) -> Webhook:
        """The webhook; raises :class:`NotFound` for an unknown id."""
        webhook = self.find(webhook_id)
        if webhook is None:
            raise NotFound(f"no webhook has id {webhook_id!r}")

        return webhook

    def many(self, webhook_ids: list[str]) -> list[Webhook]:
        """The webhooks of ``webhook_ids`` that exist, in that order."""
        pipe = self.client.pipeline(transaction=False)
        for webhook_id in webhook_ids:
            pipe.hgetall(self.keys.webhook(webhook_id))

        return [Webhook.from_hash(f) for f in pipe.execute() if f]

    def every(self) -> list[Webhook]:
        """Every webhook, whatever its event and state."""
        members = self.client.zrange(self.keys.webhooks, 0, -1)

        return self.many([text(m) for m in members])

    def page(
        self,
        *,
        event: str | None = None,
        state: str | None = None,
        limit: int = defaults.PAGE_SIZE,
        cursor: str | None = None,
    ) -> tuple[list[Webhook], str | None]:
        """One page of webhooks, oldest first, and the cursor of the next."""
        if event is not None:
            index = self.keys.webhooks_by_event(event)
        elif state is not None:
            index = self.keys.webhooks_by_state(state)
            state = None
        else:
            index = self.keys.webhooks
        found: list[Webhook] = []
        start = f"({cursor}" if cursor else "-"
        while len(found) < limit:
            chunk = [
                text(m)
                for m in self.client.zrangebylex(index, start, "+", 0, limit + 1)
            ]
            if not chunk:
                return found, None
            for webhook in self.many(chunk):
                if state is None or webhook.state == state:
                    found.append(webhook)
                if len(found) == limit:
                    more = webhook.id != chunk[-1] or len(chunk) > limit
                    return found, webhook.id if more else None
            start = f"({chunk[-1]}"

        return found, None

    def delete(self, webhook_id: str) -> None:
        """Delete the webhook; raises :class:`NotFound` for an unknown id."""
        webhook = self.get(webhook_id)
        self._delete(
            keys=[
                self.keys.webhook(webhook_id),
                self._url_key(webhook.event, webhook.url),
                self.keys.webhooks,
                self.keys.webhooks_by_event(webhook.event),
                *[self.keys.webhooks_by_state(s) for s in STATES],
                self.keys.webhooks_version,
            ],
            args=[webhook_id],
        )

    def rotate_secret(self, webhook_id: str) -> Webhook:
        """Issue a new signing secret; the old one still signs for 24 hours."""
        fresh = new_secret()
        done = self._rotate(
            keys=[self.keys.webhook(webhook_id), self.keys.webhooks_version],
            args=[fresh, ids.now_ms() + defaults.SECRET_OVERLAP * 1000],
        )
        if not done:
            raise NotFound(f"no webhook has id {webhook_id!r}")

        return self.get(webhook_id)

    def disable(self, webhook_id: str, reason: str) -> Webhook:
        """Stop deliveries to the webhook, recording why."""
        self._change_state(
            webhook_id,
            DISABLED,
            ["disabled_reason", reason, "disabled_at", ids.now_ms()],
        )

        return self.get(webhook_id)

    def enable(self, webhook_id: str) -> Webhook:
        """Resume deliveries to the webhook, with its failure count reset."""
        self._change_state(
            webhook_id,
            ACTIVE,
            ["disabled_reason", "", "disabled_at", "", "failures", 0],
        )
        # The failures that count towards disabling live in its breaker.
        self.client.delete(self.keys.breaker(webhook_id))
        self.client.srem(self.keys.open_breakers, webhook_id)

        return self.get(webhook_id)

    def _change_state(self, webhook_id: str, state: str, extra: list[Any]) -> None:
        other = DISABLED if state == ACTIVE else ACTIVE
        done = self._set_state(
            keys=[
                self.keys.webhook(webhook_id),
                self.keys.webhooks_by_state(other),
                self.keys.webhooks_by_state(state),
                self.keys.webhooks_version,
            ],
            args=[webhook_id, state, *extra],
        )
        if not done:
            raise NotFound(f"no webhook has id {webhook_id!r}")

    def _url_key(self, event: str, url: str) -> str:
        digest = hashlib.sha256(f"{event}\x1f{url}".encode()).hexdigest()

        return self.keys.webhook_url(digest)


def reach_problem(url: str, settings: Settings) -> str | None:
    """Why the SSRF guard refuses ``url`` at creation, or None."""
    if settings.allow_private_targets:
        return None
    refused = netguard.url_refusal(url, settings.allowed_networks)

    return f"is refused: {refused}" if refused else None


def check(
    event: str, url: str, sink: str | None, settings: Settings | None = None
) -> None:
    """Raise :class:`ValidationFailed` unless ``event`` and ``url`` are usable
    (and, given ``settings``, ``url`` passes the SSRF guard)."""
    errors: dict[str, list[str]] = {}
    if event not in catalogue.EVENTS:
        errors["event"] = [
            f"{event!r} is not an event; use one of: "
            + ", ".join(catalogue.EVENT_NAMES)
        ]
    problem = url_problem(url, sink)
    if problem is None and settings is not None:
        problem = reach_problem(url, settings)
    if problem is not None:
        errors["url"] = [f"the URL {problem}"]
    if errors:
        raise ValidationFailed(
            "the webhook cannot be created",
            details={"fields": errors, "events": list(catalogue.EVENT_NAMES)}
            if "event" in errors
            else {"fields": errors},
        )

"""The HTTP sink: a signed POST of the payload as received.

Headers follow Standard Webhooks: ``webhook-id`` (the delivery id, the same
on every attempt), ``webhook-timestamp`` and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``, keyed by the
webhook's secret), plus ``Relay-Event`` with the event name.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests
import requests_hardened
from requests.adapters import HTTPAdapter
from requests_hardened.ip_filter_adapter import IPFilterAdapter
from standardwebhooks.webhooks import Webhook as Signer

from relay import __version__, defaults, netguard
from relay.config import Settings
from relay.netguard import IPNetwork
from workers import retry
from workers.sinks.base import Message, Outcome
from workers.sinks.deadline import WATCHDOG, DeadlineAdapter, DeadlineMixin

USER_AGENT = f"relay/{__version__} (webhook relay)"


class RefusedAddress(requests.RequestException):
    """The URL's host resolves to an address relay may not reach."""


class _GuardedAdapter(DeadlineMixin, IPFilterAdapter):  # type: ignore[misc]
    """Resolves the host once, checks every address with the SSRF guard, and
    connects to the checked address (TLS still verifies the host's name).

    Built on requests-hardened's adapter, with relay's own address policy.
    """

    def __init__(self, is_https_proto: bool, allowed: tuple[IPNetwork, ...]):
        super().__init__(is_https_proto=is_https_proto)
        self._allowed = allowed

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        found = HTTPAdapter.build_connection_pool_key_attributes(
            self, request, verify, cert
        )
        host_params: dict[str, Any] = dict(found[0])
        pool_kwargs: dict[str, Any] = dict(found[1])
        name = host_params["host"]
        port = host_params["port"] or (443 if self._is_https_proto else 80)
        try:
            addresses = netguard.resolve(name, port)
        except (OSError, UnicodeError) as exc:
            raise requests.ConnectionError(f"cannot resolve {name}: {exc}") from exc
        for ip in addresses:
            reason = netguard.refusal(ip, self._allowed)
            if reason:
                raise RefusedAddress(f"{name} resolves to {reason}")
        request.headers = requests.structures.CaseInsensitiveDict(request.headers)
        shown = f"[{name}]" if ":" in name else name
        request.headers["Host"] = (
            f"{shown}:{host_params['port']}" if host_params["port"] else shown
        )
        if self._is_https_proto:
            pool_kwargs["assert_hostname"] = name
            pool_kwargs["server_hostname"] = name
        pinned = addresses[0]
        host_params["host"] = str(pinned)

        return host_params, pool_kwargs


def session(settings: Settings) -> requests.Session:
    """One pooled session per worker process.

    Redirects are never followed. Unless private targets are allowed, the
    resolved address is checked (no private or loopback ranges) and the
    connection is made to that very address.
    """
    pool = settings.worker_concurrency
    if settings.allow_private_targets:
        http: requests.Session = requests.Session()
        adapter = DeadlineAdapter(pool_connections=16, pool_maxsize=pool)
        http.mount("http://", adapter)
        http.mount("https://", adapter)
    else:
        config = requests_hardened.Config(
            ip_filter_enable=False,
            ip_filter_allow_loopback_ips=False,
            never_redirect=True,
            default_timeout=(5.0, settings.delivery_timeout),
        )
        http = requests_hardened.HTTPSession(config)
        for scheme, secure in (("http://", False), ("https://", True)):
            guarded = _GuardedAdapter(secure, settings.allowed_networks)
            guarded.init_poolmanager(16, pool)
            http.mount(scheme, guarded)
    http.trust_env = False
    http.headers["User-Agent"] = USER_AGENT

    return http


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Signer:
    return Signer(secret)


def sign(secrets: list[str], delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt: one signature per
    secret, space-separated (two while a rotated secret is still honoured)."""
    stamp = datetime.fromtimestamp(timestamp, tz=UTC)
    text = body.decode()

    return " ".join(str(_signer(s).sign(delivery_id, stamp, text)) for s in secrets)


def headers(message: Message, timestamp: int) -> dict[str, str]:
    """Every header of one attempt except the connection's own."""
    return {
        "Content-Type": "application/json",
        "webhook-id": message.delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            message.webhook.signing_secrets(timestamp * 1000),
            message.delivery_id,
            timestamp,
            message.body,
        ),
        "Relay-Event": message.event,
        "Relay-Event-Id": message.event_id,
        "Relay-Attempt": str(message.number),
    }


class HttpSink:
    """POSTs each message to its webhook URL over a pooled session."""

    kind = "http"

    def __init__(self, settings: Settings, http: requests.Session | None = None):
        self.settings = settings
        self.http = http or session(settings)

    def send(self, message: Message, deadline: float) -> Outcome:
        found = exchange(
            self.http,
            message.url,
            message.body,
            headers(message, int(time.time())),
            deadline,
        )
        if isinstance(found, Outcome):
            return found

        return classify(found.status, found.headers, found.excerpt)


@dataclasses.dataclass(frozen=True)
class Reply:
    """A receiver's answer: its status, headers and the start of its body."""

    status: int
    headers: Mapping[str, str]
    excerpt: str


def exchange(
    http: requests.Session,
    url: str,
    body: bytes,
    sent: dict[str, str],
    deadline: float,
) -> Reply | Outcome:
    """POST ``body`` to ``url`` and read the answer, all by ``deadline``.

    Returns the receiver's :class:`Reply`, or the failed :class:`Outcome`
    when no complete answer came (refused, reset, timed out, cut off).
    """
    timeout = max(0.01, deadline - time.monotonic())
    WATCHDOG.begin(deadline)
    try:
        response = http.post(
            url,
            data=body,
            headers=sent,
            timeout=(min(5.0, timeout), timeout),
            allow_redirects=False,
            stream=True,
        )
        try:
            excerpt = _excerpt(response)
        finally:
            response.close()
    except requests.RequestException as exc:
        cut = WATCHDOG.end()
        return failure(exc, cut or time.monotonic() >= deadline)
    except OSError as exc:
        WATCHDOG.end()
        return Outcome(False, error="connect_error", message=str(exc)[:300])
    if WATCHDOG.end():
        return Outcome(False, error="timeout", message="no complete answer in time")

    return Reply(response.status_code, response.headers, excerpt)


def _excerpt(response: requests.Response) -> str:
    """The first bytes of the body, read without loading a large one."""
    limit = defaults.RESPONSE_EXCERPT_BYTES
    data = response.raw.read(limit + 1, decode_content=False)
    if len(data) <= limit:
        response.raw.release_conn()

    return data[:limit].decode("utf-8", "replace")


def classify(status: int, found: Any, excerpt: str) -> Outcome:
    """The outcome of an HTTP response with ``status``."""
    if 200 <= status < 300:
        return Outcome(True, status=status, response=excerpt)
    error = f"http_{status}"
    if status == 410:
        return Outcome(
            False,
            status=status,
            error=error,
            response=excerpt,
            permanent=True,
            disable=True,
            message="410 Gone: the receiver asked for no more events",
        )
    if 300 <= status < 400:
        where = found.get("Location", "elsewhere")
        return Outcome(
            False,
            status=status,
            error=error,
            response=excerpt,
            permanent=True,
            message=f"redirect to {where} not followed; update the webhook URL",
        )
    if retry.is_transient_status(status):
        return Outcome(
            False,
            status=status,
            error=error,
            response=excerpt,
            retry_after=retry.retry_after(found),
            message=f"{status} from the receiver; will retry",
        )

    return Outcome(
        False,
        status=status,
        error=error,
        response=excerpt,
        permanent=True,
        message=f"{status} from the receiver; not retried",
    )


def failure(exc: Exception, past_deadline: bool) -> Outcome:
    """The outcome of a request that raised ``exc``."""
    text = str(exc)[:300]
    if past_deadline or isinstance(exc, requests.Timeout):
        return Outcome(False, error="timeout", message=text or "timed out")
    if isinstance(exc, requests.exceptions.SSLError):
        return Outcome(False, error="tls_error", message=text)
    if isinstance(exc, RefusedAddress):
        return Outcome(
            False,
            error="refused_address",
            permanent=True,
            message=f"refused by the SSRF guard: {text}",
        )
    if isinstance(
        exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)
    ):
        return Outcome(False, error="invalid_url", permanent=True, message=text)
    if isinstance(exc, requests.ConnectionError):
        return Outcome(False, error="connect_error", message=text)

    return Outcome(False, error="request_error", message=text)

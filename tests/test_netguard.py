"""The SSRF guard: which addresses a webhook may reach."""

from __future__ import annotations

import ipaddress
import time

import pytest

from relay.netguard import parse_networks, refusal, url_refusal
from workers.sinks.http import HttpSink

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "shared"),
    ("fd00::1", "private"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
    ("2002:a00:1::1", "private"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_internal_addresses_are_refused(address, kind):
    """Every internal or special address is refused, naming what it is."""
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111"])
def test_public_addresses_are_allowed(address):
    """Public addresses pass."""
    assert refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_let_named_ranges_through():
    """A range named in RELAY_ALLOWED_NETWORKS is allowed, and only that range."""
    allowed = parse_networks("10.0.0.0/8, 127.0.0.1")
    assert refusal(ipaddress.ip_address("10.9.9.9"), allowed) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("127.0.0.2"), allowed) is not None
    assert refusal(ipaddress.ip_address("192.168.0.1"), allowed) is not None


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8000/hook", True),
        ("http://localhost/hook", True),
        ("https://[::1]/hook", True),
        ("http://169.254.169.254/latest/meta-data", True),
        ("https://8.8.8.8/hook", False),
        ("https://name-that-does-not-resolve.invalid/hook", False),
        ("mailto:ops@example.com", False),
    ],
)
def test_url_check_at_creation(url, refused):
    """Creation refuses URLs resolving inside; unresolvable names wait for delivery."""
    assert (url_refusal(url) is not None) is refused


def test_delivery_to_a_refused_address_fails_permanently(settings, httpserver):
    """At delivery, a URL resolving to loopback is refused before any request."""
    from test_http_sink import _message

    httpserver.expect_request("/hook").respond_with_data("ok")
    guarded = settings.replace(allow_private_targets=False)
    url = httpserver.url_for("/hook")
    outcome = HttpSink(guarded).send(_message(url), time.monotonic() + 2)
    assert outcome.error == "refused_address"
    assert outcome.permanent
    assert "loopback" in outcome.message
    assert httpserver.log == []


def test_allowed_network_reaches_the_address_it_checked(settings, httpserver):
    """With loopback allowed by name, delivery reaches the receiver."""
    from test_http_sink import _message

    httpserver.expect_request("/hook").respond_with_data("ok")
    opened = settings.replace(
        allow_private_targets=False, allowed_networks=parse_networks("127.0.0.0/8,::1")
    )
    url = httpserver.url_for("/hook")
    outcome = HttpSink(opened).send(_message(url), time.monotonic() + 2)
    assert outcome.delivered
    request, _ = httpserver.log[0]
    assert request.headers["Host"].startswith("localhost")


def test_creation_refuses_internal_urls_unless_allowed(settings, redis_client):
    """POST /v1/webhooks answers 422 for a loopback URL when the guard is on."""
    from relay.app import create_app

    guarded = create_app(settings.replace(allow_private_targets=False), redis_client)
    answer = guarded.test_client().post(
        "/v1/webhooks",
        json={"event": "ticket_started", "url": "http://127.0.0.1:9/hook"},
    )
    assert answer.status_code == 422
    assert "loopback" in answer.get_json()["error"]["details"]["fields"]["url"][0]
    opened = settings.replace(
        allow_private_targets=False, allowed_networks=parse_networks("127.0.0.0/8")
    )
    answer = (
        create_app(opened, redis_client)
        .test_client()
        .post(
            "/v1/webhooks",
            json={"event": "ticket_started", "url": "http://127.0.0.1:9/hook"},
        )
    )
    assert answer.status_code == 201

"""The SSRF guard: which addresses a webhook may reach.

A webhook URL is registered by whoever holds the API token, and relay then
sends requests to it from inside its own network. Unless private targets are
allowed, an address is refused when it is loopback, private (RFC 1918),
link-local (including the cloud metadata address 169.254.169.254), shared
(CGNAT, 100.64.0.0/10), unique-local, multicast, unspecified or reserved —
also when it hides inside an IPv6 address (IPv4-mapped, NAT64, 6to4, Teredo).
``RELAY_ALLOWED_NETWORKS`` lets named ranges through all the same.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """Networks from a comma-separated list of CIDRs (or single addresses)."""
    found = [p.strip() for p in value.split(",") if p.strip()]

    return tuple(ipaddress.ip_network(p, strict=False) for p in found)


def _embedded(ip: IPAddress) -> IPAddress | None:
    """The IPv4 address an IPv6 address carries, if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)

    return None


def refusal(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``ip`` may not be reached, or None if it may."""
    if any(ip in net for net in allowed if net.version == ip.version):
        return None
    inner = _embedded(ip)
    if inner is not None:
        reason = refusal(inner, allowed)
        return f"{reason} (inside {ip})" if reason else None
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip in _SHARED, "a shared (CGNAT) address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "an address that is not public"),
    )
    for refused, reason in checks:
        if refused:
            return f"{ip} is {reason}"

    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (raises ``socket.gaierror``)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for *_, address in infos:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)

    return found


def url_refusal(url: str, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why an http(s) URL may not be registered, or None.

    A host that does not resolve is accepted: DNS may be down now, and the
    address is checked again before every attempt.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(parts.hostname, port)
    except (OSError, UnicodeError):
        return None
    for ip in addresses:
        reason = refusal(ip, allowed)
        if reason:
            return f"{parts.hostname} resolves to {reason}"

    return None

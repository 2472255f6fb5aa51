"""The relays a Python user would otherwise write, as the benchmark's peers.

Each makes one job per delivery and POSTs it with ``requests.post``; the
benchmark enqueues the jobs itself (no web intake in front), which is the
generous choice: the peers are measured on delivery alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import requests

#: The signing key of the peers' deliveries (relay signs every delivery, so
#: the peers do too, with the same HMAC-SHA256 construction).
SECRET = b"bench-peer-secret"


def post(url: str, body: str, delivery_id: str, event_id: str) -> int:
    """POST one delivery, signed, the way a hand-written relay would."""
    stamp = str(int(time.time()))
    data = body.encode()
    mac = hmac.new(SECRET, f"{delivery_id}.{stamp}.".encode() + data, hashlib.sha256)
    response = requests.post(
        url,
        data=data,
        headers={
            "Content-Type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
            "Relay-Event": "ticket_started",
            "Relay-Event-Id": event_id,
        },
        timeout=15,
    )
    response.raise_for_status()

    return response.status_code

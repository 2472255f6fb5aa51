"""The stores over one Redis connection, shared by the API, CLI and workers."""

from __future__ import annotations

import dataclasses

import redis

from relay.breakers import BreakerStore
from relay.config import Settings
from relay.connection import connect
from relay.deliveries import DeliveryStore
from relay.events import EventStore
from relay.webhooks import WebhookStore


@dataclasses.dataclass
class Stores:
    """Everything relay keeps in Redis, behind one client."""

    settings: Settings
    client: redis.Redis
    events: EventStore
    webhooks: WebhookStore
    deliveries: DeliveryStore
    breakers: BreakerStore

    @classmethod
    def open(cls, settings: Settings, client: redis.Redis | None = None) -> Stores:
        """Stores over ``client``, or over a new connection to settings' Redis."""
        client = connect(settings) if client is None else client

        return cls(
            settings=settings,
            client=client,
            events=EventStore(client, settings),
            webhooks=WebhookStore(client, settings),
            deliveries=DeliveryStore(client, settings),
            breakers=BreakerStore(client, settings),
        )

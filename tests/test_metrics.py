"""``/metrics``, ``/readyz`` and the counters behind them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from operating import dead_letters, events, webhook
from payloads import TICKET
from processes import relay_env, start, stop_group, wait_until
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler
from werkzeug import Response

from relay import figures, ids, metrics
from relay.app import create_app


@pytest.fixture(autouse=True)
def _one_process(monkeypatch):
    """Scrape this process's counts, whatever the shell's environment says."""
    monkeypatch.delenv(metrics.ENV, raising=False)


def scrape(client, **headers):
    """The samples of ``GET /metrics``: (name, labels) -> value."""
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(samples, name, **labels):
    """One sample's value, or None."""
    return samples.get((name, frozenset(labels.items())))


def counted(name, **labels):
    """This process's count of one sample (0 when never counted)."""
    return metrics.sample(name, labels) or 0


def test_intake_counts_events_by_name_and_outcome(client):
    """Events received are counted as accepted, duplicate or invalid."""
    labels = {"event": "ticket_closed"}
    before = {
        o: counted("relay_events_received_total", outcome=o, **labels)
        for o in ("accepted", "duplicate", "invalid")
    }
    assert client.post("/v1/events/ticket_closed", json=TICKET).status_code == 202
    assert client.post("/v1/events/ticket_closed", json=TICKET).status_code == 200
    assert client.post("/v1/events/ticket_closed", json={"x": 1}).status_code == 422

    for outcome in before:
        after = counted("relay_events_received_total", outcome=outcome, **labels)
        assert after == before[outcome] + 1, outcome
    assert (
        value(
            scrape(client), "relay_events_received_total", outcome="accepted", **labels
        )
        == before["accepted"] + 1
    )


def test_attempts_are_counted_by_sink_and_outcome(client, engine, wait_for, httpserver):
    """Each attempt counts by sink and outcome, with its duration; a finished
    delivery counts once."""
    statuses = [503, 200]
    httpserver.expect_request("/hook").respond_with_handler(
        lambda request: Response("x", status=statuses.pop(0))
    )
    names = [
        ("relay_attempts_total", {"sink": "http", "outcome": "retrying"}),
        ("relay_attempts_total", {"sink": "http", "outcome": "delivered"}),
        ("relay_deliveries_total", {"sink": "http", "outcome": "delivered"}),
        ("relay_attempt_duration_seconds_count", {"sink": "http"}),
    ]
    before = [counted(n, **labels) for n, labels in names]
    url = httpserver.url_for("/hook")
    client.post("/v1/webhooks", json={"event": "ticket_started", "url": url})
    client.post("/v1/events/ticket_started", json=TICKET)

    wait_for(
        lambda: counted(*names[2][:1], **names[2][1]) > before[2], what="delivered"
    )
    after = [counted(n, **labels) for n, labels in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 2]


def test_the_record_script_counts_attempts_and_their_time(stores):
    """Recording an attempt adds it and its duration to the minute's counters."""
    hook = webhook(stores)
    dead_letters(stores, hook, 2)

    minute = figures.read(stores).minutes[-1]
    assert (minute.attempts, minute.duration_ms, minute.dead) == (2, 24, 2)
    assert minute.mean_duration_ms == 12


def test_metrics_reads_the_relay_from_redis(client, stores):
    """Dead letters, pending deliveries and the oldest per webhook, scheduled
    retries and open breakers come from Redis at scrape time."""
    hook = webhook(stores)
    other = webhook(stores, url="https://other.example/hook")
    dead_letters(stores, hook, 3)
    now = ids.now_ms()
    pipe = stores.client.pipeline()
    for event_id in events(stores, 2):
        stores.deliveries.fan_out(pipe, event_id, "ticket_started", now, [other.id])
    pipe.execute()
    first, *_ = stores.client.zrange("relay:pending", 0, -1)
    stores.client.zadd("relay:pending", {first: now - 600_000})
    queue = Queue(stores.settings.queue_name, connection=stores.client)
    queue.enqueue_at(datetime.now(UTC) + timedelta(hours=1), "workers.deliver.due")
    for _ in range(stores.settings.breaker_threshold):
        stores.breakers.record(hook.id, False)

    found = scrape(client)

    assert value(found, "relay_redis_up") == 1
    assert value(found, "relay_dead_letters") == 3
    assert value(found, "relay_pending_deliveries") == 2
    assert value(found, "relay_scheduled_retries") == 1
    assert value(found, "relay_breakers_open", state="open") == 1
    age = value(found, "relay_oldest_pending_delivery_age_seconds", webhook_id=other.id)
    assert 599 <= age <= 660
    assert value(found, "relay_scheduler_up") == 0


def test_recent_outcomes_are_sums_of_whole_minutes(client, stores):
    """The recent-outcome gauges add up the whole minutes before the current one."""
    minute = ids.now_ms() // 60_000
    keys = stores.deliveries.keys
    stores.client.hset(keys.stats(minute), mapping={"delivered": 100})
    stores.client.hset(
        keys.stats(minute - 1),
        mapping={"delivered": 3, "retrying": 2, "attempts": 5, "duration_ms": 500},
    )
    stores.client.hset(keys.stats(minute - 4), mapping={"dead": 1, "delivered": 1})
    stores.client.hset(keys.stats(minute - 30), mapping={"retried": 7})

    found = scrape(client)

    def recent(outcome, window):
        return value(found, "relay_recent_outcomes", outcome=outcome, window=window)

    assert recent("delivered", "1m") == 3
    assert recent("delivered", "5m") == 4
    assert recent("dead", "5m") == 1
    assert recent("retried", "5m") == 0
    assert recent("retried", "1h") == 7
    assert recent("retrying", "1h") == 2
    assert value(found, "relay_recent_attempt_duration_seconds", window="1m") == 0.1


def test_metrics_token_is_required_when_set(settings, redis_client):
    """With RELAY_METRICS_TOKEN set, /metrics wants it as a bearer token."""
    app = create_app(settings.replace(metrics_token="m3trics"), redis_client)
    client = app.test_client()

    refused = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    query = client.get("/metrics?access_token=m3trics")

    assert [refused.status_code, wrong.status_code, query.status_code] == [401] * 3
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert value(scrape(client, Authorization="Bearer m3trics"), "relay_redis_up") == 1


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_metrics_answers_when_redis_does_not(settings):
    """Without Redis, /metrics still answers, with relay_redis_up 0."""
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    client = create_app(settings.replace(redis_url=url)).test_client()

    found = scrape(client)

    assert value(found, "relay_redis_up") == 0
    assert value(found, "relay_dead_letters") is None


def test_metrics_speaks_openmetrics_when_asked(client):
    """A scraper that asks for OpenMetrics gets it."""
    answer = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert answer.content_type.startswith("application/openmetrics-text")
    assert answer.get_data(as_text=True).endswith("# EOF\n")


def test_readyz_says_what_is_missing(client):
    """Without a worker or the scheduler, /readyz answers 503 naming both."""
    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.get_json() == {
        "status": "unavailable",
        "missing": ["workers", "scheduler"],
        "redis": "ok",
        "workers": 0,
        "scheduler": "missing",
    }


def test_readyz_is_ready_with_a_live_worker_and_the_scheduler(client, stores):
    """A worker with a fresh heartbeat and the scheduler's lock make it ready."""
    queue = Queue(stores.settings.queue_name, connection=stores.client)
    worker = SimpleWorker([queue], connection=stores.client, name="probe-worker")
    worker.register_birth()
    lock = RQScheduler.get_locking_key(queue.name)
    try:
        assert client.get("/readyz").get_json()["missing"] == ["scheduler"]
        stores.client.set(lock, "scheduler", ex=60)
        answer = client.get("/readyz")
    finally:
        worker.register_death()

    assert answer.status_code == 200
    assert answer.get_json() == {
        "status": "ok",
        "redis": "ok",
        "workers": 1,
        "scheduler": "ok",
    }
    assert value(scrape(client), "relay_scheduler_up") == 1


def test_readyz_and_healthz_without_redis(settings):
    """Without Redis both probes answer 503."""
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    client = create_app(settings.replace(redis_url=url)).test_client()

    ready = client.get("/readyz")

    assert ready.status_code == 503
    assert ready.get_json()["missing"] == ["redis"]
    assert client.get("/healthz").status_code == 503


def test_the_multiprocess_folder_is_one_per_redis(settings, monkeypatch):
    """The default folder depends on the Redis URL and prefix, not its password."""
    monkeypatch.delenv(metrics.ENV, raising=False)
    base = settings.replace(redis_url="redis://:pw1@db.example:6379/0")

    same = metrics.multiprocess_dir(
        base.replace(redis_url="redis://:pw2@db.example:6379/0")
    )
    other = metrics.multiprocess_dir(
        base.replace(redis_url="redis://db.example:6380/0")
    )

    assert metrics.multiprocess_dir(base) == same != other
    assert same.name.startswith("relay-metrics-")
    monkeypatch.setenv(metrics.ENV, "/somewhere/else")
    assert str(metrics.multiprocess_dir(base)) == "/somewhere/else"


def test_use_multiprocess_keeps_only_live_processes_files(
    settings, tmp_path, monkeypatch
):
    """Starting up removes the files of processes that have exited."""
    monkeypatch.setenv(metrics.ENV, str(tmp_path))
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    mine = tmp_path / f"counter_{os.getpid()}.db"
    gone = tmp_path / f"histogram_{exited.pid}.db"
    mine.write_bytes(b"")
    gone.write_bytes(b"")

    assert metrics.use_multiprocess(settings) == tmp_path

    assert mine.exists() and not gone.exists()
    assert os.environ[metrics.ENV] == str(tmp_path)


def _get(base, path):
    """Status and body of a GET, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(base + path, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, ""
    except OSError:
        return 0, ""


def _post(base, path, body):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.status


def _samples(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


@pytest.mark.slow
def test_web_and_worker_processes_share_their_counts(
    tmp_path, redis_url, redis_client, httpserver
):
    """Under gunicorn with a worker process, /metrics adds up every process,
    and the worker logs one JSON line per attempt."""
    port = _closed_port()
    folder = tmp_path / "metrics"
    env = relay_env(redis_url, PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(folder))
    httpserver.expect_request("/hook").respond_with_data("ok")
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:relay.gunicorn_conf"]
    web = start([*gunicorn, "relay.app:create_app()"], env, tmp_path / "web.log")
    worker = start([sys.executable, "-m", "relay", "worker"], env, tmp_path / "w.log")
    base = f"http://127.0.0.1:{port}"
    delivered = {"sink": "http", "outcome": "delivered"}
    accepted = {"event": "ticket_started", "outcome": "accepted"}
    try:
        wait_until(lambda: _get(base, "/readyz")[0] == 200, 60, "/readyz to say 200")
        url = httpserver.url_for("/hook")
        hook = {"event": "ticket_started", "url": url}
        assert _post(base, "/v1/webhooks", hook) == 201
        assert _post(base, "/v1/events/ticket_started", TICKET) == 202
        wait_until(
            lambda: value(
                _samples(_get(base, "/metrics")[1]), "relay_attempts_total", **delivered
            ),
            30,
            "the worker's attempt in /metrics",
        )
        for _ in range(4):  # whichever gunicorn worker answers
            found = _samples(_get(base, "/metrics")[1])
            assert value(found, "relay_attempts_total", **delivered) == 1
            assert value(found, "relay_events_received_total", **accepted) == 1
            assert value(found, "relay_workers") == 1
    finally:
        stop_group(web)
        stop_group(worker)
        redis_client.flushdb()  # leave no webhook for the URL other tests use
    assert list(folder.glob("*.db"))
    logged = (tmp_path / "w.log").read_text().splitlines()
    attempts = [json.loads(x) for x in logged if '"msg":"attempt"' in x]
    assert [a["state"] for a in attempts] == ["delivered"]

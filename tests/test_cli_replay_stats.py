"""``relay replay`` and ``relay stats``, and how operators' times, durations
and rates are read and shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from operating import dead_letters, document, events, failed, ok, relay, webhook

from relay import ids
from relay.errors import ValidationFailed
from relay.operations import error_class, parse_duration, parse_rate, parse_time
from relay.terminal import age

HOUR = 3600


def _iso(seconds_ago: float) -> str:
    stamp = datetime.now(UTC) - timedelta(seconds=seconds_ago)

    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _replayed(stores, hook) -> list[str]:
    """The event ids of the webhook's deliveries, sorted (by time received)."""
    found, _ = stores.deliveries.page_for_webhook(hook.id)

    return sorted(d.event_id for d in found)


def test_replay_resends_exactly_the_events_in_the_window(
    settings, stores, wait_for, httpserver, request
):
    """A replay sends the window's events, and only them, as new deliveries."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    hook = webhook(stores, httpserver.url_for("/hook"))
    made = events(stores, 3, ages_s=[3 * HOUR, 2 * HOUR, HOUR / 2])
    request.getfixturevalue("engine")  # started once the events' fan-out is gone

    text = ok(
        relay(
            settings, "replay", "--webhook", hook.id, "--since", "150m", "--until", "1h"
        )
    )

    assert text == "replayed 1 of 1; 0 errors\n"
    wait_for(lambda: httpserver.log, what="the replayed event")
    [(request, _)] = httpserver.log
    assert request.headers["Relay-Event-Id"] == made[1]
    [delivery] = stores.deliveries.page_for_webhook(hook.id)[0]
    assert request.headers["webhook-id"] == delivery.id
    wait_for(lambda: stores.deliveries.get(delivery.id).state == "delivered")
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (["--since", "4h"], [0, 1, 2]),
        (["--since", "150m"], [1, 2]),
        (["--since", "4h", "--until", "1h"], [0, 1]),
        (["--since", _iso(150 * 60), "--until", _iso(HOUR)], [1]),
        (["--since", _iso(10 * 60)], []),
    ],
)
def test_replay_windows(settings, stores, redis_client, window, expected):
    """The window takes events received at or after since and before until."""
    hook = webhook(stores)
    made = events(stores, 3, ages_s=[3 * HOUR, 2 * HOUR, HOUR / 2])

    shown = document(relay(settings, "replay", "--webhook", hook.id, "--json", *window))

    assert _replayed(stores, hook) == sorted(made[i] for i in expected)
    assert shown["replay"]["replayed"] == len(expected)
    assert shown["replay"]["dry_run"] is False
    items = [f for _, f in redis_client.xrange("relay:work")]
    assert [f[b"n"] for f in items] == [b"1"] * len(expected)


def test_replay_takes_the_webhooks_event_unless_told(settings, stores):
    """Only events of the webhook's name are replayed, unless --event names another."""
    hook = webhook(stores)
    started = events(stores, 1, ages_s=[60])
    closed = events(stores, 1, event="ticket_closed", ages_s=[60])

    ok(relay(settings, "replay", "--webhook", hook.id, "--since", "1h"))
    ok(
        relay(
            settings, "replay", "--webhook", hook.id, "--since", "1h",
            "--event", "ticket_closed",
        )
    )  # fmt: skip

    assert _replayed(stores, hook) == sorted(started + closed)


def test_replay_dry_run_lists_the_events_and_changes_nothing(
    settings, stores, redis_client
):
    """``replay --dry-run`` lists the window's events and creates nothing."""
    hook = webhook(stores)
    made = events(stores, 2, ages_s=[HOUR, 60])
    before = sorted(redis_client.keys("*"))

    text = ok(
        relay(settings, "replay", "--webhook", hook.id, "--since", "2h", "--dry-run")
    )
    shown = document(
        relay(
            settings,
            "replay",
            "--webhook",
            hook.id,
            "--since",
            "2h",
            "--dry-run",
            "--json",
        )
    )

    lines = text.splitlines()
    assert lines[0].split() == ["EVENT", "ID", "EVENT", "RECEIVED"]
    assert [line.split()[0] for line in lines[1:3]] == made
    assert lines[-1] == (
        f"would replay 2 events to {hook.id} ({hook.url}); nothing changed"
    )
    assert shown["replay"]["event_ids"] == made
    assert shown["replay"]["dry_run"] is True
    assert sorted(redis_client.keys("*")) == before


def test_replay_before_the_retention_says_what_is_kept(settings, stores):
    """A window that starts before the retention notes that older events are gone."""
    hook = webhook(stores)

    result = relay(settings, "replay", "--webhook", hook.id, "--since", "30d")

    assert ok(result) == "replayed 0 of 0; 0 errors\n"
    assert "events are kept for 7d" in result.stderr


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ("disable", ["--since", "1h"], "is disabled; enable it before a replay"),
        (None, ["--since", "1h", "--until", "2h"], "the window is empty"),
        (None, ["--since", "0001-01-01T00:00+01:00", "--until", "1969-01-01"], "empty"),
    ],
)
def test_replay_refusals_are_one_line(settings, stores, change, args, message):
    """A replay that cannot be done says why in one line and changes nothing."""
    hook = webhook(stores)
    events(stores, 1, ages_s=[60])
    if change == "disable":
        stores.webhooks.disable(hook.id, "test")

    line = failed(relay(settings, "replay", "--webhook", hook.id, *args))

    assert message in line
    assert _replayed(stores, hook) == []


def test_stats_counts_queues_outcomes_and_dead_letters(settings, stores):
    """``stats`` shows depths, scheduled retries, the last hour and dead letters."""
    from rq import Queue

    hook = webhook(stores)
    made = dead_letters(stores, hook, 3)
    stores.deliveries.revive(made[0])
    Queue(settings.queue_name, connection=stores.client).enqueue_at(
        datetime.now(UTC) + timedelta(hours=1),
        "workers.deliver.due",
        "dlv_x",
        2,
        "relay:",
    )

    shown = document(relay(settings, "stats", "--json"))["stats"]
    text = ok(relay(settings, "stats"))

    assert shown["work_stream"] == {"length": 1, "unacknowledged": 0, "unread": 1}
    assert shown["queue"] == {"jobs": 0, "scheduled_retries": 1}
    assert shown["pending"]["count"] == 1
    assert shown["pending"]["oldest_created_at"].endswith("Z")
    assert shown["dead_letters"] == {
        "count": 2,
        "by_webhook": [{"webhook_id": hook.id, "url": hook.url, "count": 2}],
    }
    assert shown["last_hour"] == {"delivered": 0, "failed": 3, "dead": 3, "retried": 1}
    assert shown["workers"] == []
    rows = dict(line.split("  ", 1) for line in text.splitlines()[:7])
    assert rows["retries scheduled"].strip() == "1"
    assert rows["pending deliveries"].strip().startswith("1, the oldest created")
    assert rows["last hour"].strip() == (
        "0 delivered, 3 failed attempts, 3 dead-lettered, 1 retried"
    )
    assert text.splitlines()[-1].split() == [hook.id, hook.url, "2"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("30d", 2592000), ("1w", 604800),
     ("1h30m", 5400), (" 2H ", 7200)],
)  # fmt: skip
def test_durations(text, seconds):
    """Durations are a number and a unit, or several such parts."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "2 hours", "-2h", "2h-", "1.5h"])
def test_bad_durations(text):
    """Anything but number-and-unit parts is refused with an example."""
    with pytest.raises(ValidationFailed, match="as 90s, 30m, 2h or 30d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00Z", "2026-01-01T00:00:00.000Z"),
        ("2026-01-01T00:00", "2026-01-01T00:00:00.000Z"),
        ("2026-01-01", "2026-01-01T00:00:00.000Z"),
        ("2026-01-01T02:30+02:00", "2026-01-01T00:30:00.000Z"),
        ("2h", "2025-12-31T22:00:00.000Z"),
    ],
)
def test_times(text, expected):
    """Times are ISO 8601 (UTC unless an offset is given) or a duration ago."""
    now = parse_time("2026-01-01T00:00Z")

    assert ids.iso(parse_time(text, now_ms=now)) == expected


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("5/s", 5.0), ("5", 5.0), ("120/m", 2.0), ("3600/h", 1.0), ("0.5/s", 0.5),
     ("off", None), ("0", None)],
)  # fmt: skip
def test_rates(text, per_second):
    """Rates are a count per second, minute or hour; off means no pacing."""
    assert parse_rate(text) == per_second


@pytest.mark.parametrize(
    ("seconds_ago", "shown"),
    [(0, "0s ago"), (42, "42s ago"), (180, "3m ago"), (7300, "2h ago"),
     (5 * 86400, "5d ago"), (-120, "in 2m"), (None, "-")],
)  # fmt: skip
def test_ages(seconds_ago, shown):
    """Tables show times as ages in their largest whole unit."""
    now = 1_700_000_000_000
    at = None if seconds_ago is None else now - seconds_ago * 1000

    assert age(at, now) == shown


@pytest.mark.parametrize(
    ("last_error", "cls"),
    [
        ("http_400: 400 from the receiver", "http_400"),
        ("webhook_disabled", "webhook_disabled"),
        ("timeout: no answer", "timeout"),
        (None, ""),
    ],
)
def test_error_classes(last_error, cls):
    """A dead letter's error class is its last error up to the colon."""
    assert error_class(last_error) == cls

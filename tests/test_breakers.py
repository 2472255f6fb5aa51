"""Circuit breakers: open after failures in a row, probe, close on success."""

from __future__ import annotations

import time

import pytest

from relay.breakers import BUSY, CLOSED, HALF_OPEN, OPEN, BreakerStore

_LOCKS = iter(range(10**6))


def admit(breakers, webhook_id):
    """Ask to begin an attempt with a fresh lock: None to go, else the wait."""
    return breakers.begin(webhook_id, f"test:lock:{next(_LOCKS)}", "token", 1000)


@pytest.fixture
def breakers(settings, redis_client):
    """Breakers with a threshold of 3 and a short pause."""
    tuned = settings.replace(
        breaker_threshold=3,
        breaker_pause=0.3,
        breaker_pause_max=0.5,
        disable_after=3600,
        disable_min_failures=5,
    )
    return BreakerStore(redis_client, tuned)


def test_a_new_webhook_is_closed(breakers):
    """No record means a closed breaker and attempts go."""
    assert breakers.get("wh_1").state == CLOSED
    assert admit(breakers, "wh_1") is None


def test_failures_in_a_row_open_the_breaker(breakers):
    """The threshold's failure opens it; attempts then wait, uncounted."""
    assert [breakers.record("wh_1", ok=False).state for _ in range(3)] == [
        CLOSED,
        CLOSED,
        OPEN,
    ]
    wait = admit(breakers, "wh_1")
    assert wait is not None and 0 < wait <= 0.3
    shown = breakers.get("wh_1").public()
    assert shown["state"] == OPEN
    assert shown["failures"] == 3
    assert shown["open_until"] is not None


def test_a_success_resets_the_count(breakers):
    """Failures are counted in a row: a success in between starts again."""
    breakers.record("wh_1", ok=False)
    breakers.record("wh_1", ok=False)
    breakers.record("wh_1", ok=True)
    assert breakers.record("wh_1", ok=False).state == CLOSED
    assert breakers.get("wh_1").failures == 1


def test_after_the_pause_one_probe_goes(breakers):
    """Once the pause has passed, one attempt probes and the others wait."""
    for _ in range(3):
        breakers.record("wh_1", ok=False)
    time.sleep(0.35)
    assert admit(breakers, "wh_1") is None
    assert breakers.get("wh_1").state == HALF_OPEN
    assert admit(breakers, "wh_1") is not None


def test_a_failed_probe_opens_it_again_for_longer(breakers):
    """A failed probe reopens the breaker; a successful one closes it."""
    for _ in range(3):
        breakers.record("wh_1", ok=False)
    time.sleep(0.35)
    admit(breakers, "wh_1")
    assert breakers.record("wh_1", ok=False).state == OPEN
    assert admit(breakers, "wh_1") > 0.3
    time.sleep(0.55)
    assert admit(breakers, "wh_1") is None
    assert breakers.record("wh_1", ok=True).state == CLOSED
    assert admit(breakers, "wh_1") is None


def test_disable_rule_needs_time_and_failures(settings, redis_client):
    """The disable verdict comes once failures span the period, and are enough."""
    breakers = BreakerStore(
        redis_client,
        settings.replace(
            breaker_threshold=100, disable_after=0.2, disable_min_failures=3
        ),
    )
    assert not breakers.record("wh_1", ok=False).disable
    time.sleep(0.25)
    assert not breakers.record("wh_1", ok=False).disable
    assert breakers.record("wh_1", ok=False).disable


def test_breakers_are_per_webhook(breakers):
    """One webhook's failures do not touch another's breaker."""
    for _ in range(3):
        breakers.record("wh_1", ok=False)
    assert admit(breakers, "wh_2") is None
    assert [b.state for b in breakers.many(["wh_1", "wh_2"])] == [OPEN, CLOSED]


def test_a_held_lock_answers_busy_and_leaves_the_breaker_alone(breakers):
    """Begin takes the lock; a second begin on the same lock is BUSY."""
    assert breakers.begin("wh_1", "test:lock:same", "a", 1000) is None
    assert breakers.begin("wh_1", "test:lock:same", "b", 1000) == BUSY
    assert breakers.client.get("test:lock:same") == b"a"

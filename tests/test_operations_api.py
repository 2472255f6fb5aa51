"""The operator's operations over HTTP: ``GET /v1/dead-letters`` filters,
``POST /v1/dead-letters/retry``, ``POST /v1/dead-letters/purge`` and
``POST /v1/replays``, the same implementation as the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from operating import dead_letters, events, states, webhook

DAY = 86400


def _iso(seconds_ago: float) -> str:
    stamp = datetime.now(UTC) - timedelta(seconds=seconds_ago)

    return quote(stamp.strftime("%Y-%m-%dT%H:%M:%S+00:00"))


@pytest.fixture
def made(stores):
    """Dead letters of an http and a slack webhook, with different errors and ages."""
    http = webhook(stores, "https://receiver.example/a")
    slack = webhook(
        stores, "https://hooks.slack.com/services/T0/B0/x", event="ticket_closed"
    )

    return {
        "http": http,
        "slack": slack,
        "old_400": dead_letters(stores, http, age_s=40 * DAY)[0],
        "timeout": dead_letters(stores, http, error="timeout", status=None, age_s=120)[
            0
        ],
        "slack_404": dead_letters(stores, slack, error="http_404", status=404)[0],
    }


def _ids(answer, key="dead_letters"):
    assert answer.status_code == 200, answer.get_json()

    return [d["id"] for d in answer.get_json()[key]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("error=http_4", ["slack_404", "old_400"]),
        ("error=timeout", ["timeout"]),
        ("sink=slack", ["slack_404"]),
        ("sink=http&error=http_4", ["old_400"]),
        ("event=ticket_started", ["timeout", "old_400"]),
        (f"since={_iso(2 * DAY)}", ["slack_404", "timeout"]),
    ],
)
def test_list_filters_match_the_cli(client, made, query, expected):
    """``GET /v1/dead-letters`` takes the CLI's filters, including sink and error."""
    answer = client.get(f"/v1/dead-letters?{query}")

    assert _ids(answer) == [made[k] for k in expected]


def test_retry_dry_run_changes_nothing(client, stores, made):
    """A dry run answers 200 with what would be retried, and changes nothing."""
    answer = client.post(
        "/v1/dead-letters/retry", json={"error": "http_4", "dry_run": True}
    )

    assert answer.status_code == 200
    body = answer.get_json()
    assert body["dry_run"] is True
    assert body["matched"] == 2
    assert [d["id"] for d in body["dead_letters"]] == [
        made["slack_404"],
        made["old_400"],
    ]
    assert states(stores, [made["slack_404"], made["old_400"]]) == ["dead", "dead"]


def test_retry_by_filter_retries_exactly_the_matching(client, stores, made):
    """A filtered retry answers 202 and revives the matching dead letters only."""
    answer = client.post("/v1/dead-letters/retry", json={"sink": "http"})

    assert answer.status_code == 202
    assert answer.get_json() == {
        "dry_run": False,
        "matched": 2,
        "retried": 2,
        "errors": [],
    }
    keys = ("old_400", "timeout", "slack_404")
    assert states(stores, [made[k] for k in keys]) == ["pending", "pending", "dead"]


def test_retry_by_ids_reports_the_ones_it_cannot_take(client, stores, made):
    """Ids that are unknown are errors in the answer; the others are retried."""
    answer = client.post(
        "/v1/dead-letters/retry", json={"ids": [made["timeout"], "dlv_nope"]}
    )

    assert answer.status_code == 202
    assert answer.get_json()["retried"] == 1
    assert answer.get_json()["errors"] == [
        {"id": "dlv_nope", "message": "no delivery has id 'dlv_nope'"}
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "name the dead letters"),
        ({"ids": ["dlv_x"], "sink": "http"}, "one way"),
        ({"all": True, "error": "timeout"}, "give filters or all"),
        ({"all": True, "url": "ftp://x"}, "the URL must be an absolute"),
        ({"since": "last week"}, "neither an ISO 8601 time"),
        ({"sink": "pigeon"}, "the request is not valid"),
        ({"ids": [[]]}, "the request is not valid"),
        ({"ids": []}, "the request is not valid"),
    ],
)
def test_retry_refuses_an_unclear_selection(client, stores, made, body, fragment):
    """A selection that names nothing, or two ways, or a bad URL is a 422."""
    answer = client.post("/v1/dead-letters/retry", json=body)

    assert answer.status_code == 422
    assert fragment in answer.get_json()["error"]["message"]
    assert stores.deliveries.dead_count() == 3


def test_purge_older_than_keeps_the_young_ones(client, stores, made):
    """``POST /v1/dead-letters/purge`` with older_than deletes only the old."""
    answer = client.post("/v1/dead-letters/purge", json={"older_than": "30d"})

    assert answer.status_code == 200
    assert answer.get_json()["purged"] == 1
    keys = ("old_400", "timeout", "slack_404")
    assert states(stores, [made[k] for k in keys]) == ["gone", "dead", "dead"]


def test_replay_creates_deliveries_for_the_window(client, stores):
    """``POST /v1/replays`` sends the window's events again; a dry run only lists."""
    hook = webhook(stores)
    made = events(stores, 3, ages_s=[3 * 3600, 2 * 3600, 30])
    window = {"webhook": hook.id, "since": "150m", "until": "1m"}

    dry = client.post("/v1/replays", json={**window, "dry_run": True})
    done = client.post("/v1/replays", json=window)

    assert dry.status_code == 200
    assert dry.get_json()["replay"]["event_ids"] == [made[1]]
    assert done.status_code == 202
    replay = done.get_json()["replay"]
    assert (replay["matched"], replay["replayed"], replay["errors"]) == (1, 1, [])
    assert replay["webhook_id"] == hook.id and replay["event"] == "ticket_started"
    [delivery] = stores.deliveries.page_for_webhook(hook.id)[0]
    assert (delivery.event_id, delivery.state) == (made[1], "pending")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"webhook": "wh_nope", "since": "1h"}, 404),
        ({"since": "1h"}, 422),
        ({"webhook": "HOOK", "since": "soon"}, 422),
        ({"webhook": "HOOK", "since": "1h", "event": "nope"}, 422),
    ],
)
def test_replay_errors(client, stores, body, status):
    """An unknown webhook is a 404; a missing or bad field is a 422."""
    hook = webhook(stores)
    if body.get("webhook") == "HOOK":
        body = {**body, "webhook": hook.id}

    answer = client.post("/v1/replays", json=body)

    assert answer.status_code == status
    assert "error" in answer.get_json()


def test_openapi_describes_the_operations(client):
    """The OpenAPI document lists the bulk dead-letter routes and replays."""
    paths = client.get("/openapi.json").get_json()["paths"]

    assert "post" in paths["/v1/dead-letters/retry"]
    assert "post" in paths["/v1/dead-letters/purge"]
    assert "post" in paths["/v1/replays"]

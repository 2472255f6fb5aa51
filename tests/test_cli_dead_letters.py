"""``relay dead-letters list|show|retry|purge|export``: find, understand and
resend failed deliveries, against a real Redis (and a real receiver)."""

from __future__ import annotations

import json
import time

import click._termui_impl
import pytest
from operating import dead_letters, document, failed, ok, relay, states, webhook
from payloads import TICKET
from werkzeug import Response

from relay import terminal
from relay.operations import Operations

DAY = 86400


@pytest.fixture
def mixed(stores):
    """Dead letters of two webhooks (http, slack), errors and ages that differ."""
    http = webhook(stores, "https://receiver.example/a")
    slack = webhook(
        stores, "https://hooks.slack.com/services/T0/B0/x", event="ticket_closed"
    )
    made = {
        "old_400": dead_letters(stores, http, age_s=40 * DAY)[0],
        "timeout": dead_letters(
            stores,
            http,
            error="timeout",
            status=None,
            message="no answer in 15 s",
            age_s=120,
        )[0],
        "slack_404": dead_letters(
            stores, slack, error="http_404", status=404, message="404 Not Found"
        )[0],
        "new_400": dead_letters(stores, http, age_s=60)[0],
    }

    return http, slack, made


def test_list_prints_a_table_newest_first(settings, stores, mixed):
    """``list`` shows id, age, event, webhook URL, attempts and last error."""
    http, slack, made = mixed

    lines = ok(relay(settings, "dead-letters", "list")).splitlines()

    assert lines[0].split() == [
        "ID", "AGE", "EVENT", "WEBHOOK", "URL", "ATTEMPTS", "LAST", "ERROR"
    ]  # fmt: skip
    ids = [line.split()[0] for line in lines[1:]]
    assert ids == [made[k] for k in ("slack_404", "new_400", "timeout", "old_400")]
    row = lines[1 + ids.index(made["old_400"])]
    assert row.split()[1:6] == ["40d", "ago", "ticket_started", http.url, "1"]
    assert row.endswith("http_400: 400 from the receiver; not retried")
    assert lines[1 + ids.index(made["new_400"])].split()[1:3] == ["1m", "ago"]
    columns = [lines[0].index(h) for h in ("AGE", "EVENT", "WEBHOOK URL")]
    assert all(line[c - 2 : c] == "  " for line in lines for c in columns)


def test_list_as_json_is_one_document_with_iso_times(settings, stores, mixed):
    """``list --json`` prints one document: each dead letter with ISO times."""
    http, slack, made = mixed

    shown = document(relay(settings, "dead-letters", "list", "--json"))

    assert list(shown) == ["dead_letters"]
    first = shown["dead_letters"][0]
    assert first["id"] == made["slack_404"]
    assert first["state"] == "dead"
    assert first["webhook_url"] == slack.url
    assert first["sink"] == "slack"
    assert first["dead_at"].endswith("Z") and "T" in first["dead_at"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--error", "http_400"], ["new_400", "old_400"]),
        (["--error", "http_4"], ["slack_404", "new_400", "old_400"]),
        (["--error", "timeout"], ["timeout"]),
        (["--sink", "slack"], ["slack_404"]),
        (["--sink", "email"], []),
        (["--event", "ticket_started"], ["new_400", "timeout", "old_400"]),
        (["--since", "2d"], ["slack_404", "new_400", "timeout"]),
        (["--since", "2d", "--error", "http_400"], ["new_400"]),
        (["--limit", "2"], ["slack_404", "new_400"]),
    ],
)
def test_list_filters(settings, stores, mixed, options, expected):
    """Each filter narrows the list to exactly the dead letters it describes."""
    http, slack, made = mixed

    shown = document(relay(settings, "dead-letters", "list", "--json", *options))

    assert [d["id"] for d in shown["dead_letters"]] == [made[k] for k in expected]


def test_list_filters_by_webhook(settings, stores, mixed):
    """``--webhook`` keeps the dead letters of that webhook only."""
    http, slack, made = mixed

    shown = document(
        relay(settings, "dead-letters", "list", "--json", "--webhook", slack.id)
    )

    assert [d["id"] for d in shown["dead_letters"]] == [made["slack_404"]]


def test_show_is_like_deliveries_show(settings, stores, mixed):
    """``dead-letters show`` prints what ``deliveries show`` prints."""
    http, slack, made = mixed

    shown = relay(settings, "dead-letters", "show", made["timeout"])
    same = relay(settings, "deliveries", "show", made["timeout"])

    assert ok(shown) == ok(same)
    assert "timeout" in ok(shown).splitlines()[-1]


def test_retry_dry_run_changes_nothing(settings, stores, mixed, redis_client):
    """``retry --dry-run`` lists what would be retried and changes nothing."""
    http, slack, made = mixed
    before = sorted(redis_client.keys("*"))

    text = ok(
        relay(settings, "dead-letters", "retry", "--error", "http_4", "--dry-run")
    )
    shown = document(
        relay(settings, "dead-letters", "retry", "--all", "--dry-run", "--json")
    )

    assert text.splitlines()[-1] == "would retry 3 dead letters; nothing changed"
    assert {line.split()[0] for line in text.splitlines()[1:-1]} == {
        made["slack_404"], made["new_400"], made["old_400"]
    }  # fmt: skip
    assert shown["dry_run"] is True and shown["matched"] == 4
    assert sorted(redis_client.keys("*")) == before
    assert states(stores, made.values()) == ["dead"] * 4
    assert redis_client.xlen("relay:work") == 0


def _receiver(httpserver, path="/hook"):
    """A receiver that answers 400 until ``fixed`` is set, then 200."""
    answer = {"fixed": False}

    def handler(request):
        return Response(
            "ok" if answer["fixed"] else "no", 200 if answer["fixed"] else 400
        )

    httpserver.expect_request(path).respond_with_handler(handler)

    return answer


def _dead(stores, wait_for, delivery_ids):
    wait_for(
        lambda: states(stores, delivery_ids) == ["dead"] * len(delivery_ids),
        what="dead letters",
    )


def test_retry_with_a_filter_sends_exactly_the_matching_ones(
    settings, stores, client, engine, wait_for, httpserver
):
    """A filtered retry resends the matching dead letters only, and they arrive."""
    answer = _receiver(httpserver)
    first = webhook(stores, httpserver.url_for("/hook"))
    second = webhook(stores, httpserver.url_for("/hook") + "?other")
    client.post("/v1/events/ticket_started", json=TICKET)
    wait_for(lambda: len(httpserver.log) == 2, what="two first attempts")
    found = {
        w.id: stores.deliveries.page_for_webhook(w.id)[0][0].id for w in (first, second)
    }
    _dead(stores, wait_for, list(found.values()))
    answer["fixed"] = True

    text = ok(relay(settings, "dead-letters", "retry", "--webhook", first.id))

    assert text.splitlines()[-1] == "retried 1 of 1; 0 errors"
    wait_for(lambda: states(stores, [found[first.id]]) == ["delivered"], what="sent")
    assert states(stores, [found[second.id]]) == ["dead"]
    resent = httpserver.log[2][0]
    assert resent.headers["webhook-id"] == found[first.id]
    assert len(httpserver.log) == 3


def test_retry_to_a_corrected_url(
    settings, stores, client, engine, wait_for, httpserver
):
    """``--to-url`` resends a dead letter to another URL, no new webhook needed."""
    httpserver.expect_request("/old").respond_with_data("gone wrong", status=404)
    httpserver.expect_request("/new").respond_with_data("ok")
    hook = webhook(stores, httpserver.url_for("/old"))
    client.post("/v1/events/ticket_started", json=TICKET)
    wait_for(lambda: httpserver.log, what="the first attempt")
    [delivery] = stores.deliveries.page_for_webhook(hook.id)[0]
    _dead(stores, wait_for, [delivery.id])

    text = ok(
        relay(
            settings, "dead-letters", "retry", delivery.id, "--to-url",
            httpserver.url_for("/new"),
        )
    )  # fmt: skip

    assert text == "retried 1 of 1; 0 errors\n"
    wait_for(lambda: states(stores, [delivery.id]) == ["delivered"], what="sent")
    assert [r.path for r, _ in httpserver.log] == ["/old", "/new"]
    assert stores.deliveries.get(delivery.id).url == httpserver.url_for("/new")
    assert stores.webhooks.get(hook.id).url == httpserver.url_for("/old")


def test_retry_to_an_unusable_url_changes_nothing(settings, stores, mixed):
    """A ``--to-url`` the sink cannot use fails in one line before anything is sent."""
    http, slack, made = mixed

    line = failed(
        relay(
            settings, "dead-letters", "retry", "--all", "--yes", "--to-url", "ftp://x"
        )
    )

    assert "the URL must be an absolute http:// or https:// URL" in line
    assert states(stores, made.values()) == ["dead"] * 4


def test_retry_reports_ids_it_cannot_take(settings, stores, mixed):
    """Unknown ids and live deliveries are errors; the others are still retried."""
    http, slack, made = mixed
    stores.deliveries.revive(made["timeout"])

    result = relay(
        settings, "dead-letters", "retry", made["new_400"], made["timeout"], "dlv_nope"
    )

    assert result.exit_code == 1
    assert result.stdout == "retried 1 of 3; 2 errors\n"
    assert result.stderr.splitlines() == [
        f"{made['timeout']}: is pending, not a dead letter",
        "dlv_nope: no delivery has id 'dlv_nope'",
    ]
    assert states(stores, [made["new_400"], made["old_400"]]) == ["pending", "dead"]


def test_retry_of_a_disabled_webhooks_dead_letter_says_to_enable_it(
    settings, stores, mixed
):
    """A dead letter whose webhook is disabled is not sent; the error says why."""
    http, slack, made = mixed
    stores.webhooks.disable(slack.id, "410 Gone")

    result = relay(settings, "dead-letters", "retry", "--sink", "slack", "--json")

    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "dry_run": False,
        "matched": 1,
        "retried": 0,
        "errors": [
            {
                "id": made["slack_404"],
                "message": f"its webhook {slack.id} is disabled; enable it first",
            }
        ],
    }


@pytest.mark.parametrize(
    ("answer", "exit_code", "state"),
    [("y\n", 0, "pending"), ("n\n", 1, "dead"), ("", 1, "dead")],
)
def test_retry_of_more_than_ten_asks_first(settings, stores, answer, exit_code, state):
    """Retrying more than 10 asks; only a yes retries, anything else changes nothing."""
    made = dead_letters(stores, webhook(stores), 11)

    result = relay(settings, "dead-letters", "retry", "--all", input=answer)

    assert result.exit_code == exit_code
    assert "retry 11 dead letters? [y/N]" in result.stderr
    assert set(states(stores, made)) == {state}
    if exit_code:
        assert "not confirmed, so nothing was changed" in result.stderr


def test_bulk_retry_of_a_thousand_reports_all_of_them(settings, stores, redis_client):
    """``retry --all --yes`` of 1,000 dead letters retries and counts every one."""
    made = dead_letters(stores, webhook(stores), 1000)

    started = time.monotonic()
    result = relay(settings, "dead-letters", "retry", "--all", "--yes", "--rate", "off")

    assert ok(result).splitlines()[-1] == "retried 1,000 of 1,000; 0 errors"
    assert time.monotonic() - started < 20
    assert redis_client.zcard("relay:dead") == 0
    assert redis_client.zcard("relay:pending") == 1000
    items = redis_client.xrange("relay:work")
    assert sorted(f[b"d"].decode() for _, f in items) == sorted(made)
    assert {f[b"n"] for _, f in items} == {b"2"}


def test_retry_rate_paces_the_sends(settings, stores):
    """``--rate 20/s`` spreads 5 retries over at least 0.2 s."""
    dead_letters(stores, webhook(stores), 5)

    started = time.monotonic()
    ok(relay(settings, "dead-letters", "retry", "--all", "--rate", "20/s"))

    assert time.monotonic() - started >= 0.2


def test_progress_bar_only_on_a_terminal(settings, stores, monkeypatch):
    """A bulk retry draws a bar with counts and rate on a terminal, none in a pipe."""
    hook = webhook(stores)
    dead_letters(stores, hook, 3)
    piped = ok(relay(settings, "dead-letters", "retry", "--all"))
    dead_letters(stores, hook, 3)
    monkeypatch.setattr(terminal, "stdout_is_terminal", lambda: True)
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)

    drawn = ok(relay(settings, "dead-letters", "retry", "--all"))

    assert piped == "retried 3 of 3; 0 errors\n"
    assert "retrying  [####" in drawn
    assert "3/3" in drawn and "/s" in drawn and "0 errors" in drawn
    assert drawn.endswith("retried 3 of 3; 0 errors\n")


def test_purge_older_than_keeps_the_young_ones(settings, stores, mixed, redis_client):
    """``purge --older-than 30d`` deletes only what died over 30 days ago."""
    http, slack, made = mixed
    old = stores.deliveries.get(made["old_400"])

    text = ok(relay(settings, "dead-letters", "purge", "--older-than", "30d", "--yes"))

    assert text == "purged 1 of 1; 0 errors\n"
    assert states(stores, made.values()) == ["gone", "dead", "dead", "dead"]
    assert not redis_client.exists(f"relay:dlv:{old.id}:attempts")
    assert redis_client.zscore(f"relay:wh:{http.id}:deliveries", old.id) is None
    event = f"relay:evt:{old.event_id}"
    assert redis_client.hget(event, "dead") == b"0"
    assert 0 < redis_client.ttl(event) <= settings.event_retention


def test_purge_asks_and_a_dry_run_changes_nothing(settings, stores, mixed):
    """Purge asks before deleting; ``--dry-run`` and a no leave everything."""
    http, slack, made = mixed

    dry = ok(relay(settings, "dead-letters", "purge", "--sink", "slack", "--dry-run"))
    refused = relay(settings, "dead-letters", "purge", "--sink", "slack", input="n\n")
    agreed = relay(settings, "dead-letters", "purge", "--sink", "slack", input="y\n")

    assert dry.splitlines()[-1] == "would purge 1 dead letter; nothing changed"
    assert refused.exit_code == 1
    assert "purge 1 dead letter for good? [y/N]" in refused.stderr
    assert ok(agreed).splitlines()[-1] == "purged 1 of 1; 0 errors"
    assert states(stores, made.values()) == ["dead", "dead", "gone", "dead"]


def test_export_prints_one_json_object_per_line(settings, stores, mixed):
    """``export`` writes a JSON line per dead letter, with every attempt."""
    http, slack, made = mixed

    text = ok(relay(settings, "dead-letters", "export", "--event", "ticket_started"))

    lines = [json.loads(line) for line in text.splitlines()]
    order = ("new_400", "timeout", "old_400")
    assert [d["id"] for d in lines] == [made[k] for k in order]
    assert [a["error"] for a in lines[1]["attempts"]] == ["timeout"]
    assert lines[0]["webhook_url"] == http.url


def test_ctrl_c_says_how_far_a_bulk_retry_got(settings, stores, monkeypatch):
    """Interrupting a bulk retry stops with one line saying how far it got."""
    made = dead_letters(stores, webhook(stores), 3)
    original = Operations.retry

    def interrupted(self, chosen, **options):
        results = original(self, chosen, **options)
        yield next(results)
        raise KeyboardInterrupt

    monkeypatch.setattr(Operations, "retry", interrupted)

    line = failed(relay(settings, "dead-letters", "retry", "--all"))

    assert line == "Error: interrupted: retried 1 of 3; 0 errors"
    assert sorted(states(stores, made)) == ["dead", "dead", "pending"]

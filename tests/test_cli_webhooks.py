"""``relay webhooks ...``, ``relay deliveries show``, and how every command
reports errors: one line on stderr, exit 1; usage errors exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from operating import dead_letters, document, failed, ok, relay, webhook

from relay.cli import main

HOOK = "https://receiver.example/hook"


def test_create_shows_the_secret_once_then_finds_the_same_webhook(settings, stores):
    """Create prints the new webhook with its full secret; a repeat says it exists."""
    first = ok(relay(settings, "webhooks", "create", "ticket_started", HOOK))
    again = ok(relay(settings, "webhooks", "create", "ticket_started", HOOK))

    created = stores.webhooks.page()[0][0]
    assert first.splitlines()[0] == f"created {created.id}"
    assert created.secret in first
    assert again.splitlines()[0] == f"exists: {created.id}"
    assert created.secret not in again


def test_create_as_json_says_whether_it_created(settings, stores):
    """``create --json`` prints the webhook (secret in full) and ``created``."""
    shown = document(
        relay(settings, "webhooks", "create", "ticket_closed", HOOK, "--json")
    )
    repeated = document(
        relay(settings, "webhooks", "create", "ticket_closed", HOOK, "--json")
    )

    assert shown["created"] is True
    assert shown["webhook"]["secret"].startswith("whsec_")
    assert len(shown["webhook"]["secret"]) > 40
    assert shown["webhook"]["event"] == "ticket_closed"
    assert repeated["created"] is False
    assert repeated["webhook"]["id"] == shown["webhook"]["id"]


def test_create_with_a_bad_url_is_one_line(settings, stores):
    """A URL the sink cannot use fails with one line naming the problem."""
    line = failed(relay(settings, "webhooks", "create", "ticket_started", "ftp://x"))

    assert "url: the URL must be an absolute http:// or https:// URL" in line
    assert stores.webhooks.page()[0] == []


def test_list_prints_an_aligned_table(settings, stores):
    """``webhooks list`` shows one row per webhook under aligned headers."""
    first = webhook(stores, HOOK)
    second = webhook(stores, "mailto:ops@example.com", event="agent_invited")

    lines = ok(relay(settings, "webhooks", "list")).splitlines()

    assert lines[0].split() == ["ID", "EVENT", "SINK", "STATE", "URL", "CREATED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows[first.id].split()[1:4] == ["ticket_started", "http", "active"]
    assert rows[second.id].split()[1:4] == ["agent_invited", "email", "active"]
    url_column = lines[0].index("URL")
    assert rows[first.id][url_column:].startswith(HOOK)
    assert rows[second.id][url_column:].startswith("mailto:ops@example.com")
    assert rows[first.id].rstrip().endswith("0s ago")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], ["a", "b", "c"]),
        (["--event", "ticket_started"], ["a", "c"]),
        (["--state", "disabled"], ["c"]),
        (["--state", "active"], ["a", "b"]),
        (["--event", "ticket_started", "--state", "active"], ["a"]),
    ],
)
def test_list_filters_by_event_and_state(settings, stores, options, expected):
    """``--event`` and ``--state`` narrow the list, alone or together."""
    made = {
        "a": webhook(stores, HOOK + "/a"),
        "b": webhook(stores, HOOK + "/b", event="ticket_closed"),
        "c": webhook(stores, HOOK + "/c"),
    }
    stores.webhooks.disable(made["c"].id, "test")

    shown = document(relay(settings, "webhooks", "list", "--json", *options))

    assert sorted(w["id"] for w in shown["webhooks"]) == sorted(
        made[k].id for k in expected
    )
    assert all(w["secret"].endswith("…") for w in shown["webhooks"])


def test_show_prints_the_webhook_with_its_secret_masked(settings, stores):
    """``webhooks show`` prints the webhook's fields; ``--json`` the API's shape."""
    hook = webhook(stores, HOOK)

    text = ok(relay(settings, "webhooks", "show", hook.id))
    shown = document(relay(settings, "webhooks", "show", hook.id, "--json"))

    rows = [line.split(None, 1) for line in text.splitlines()]
    assert ["webhook", hook.id] in rows
    assert ["url", HOOK] in rows
    assert ["secret", hook.public()["secret"]] in rows
    assert hook.secret not in text
    breaker = stores.breakers.get(hook.id).public()
    assert shown == {"webhook": {**hook.public(), "breaker": breaker}}


def test_disable_then_enable_resets_the_failure_count(settings, stores):
    """Disable stops a webhook with a reason; enable resumes it at zero failures."""
    hook = webhook(stores, HOOK)

    ok(relay(settings, "webhooks", "disable", hook.id, "--reason", "maintenance"))
    disabled = stores.webhooks.get(hook.id)
    stores.client.hset(f"relay:wh:{hook.id}", "failures", 7)
    ok(relay(settings, "webhooks", "enable", hook.id))

    assert (disabled.state, disabled.disabled_reason) == ("disabled", "maintenance")
    assert stores.webhooks.get(hook.id).state == "active"
    assert stores.client.hget(f"relay:wh:{hook.id}", "failures") == b"0"


def test_delete_removes_the_webhook(settings, stores):
    """``webhooks delete`` deletes it and says so."""
    hook = webhook(stores, HOOK)

    assert ok(relay(settings, "webhooks", "delete", hook.id)) == f"deleted {hook.id}\n"
    assert stores.webhooks.find(hook.id) is None


def test_deliveries_show_prints_the_delivery_event_webhook_and_attempts(
    settings, stores
):
    """``deliveries show`` prints the delivery, its event, webhook and attempts."""
    hook = webhook(stores, HOOK)
    [delivery_id] = dead_letters(stores, hook)
    delivery = stores.deliveries.get(delivery_id)

    text = ok(relay(settings, "deliveries", "show", delivery_id))
    shown = document(relay(settings, "deliveries", "show", delivery_id, "--json"))

    assert f"delivery    {delivery_id}" in text
    assert "state       dead, 1 attempt" in text
    assert f"ticket_started  {delivery.event_id}  received" in text
    assert f"{hook.id}  http  {HOOK}  (active)" in text
    assert "last error  http_400: 400 from the receiver; not retried" in text
    header, row = text.splitlines()[-2:]
    assert header.split() == ["#", "AT", "DURATION", "OUTCOME", "MESSAGE", "RESPONSE"]
    assert row.split()[:5] == ["1", "0s", "ago", "12", "ms"]
    assert row.rstrip().endswith("nope")
    assert shown["delivery"]["attempts"][0]["status"] == 400
    assert shown["delivery"]["dead_at"].endswith("Z")
    assert shown["event"]["id"] == delivery.event_id
    assert shown["webhook"]["id"] == hook.id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["webhooks", "show", "wh_nope"], "no webhook has id 'wh_nope'"),
        (["webhooks", "delete", "wh_nope"], "no webhook has id 'wh_nope'"),
        (["webhooks", "disable", "wh_nope"], "no webhook has id 'wh_nope'"),
        (["webhooks", "enable", "wh_nope"], "no webhook has id 'wh_nope'"),
        (["deliveries", "show", "dlv_nope"], "no delivery has id 'dlv_nope'"),
        (["dead-letters", "show", "dlv_nope"], "no delivery has id 'dlv_nope'"),
        (["dead-letters", "retry", "dlv_nope"], None),
        (["replay", "--webhook", "wh_nope", "--since", "1h"], "no webhook has id"),
    ],
)
def test_unknown_ids_are_one_line_and_exit_1(settings, stores, args, message):
    """An unknown id is reported in one line on stderr, with exit status 1."""
    result = relay(settings, *args)

    if message is None:  # a bulk command reports the id and a summary
        assert result.exit_code == 1
        assert result.stderr == "dlv_nope: no delivery has id 'dlv_nope'\n"
        assert result.stdout == "retried 0 of 1; 1 error\n"
    else:
        assert message in failed(result)


@pytest.mark.parametrize(
    "args",
    [
        ["webhooks", "list"],
        ["dead-letters", "list"],
        ["stats"],
        ["replay", "--webhook", "wh_x", "--since", "1h"],
    ],
)
def test_unreachable_redis_names_the_url_without_its_password(settings, args):
    """Redis that does not answer is one line naming the URL, password hidden."""
    url = "redis://:hunter2@127.0.0.1:1/0"
    result = CliRunner().invoke(
        main, args, obj=settings, env={"REDIS_URL": url}, catch_exceptions=False
    )

    line = failed(result)
    assert line.startswith("Error: Redis at redis://:***@127.0.0.1:1/0: ")
    assert "hunter2" not in result.output


def test_redis_url_option_overrides_the_environment(settings, stores):
    """``--redis-url`` wins over ``REDIS_URL``, so one command can aim elsewhere."""
    hook = webhook(stores, HOOK)
    result = CliRunner().invoke(
        main,
        ["--redis-url", settings.redis_url, "webhooks", "show", hook.id],
        obj=settings,
        env={"REDIS_URL": "redis://127.0.0.1:1/0"},
        catch_exceptions=False,
    )

    assert hook.id in ok(result)


@pytest.mark.parametrize(
    "args",
    [
        ["webhooks", "frobnicate"],
        ["webhooks", "list", "--state", "sleeping"],
        ["webhooks", "create", "ticket_exploded", HOOK],
        ["dead-letters", "list", "--since", "last tuesday"],
        ["dead-letters", "list", "--limit", "0"],
        ["dead-letters", "retry"],
        ["dead-letters", "retry", "dlv_x", "--event", "ticket_started"],
        ["dead-letters", "retry", "--all", "--error", "http_400"],
        ["dead-letters", "retry", "--all", "--rate", "fast"],
        ["dead-letters", "purge"],
        ["dead-letters", "purge", "--older-than", "a while"],
        ["replay", "--since", "1h"],
        ["replay", "--webhook", "wh_x", "--since", "1h", "--event", "nope"],
    ],
)
def test_usage_errors_exit_2(settings, args):
    """Unknown commands, bad option values and missing choices exit with 2."""
    result = relay(settings, *args)

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    assert result.stderr.splitlines()[-1].startswith("Error: ")


def test_rotate_secret_shows_the_new_secret_once(stores, settings):
    """``webhooks rotate-secret`` prints the new secret; show masks it again."""
    hook = webhook(stores, "https://example.com/r")
    fresh = document(relay(settings, "webhooks", "rotate-secret", hook.id, "--json"))[
        "webhook"
    ]["secret"]
    assert fresh != hook.secret and fresh.startswith("whsec_")
    assert stores.webhooks.get(hook.id).previous_secret == hook.secret
    shown = ok(relay(settings, "webhooks", "show", hook.id))
    assert fresh not in shown
    assert "breaker" in shown and "closed" in shown


def test_stats_lists_open_breakers(stores, settings):
    """``relay stats`` names the webhooks whose breaker is open."""
    hook = webhook(stores, "https://example.com/b")
    for _ in range(settings.breaker_threshold):
        stores.breakers.record(hook.id, ok=False)
    shown = ok(relay(settings, "stats"))
    assert hook.id in shown and "open" in shown
    stores.webhooks.enable(hook.id)
    assert stores.breakers.tripped() == []

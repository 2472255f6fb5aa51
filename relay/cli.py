"""The ``relay`` command: run the relay and operate it.

Every option that names a connection falls back to the environment
(``REDIS_URL``), so commands work unchanged under a Procfile host. Errors are
one line on stderr with exit status 1; usage errors exit with 2. Listings
print an aligned table, or one JSON document with ``--json``. The operator
commands act through the same stores and :mod:`relay.operations` as the API.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import redis
from click.core import ParameterSource

from relay import __version__, catalogue, defaults, ids, logs, stats
from relay.config import Settings, from_env
from relay.connection import redacted
from relay.deliveries import Delivery
from relay.dev import DEV_URL_FILE
from relay.errors import RelayError
from relay.operations import (
    DeadLetterFilter,
    Operations,
    Selection,
    Tally,
    selection_problem,
)
from relay.schemas import SINKS
from relay.stores import Stores
from relay.terminal import (
    DURATION,
    MOMENT,
    RATE,
    age,
    confirm,
    echo_json,
    fields,
    finish,
    json_option,
    report_problems,
    run_bulk,
    span,
    table,
)
from relay.webhooks import STATES, Webhook

F = TypeVar("F", bound=Callable[..., Any])

#: A bulk retry of more dead letters than this asks first (unless --yes).
CONFIRM_ABOVE = 10

EVENT = click.Choice(catalogue.EVENT_NAMES)


def _one_line(exc: RelayError) -> str:
    """The error's message, with the field problems it details, on one line."""
    details = exc.details if isinstance(exc.details, dict) else {}
    problems = details.get("fields")
    if not isinstance(problems, dict):
        return exc.message
    said = "; ".join(
        f"{name}: {' '.join(map(str, why if isinstance(why, list) else [why]))}"
        for name, why in problems.items()
    )

    return f"{exc.message}: {said}"


class _Group(click.Group):
    """Shows relay's errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RelayError as exc:
            raise click.ClickException(_one_line(exc)) from exc
        except redis.RedisError as exc:
            settings = ctx.find_object(Settings) or from_env()
            where = redacted(settings.redis_url)
            raise click.ClickException(f"Redis at {where}: {exc}") from exc


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="relay")
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    metavar="URL",
    help="Redis to use (default: $REDIS_URL).",
)
@click.pass_context
def main(ctx: click.Context, redis_url: str | None) -> None:
    """relay: a queue-backed webhook relay."""
    if not isinstance(ctx.obj, Settings):
        try:
            ctx.obj = from_env()
        except RelayError as exc:
            raise click.ClickException(exc.message) from exc
        local = Path(defaults.DEV_DATA_DIR) / DEV_URL_FILE
        if "REDIS_URL" not in os.environ and local.is_file():
            # Beside a running ``relay dev``: use its embedded Valkey.
            ctx.obj = ctx.obj.replace(redis_url=local.read_text().strip())
    if redis_url:
        ctx.obj = ctx.obj.replace(redis_url=redis_url)


def _open(settings: Settings) -> Stores:
    """The stores over settings' Redis, closed when the command ends."""
    stores = Stores.open(settings)
    click.get_current_context().call_on_close(stores.client.close)

    return stores


def _logging() -> None:
    logs.configure()


# --- running ------------------------------------------------------------------


@main.command()
@click.option("--burst", is_flag=True, help="Stop once there is no work left.")
@click.option("--name", default=None, help="Worker name (default: host.pid).")
@click.pass_obj
def worker(settings: Settings, burst: bool, name: str | None) -> None:
    """Run a worker: deliveries, retries and RQ's scheduler."""
    from relay import metrics
    from workers.worker import run

    _logging()
    metrics.use_multiprocess(settings)
    run(settings, burst=burst, name=name)


@main.command()
@click.option("--port", type=int, default=None, envvar="PORT", help="Web port.")
@click.option("--data", default=None, help="Folder of the embedded Valkey's data.")
@click.pass_obj
def dev(settings: Settings, port: int | None, data: str | None) -> None:
    """Run the whole relay locally: Valkey (unless REDIS_URL is set), web, worker."""
    from relay.dev import run_dev

    parent = click.get_current_context().find_root()
    if parent.get_parameter_source("redis_url") == ParameterSource.COMMANDLINE:
        raise click.UsageError("relay dev reads REDIS_URL from the environment only")
    run_dev(settings, port=port, data_dir=data)


# --- webhooks -----------------------------------------------------------------


@main.group()
def webhooks() -> None:
    """Subscriptions: list, show, create, delete, disable, enable."""


def _webhook_fields(
    webhook: Webhook, *, reveal_secret: bool = False, breaker: str | None = None
) -> None:
    disabled = None
    if not webhook.active:
        disabled = webhook.disabled_reason or "(no reason recorded)"
        if webhook.disabled_ms:
            disabled = f"{age(webhook.disabled_ms)}: {disabled}"
    fields(
        [
            ("webhook", webhook.id),
            ("event", webhook.event),
            ("url", webhook.url),
            ("sink", webhook.sink),
            ("state", webhook.state),
            ("disabled", disabled),
            ("secret", webhook.public(reveal_secret=reveal_secret)["secret"]),
            ("description", webhook.description),
            ("created", f"{age(webhook.created_ms)} ({ids.iso(webhook.created_ms)})"),
            ("breaker", breaker),
        ]
    )


@webhooks.command("list")
@click.option(
    "--event", type=EVENT, metavar="EVENT", help="Only webhooks of this event."
)
@click.option("--state", type=click.Choice(STATES), help="Only webhooks in this state.")
@json_option
@click.pass_obj
def webhooks_list(
    settings: Settings, event: str | None, state: str | None, as_json: bool
) -> None:
    """List webhooks, oldest first."""
    store = _open(settings).webhooks
    found: list[Webhook] = []
    cursor: str | None = None
    while True:
        page, cursor = store.page(
            event=event, state=state, limit=defaults.PAGE_SIZE_MAX, cursor=cursor
        )
        found += page
        if cursor is None:
            break
    if as_json:
        echo_json({"webhooks": [w.public() for w in found]})
        return
    table(
        ["ID", "EVENT", "SINK", "STATE", "URL", "CREATED"],
        [[w.id, w.event, w.sink, w.state, w.url, age(w.created_ms)] for w in found],
    )


@webhooks.command("show")
@click.argument("webhook_id", metavar="ID")
@json_option
@click.pass_obj
def webhooks_show(settings: Settings, webhook_id: str, as_json: bool) -> None:
    """Show one webhook (its secret masked) and its circuit breaker."""
    stores = _open(settings)
    webhook = stores.webhooks.get(webhook_id)
    breaker = stores.breakers.get(webhook_id).public()
    if as_json:
        echo_json({"webhook": {**webhook.public(), "breaker": breaker}})
        return
    shown = breaker["state"].replace("_", "-")
    if breaker["failures"]:
        shown += f", {breaker['failures']} failures in a row"
    if breaker["open_until"]:
        shown += f", open until {breaker['open_until']}"
    _webhook_fields(webhook, breaker=shown)


@webhooks.command("create")
@click.argument("event", type=EVENT)
@click.argument("url")
@click.option("--sink", type=click.Choice(SINKS), help="Override the URL's sink.")
@click.option("--description", help="A note for people.")
@json_option
@click.pass_obj
def webhooks_create(
    settings: Settings,
    event: str,
    url: str,
    sink: str | None,
    description: str | None,
    as_json: bool,
) -> None:
    """Subscribe URL to EVENT; shows the signing secret in full, once."""
    webhook, created = _open(settings).webhooks.create(
        event, url, sink=sink, description=description
    )
    if as_json:
        echo_json(
            {"webhook": webhook.public(reveal_secret=created), "created": created}
        )
        return
    click.echo(f"created {webhook.id}" if created else f"exists: {webhook.id}")
    _webhook_fields(webhook, reveal_secret=created)


@webhooks.command("delete")
@click.argument("webhook_id", metavar="ID")
@click.pass_obj
def webhooks_delete(settings: Settings, webhook_id: str) -> None:
    """Delete a webhook; its unfinished deliveries are dropped."""
    _open(settings).webhooks.delete(webhook_id)
    click.echo(f"deleted {webhook_id}")


@webhooks.command("disable")
@click.argument("webhook_id", metavar="ID")
@click.option(
    "--reason", default="disabled by an operator", help="Why, for the record."
)
@click.pass_obj
def webhooks_disable(settings: Settings, webhook_id: str, reason: str) -> None:
    """Stop deliveries to a webhook; new ones become dead letters."""
    _open(settings).webhooks.disable(webhook_id, reason)
    click.echo(f"disabled {webhook_id}")


@webhooks.command("rotate-secret")
@click.argument("webhook_id", metavar="ID")
@json_option
@click.pass_obj
def webhooks_rotate_secret(settings: Settings, webhook_id: str, as_json: bool) -> None:
    """Issue a new signing secret; the old one also signs for 24 hours."""
    webhook = _open(settings).webhooks.rotate_secret(webhook_id)
    if as_json:
        echo_json({"webhook": webhook.public(reveal_secret=True)})
        return
    click.echo(f"rotated {webhook.id}; the old secret also signs for 24 hours")
    _webhook_fields(webhook, reveal_secret=True)


@webhooks.command("enable")
@click.argument("webhook_id", metavar="ID")
@click.pass_obj
def webhooks_enable(settings: Settings, webhook_id: str) -> None:
    """Resume deliveries to a webhook and reset its failure count."""
    _open(settings).webhooks.enable(webhook_id)
    click.echo(f"enabled {webhook_id}")


# --- deliveries ---------------------------------------------------------------


@main.group()
def deliveries() -> None:
    """Deliveries: one event bound for one webhook, and its attempts."""


def _show_delivery(settings: Settings, delivery_id: str, as_json: bool) -> None:
    """Show a delivery, its event, its webhook and every attempt."""
    stores = _open(settings)
    delivery = stores.deliveries.get(delivery_id)
    attempts = stores.deliveries.attempts(delivery_id)
    event = stores.events.get(delivery.event_id)
    webhook = stores.webhooks.find(delivery.webhook_id)
    if as_json:
        echo_json(
            {
                "delivery": delivery.public(attempts),
                "event": event.summary() if event else None,
                "webhook": webhook.public() if webhook else None,
            }
        )
        return
    received = f"received {age(event.received_ms)}" if event else "(expired)"
    hook = (
        f"{webhook.id}  {webhook.sink}  {webhook.url}  ({webhook.state})"
        if webhook
        else f"{delivery.webhook_id}  (deleted)"
    )
    fields(
        [
            ("delivery", delivery.id),
            ("state", f"{delivery.state}, {_count(delivery.attempts, 'attempt')}"),
            ("event", f"{delivery.event}  {delivery.event_id}  {received}"),
            ("webhook", hook),
            ("sent to", delivery.url),
            ("created", age(delivery.created_ms)),
            ("next attempt", age(delivery.next_ms) if delivery.next_ms else None),
            ("dead", age(delivery.dead_ms) if delivery.dead_ms else None),
            ("last error", delivery.last_error),
        ]
    )
    click.echo()
    table(
        ["#", "AT", "DURATION", "OUTCOME", "MESSAGE", "RESPONSE"],
        [
            [
                str(a["number"]),
                age(_ms(a["at"])),
                f"{a['duration_ms']:,} ms",
                str(a["status"]) if a.get("status") else str(a.get("error") or ""),
                a.get("message") or "",
                a.get("response") or "",
            ]
            for a in attempts
        ],
    )


def _ms(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time).timestamp() * 1000)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


@deliveries.command("show")
@click.argument("delivery_id", metavar="ID")
@json_option
@click.pass_obj
def deliveries_show(settings: Settings, delivery_id: str, as_json: bool) -> None:
    """Show a delivery, its event, its webhook and every attempt."""
    _show_delivery(settings, delivery_id, as_json)


# --- dead letters -------------------------------------------------------------


@main.group("dead-letters")
def dead_letters() -> None:
    """Dead letters: deliveries whose attempts are spent. Find, retry, purge."""


def _filters(command: F) -> F:
    """Add the options that choose dead letters (see DeadLetterFilter)."""
    options = [
        click.option("--webhook", "webhook_id", metavar="ID", help="Of this webhook."),
        click.option("--event", type=EVENT, metavar="EVENT", help="Of this event."),
        click.option(
            "--sink", type=click.Choice(SINKS), help="Of webhooks of this sink."
        ),
        click.option(
            "--error",
            metavar="CLASS",
            help="Whose last error class is or starts with CLASS (http_400, http_4, "
            "timeout, connect_error, webhook_disabled...).",
        ),
        click.option(
            "--since",
            "since_ms",
            **MOMENT,
            help="Dead since a time: 2h (ago), or 2026-01-01T00:00Z.",
        ),
    ]
    for option in reversed(options):
        command = option(command)

    return command


def _list_dead_letters(ops: Operations, found: list[Delivery], as_json: bool) -> None:
    """Print dead letters: a table (id, age, event, URL, attempts, last error)
    or, with ``as_json``, one document."""
    if as_json:
        echo_json({"dead_letters": [ops.shown(d) for d in found]})
        return
    rows = []
    for d in found:
        webhook = ops.webhook(d.webhook_id)
        url = d.url or (webhook.url if webhook else f"{d.webhook_id} (deleted)")
        dead = age(d.dead_ms or d.updated_ms)
        rows.append([d.id, dead, d.event, url, str(d.attempts), d.last_error or ""])
    table(["ID", "AGE", "EVENT", "WEBHOOK URL", "ATTEMPTS", "LAST ERROR"], rows)


@dead_letters.command("list")
@_filters
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=defaults.PAGE_SIZE,
    show_default=True,
    help="Show at most this many, newest first.",
)
@json_option
@click.pass_obj
def dead_letters_list(
    settings: Settings, /, limit: int, as_json: bool, **chosen: Any
) -> None:
    """List dead letters, newest first: id, age, event, URL, attempts, last error."""
    ops = Operations(_open(settings))
    found = list(ops.dead_letters(DeadLetterFilter(**chosen), limit=limit))
    _list_dead_letters(ops, found, as_json)
    if len(found) == limit and not as_json:
        click.echo(f"(the newest {limit:,}; --limit shows more)", err=True)


@dead_letters.command("show")
@click.argument("delivery_id", metavar="ID")
@json_option
@click.pass_obj
def dead_letters_show(settings: Settings, delivery_id: str, as_json: bool) -> None:
    """Show a dead letter, its event, its webhook and every attempt."""
    _show_delivery(settings, delivery_id, as_json)


def _select(
    ops: Operations,
    delivery_ids: tuple[str, ...],
    everything: bool,
    limit: int | None,
    chosen: DeadLetterFilter,
) -> Selection:
    """The dead letters a bulk command names; a usage error if none are named."""
    problem = selection_problem(
        delivery_ids, everything, chosen.narrows, all_name="--all"
    )
    if problem is not None:
        raise click.UsageError(problem)

    return ops.select(delivery_ids, chosen, everything=everything, limit=limit)


def _bulk_options(command: F) -> F:
    """Add the options every bulk dead-letter command takes."""
    options = [
        click.argument("delivery_ids", metavar="[ID]...", nargs=-1),
        click.option("--all", "everything", is_flag=True, help="Every dead letter."),
        _filters,
        click.option("--limit", type=click.IntRange(min=1), help="At most this many."),
        click.option(
            "--dry-run", is_flag=True, help="Show what would change; change nothing."
        ),
        click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
        json_option,
    ]
    for option in reversed(options):
        command = option(command)

    return command


def _dry_run(ops: Operations, selection: Selection, verb: str, as_json: bool) -> None:
    """Show what a bulk command would act on; exit 1 if some ids cannot be."""
    found = selection.dead_letters
    if as_json:
        echo_json(ops.preview(selection))
    else:
        _list_dead_letters(ops, found, as_json=False)
        report_problems(selection.problems)
        click.echo(f"would {verb} {_count(len(found), 'dead letter')}; nothing changed")
    if selection.problems:
        raise click.exceptions.Exit(1)


@dead_letters.command("retry")
@_bulk_options
@click.option("--rate", **RATE, help="Pace sends: 5/s, 100/m (default: no pacing).")
@click.option(
    "--to-url", metavar="URL", help="Send to this URL instead of the webhook's."
)
@click.pass_obj
def dead_letters_retry(
    settings: Settings,
    /,
    delivery_ids: tuple[str, ...],
    everything: bool,
    limit: int | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    rate: float | None,
    to_url: str | None,
    **chosen: Any,
) -> None:
    """Send dead letters again, each with a fresh retry schedule.

    Name them by ID, with --all, or by filters. More than 10 ask first.
    """
    ops = Operations(_open(settings))
    selection = _select(
        ops, delivery_ids, everything, limit, DeadLetterFilter(**chosen)
    )
    if to_url is not None:
        ops.check_url(selection.dead_letters, to_url)
    if dry_run:
        _dry_run(ops, selection, "retry", as_json)
        return
    count = len(selection.dead_letters)
    if count > CONFIRM_ABOVE:
        confirm(f"retry {_count(count, 'dead letter')}?", yes)
    tally = Tally(selection.total, errors=list(selection.problems))
    results = ops.retry(selection.dead_letters, url=to_url, rate=rate)
    run_bulk("retrying", "retried", tally, results, quiet=as_json)
    document = {"dry_run": False, **tally.public("retried")} if as_json else None
    finish(tally, "retried", document)


@dead_letters.command("purge")
@_bulk_options
@click.option(
    "--older-than",
    **DURATION,
    help="Dead for longer than this: 30d, 12h.",
)
@click.pass_obj
def dead_letters_purge(
    settings: Settings,
    /,
    delivery_ids: tuple[str, ...],
    everything: bool,
    limit: int | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    older_than: int | None,
    **chosen: Any,
) -> None:
    """Delete dead letters and their attempts for good.

    Name them by ID, --older-than, --all, or other filters. Asks first.
    """
    ops = Operations(_open(settings))
    if older_than is not None:
        chosen["before_ms"] = ids.now_ms() - older_than * 1000
    selection = _select(
        ops, delivery_ids, everything, limit, DeadLetterFilter(**chosen)
    )
    if dry_run:
        _dry_run(ops, selection, "purge", as_json)
        return
    count = len(selection.dead_letters)
    if count:
        confirm(f"purge {_count(count, 'dead letter')} for good?", yes)
    tally = Tally(selection.total, errors=list(selection.problems))
    run_bulk(
        "purging", "purged", tally, ops.purge(selection.dead_letters), quiet=as_json
    )
    document = {"dry_run": False, **tally.public("purged")} if as_json else None
    finish(tally, "purged", document)


@dead_letters.command("export")
@_filters
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.pass_obj
def dead_letters_export(
    settings: Settings, /, limit: int | None, **chosen: Any
) -> None:
    """Print dead letters as JSON lines, with every attempt: > file.jsonl."""
    ops = Operations(_open(settings))
    for delivery in ops.dead_letters(DeadLetterFilter(**chosen), limit=limit):
        echo_json(ops.shown(delivery, attempts=True))


# --- replay and stats ---------------------------------------------------------


@main.command()
@click.option(
    "--webhook", "webhook_id", required=True, metavar="ID", help="Send to this webhook."
)
@click.option(
    "--since",
    "since_ms",
    **MOMENT,
    required=True,
    help="Events received from: 2026-01-01T00:00Z, or 6h (ago).",
)
@click.option("--until", "until_ms", **MOMENT, help="...and before (default: now).")
@click.option(
    "--event",
    type=EVENT,
    metavar="EVENT",
    help="Events of this name (default: the webhook's).",
)
@click.option("--dry-run", is_flag=True, help="List the events; send nothing.")
@click.option("--rate", **RATE, help="Pace sends: 5/s, 100/m (default: no pacing).")
@json_option
@click.pass_obj
def replay(
    settings: Settings,
    webhook_id: str,
    since_ms: int,
    until_ms: int | None,
    event: str | None,
    dry_run: bool,
    rate: float | None,
    as_json: bool,
) -> None:
    """Send stored events of a time window to a webhook again.

    Each event becomes a new delivery (a new webhook-id; the same event id
    in Relay-Event-Id). Events are kept for RELAY_EVENT_RETENTION (7 days).
    """
    ops = Operations(_open(settings))
    plan = ops.plan_replay(webhook_id, since_ms, until_ms, event)
    kept_from = ids.now_ms() - settings.event_retention * 1000
    if since_ms < kept_from and not as_json:
        click.echo(
            f"note: events are kept for {span(settings.event_retention)}; "
            "older ones cannot be replayed",
            err=True,
        )
    if dry_run:
        if as_json:
            echo_json({"replay": plan.public()})
            return
        table(
            ["EVENT ID", "EVENT", "RECEIVED"],
            [[e, plan.event, age(ids.id_ms(e))] for e in plan.event_ids],
        )
        click.echo(
            f"would replay {_count(len(plan.event_ids), 'event')} to "
            f"{plan.webhook.id} ({plan.webhook.url}); nothing changed"
        )
        return
    tally = Tally(len(plan.event_ids))
    run_bulk("replaying", "replayed", tally, ops.replay(plan, rate=rate), quiet=as_json)
    finish(tally, "replayed", {"replay": plan.public(tally)} if as_json else None)


@main.command("stats")
@json_option
@click.pass_obj
def stats_command(settings: Settings, as_json: bool) -> None:
    """Queue depths, retries, dead letters, the last hour, workers."""
    shot = stats.snapshot(_open(settings))
    if as_json:
        echo_json({"stats": shot.public()})
        return
    hour = shot.last_hour
    unread = "?" if shot.unread is None else f"{shot.unread:,}"
    oldest = (
        f", the oldest created {age(shot.oldest_pending_ms)}"
        if shot.oldest_pending_ms
        else ""
    )
    fields(
        [
            (
                "work stream",
                f"{shot.stream_length:,} items: {shot.unacknowledged:,} being "
                f"worked on, {unread} unread",
            ),
            ("rq queue", f"{shot.queue_jobs:,} jobs"),
            ("retries scheduled", f"{shot.scheduled_retries:,}"),
            ("pending deliveries", f"{shot.pending:,}{oldest}"),
            ("dead letters", f"{shot.dead_letters:,}"),
            (
                "last hour",
                f"{hour['delivered']:,} delivered, {hour['failed']:,} failed "
                f"attempts, {hour['dead']:,} dead-lettered, {hour['retried']:,} "
                "retried",
            ),
            (
                "workers",
                f"{len(shot.workers)} alive"
                + (": " + ", ".join(shot.workers) if shot.workers else ""),
            ),
        ]
    )
    if shot.open_breakers:
        click.echo()
        table(
            ["WEBHOOK", "BREAKER"],
            [[w, state.replace("_", "-")] for w, state in shot.open_breakers],
        )
    if shot.dead_by_webhook:
        click.echo()
        table(
            ["WEBHOOK", "URL", "DEAD LETTERS"],
            [[w, url or "(deleted)", f"{n:,}"] for w, url, n in shot.dead_by_webhook],
        )

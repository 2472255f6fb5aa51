"""The console's pages and the forms they post.

Every page reads through the stores the API uses, and every action calls
what the API calls: :class:`~relay.webhooks.WebhookStore` to enable,
disable and delete, :class:`~relay.operations.Operations` to retry dead
letters. After a POST the browser is sent back to a page (post, redirect,
get) with a one-line message of what happened.
"""

from __future__ import annotations

import logging
from typing import Any

import flask
import redis
from werkzeug.exceptions import HTTPException

from relay import catalogue, defaults, figures, ids
from relay.api import stores
from relay.console import auth, charts
from relay.deliveries import DEAD, DELIVERED, PENDING, RETRYING, Delivery
from relay.errors import ApiError, StoreUnavailable, ValidationFailed
from relay.operations import DeadLetterFilter, Operations, Tally
from relay.schemas import SINKS
from relay.terminal import age, cut
from relay.webhooks import Webhook

log = logging.getLogger(__name__)

blp = flask.Blueprint(
    "console",
    __name__,
    url_prefix=auth.PREFIX,
    template_folder="templates",
    static_folder="static",
)

#: Rows per page of every list.
PAGE = 50
#: Recent deliveries a webhook's success rate is worked out from.
RECENT = 20
#: Most dead letters one press of "retry all matching" sends again.
BULK_MAX = 1000
#: The dead-letter filters, as the API and the CLI name them.
FILTERS = ("webhook", "event", "sink", "error", "since")

_OPEN = ("console.login", "console.static")
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@blp.before_request
def _guard() -> Any:
    """Check the CSRF token of every form; send strangers to the login."""
    if flask.request.endpoint == "console.static":
        return None
    auth.secret_key(flask.current_app)  # read once; Redis down is a 503 page
    if flask.request.method == "POST":
        auth.check_csrf()
    if flask.request.endpoint in _OPEN or auth.logged_in():
        return None
    return flask.redirect(flask.url_for("console.login", next=flask.request.path))


@blp.after_request
def _secure(response: flask.Response) -> flask.Response:
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)

    return response


@blp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "csrf_token": auth.csrf_token,
        "open_console": auth.open_console,
        "age": age,
        "iso": ids.iso,
        "cut": cut,
        "plural": plural,
    }


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 dead letter``, ``2 dead letters``: the count and the right noun."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _page(name: str, status: int = 200, **context: Any) -> Any:
    return flask.render_template(f"console/{name}.html", **context), status


@blp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Any:
    return _page("error", error.status, message=error.message)


@blp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    return _page("error", error.code or 500, message=error.description)


def _unavailable(error: Exception) -> Any:
    log.warning("console_redis_unavailable", extra={"error": str(error)})
    return _page(
        "error", 503, message="Redis does not answer; reload the page shortly."
    )


for _error in (StoreUnavailable, redis.ConnectionError, redis.TimeoutError):
    blp.register_error_handler(_error, _unavailable)


# --- logging in -------------------------------------------------------------


@blp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; posting the API token opens a session."""
    if auth.open_console():
        return flask.redirect(flask.url_for("console.index"))
    target = flask.request.values.get("next", "")
    if not target.startswith(auth.PREFIX) or target.startswith("//"):
        target = flask.url_for("console.index")
    if flask.request.method == "GET":
        return _page("login", next=target)
    if auth.log_in(flask.request.form.get("token", "")):
        return flask.redirect(target)
    log.warning("console_login_refused", extra={"remote_addr": _address()})

    return _page("login", 401, next=target, refused=True)


def _address() -> str:
    return flask.request.remote_addr or "unknown"


@blp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session."""
    auth.log_out()
    return flask.redirect(flask.url_for("console.login"))


# --- webhooks ---------------------------------------------------------------


def _health(webhook: Webhook) -> dict[str, Any]:
    """A webhook's success rate over its recent deliveries, and its last
    attempt (the newest delivery that has had one)."""
    # TODO: two round trips per webhook shown (its recent deliveries): fine
    # for a page of 50; counts per webhook kept by the delivery store would
    # make the overview one round trip.
    recent, _ = stores().deliveries.page_for_webhook(webhook.id, limit=RECENT)
    tried = [d for d in recent if d.state in (DELIVERED, DEAD, RETRYING)]
    delivered = sum(1 for d in tried if d.state == DELIVERED)
    last = next((d for d in recent if d.attempts > 0), None)

    return {
        "rate": round(100 * delivered / len(tried)) if tried else None,
        "tried": len(tried),
        "last": last,
    }


@blp.route("", methods=["GET"])
def index() -> Any:
    """The overview: the relay's figures, the charts, and the webhooks."""
    found = figures.read(stores())
    webhooks, after = stores().webhooks.page(
        limit=PAGE, cursor=flask.request.args.get("cursor") or None
    )
    breakers = stores().breakers.many([w.id for w in webhooks])
    rows = [
        {"webhook": w, "breaker": b, **_health(w)}
        for w, b in zip(webhooks, breakers, strict=True)
    ]
    oldest = min(found.oldest_pending.values(), default=None)

    return _page(
        "index",
        figures=found,
        oldest=oldest,
        rows=rows,
        after=after,
        charts=[charts.deliveries(found.minutes), charts.latency(found.minutes)],
    )


@blp.route("/webhooks/<webhook_id>", methods=["GET"])
def webhook(webhook_id: str) -> Any:
    """One webhook, its breaker and its deliveries, newest first."""
    found = stores().webhooks.get(webhook_id)
    deliveries, after = stores().deliveries.page_for_webhook(
        webhook_id, limit=PAGE, cursor=flask.request.args.get("cursor") or None
    )

    return _page(
        "webhook",
        webhook=found,
        breaker=stores().breakers.get(webhook_id),
        deliveries=deliveries,
        after=after,
        **_health(found),
    )


@blp.route("/webhooks/<webhook_id>/enable", methods=["POST"])
def enable(webhook_id: str) -> Any:
    """Resume deliveries to a webhook."""
    stores().webhooks.enable(webhook_id)
    flask.flash(f"Enabled {webhook_id}.")

    return flask.redirect(flask.url_for("console.webhook", webhook_id=webhook_id))


@blp.route("/webhooks/<webhook_id>/disable", methods=["POST"])
def disable(webhook_id: str) -> Any:
    """Stop deliveries to a webhook, with the reason given."""
    reason = flask.request.form.get("reason", "").strip() or "disabled in the console"
    stores().webhooks.disable(webhook_id, reason[: defaults.DESCRIPTION_MAX_LENGTH])
    flask.flash(f"Disabled {webhook_id}.")

    return flask.redirect(flask.url_for("console.webhook", webhook_id=webhook_id))


@blp.route("/webhooks/<webhook_id>/delete", methods=["POST"])
def delete(webhook_id: str) -> Any:
    """Delete a webhook; its unfinished deliveries are dropped."""
    stores().webhooks.delete(webhook_id)
    flask.flash(f"Deleted {webhook_id}.")

    return flask.redirect(flask.url_for("console.index"))


# --- deliveries and dead letters --------------------------------------------


@blp.route("/deliveries/<delivery_id>", methods=["GET"])
def delivery(delivery_id: str) -> Any:
    """One delivery with every attempt, its event and its webhook."""
    found = stores().deliveries.get(delivery_id)
    event = stores().events.get(found.event_id)

    return _page(
        "delivery",
        delivery=found,
        attempts=stores().deliveries.attempts(delivery_id),
        event=event,
        payload=event.body.decode("utf-8", "replace") if event else None,
        webhook=stores().webhooks.find(found.webhook_id),
        watching=found.state in (PENDING, RETRYING),
    )


@blp.route("/deliveries/<delivery_id>/retry", methods=["POST"])
def retry(delivery_id: str) -> Any:
    """Send one dead letter again with a fresh schedule."""
    found = stores().deliveries.get(delivery_id)
    if found.state != DEAD:
        raise ValidationFailed(
            f"delivery {delivery_id} is {found.state}, not a dead letter"
        )
    result = next(Operations(stores()).retry([found]))
    if result.error is None:
        flask.flash(f"Retrying {delivery_id}: queued for its first attempt.")
    else:
        flask.flash(f"Not retried: {result.error}.", "error")

    return flask.redirect(flask.url_for("console.delivery", delivery_id=delivery_id))


def _filter(values: Any) -> tuple[DeadLetterFilter, dict[str, str]]:
    """The dead-letter filter of a query or form, and its fields as given."""
    given = {name: values.get(name, "").strip() for name in FILTERS}
    chosen = DeadLetterFilter.from_text(**{k: v for k, v in given.items() if v})

    return chosen, given


@blp.route("/dead-letters", methods=["GET"])
def dead_letters() -> Any:
    """Dead letters, newest first, filtered as the API filters them."""
    ops = Operations(stores())
    problem = None
    rows: list[Delivery] = []
    after = None
    try:
        chosen, given = _filter(flask.request.args)
    except ValidationFailed as exc:
        chosen, given, problem = None, dict(flask.request.args), exc.message
    if chosen is not None:
        rows, after = ops.dead_page(
            chosen, limit=PAGE, cursor=flask.request.args.get("cursor") or None
        )

    return _page(
        "dead_letters",
        422 if problem else 200,
        rows=rows,
        webhooks={d.webhook_id: ops.webhook(d.webhook_id) for d in rows},
        after=after,
        given=given,
        kept={k: v for k, v in given.items() if v and k in FILTERS},
        problem=problem,
        total=stores().deliveries.dead_count(),
        events=catalogue.EVENT_NAMES,
        sinks=SINKS,
    )


@blp.route("/dead-letters/retry", methods=["POST"])
def retry_many() -> Any:
    """Send dead letters again: those ticked, or all matching the filters."""
    form = flask.request.form
    chosen, given = _filter(form)
    ids_given = form.getlist("ids")
    ops = Operations(stores())
    if form.get("scope") == "matching":
        selection = ops.select(
            (), chosen, everything=not chosen.narrows, limit=BULK_MAX
        )
    elif ids_given:
        selection = ops.select(ids_given)
    else:
        raise ValidationFailed("tick the dead letters to retry first")
    tally = Tally(selection.total, errors=list(selection.problems))
    for result in ops.retry(selection.dead_letters):
        tally.add(result)
    flask.flash(tally.line("Retried") + ".", "error" if tally.errors else "info")
    for failed, why in tally.errors[:5]:
        flask.flash(f"{failed}: {why}", "error")
    if len(selection.dead_letters) == BULK_MAX:
        flask.flash(f"At most {BULK_MAX:,} at a time: press again for more.")
    kept: dict[str, Any] = {k: v for k, v in given.items() if v}

    return flask.redirect(flask.url_for("console.dead_letters", **kept))

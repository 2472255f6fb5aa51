"""The console at ``/console``: logging in, CSRF, the pages and their actions,
through Flask's test client (the browser tests drive a real Chromium)."""

from __future__ import annotations

import html
import re
import socket

import pytest
from operating import dead_letters, states, webhook

from relay import ids
from relay.app import create_app
from relay.console import charts
from relay.figures import Minute

TOKEN = "console-t0ken"


@pytest.fixture
def guarded(settings, redis_client):
    """The app with an API token, so the console asks for it."""
    app = create_app(settings.replace(api_token=TOKEN), redis_client)
    app.config["TESTING"] = True

    return app


@pytest.fixture
def browser(guarded):
    """A test client that has logged in to the console."""
    client = guarded.test_client()
    log_in(client)

    return client


def csrf(page):
    """The CSRF token of the forms on ``page``."""
    return re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))[1]


def log_in(client, token=TOKEN, next_page="/console"):
    """Post the login form as a browser would, and return the answer."""
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"token": token, "csrf": csrf(form), "next": next_page},
    )


def post(client, path, **fields):
    """Post a console form with the session's CSRF token."""
    token = csrf(client.get("/console/dead-letters"))
    return client.post(path, data={"csrf": token, **fields})


def text(answer):
    return html.unescape(answer.get_data(as_text=True))


def test_strangers_are_sent_to_the_login(guarded):
    """Every page asks for the token first, then comes back to it."""
    client = guarded.test_client()

    answer = client.get("/console/dead-letters")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/console/login?next=/console/dead-letters"
    assert log_in(client, next_page="/console/dead-letters").headers["Location"] == (
        "/console/dead-letters"
    )
    assert client.get("/console/dead-letters").status_code == 200


def test_a_wrong_token_is_refused(guarded):
    """A wrong token gets the form again with 401, and no session."""
    client = guarded.test_client()

    answer = log_in(client, token="guess")

    assert answer.status_code == 401
    assert "That is not the API token." in text(answer)
    assert client.get("/console").status_code == 302


def test_a_form_without_its_csrf_token_is_refused(guarded, browser):
    """A POST without the session's CSRF token changes nothing (400)."""
    hook = webhook(guarded.extensions["relay"])

    answer = browser.post(f"/console/webhooks/{hook.id}/disable", data={})
    forged = browser.post(
        f"/console/webhooks/{hook.id}/disable", data={"csrf": "forged"}
    )
    login = guarded.test_client().post("/console/login", data={"token": TOKEN})

    assert answer.status_code == forged.status_code == login.status_code == 400
    assert "did not come from this console" in text(answer)
    assert guarded.extensions["relay"].webhooks.get(hook.id).state == "active"


def test_the_session_cookie_is_the_consoles_own(guarded):
    """The session cookie is HttpOnly, SameSite and kept to /console; the API
    sets none."""
    client = guarded.test_client()

    answer = client.get("/console/login")
    api = client.get("/v1/webhooks", headers={"Authorization": f"Bearer {TOKEN}"})

    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("relay_console=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/console" in cookie
    assert "Set-Cookie" not in api.headers


def test_a_new_token_ends_every_session(settings, redis_client, guarded, browser):
    """Sessions opened with one token do not outlive it, even under a fixed
    RELAY_SECRET_KEY."""
    assert browser.get("/console").status_code == 200
    for changes in ({}, {"secret_key": "fixed"}):
        first = create_app(
            settings.replace(api_token=TOKEN, **changes), redis_client
        ).test_client()
        log_in(first)
        assert first.get("/console").status_code == 200
        rotated = create_app(
            settings.replace(api_token="new-token", **changes), redis_client
        )
        cookie = first.get_cookie("relay_console", path="/console")
        later = rotated.test_client()
        later.set_cookie("relay_console", cookie.value, path="/console")

        assert later.get("/console").status_code == 302


def test_logging_out_ends_the_session(browser):
    """Log out ends the session."""
    answer = post(browser, "/console/logout")

    assert answer.headers["Location"] == "/console/login"
    assert browser.get("/console").status_code == 302


def test_the_login_goes_back_only_to_the_console(guarded):
    """``next`` never leads off the console."""
    for target in ("//evil.example/", "https://evil.example/", "/v1/webhooks"):
        answer = log_in(guarded.test_client(), next_page=target)
        assert answer.headers["Location"] == "/console"


def test_without_a_token_the_console_is_open(client, stores):
    """With no API token, as the API, the console needs no login."""
    hook = webhook(stores)

    assert hook.id in text(client.get("/console"))
    assert client.get("/console/login").headers["Location"] == "/console"
    assert "Log out" not in text(client.get("/console"))


def test_pages_carry_security_headers(browser):
    """Console pages forbid framing, outside scripts and caching."""
    answer = browser.get("/console")

    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"


def test_the_overview_shows_webhooks_with_success_and_last_attempt(guarded, browser):
    """Each webhook shows its state, success rate and last attempt."""
    stores = guarded.extensions["relay"]
    hook = webhook(stores)
    idle = webhook(stores, url="https://idle.example/hook")
    dead_letters(stores, hook, 1)
    delivered = dead_letters(stores, hook, 1)[0]
    stores.client.hset(f"relay:dlv:{delivered}", "state", "delivered")

    page = text(browser.get("/console"))

    rows = {
        re.search(r"wh_\w+", row)[0]: row
        for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)[1:]
    }
    assert "https://receiver.example/hook" in rows[hook.id]
    assert "50%" in rows[hook.id] and "of 2 recent" in rows[hook.id]
    assert "http_400: 400 from the receiver" in rows[hook.id]
    assert "none yet" in rows[idle.id]
    assert "2 dead letters" in re.sub(r"<[^>]+>", "", page)
    assert "Deliveries per minute, last hour" in page
    assert page.count("<svg") == 2


def test_webhooks_are_disabled_enabled_and_deleted(guarded, browser):
    """The console's buttons call the webhook store."""
    stores = guarded.extensions["relay"]
    hook = webhook(stores)
    path = f"/console/webhooks/{hook.id}"

    disabled = post(browser, path + "/disable", reason="receiver moves")
    assert disabled.headers["Location"] == path
    assert stores.webhooks.get(hook.id).disabled_reason == "receiver moves"
    assert "receiver moves" in text(browser.get(path))

    post(browser, path + "/enable")
    assert stores.webhooks.get(hook.id).state == "active"

    deleted = post(browser, path + "/delete")
    assert deleted.headers["Location"] == "/console"
    assert stores.webhooks.find(hook.id) is None
    assert f"Deleted {hook.id}." in text(browser.get("/console"))
    assert browser.get(path).status_code == 404


def test_a_dead_letter_shows_its_attempts_and_is_retried(guarded, browser):
    """A dead letter's page lists its attempts; Retry sends it again."""
    stores = guarded.extensions["relay"]
    hook = webhook(stores)
    [dead] = dead_letters(stores, hook, 1)

    page = text(browser.get(f"/console/deliveries/{dead}"))
    assert "400 from the receiver; not retried" in page
    assert ">Retry</button>" in page

    answer = post(browser, f"/console/deliveries/{dead}/retry")

    assert answer.headers["Location"] == f"/console/deliveries/{dead}"
    assert states(stores, [dead]) == ["pending"]
    again = text(browser.get(f"/console/deliveries/{dead}"))
    assert f"Retrying {dead}" in again
    assert 'data-refresh="2"' in again
    refused = post(browser, f"/console/deliveries/{dead}/retry")
    assert refused.status_code == 422
    assert "not a dead letter" in text(refused)


def test_dead_letters_are_filtered_and_retried_in_bulk(guarded, browser):
    """Ticked dead letters, or all that match the filters, are sent again."""
    stores = guarded.extensions["relay"]
    hook = webhook(stores)
    other = webhook(stores, url="https://other.example/hook")
    ticked = dead_letters(stores, hook, 3)
    kept = dead_letters(stores, other, 2)

    page = text(browser.get(f"/console/dead-letters?webhook={hook.id}"))
    assert all(d in page for d in ticked) and not any(d in page for d in kept)

    answer = post(
        browser, "/console/dead-letters/retry", ids=ticked[:2], scope="selected"
    )
    assert answer.headers["Location"] == "/console/dead-letters"
    assert states(stores, ticked) == ["pending", "pending", "dead"]

    answer = post(
        browser, "/console/dead-letters/retry", webhook=other.id, scope="matching"
    )
    assert answer.headers["Location"] == f"/console/dead-letters?webhook={other.id}"
    assert (
        states(stores, [*ticked, *kept]) == ["pending"] * 2 + ["dead"] + ["pending"] * 2
    )
    assert "Retried 2 of 2; 0 errors." in text(browser.get("/console/dead-letters"))


def test_a_bad_filter_is_explained(browser):
    """A filter that does not parse is shown, not a crash."""
    answer = browser.get("/console/dead-letters?since=yesterday-ish")

    assert answer.status_code == 422
    assert "'yesterday-ish' is neither" in text(answer)


def test_every_value_is_escaped(guarded, browser):
    """Descriptions and payloads are shown as text, never run."""
    stores = guarded.extensions["relay"]
    hook, _ = stores.webhooks.create(
        "ticket_started",
        "https://receiver.example/hook",
        description="<script>alert('d')</script>",
    )
    [dead] = dead_letters(stores, hook, 1)
    event_id = stores.deliveries.get(dead).event_id
    stores.client.hset(f"relay:evt:{event_id}", "body", b'{"t": "<img src=x>"}')

    webhook_page = browser.get(f"/console/webhooks/{hook.id}").get_data(as_text=True)
    delivery_page = browser.get(f"/console/deliveries/{dead}").get_data(as_text=True)

    assert "<script>alert" not in webhook_page
    assert "&lt;script&gt;alert(&#39;d&#39;)&lt;/script&gt;" in webhook_page
    assert "<img src=x>" not in delivery_page
    assert "&lt;img src=x&gt;" in delivery_page


def test_unknown_ids_are_a_page_not_a_crash(browser):
    """An unknown webhook or delivery is a 404 page."""
    for path in ("/console/webhooks/wh_nope", "/console/deliveries/dlv_nope"):
        answer = browser.get(path)
        assert answer.status_code == 404
        assert "That did not work" in text(answer)


def test_the_charts_come_from_the_minute_counters(guarded, browser):
    """The deliveries chart stacks each minute's counts from Redis."""
    stores = guarded.extensions["relay"]
    minute = ids.now_ms() // 60_000
    stores.client.hset(
        stores.deliveries.keys.stats(minute - 2),
        mapping={
            "delivered": 7,
            "retrying": 2,
            "dead": 1,
            "attempts": 10,
            "duration_ms": 1500,
        },
    )
    page = text(browser.get("/console"))

    assert "7 delivered" in page and "2 failed, retry scheduled" in page
    assert "1 dead-lettered" in page
    assert "150 ms mean over 10 attempts" in page


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (0.3, 0.5), (1, 1), (7, 10), (12, 20), (48, 50), (51, 100), (990, 1000)],
)
def test_nice_ceiling(value, ceiling):
    """The y axis tops out at 1, 2 or 5 times a power of ten."""
    assert charts.nice_ceiling(value) == ceiling


def test_deliveries_chart_stacks_the_series():
    """Each minute is one column: delivered under retrying under dead."""
    minutes = [Minute(100 + i) for i in range(59)] + [
        Minute(159, delivered=6, retrying=3, dead=1)
    ]

    chart = charts.deliveries(minutes)

    delivered, retrying, dead = chart.rects
    assert [r.kind for r in chart.rects] == ["delivered", "retrying", "dead"]
    assert delivered.height == pytest.approx(retrying.height * 2)
    assert delivered.y == pytest.approx(retrying.y + retrying.height)
    assert retrying.y == pytest.approx(dead.y + dead.height)
    assert dead.y == pytest.approx(chart.top)
    assert [t.label for t in chart.x_ticks] == ["-45m", "-30m", "-15m", "now"]


def test_latency_chart_breaks_where_there_were_no_attempts():
    """Minutes without attempts split the line."""
    minutes = [
        Minute(1, attempts=2, duration_ms=200),
        Minute(2, attempts=1, duration_ms=300),
        Minute(3),
        Minute(4, attempts=4, duration_ms=400),
    ]

    chart = charts.latency(minutes)

    assert [len(line.split()) for line in chart.lines] == [2, 1]
    assert [t.label for t in chart.y_ticks] == ["0 ms", "250 ms", "500 ms"]
    assert chart.summary == "Over the last hour: 7 attempts, 129 ms on average."


@pytest.mark.parametrize("token", [None, TOKEN])
def test_without_redis_the_console_says_so(settings, token):
    """With Redis unreachable every page is a 503 page, not a crash."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    app = create_app(settings.replace(redis_url=url, api_token=token))
    client = app.test_client()

    for path in ("/console", "/console/login", "/console/dead-letters"):
        answer = client.get(path)
        assert answer.status_code == 503, path
        assert "Redis does not answer" in text(answer)

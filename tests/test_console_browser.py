"""The console in a real browser: headless Chromium driven by Playwright.

The app runs under a real WSGI server on loopback, the delivery engine runs
in this process, and a real HTTP server receives the deliveries: it fails
until the test lets it succeed. Each page is saved as a screenshot in
``tests/screenshots/`` (kept out of git); the overview is also copied to
``docs/console.png`` for the README when that file is missing, or when
``RELAY_UPDATE_SCREENSHOTS=1``.

Chromium is Debian's (``apt-get install chromium``; ``.ci/run`` installs it
when it can), or the one ``RELAY_CHROMIUM`` names. Without it, or without
the ``playwright`` package, these tests skip.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from payloads import TICKET
from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler
from werkzeug import Response
from werkzeug.serving import make_server

from relay.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "tests" / "screenshots"
DOCS_SHOT = ROOT / "docs" / "console.png"
TOKEN = "browser-t0ken"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    named = os.environ.get("RELAY_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """A headless Chromium, or a skip saying why there is none."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium: apt-get install chromium, or set RELAY_CHROMIUM")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def served(settings, redis_client) -> Iterator[tuple[str, object]]:
    """The app with an API token, served on loopback: its URL and the app."""
    app = create_app(settings.replace(api_token=TOKEN), redis_client)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(timeout=5)


class Receiver:
    """Answers 500 until told to succeed, then 200."""

    def __init__(self) -> None:
        self.succeed = False

    def __call__(self, request: object) -> Response:
        if self.succeed:
            return Response("thanks", status=200)
        return Response("the receiver is down", status=500)


def shot(page, name: str) -> Path:
    """Save a screenshot of ``page`` for the test's output."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)

    return path


def test_a_failed_delivery_is_retried_from_the_console(
    chromium, served, engine, wait_for, httpserver
):
    """Log in, see the webhook, open its dead letter, press Retry, and see it
    delivered to the receiver."""
    base, app = served
    receiver = Receiver()
    httpserver.expect_request("/hook").respond_with_handler(receiver)
    api = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = httpserver.url_for("/hook")
    hook = api.post(
        "/v1/webhooks", json={"event": "ticket_started", "url": url}, headers=auth
    ).get_json()["webhook"]
    api.post("/v1/events/ticket_started", json=TICKET, headers=auth)
    stores = app.extensions["relay"]
    wait_for(lambda: stores.deliveries.dead_count() == 1, what="a dead letter")
    [dead] = stores.deliveries.dead_page(limit=1)[0]
    # From here on nothing waits in RQ: let the engine in this process be
    # seen as `relay worker` is, registered and holding the scheduler lock.
    queue = Queue(stores.settings.queue_name, connection=stores.client)
    seen = SimpleWorker([queue], connection=stores.client, name="browser-test")
    seen.register_birth()
    lock = RQScheduler.get_locking_key(queue.name)
    stores.client.set(lock, seen.name, ex=60)

    page = chromium.new_page(viewport={"width": 1280, "height": 860})
    try:
        page.goto(base + "/console")
        page.wait_for_selector("input[name=token]")
        shot(page, "1-login")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={hook['id']}")
        assert page.url == base + "/console"
        assert url in page.inner_text("table.list")
        shot(page, "2-overview")

        page.click("nav >> text=Dead letters")
        page.wait_for_selector(f"text={dead.id}")
        shot(page, "3-dead-letters")
        page.click(f"a:has-text('{dead.id}')")
        page.wait_for_selector("#attempts")
        assert page.inner_text("#delivery-state") == "dead"
        assert "500" in page.inner_text("#attempts")
        shot(page, "4-dead-letter")

        receiver.succeed = True
        page.click("button:has-text('Retry')")
        page.wait_for_selector(f"text=Retrying {dead.id}")
        page.wait_for_selector("#delivery-state .delivered", timeout=20_000)
        shot(page, "5-delivered")

        page.click(f"a:has-text('{hook['id']}')")
        page.wait_for_selector("text=Deliveries")
        shot(page, "6-webhook")

        page.click("nav >> text=Webhooks")
        page.wait_for_selector("text=100%")
        shot(page, "7-overview-after")
        if not DOCS_SHOT.exists() or os.environ.get("RELAY_UPDATE_SCREENSHOTS"):
            DOCS_SHOT.parent.mkdir(exist_ok=True)
            page.set_viewport_size({"width": 1280, "height": 600})
            page.screenshot(path=str(DOCS_SHOT))
    finally:
        page.close()
        seen.register_death()
        stores.client.delete(lock)

    delivered = [r for r, answer in httpserver.log if answer.status_code == 200]
    assert [r.headers["webhook-id"] for r in delivered] == [dead.id]
    assert stores.deliveries.get(dead.id).state == "delivered"

"""The email sink end to end, with a real SMTP server (aiosmtpd) on loopback.

The server's handler answers each recipient as a test tells it (``451`` for
now, ``550`` for good) and keeps what it receives; tests parse that with the
``email`` package.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from markupsafe import escape
from payloads import EXAMPLES

from relay.catalogue import EVENTS
from relay.errors import ConfigError
from relay.webhooks import Webhook
from workers.sinks import render
from workers.sinks.base import Message
from workers.sinks.email import (
    EmailSink,
    SmtpServer,
    accepted_before,
    judge,
    message_id,
)

TO = "ops@example.com"


class Mailbox:
    """An aiosmtpd handler: answers recipients as told, keeps each message."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        self.rcpt: dict[str, list[str]] = {}
        self.data: list[str] = []

    def reset(self) -> None:
        self.received.clear()
        self.rcpt.clear()
        self.data.clear()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        answers = self.rcpt.get(address)
        if answers:
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            if not answer.startswith("2"):
                return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.data:
            answer = self.data.pop(0)
            if not answer.startswith("2"):
                return answer
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback for this module."""
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def mailbox(smtp_server) -> Mailbox:
    """The SMTP server's handler, emptied for this test."""
    smtp_server[0].reset()
    return smtp_server[0]


@pytest.fixture
def settings(settings, smtp_server):
    """The test settings, sending email through the test's SMTP server."""
    return settings.replace(
        smtp_url=f"smtp://127.0.0.1:{smtp_server[1]}",
        mail_from="Relay <relay@example.com>",
    )


def _subscribe(client, recipients, event="ticket_started"):
    url = "mailto:" + ",".join(recipients)
    answer = client.post("/v1/webhooks", json={"event": event, "url": url})
    assert answer.status_code == 201, answer.get_json()
    webhook = answer.get_json()["webhook"]
    assert webhook["sink"] == "email"
    return webhook


def _post(client, event, payload):
    answer = client.post(f"/v1/events/{event}", json=payload)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["event"]["id"]


def _settled(client, webhook_id, *states):
    found = client.get(f"/v1/webhooks/{webhook_id}/deliveries").get_json()
    deliveries = found["deliveries"]
    if deliveries and all(d["state"] in states for d in deliveries):
        return client.get(f"/v1/deliveries/{deliveries[0]['id']}").get_json()[
            "delivery"
        ]
    return None


def _parse(content: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_each_event_arrives_as_an_email(client, engine, wait_for, mailbox, event):
    """Each of the 14 events arrives as one email: subject, both parts, the JSON."""
    example = EXAMPLES[EVENTS[event]]
    webhook = _subscribe(client, [TO], event)
    event_id = _post(client, event, example)

    delivery = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    ((recipients, content),) = mailbox.received
    assert recipients == [TO]
    mail = _parse(content)
    shown = render.view(event, json.dumps(example).encode())
    assert mail["Subject"] == f"[relay] {event}: {shown.headline}"
    assert mail["From"] == "Relay <relay@example.com>"
    assert mail["To"] == TO
    assert (
        mail["Message-ID"] == message_id(delivery["id"]) == f"<{delivery['id']}@relay>"
    )
    assert mail["Relay-Event"] == event
    assert mail["Relay-Event-Id"] == event_id
    assert mail["Relay-Delivery"] == delivery["id"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.startswith(shown.summary)
    assert str(escape(shown.summary)) in html
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_content_type() == "application/json"
    assert json.loads(attachment.get_content()) == example
    assert delivery["attempts"][0]["status"] == 250


def test_hostile_title_is_escaped_in_the_html_part(client, engine, wait_for, mailbox):
    """A <script> in a ticket title is escaped in HTML and kept as text elsewhere."""
    title = "<script>alert('x')</script> & more"
    webhook = _subscribe(client, [TO])
    _post(client, "ticket_started", {**EXAMPLES["Ticket"], "title": title})

    wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    mail = _parse(mailbox.received[0][1])
    html = mail.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html
    assert title in mail.get_body(("plain",)).get_content()
    # A long subject may be folded right after "Subject:"; unfolding leaves
    # the folding space in front, which mail readers drop.
    assert mail["Subject"].strip() == f'[relay] ticket_started: Ticket #1 "{title}"'


def test_451_is_retried_for_that_recipient_only(
    client, engine, wait_for, mailbox, stores
):
    """A 451 for one recipient is retried to it alone, as the same message."""
    mailbox.rcpt["a@example.com"] = ["451 4.7.1 try later", "250 OK"]
    webhook = _subscribe(client, ["a@example.com", "b@example.com"])
    _post(client, "ticket_started", EXAMPLES["Ticket"])

    delivery = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    assert [r for r, _ in mailbox.received] == [["b@example.com"], ["a@example.com"]]
    ids = {_parse(content)["Message-ID"] for _, content in mailbox.received}
    assert ids == {f"<{delivery['id']}@relay>"}
    first, second = stores.deliveries.attempts(delivery["id"])
    assert (first["status"], first["error"]) == (451, "smtp_451")
    assert first["details"]["recipients"]["a@example.com"].startswith("451 4.7.1")
    assert first["details"]["recipients"]["b@example.com"].startswith("250")
    assert second["details"]["earlier"] == ["b@example.com"]
    assert second["details"]["recipients"]["a@example.com"].startswith("250")


def test_550_for_every_recipient_is_dead_lettered(
    client, engine, wait_for, mailbox, stores
):
    """A 550 for every recipient dead-letters the delivery after one attempt."""
    mailbox.rcpt[TO] = ["550 5.1.1 no such user"]
    webhook = _subscribe(client, [TO])
    _post(client, "ticket_started", EXAMPLES["Ticket"])

    delivery = wait_for(lambda: _settled(client, webhook["id"], "dead"))
    (attempt,) = stores.deliveries.attempts(delivery["id"])
    assert (attempt["status"], attempt["error"]) == (550, "smtp_550")
    assert attempt["details"]["recipients"] == {TO: "550 5.1.1 no such user"}
    assert mailbox.received == []


def test_550_for_one_recipient_does_not_block_the_others(
    client, engine, wait_for, mailbox, stores
):
    """One recipient refused for good; the others get the email, delivered."""
    mailbox.rcpt["gone@example.com"] = ["550 5.1.1 no such user"]
    webhook = _subscribe(client, ["gone@example.com", TO])
    _post(client, "ticket_started", EXAMPLES["Ticket"])

    delivery = wait_for(lambda: _settled(client, webhook["id"], "delivered"))
    assert [r for r, _ in mailbox.received] == [[TO]]
    (attempt,) = stores.deliveries.attempts(delivery["id"])
    replies = attempt["details"]["recipients"]
    assert replies["gone@example.com"] == "550 5.1.1 no such user"
    assert replies[TO] == "250 2.0.0 queued"
    assert "gone@example.com" in attempt["message"]


@pytest.mark.parametrize(
    ("answer", "state"),
    [("451 4.3.0 disk full", "retrying"), ("554 5.7.1 rejected as spam", "dead")],
)
def test_data_refusal_applies_to_every_accepted_recipient(
    client, engine, wait_for, mailbox, stores, answer, state
):
    """A refusal of the message itself is transient or permanent by its code."""
    mailbox.data.append(answer)
    webhook = _subscribe(client, [TO])
    _post(client, "ticket_started", EXAMPLES["Ticket"])

    delivery = wait_for(lambda: _settled(client, webhook["id"], state))
    attempt = stores.deliveries.attempts(delivery["id"])[0]
    assert attempt["details"]["recipients"] == {TO: answer}


# --- the sink without the engine ------------------------------------------------


def _message(recipients: list[str], accepted: dict[str, str] | None = None) -> Message:
    url = "mailto:" + ",".join(recipients)
    webhook = Webhook(
        id="wh_1",
        event="ticket_closed",
        url=url,
        sink="email",
        state="active",
        secret="whsec_x",
        created_ms=0,
    )
    return Message(
        delivery_id="dlv_1",
        number=1,
        event_id="evt_1",
        event="ticket_closed",
        received_ms=1_700_000_000_000,
        body=json.dumps(EXAMPLES["Ticket"]).encode(),
        url=url,
        webhook=webhook,
        accepted=accepted or {},
    )


def test_without_an_smtp_server_email_is_a_clear_permanent_failure(settings):
    """No RELAY_SMTP_URL and no console: a dead letter that says what to set."""
    sink = EmailSink(settings.replace(smtp_url=None, mail_console=False))
    outcome = sink.send(_message([TO]), time.monotonic() + 2)
    assert (outcome.delivered, outcome.permanent) == (False, True)
    assert outcome.error == "not_configured"
    assert "RELAY_SMTP_URL" in outcome.message


def test_console_mode_prints_the_email(settings, capsys):
    """With RELAY_MAIL_CONSOLE the whole email is printed and counts as delivered."""
    sink = EmailSink(settings.replace(smtp_url=None, mail_console=True))
    outcome = sink.send(_message([TO]), time.monotonic() + 2)
    assert outcome.delivered
    printed = capsys.readouterr().out
    assert "Subject: [relay] ticket_closed: Ticket #1" in printed
    assert "Ticket #1 closed by matt@groovehq.com" in printed
    assert "Message-ID: <dlv_1@relay>" in printed


def test_recipients_accepted_earlier_are_not_sent_again(settings, mailbox):
    """A retry sends only to recipients that have not accepted yet."""
    sink = EmailSink(settings)
    message = _message(["a@example.com", TO], accepted={"a@example.com": "250 ok"})
    outcome = sink.send(message, time.monotonic() + 2)
    assert outcome.delivered
    assert [r for r, _ in mailbox.received] == [[TO]]
    everyone = _message(["a@example.com"], accepted={"a@example.com": "250 ok"})
    assert sink.send(everyone, time.monotonic() + 2).delivered
    assert len(mailbox.received) == 1


def test_unreachable_server_is_transient(settings):
    """Nothing listening: a transient connection error."""
    sink = EmailSink(settings.replace(smtp_url=f"smtp://127.0.0.1:{_free_port()}"))
    outcome = sink.send(_message([TO]), time.monotonic() + 2)
    assert (outcome.delivered, outcome.permanent) == (False, False)
    assert outcome.error == "connect_error"
    assert TO in outcome.details["recipients"]


def test_silent_server_times_out_at_the_deadline(settings):
    """A server that never greets is cut off at the attempt's deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    held: list[socket.socket] = []
    threading.Thread(
        target=lambda: held.append(listener.accept()[0]), daemon=True
    ).start()
    port = listener.getsockname()[1]
    try:
        sink = EmailSink(settings.replace(smtp_url=f"smtp://127.0.0.1:{port}"))
        began = time.monotonic()
        outcome = sink.send(_message([TO]), began + 0.5)
        assert time.monotonic() - began < 2
        assert (outcome.error, outcome.permanent) == ("timeout", False)
    finally:
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.test", ("mail.test", 25, False, False, None, None)),
        ("smtp://mail.test:2525", ("mail.test", 2525, False, False, None, None)),
        (
            "smtp://me:secret@mail.test",
            ("mail.test", 587, False, True, "me", "secret"),
        ),
        (
            "smtp://me%40x.test:p%3Ass@mail.test:2587",
            ("mail.test", 2587, False, True, "me@x.test", "p:ss"),
        ),
        (
            "smtps://me:secret@mail.test",
            ("mail.test", 465, True, False, "me", "secret"),
        ),
        ("smtps://mail.test:1465", ("mail.test", 1465, True, False, None, None)),
    ],
)
def test_smtp_url(url, expected):
    """RELAY_SMTP_URL picks host, port, TLS mode and credentials."""
    server = SmtpServer.parse(url)
    got = (
        server.host,
        server.port,
        server.implicit_tls,
        server.starttls,
        server.username,
        server.password,
    )
    assert got == expected
    assert "secret" not in repr(server) and "secret" not in server.describe()


@pytest.mark.parametrize(
    "url", ["http://mail.test", "smtp://", "mail.test:25", "smtp://mail.test:port"]
)
def test_bad_smtp_url_is_a_config_error(url):
    """An RELAY_SMTP_URL that cannot be used stops the worker with a clear error."""
    with pytest.raises(ConfigError, match="RELAY_SMTP_URL"):
        SmtpServer.parse(url)


def _r(code: int) -> tuple[int, str]:
    return code, "text"


@pytest.mark.parametrize(
    ("replies", "earlier", "expected"),
    [
        ({"a": _r(250), "b": _r(250)}, {}, (True, False, 250)),
        ({"a": _r(250), "b": _r(550)}, {}, (True, False, 250)),
        ({"a": _r(250), "b": _r(451)}, {}, (False, False, 451)),
        ({"a": _r(550), "b": _r(451)}, {}, (False, False, 451)),
        ({"a": _r(550), "b": _r(553)}, {}, (False, True, 550)),
        ({"b": _r(550)}, {"a": "250 ok"}, (True, False, 250)),
        ({"b": _r(451)}, {"a": "250 ok"}, (False, False, 451)),
        ({}, {"a": "250 ok"}, (True, False, 250)),
    ],
)
def test_judge(replies, earlier, expected):
    """Per-recipient replies come to delivered, transient or permanent."""
    outcome = judge(replies, earlier)
    assert (outcome.delivered, outcome.permanent, outcome.status) == expected
    assert set(outcome.details["recipients"]) == set(replies) | set(earlier)


def test_accepted_before_reads_earlier_attempts():
    """Recipients that replied 2yz in any earlier attempt count as accepted."""
    attempts = [
        {"details": {"recipients": {"a": "451 later", "b": "250 ok"}}},
        {"details": None},
        {},
        {"details": {"recipients": {"a": "250 fine", "c": "550 no"}}},
    ]
    assert accepted_before(attempts) == {"b": "250 ok", "a": "250 fine"}

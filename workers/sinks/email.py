"""The email sink: one email per event, over SMTP, to a ``mailto:`` webhook.

The email has a subject such as ``[relay] ticket_closed: Ticket #1 "Refund"``,
a plain-text part and an HTML part made from the same fields (see
:mod:`workers.sinks.render`), and the event's JSON as received attached. Its
``Message-ID`` is made from the delivery id, so every attempt of a delivery
sends the same message; ``Relay-Event``, ``Relay-Event-Id`` and
``Relay-Delivery`` name the event and the delivery.

The server comes from ``RELAY_SMTP_URL``: ``smtp://user:pass@host:port``
(STARTTLS, then login), ``smtps://user:pass@host:port`` (TLS from the
start), or ``smtp://host:port`` (plain, for a relay on a trusted network).
With ``RELAY_MAIL_CONSOLE`` set the email is printed to standard output
instead, and counts as delivered.

What SMTP answers come to, recipient by recipient (each recipient's reply is
recorded in the attempt's ``details.recipients``):

- every recipient accepted (``2yz``): delivered;
- some accepted, the others refused for good (``5yz``): delivered, with the
  refusals recorded;
- any recipient refused for now (``4yz``): a transient failure; the retry
  sends only to the recipients that have not accepted yet;
- every recipient refused for good: a permanent failure (dead letter).

Failures of the session itself (no connection, a timeout, a ``4yz`` greeting
or login) are transient; ``5yz`` ones (a refused login or sender) and a
missing ``RELAY_SMTP_URL`` are permanent.
"""

from __future__ import annotations

import dataclasses
import email.policy
import email.utils
import smtplib
import ssl
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from relay import defaults
from relay.config import Settings
from relay.errors import ConfigError
from relay.webhooks import mail_recipients
from workers.sinks import render
from workers.sinks.base import Message, Outcome
from workers.sinks.deadline import WATCHDOG

#: Lines end in CRLF, and every part is 7-bit (quoted-printable or base64),
#: so that any server takes the message, with or without 8BITMIME.
SMTP_POLICY = email.policy.SMTP.clone(cte_type="7bit")
#: What the console shows: readable text, lines ending in a newline.
CONSOLE_POLICY = email.policy.default

#: Characters of one recipient's reply kept in an attempt's details.
REPLY_CHARS = 200

Reply = tuple[int, str]

_console_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class SmtpServer:
    """Where and how to send: read from ``RELAY_SMTP_URL``."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """Read ``smtp://[user:pass@]host[:port]`` or ``smtps://…``."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"RELAY_SMTP_URL is not a valid URL: {exc}") from exc
        if parts.scheme not in ("smtp", "smtps"):
            raise ConfigError(
                "RELAY_SMTP_URL must start with smtp:// or smtps://, "
                f"not {parts.scheme or 'nothing'}://"
            )
        if not parts.hostname:
            raise ConfigError("RELAY_SMTP_URL names no host")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        implicit = parts.scheme == "smtps"
        if port is None:
            if implicit:
                port = defaults.SMTPS_PORT
            elif username:
                port = defaults.SMTP_SUBMISSION_PORT
            else:
                port = defaults.SMTP_PORT

        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=implicit,
            starttls=not implicit and username is not None,
            username=username,
            password=password,
        )

    def describe(self) -> str:
        """The server for a person, without its password."""
        how = "TLS" if self.implicit_tls else "STARTTLS" if self.starttls else "plain"
        user = f"{self.username}@" if self.username else ""

        return f"{user}{self.host}:{self.port} ({how})"


def message_id(delivery_id: str) -> str:
    """The ``Message-ID`` of every attempt of a delivery."""
    return f"<{delivery_id}@relay>"


def compose(
    message: Message,
    recipients: Iterable[str],
    sender: str,
    policy: email.policy.Policy = SMTP_POLICY,
) -> EmailMessage:
    """The email for ``message``: subject, both parts, the JSON attached."""
    shown = render.view(
        message.event,
        message.body,
        event_id=message.event_id,
        delivery_id=message.delivery_id,
        received_ms=message.received_ms,
    )
    parts = render.email_parts(shown)
    sent_at = datetime.fromtimestamp(message.received_ms / 1000, tz=UTC)
    mail = EmailMessage(policy=policy)
    mail["Subject"] = parts.subject
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = email.utils.format_datetime(sent_at)
    mail["Message-ID"] = message_id(message.delivery_id)
    mail["Auto-Submitted"] = "auto-generated"
    mail["Relay-Event"] = message.event
    mail["Relay-Event-Id"] = message.event_id
    mail["Relay-Delivery"] = message.delivery_id
    mail.set_content(parts.text)
    mail.add_alternative(parts.html, subtype="html")
    mail.add_attachment(
        message.body,
        maintype="application",
        subtype="json",
        filename=f"{message.event}-{message.event_id}.json",
    )

    return mail


def accepted_before(attempts: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Recipients that accepted a delivery in ``attempts``, with their reply."""
    found: dict[str, str] = {}
    for attempt in attempts:
        details = attempt.get("details") or {}
        recipients = details.get("recipients") if isinstance(details, dict) else None
        for address, reply in (recipients or {}).items():
            if str(reply).startswith("2"):
                found.setdefault(address, str(reply))

    return found


class EmailSink:
    """Sends one email per message over SMTP, or prints it to the console."""

    kind = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = SmtpServer.parse(settings.smtp_url) if settings.smtp_url else None
        self.console = settings.mail_console
        self.sender = email.utils.parseaddr(settings.mail_from)[1] or (
            settings.mail_from
        )
        self._tls = ssl.create_default_context()

    def send(self, message: Message, deadline: float) -> Outcome:
        """Send the email for ``message`` to the recipients still waiting for it."""
        recipients = mail_recipients(message.url)
        earlier = {a: r for a, r in message.accepted.items() if a in recipients}
        pending = [a for a in recipients if a not in earlier]
        if not pending:
            return judge({}, earlier)
        if self.server is None and not self.console:
            return Outcome(
                False,
                error="not_configured",
                permanent=True,
                message="RELAY_SMTP_URL is not set: email cannot be sent; "
                "retry the dead letter once it is",
            )
        try:
            mail = compose(
                message,
                recipients,
                self.settings.mail_from,
                CONSOLE_POLICY if self.console else SMTP_POLICY,
            )
        except render.RenderError as exc:
            return Outcome(
                False, error="render_error", permanent=True, message=str(exc)[:300]
            )
        if self.console:
            return self._print(mail, pending)
        try:
            replies = self._transmit(mail.as_bytes(), pending, deadline)
        except (smtplib.SMTPException, OSError) as exc:
            late = WATCHDOG.end() or time.monotonic() >= deadline
            outcome = failure(exc, late, self.settings.delivery_timeout)
            shown = {**earlier, **{a: outcome.message for a in pending}}
            return dataclasses.replace(outcome, details={"recipients": shown})

        return judge(replies, earlier)

    def _print(self, mail: EmailMessage, pending: list[str]) -> Outcome:
        text = mail.as_string()
        with _console_lock:
            sys.stdout.write(
                f"--- relay: email to {', '.join(pending)} "
                f"(RELAY_MAIL_CONSOLE: printed, not sent) ---\n{text}\n--- end ---\n"
            )
            sys.stdout.flush()

        return Outcome(
            True,
            message=f"printed to the console for {len(pending)} recipient(s), "
            "not sent (RELAY_MAIL_CONSOLE)",
            details={"recipients": {a: "printed" for a in pending}},
        )

    def _transmit(
        self, data: bytes, pending: list[str], deadline: float
    ) -> dict[str, Reply]:
        """One SMTP session: each pending recipient's final reply.

        Raises what smtplib or the socket raise when the session fails before
        the recipients are known; the caller calls ``WATCHDOG.end()`` then.
        """
        assert self.server is not None
        server = self.server
        # TODO: one connection per attempt; a pool per server would save the
        # handshakes, which matters only at volumes email webhooks do not see.
        timeout = max(0.01, deadline - time.monotonic())
        smtp = (
            smtplib.SMTP_SSL(timeout=timeout, context=self._tls)
            if server.implicit_tls
            else smtplib.SMTP(timeout=timeout)
        )
        WATCHDOG.begin(deadline)
        WATCHDOG.watch(smtp)
        try:
            code, text = smtp.connect(server.host, server.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, text)
            smtp.ehlo_or_helo_if_needed()
            if server.starttls:
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if server.username:
                smtp.login(server.username, server.password or "")
            code, text = smtp.mail(self.sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, self.sender)
            replies = {address: _reply(*smtp.rcpt(address)) for address in pending}
            accepted = [a for a, (code, _) in replies.items() if 200 <= code < 300]
            if accepted:
                try:
                    final = _reply(*smtp.data(data))
                except smtplib.SMTPDataError as exc:
                    final = _reply(exc.smtp_code, exc.smtp_error)
                replies.update({address: final for address in accepted})
            _quit(smtp)
            WATCHDOG.end()
        finally:
            smtp.close()

        return replies


def _reply(code: int, text: bytes | str) -> Reply:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else text

    return code, " ".join(said.split())[:REPLY_CHARS]


def _said(reply: Reply) -> str:
    code, text = reply

    return f"{code} {text}".strip()


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye; the message is already accepted or refused, so a failure
    here changes nothing."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass


def judge(replies: Mapping[str, Reply], earlier: Mapping[str, str]) -> Outcome:
    """The outcome of an attempt from each recipient's reply (see the module)."""
    shown = {**earlier, **{a: _said(reply) for a, reply in replies.items()}}
    details: dict[str, Any] = {"recipients": shown}
    if earlier:
        details["earlier"] = sorted(earlier)
    accepted = [a for a, (code, _) in replies.items() if 200 <= code < 300]
    refused = {a: r for a, r in replies.items() if not 200 <= r[0] < 300}
    later = {a: r for a, r in refused.items() if not 500 <= r[0] < 600}
    status = next((replies[a][0] for a in accepted), 250)
    if later:
        address, reply = next(iter(later.items()))
        return Outcome(
            False,
            status=reply[0],
            error=f"smtp_{reply[0]}",
            message=f"{len(later)} recipient(s) refused for now ({address}: "
            f"{_said(reply)}); will retry those",
            details=details,
        )
    if refused and not accepted and not earlier:
        address, reply = next(iter(refused.items()))
        return Outcome(
            False,
            status=reply[0],
            error=f"smtp_{reply[0]}",
            permanent=True,
            message=f"every recipient refused ({address}: {_said(reply)})",
            details=details,
        )
    reached = len(accepted) + len(earlier)
    message = f"accepted for {reached} recipient(s)"
    if refused:
        gone = ", ".join(f"{a} ({_said(r)})" for a, r in refused.items())
        message += f"; refused for good: {gone}"

    return Outcome(True, status=status, message=message[:300], details=details)


def failure(exc: BaseException, late: bool, limit: float) -> Outcome:
    """The outcome of an SMTP session that raised ``exc`` before it was done."""
    text = " ".join(str(exc).split())[:300]
    if late or isinstance(exc, TimeoutError):
        return Outcome(
            False, error="timeout", message=f"no SMTP answer within {limit:g}s"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Outcome(
            False,
            error="smtp_unsupported",
            permanent=True,
            message=f"the SMTP server does not offer what RELAY_SMTP_URL needs: {text}",
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        said = _said(_reply(code, exc.smtp_error))
        if 500 <= code < 600:
            return Outcome(
                False,
                status=code,
                error=f"smtp_{code}",
                permanent=True,
                message=f"the SMTP server refused: {said}",
            )
        return Outcome(
            False,
            status=code,
            error=f"smtp_{code}",
            message=f"the SMTP server answered {said}; will retry",
        )
    if isinstance(exc, ssl.SSLError):
        return Outcome(False, error="tls_error", message=text)
    if isinstance(exc, (OSError, smtplib.SMTPServerDisconnected)):
        return Outcome(False, error="connect_error", message=text or repr(exc))

    return Outcome(False, error="smtp_error", message=text or repr(exc))

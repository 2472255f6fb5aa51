"""Messages for people: the wording of each event, shared by Slack and email.

The words live in Jinja2 templates beside this module, so that an operator
can read and change them without touching Python:

- ``<kind>.j2`` (``ticket``, ``customer``, ``message``, ``agent``): the
  wording for the events that carry that payload kind, event by event. It
  sets ``summary``, ``headline``, ``fields``, ``link_text`` and ``body``
  as plain text; nothing there is escaped.
- ``slack.json.j2``: the Slack message (``text`` and Block Kit ``blocks``);
  every ``{{ }}`` in it is written out as a JSON value.
- ``email.txt.j2`` and ``email.html.j2``: the two parts of an email; the
  HTML one escapes everything it is given, and the text one sets the
  ``subject``.

:func:`view` reads an event into a :class:`View`; :func:`slack_payload`
and :func:`email_parts` lay a view out for their sink.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jinja2 import (
    ChainableUndefined,
    Environment,
    FileSystemLoader,
    TemplateError,
    Undefined,
)

from relay import catalogue, ids, jsonio

TEMPLATES = Path(__file__).parent / "templates"

#: Characters a summary's quoted excerpt keeps before its ellipsis.
EXCERPT_CHARS = 200
#: Characters of one field's value; longer ones are cut with an ellipsis.
FIELD_CHARS = 1000
#: Characters of a message body shown in full; longer ones are cut.
BODY_CHARS = 20_000
ELLIPSIS = "…"

# Slack's documented limits for what relay sends (Block Kit reference).
SLACK_BLOCKS = 50
SLACK_HEADER_CHARS = 150
SLACK_SECTION_CHARS = 3000
SLACK_FIELDS = 10
SLACK_FIELD_CHARS = 2000
SLACK_CONTEXT_ELEMENTS = 10
SLACK_BUTTON_CHARS = 75
SLACK_URL_CHARS = 3000
#: The top-level ``text`` is the notification's preview: kept short.
SLACK_TEXT_CHARS = 300

_SPACE = re.compile(r"\s+")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


class RenderError(Exception):
    """A template failed, or made something its sink cannot send."""


@dataclasses.dataclass(frozen=True)
class View:
    """One event as people read it: what happened, and the fields that matter."""

    event: str
    kind: str
    payload: dict[str, Any]
    summary: str
    headline: str
    fields: tuple[tuple[str, str], ...]
    href: str | None
    link_text: str
    body: str
    event_id: str = ""
    delivery_id: str = ""
    received_ms: int = 0

    def context(self) -> dict[str, Any]:
        """The names a layout template is given."""
        return {
            "event": self.event,
            "kind": self.kind,
            "payload": self.payload,
            "summary": self.summary,
            "headline": self.headline,
            "fields": [list(pair) for pair in self.fields],
            "href": self.href,
            "link_text": self.link_text,
            "body": self.body,
            "event_id": self.event_id,
            "delivery_id": self.delivery_id,
            "received_at": ids.iso(self.received_ms) if self.received_ms else "",
        }


# --- filters ------------------------------------------------------------------


def oneline(value: Any) -> str:
    """``value`` as text on one line: runs of white space become one space."""
    if value is None or isinstance(value, Undefined):
        return ""

    return _SPACE.sub(" ", str(value)).strip()


def excerpt(value: Any, chars: int = EXCERPT_CHARS) -> str:
    """The first ``chars`` characters of ``value`` on one line, then an ellipsis."""
    text = oneline(value)
    if len(text) <= chars:
        return text

    return text[:chars].rstrip() + ELLIPSIS


def slack_escape(value: Any) -> str:
    """Slack's escaping: ``&``, ``<`` and ``>`` as entities, nothing else."""
    if value is None or isinstance(value, Undefined):
        return ""
    text = str(value)

    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(value: Any, chars: int) -> str:
    """``value`` cut to at most ``chars`` characters, ending in an ellipsis.

    A cut never splits an ``&amp;``-style entity that escaping made.
    """
    text = "" if value is None or isinstance(value, Undefined) else str(value)
    if len(text) <= chars:
        return text
    cut = text[: max(0, chars - 1)]
    cut = _ENTITY_TAIL.sub("", cut)

    return cut + ELLIPSIS


def slack_link(url: Any, label: Any) -> str:
    """A Slack link ``<url|label>``, or the escaped label if ``url`` is unusable."""
    href = web_url(url)
    if href is None or len(href) > SLACK_URL_CHARS:
        return slack_escape(label)
    # Inside <...> a "|" ends the URL and ">" the link: percent-encode them.
    safe = slack_escape(href.replace("|", "%7C"))
    text = slack_escape(oneline(label).replace("|", "/")) or safe

    return f"<{safe}|{text}>"


def segment(value: Any) -> str:
    """The last path segment of a URL (``…/tickets/42`` → ``42``), unquoted."""
    if not isinstance(value, str) or not value:
        return ""
    path = urlsplit(value).path.rstrip("/")

    return unquote(path.rsplit("/", 1)[-1])


def person(first: Any, last: Any, email: Any = None) -> str:
    """``First Last <email>``, leaving out whatever is missing."""
    name = " ".join(oneline(part) for part in (first, last) if oneline(part))
    address = oneline(email)
    if name and address:
        return f"{name} <{address}>"

    return name or address


def web_url(value: Any) -> str | None:
    """``value`` if it is an absolute http(s) URL, else None."""
    if not isinstance(value, str) or any(ch.isspace() for ch in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None

    return value


def _json_value(value: Any) -> str:
    if isinstance(value, Undefined):
        value = ""
    try:
        return jsonio.dumps(value).decode()
    except TypeError as exc:
        raise RenderError(f"cannot write {type(value).__name__} as JSON") from exc


def _environment(**options: Any) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **options,
    )
    env.filters.update(
        oneline=oneline,
        excerpt=excerpt,
        slack=slack_escape,
        clip=clip,
        slack_link=slack_link,
        segment=segment,
        web_url=web_url,
    )
    env.globals["person"] = person

    return env


# One environment per output: plain text, HTML (autoescaped), and JSON (each
# {{ }} written as a JSON value). Environments are safe to share by threads.
_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=True)
_JSON = _environment(autoescape=False, finalize=_json_value)


# --- the view -------------------------------------------------------------------


def view(
    event: str,
    body: bytes,
    *,
    event_id: str = "",
    delivery_id: str = "",
    received_ms: int = 0,
) -> View:
    """Read ``event``'s payload (``body``, JSON as received) through its template."""
    kind = catalogue.payload_kind(event)
    if kind is None:
        raise RenderError(f"no template for unknown event {event!r}")
    try:
        payload = jsonio.loads(body)
    except jsonio.JSONDecodeError as exc:
        raise RenderError(f"the payload of {event_id or event} is not JSON") from exc
    if not isinstance(payload, dict):
        payload = {}
    try:
        words = _TEXT.get_template(f"{kind.lower()}.j2").make_module(
            {"event": event, "p": payload}
        )
    except TemplateError as exc:
        raise RenderError(f"{kind.lower()}.j2 failed: {exc}") from exc
    headline = oneline(getattr(words, "headline", "")) or event

    return View(
        event=event,
        kind=kind,
        payload=payload,
        summary=oneline(getattr(words, "summary", "")) or headline,
        headline=headline,
        fields=_fields(getattr(words, "fields", ())),
        href=web_url(payload.get("href")),
        link_text=oneline(getattr(words, "link_text", "")) or headline,
        body=_body(getattr(words, "body", "")),
        event_id=event_id,
        delivery_id=delivery_id,
        received_ms=received_ms,
    )


def _fields(pairs: Any) -> tuple[tuple[str, str], ...]:
    """Template fields as (label, value) text, leaving out empty values."""
    kept: list[tuple[str, str]] = []
    for pair in pairs or ():
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            label, value = oneline(pair[0]), _text(pair[1])
            if label and value:
                kept.append((label, excerpt(value, FIELD_CHARS)))

    return tuple(kept)


def _text(value: Any) -> str:
    if value is None or isinstance(value, Undefined) or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item) for item in value if _text(item))
    if isinstance(value, dict):
        return jsonio.dumps(value).decode() if value else ""

    return oneline(value)


def _body(value: Any) -> str:
    """A message body: line breaks kept, blank runs folded, long ones cut."""
    if value is None or isinstance(value, Undefined):
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    text = re.sub(r"\n{3,}", "\n\n", text)

    return clip(text, BODY_CHARS)


# --- Slack --------------------------------------------------------------------


def slack_payload(shown: View) -> dict[str, Any]:
    """The Slack incoming-webhook message for ``shown``, within Slack's limits."""
    try:
        text = _JSON.get_template("slack.json.j2").render(shown.context())
    except (TemplateError, RenderError) as exc:
        raise RenderError(f"slack.json.j2 failed: {exc}") from exc
    try:
        payload = jsonio.loads(text)
    except jsonio.JSONDecodeError as exc:
        raise RenderError(f"slack.json.j2 did not make JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise RenderError("slack.json.j2 must make an object with a text string")

    return fit_slack(payload)


def fit_slack(payload: dict[str, Any]) -> dict[str, Any]:
    """Cut ``payload`` to Slack's limits: text lengths, counts, long URLs."""
    payload["text"] = clip(payload["text"], SLACK_TEXT_CHARS)
    blocks = payload.get("blocks")
    if isinstance(blocks, list):
        payload["blocks"] = [_fit_block(b) for b in blocks[:SLACK_BLOCKS]]

    return payload


def _fit_block(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "header":
        _fit_text(block.get("text"), SLACK_HEADER_CHARS)
    elif kind == "section":
        _fit_text(block.get("text"), SLACK_SECTION_CHARS)
        if isinstance(block.get("fields"), list):
            block["fields"] = block["fields"][:SLACK_FIELDS]
            for item in block["fields"]:
                _fit_text(item, SLACK_FIELD_CHARS)
    elif kind == "context" and isinstance(block.get("elements"), list):
        block["elements"] = block["elements"][:SLACK_CONTEXT_ELEMENTS]
        for item in block["elements"]:
            _fit_text(item, SLACK_SECTION_CHARS)
    elif kind == "actions" and isinstance(block.get("elements"), list):
        block["elements"] = [
            element
            for element in block["elements"]
            if len(str(element.get("url", ""))) <= SLACK_URL_CHARS
        ]
        for element in block["elements"]:
            _fit_text(element.get("text"), SLACK_BUTTON_CHARS)

    return block


def _fit_text(obj: Any, chars: int) -> None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        obj["text"] = clip(obj["text"], chars)


# --- email ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EmailParts:
    """What an email says: its subject and its two alternative bodies."""

    subject: str
    text: str
    html: str


def email_parts(shown: View) -> EmailParts:
    """The subject, plain-text part and HTML part of the email for ``shown``."""
    context = shown.context()
    try:
        text = _TEXT.get_template("email.txt.j2").make_module(context)
        html = _HTML.get_template("email.html.j2").render(context)
    except TemplateError as exc:
        raise RenderError(f"an email template failed: {exc}") from exc
    subject = oneline(getattr(text, "subject", "")) or shown.summary

    return EmailParts(subject=subject, text=str(text).strip() + "\n", html=html)

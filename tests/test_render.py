"""Rendering events for people: the templates' wording, escaping and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from payloads import EXAMPLES
from slack_format import problems

from relay.catalogue import EVENTS
from workers.sinks import render

ASK = "Hey, can I add another item to my order?"

#: What the summary of each event says for the spec's example payload.
SPEC_SUMMARIES = {
    "ticket_started": "New ticket #1",
    "ticket_opened": "Ticket #1 opened",
    "ticket_closed": "Ticket #1 closed by matt@groovehq.com",
    "ticket_assigned": "Ticket #1 assigned to matt@groovehq.com",
    "ticket_priority_changed": "Ticket #1 priority cleared",
    "ticket_deleted": "Ticket #1 deleted",
    "ticket_tagged": "Ticket #1 tagged",
    "ticket_moved": "Ticket #1 moved",
    "customer_replied": f'Customer replied on ticket #:ticket_number: "{ASK}"',
    "customer_added": "New customer John Smith <smith@gmail.com>",
    "agent_invited": "Agent invited: Matthew Beedle <matt@groovehq.com>",
    "agent_archived": "Agent archived: Matthew Beedle <matt@groovehq.com>",
    "note_added": f'Note added on ticket #:ticket_number: "{ASK}"',
    "agent_replied": f'Agent replied on ticket #:ticket_number: "{ASK}"',
}


def _view(event: str, payload: dict[str, Any] | None = None) -> render.View:
    body = json.dumps(payload if payload is not None else EXAMPLES[EVENTS[event]])
    return render.view(
        event,
        body.encode(),
        event_id="evt_1",
        delivery_id="dlv_1",
        received_ms=1_700_000_000_000,
    )


def _ticket(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES["Ticket"], **changes}


def _message(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES["Message"], **changes}


def test_every_event_has_its_wording():
    """The summary table covers exactly the catalogue's 14 events."""
    assert set(SPEC_SUMMARIES) == set(EVENTS)


@pytest.mark.parametrize(("event", "summary"), sorted(SPEC_SUMMARIES.items()))
def test_spec_example_summary(event, summary):
    """Each event's spec example reads as a one-line summary of what happened."""
    shown = _view(event)
    assert shown.summary == summary
    assert shown.kind == EVENTS[event]
    assert shown.href == EXAMPLES[EVENTS[event]]["href"]


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_spec_example_makes_a_valid_slack_message(event):
    """The Slack message of each spec example is valid incoming-webhook JSON."""
    shown = _view(event)
    payload = render.slack_payload(shown)
    assert problems(payload) == []
    assert payload["text"] == render.slack_escape(shown.summary)
    assert payload["blocks"][0]["type"] == "header"
    link = payload["blocks"][-1]["elements"][0]["text"]
    assert link.startswith(f"<{render.slack_escape(shown.href)}|")


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_spec_example_makes_an_email(event):
    """The email of each spec example has a subject and both parts, same fields."""
    shown = _view(event)
    parts = render.email_parts(shown)
    assert parts.subject == f"[relay] {event}: {shown.headline}"
    assert parts.text.startswith(shown.summary + "\n")
    for label, value in shown.fields:
        assert f"{label}: {value}" in parts.text
        assert f'<th align="left" valign="top">{label}</th>' in parts.html
    assert "evt_1" in parts.text and "dlv_1" in parts.html


@pytest.mark.parametrize(
    ("event", "payload", "summary"),
    [
        (
            "ticket_started",
            _ticket(title="Refund please"),
            'New ticket #1: "Refund please"',
        ),
        ("ticket_closed", _ticket(closed_by=None), "Ticket #1 closed"),
        (
            "ticket_assigned",
            _ticket(assignee=None, assigned_group="Billing"),
            "Ticket #1 assigned to Billing",
        ),
        (
            "ticket_assigned",
            _ticket(assigned_group="Billing"),
            "Ticket #1 assigned to matt@groovehq.com in Billing",
        ),
        ("ticket_assigned", _ticket(assignee=None), "Ticket #1 unassigned"),
        (
            "ticket_priority_changed",
            _ticket(priority="urgent"),
            "Ticket #1 priority changed to urgent",
        ),
        (
            "ticket_tagged",
            _ticket(tags=["vip", "refund"]),
            "Ticket #1 tagged vip, refund",
        ),
        ("ticket_moved", _ticket(mailbox="Sales"), "Ticket #1 moved to Sales"),
        (
            "agent_replied",
            _message(
                links={"ticket": {"href": "https://api.groovehq.com/v1/tickets/42"}}
            ),
            f'Agent replied on ticket #42: "{ASK}"',
        ),
        (
            "agent_replied",
            _message(body="  line one\n\n  line two  ", links={}),
            'Agent replied on a ticket: "line one line two"',
        ),
        (
            "customer_added",
            {"email": "x@example.com", "href": "https://h/c/x"},
            "New customer x@example.com",
        ),
        (
            "ticket_started",
            {"number": 7, "href": "https://h/t/7"},
            "New ticket #7",
        ),
    ],
)
def test_wording_follows_the_payload(event, payload, summary):
    """Summaries name what the payload says and leave out what it lacks."""
    assert _view(event, payload).summary == summary


def test_long_body_is_cut_for_the_summary_and_for_slack():
    """A long message body is quoted to 200 characters and cut to Slack's limits."""
    body = "word " * 4000
    shown = _view("agent_replied", _message(body=body))
    quoted = shown.summary.split(': "', 1)[1]
    assert quoted.endswith('…"')
    assert len(quoted) <= 200 + 2
    payload = render.slack_payload(shown)
    assert problems(payload) == []
    texts = [b["text"]["text"] for b in payload["blocks"] if "text" in b]
    assert any(text.startswith("word word") and text.endswith("…") for text in texts)
    assert max(len(text) for text in texts) <= render.SLACK_SECTION_CHARS


def test_short_body_is_not_repeated_in_slack():
    """A body the summary already quotes in full gets no section of its own."""
    payload = render.slack_payload(_view("agent_replied"))
    texts = [b.get("text", {}).get("text") for b in payload["blocks"]]
    assert texts.count(ASK) == 0
    assert sum(ASK in (t or "") for t in texts) == 1


HOSTILE = '<script>alert("x")</script> & <@U123> <!channel>'


def test_hostile_text_is_escaped_for_slack():
    """Slack's control characters in a payload are escaped, so no mention fires."""
    shown = _view("ticket_started", _ticket(title=HOSTILE, assignee="<!here>"))
    payload = render.slack_payload(shown)
    assert problems(payload) == []
    dumped = json.dumps(payload)
    assert "<script>" not in dumped and "<!channel>" not in dumped
    assert "<!here>" not in dumped
    assert "&lt;script&gt;" in payload["text"]
    assert "&amp; &lt;@U123&gt;" in payload["text"]


def test_hostile_text_is_escaped_in_html_but_not_in_text():
    """The HTML part escapes a hostile title; the plain-text part keeps it as is."""
    parts = render.email_parts(_view("ticket_opened", _ticket(title=HOSTILE)))
    assert "<script>" not in parts.html
    assert "&lt;script&gt;" in parts.html
    assert HOSTILE in parts.text
    assert HOSTILE in parts.subject


def test_subject_stays_on_one_line():
    """White space and line breaks in a title fold into one subject line."""
    shown = _view("ticket_opened", _ticket(title="one\r\ntwo\n\tthree"))
    assert render.email_parts(shown).subject == (
        '[relay] ticket_opened: Ticket #1 "one two three"'
    )


@pytest.mark.parametrize(
    ("href", "kept"),
    [
        ("https://api.groovehq.com/v1/tickets/1", True),
        ("http://example.com/a", True),
        ("javascript:alert(1)", False),
        ("mailto:x@example.com", False),
        ("https://exa mple.com/", False),
        (None, False),
        (42, False),
    ],
)
def test_only_web_links_are_linked(href, kept):
    """A payload's href becomes a link only when it is an http(s) URL."""
    shown = _view("ticket_deleted", _ticket(href=href))
    assert (shown.href is not None) == kept
    payload = render.slack_payload(shown)
    assert problems(payload) == []
    assert ('href="' in render.email_parts(shown).html) == kept


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a & b", "a &amp; b"),
        ("<@U1>", "&lt;@U1&gt;"),
        ("*bold* _it_ ~s~ `c`", "*bold* _it_ ~s~ `c`"),
        ("&amp;", "&amp;amp;"),
        ("\"quotes\" 'too'", "\"quotes\" 'too'"),
    ],
)
def test_slack_escaping_touches_only_three_characters(text, escaped):
    """Slack escaping replaces &, < and > and nothing else."""
    assert render.slack_escape(text) == escaped


@pytest.mark.parametrize(
    ("text", "chars", "clipped"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("abcdefghijk", 5, "abcd…"),
        ("abc&amp;def", 6, "abc…"),
        ("abc&amp;def", 9, "abc&amp;…"),
        ("ab&lt;", 5, "ab…"),
    ],
)
def test_clip_never_splits_an_entity(text, chars, clipped):
    """Cutting text keeps within the limit and never leaves half an entity."""
    assert render.clip(text, chars) == clipped
    assert len(render.clip(text, chars)) <= chars


@pytest.mark.parametrize(
    ("url", "label", "link"),
    [
        ("https://x.test/a", "Open", "<https://x.test/a|Open>"),
        ("https://x.test/?a=1&b=2", "A & B", "<https://x.test/?a=1&amp;b=2|A &amp; B>"),
        ("https://x.test/a|b", "x|y", "<https://x.test/a%7Cb|x/y>"),
        ("ftp://x.test/", "Open", "Open"),
        ("https://x.test/" + "a" * 3000, "Open", "Open"),
    ],
)
def test_slack_links(url, label, link):
    """Links keep Slack's <url|label> form safe, and fall back to the label."""
    assert render.slack_link(url, label) == link


def test_fit_slack_keeps_within_every_limit():
    """A message over Slack's limits is cut to them."""
    long = "x" * 5000
    payload = {
        "text": long,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": long}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": long}] * 12,
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": long},
                        "url": "https://x.test/" + long,
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": long},
                        "url": "https://x.test/",
                    },
                ],
            },
        ]
        + [{"type": "section", "text": {"type": "mrkdwn", "text": long}}] * 60,
    }
    fitted = render.fit_slack(json.loads(json.dumps(payload)))
    assert problems(fitted) == []
    assert len(fitted["blocks"]) == 50
    assert len(fitted["text"]) <= render.SLACK_TEXT_CHARS
    assert len(fitted["blocks"][2]["elements"]) == 1


def test_unknown_event_is_a_render_error():
    """An event the catalogue does not know has no template."""
    with pytest.raises(render.RenderError):
        render.view("ticket_exploded", b"{}")


def test_unknown_fields_and_odd_types_do_not_break_rendering():
    """Unexpected field types still render: lists joined, dicts as JSON."""
    shown = _view(
        "ticket_tagged",
        _ticket(tags=["a", 1, None], assignee=["x", "y"], priority={"p": 1}),
    )
    fields = dict(shown.fields)
    assert fields["Tags"] == "a, 1"
    assert fields["Assignee"] == "x, y"
    assert fields["Priority"] == '{"p":1}'
    assert problems(render.slack_payload(shown)) == []

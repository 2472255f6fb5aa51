"""Log lines: the JSON and text formats, and the fields of the received-event
and attempt lines, which never carry a secret, token, signature or payload."""

from __future__ import annotations

import io
import json
import logging

import pytest
from payloads import TICKET
from werkzeug import Response

from relay import logs
from relay.app import create_app
from relay.errors import ConfigError

TOKEN = "tok-3a9f-never-logged"


def _record(msg="attempt", **fields):
    record = logging.LogRecord(
        "workers.deliver", logging.INFO, __file__, 1, msg, (), None
    )
    record.__dict__.update(fields)
    return record


def test_json_line_has_name_level_logger_and_fields():
    """The JSON format writes one object: time, level, logger, msg, fields."""
    line = logs.JsonFormatter().format(_record(delivery_id="dlv_1", status=200))
    shown = json.loads(line)

    assert "\n" not in line
    assert shown["msg"] == "attempt"
    assert shown["level"] == "info"
    assert shown["logger"] == "workers.deliver"
    assert shown["delivery_id"] == "dlv_1"
    assert shown["status"] == 200
    assert shown["time"].endswith("+00:00")


def test_text_line_is_event_then_key_values():
    """The text format reads ``msg key=value …`` and quotes values with spaces."""
    line = logs.TextFormatter().format(
        _record(delivery_id="dlv_1", error="timeout", message_text="no answer", n=None)
    )

    assert "INFO  workers.deliver attempt delivery_id=dlv_1 error=timeout" in line
    assert 'message_text="no answer"' in line
    assert line.endswith("n=-")


@pytest.mark.parametrize(
    "name",
    [
        "secret",
        "api_token",
        "webhook-signature",
        "password",
        "Authorization",
        "payload",
        "body",
        "signing_secret",
    ],
)
def test_fields_that_name_a_secret_or_payload_are_redacted(name):
    """A field whose name says secret, token, signature or payload is not written."""
    shown = json.loads(logs.JsonFormatter().format(_record(**{name: "hidden-value"})))

    assert shown[name] == logs.REDACTED


def test_exception_is_one_json_line_with_its_traceback():
    """An exception is kept in the JSON line under ``exc``, on one line."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    line = logs.JsonFormatter().format(record)

    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_configure_installs_one_handler_and_reads_the_environment():
    """configure() replaces its own handler, and follows RELAY_LOG_*."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    out = io.StringIO()
    try:
        logs.configure(environ={"RELAY_LOG_FORMAT": "text"}, stream=io.StringIO())
        handler = logs.configure(
            environ={"RELAY_LOG_FORMAT": "json", "RELAY_LOG_LEVEL": "warning"},
            stream=out,
        )
        ours = [h for h in root.handlers if getattr(h, "_relay", False)]
        logging.getLogger("relay.test").info("hidden")
        logging.getLogger("relay.test").warning("shown", extra={"n": 1})
    finally:
        root.handlers[:] = before
        root.setLevel(level)

    assert ours == [handler]
    assert isinstance(handler.formatter, logs.JsonFormatter)
    assert [json.loads(x)["msg"] for x in out.getvalue().splitlines()] == ["shown"]


def test_configure_defaults_to_json_off_a_terminal():
    """Without RELAY_LOG_FORMAT, a stream that is not a terminal gets JSON."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        handler = logs.configure(environ={}, stream=io.StringIO())
    finally:
        root.handlers[:] = before
        root.setLevel(level)

    assert isinstance(handler.formatter, logs.JsonFormatter)


@pytest.mark.parametrize(
    ("variable", "value"), [("RELAY_LOG_LEVEL", "loud"), ("RELAY_LOG_FORMAT", "xml")]
)
def test_configure_refuses_unknown_values(variable, value):
    """A level or format that does not exist is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=variable):
        logs.configure(environ={variable: value}, stream=io.StringIO())


def _lines(caplog, msg):
    return [r for r in caplog.records if r.getMessage() == msg]


def _written(record):
    """The record as both formats write it."""
    return logs.JsonFormatter().format(record) + logs.TextFormatter().format(record)


def test_received_event_line_has_its_fields_and_nothing_secret(
    settings, redis_client, caplog
):
    """The received-event line names the event and its id, never the payload
    or the producer's token."""
    guarded = create_app(settings.replace(api_token=TOKEN), redis_client).test_client()
    caplog.set_level(logging.INFO)
    answer = guarded.post(
        "/v1/events/ticket_started",
        json=TICKET,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    again = guarded.post(
        "/v1/events/ticket_started",
        json=TICKET,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    first, second = _lines(caplog, "event_received")
    assert answer.status_code == 202 and again.status_code == 200
    assert first.event_id == answer.get_json()["event"]["id"]
    assert first.event == "ticket_started"
    assert (first.outcome, second.outcome) == ("accepted", "duplicate")
    assert first.bytes > 0
    for record in (first, second):
        written = _written(record)
        assert TOKEN not in written
        assert TICKET["href"] not in written
        assert TICKET["assignee"] not in written


def test_attempt_line_has_its_fields_and_nothing_secret(
    client, engine, wait_for, httpserver, caplog
):
    """Each attempt is one line with the ids, sink, number, status and duration,
    and without the signing secret, the signature or the payload."""
    statuses = [500, 200]

    def answer(request):
        return Response("no", status=statuses.pop(0))

    httpserver.expect_request("/hook").respond_with_handler(answer)
    caplog.set_level(logging.INFO)
    created = client.post(
        "/v1/webhooks",
        json={"event": "ticket_started", "url": httpserver.url_for("/hook")},
    ).get_json()["webhook"]
    event_id = client.post("/v1/events/ticket_started", json=TICKET).get_json()[
        "event"
    ]["id"]

    wait_for(lambda: len(_lines(caplog, "attempt")) == 2, what="two attempts")
    first, second = _lines(caplog, "attempt")
    request, _ = httpserver.log[0]
    assert (first.attempt, second.attempt) == (1, 2)
    assert (first.status, second.status) == (500, 200)
    assert (first.state, second.state) == ("retrying", "delivered")
    assert first.error == "http_500" and second.error is None
    for record in (first, second):
        assert record.event_id == event_id
        assert record.webhook_id == created["id"]
        assert record.delivery_id == request.headers["webhook-id"]
        assert record.sink == "http"
        assert record.duration_ms >= 0
        written = _written(record)
        assert created["secret"] not in written
        assert created["secret"].removeprefix("whsec_") not in written
        assert request.headers["webhook-signature"].split(",")[-1] not in written
        assert TICKET["href"] not in written

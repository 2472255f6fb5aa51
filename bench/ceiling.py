"""The ceilings relay is measured against.

- Intake: :func:`create_app`, a bare Flask app served by the Procfile's very
  gunicorn settings, that parses the JSON body and answers ``202``; nothing
  is validated or stored.
- Delivery: ``python -m bench.ceiling send ...``, a plain loop of POSTs over
  one urllib3 keep-alive connection pool in each process, started in as many
  processes as relay has workers: no queue, no store, no signature.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import flask

#: The headers every benchmark delivery carries besides its ids, so that the
#: ceiling sends the same bytes as relay does (give or take a signature).
STATIC_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "bench-ceiling",
    "Relay-Event": "ticket_started",
    "Relay-Attempt": "1",
    "webhook-timestamp": "0",
    "webhook-signature": "v1," + "A" * 44,
}


def create_app() -> flask.Flask:
    """A Flask app that only parses the body: the intake ceiling."""
    app = flask.Flask("ceiling")

    @app.post("/v1/events/<event>")
    def receive(event: str) -> Any:
        payload = flask.request.get_json()
        return {
            "event": {"id": "evt_ceiling", "event": event, "keys": len(payload)}
        }, 202

    @app.get("/ping")
    def ping() -> Any:
        return {"ok": True}

    return app


def send(
    port: int, group: str, first: int, count: int, paths: int, body: bytes
) -> None:
    """POST ``count`` deliveries to the sink, one after another."""
    import urllib3

    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, retries=False)
    for number in range(first, first + count):
        target = f"/{group}/w{number % paths}" if paths > 1 else f"/{group}/hook"
        headers = dict(
            STATIC_HEADERS,
            **{"webhook-id": f"dlv_{number}", "Relay-Event-Id": f"evt_{number}"},
        )
        response = pool.urlopen("POST", target, body=body, headers=headers)
        if response.status != 200:
            raise SystemExit(f"the sink answered {response.status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    post = sub.add_parser("send", help="POST deliveries to the sink")
    post.add_argument("port", type=int)
    post.add_argument("group")
    post.add_argument("first", type=int)
    post.add_argument("count", type=int)
    post.add_argument("--paths", type=int, default=1)
    post.add_argument("--body", required=True, help="file holding the body")
    post.add_argument("--at", type=float, default=0.0, help="start at this time")
    post.add_argument("--report", help="write the CPU seconds spent sending here")
    args = parser.parse_args()
    with open(args.body, "rb") as source:
        body = source.read()
    # Every process starts together, after the interpreters have loaded.
    time.sleep(max(0.0, args.at - time.time()))
    began = time.process_time()
    send(args.port, args.group, args.first, args.count, args.paths, body)
    if args.report:
        with open(args.report, "w") as out:
            json.dump({"cpu_seconds": time.process_time() - began}, out)


if __name__ == "__main__":
    main()

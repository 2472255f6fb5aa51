"""The obvious relay on Celery: one task per delivery, ``requests.post``.

A Celery app with a Redis broker (``BENCH_REDIS_URL``) and no result
backend, and one ``celery worker`` with the prefork pool and as many child
processes as relay has workers; everything else is Celery's default. The
benchmark sends the tasks itself.
"""

from __future__ import annotations

import os

from celery import Celery

from bench.peers import post

# Without BENCH_REDIS_URL the app points at a port nothing listens on, never
# at a broker that happens to run on this machine.
app = Celery(
    "bench_peer", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")
)
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True


@app.task(name="bench.deliver")
def deliver(url: str, body: str, delivery_id: str, event_id: str) -> int:
    """Celery task: POST one delivery."""
    return post(url, body, delivery_id, event_id)


def enqueue(redis_url: str, jobs: list[tuple[str, str, str, str]]) -> None:
    """Send one :func:`deliver` task per ``(url, body, delivery, event)``."""
    app.conf.broker_url = redis_url
    with app.producer_or_acquire() as producer:
        for job in jobs:
            deliver.apply_async(job, producer=producer)


def worker_command(processes: int) -> list[str]:
    """One Celery worker with ``processes`` prefork children."""
    return [
        "celery",
        "-A",
        "bench.peers.celery_naive",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(processes),
        "--loglevel",
        "WARNING",
        "--hostname",
        "bench@%h",
    ]

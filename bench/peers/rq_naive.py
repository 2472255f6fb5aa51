"""The obvious relay on RQ: one job per delivery, ``requests.post``.

Its workers are RQ's default worker class (``rq.Worker``, which forks a work
horse per job) on queue ``bench``, one process each, with RQ's default
settings (results kept 500 s, a log line per job). One kindness over the
stock ``rq worker`` command: this module (and so ``requests``) is imported
before the worker starts, so each forked horse inherits it instead of
importing it again, which makes every job about three times cheaper. The
benchmark enqueues the jobs itself, in one pipeline.

Run a worker: ``python -m bench.peers.rq_naive REDIS_URL``.
"""

from __future__ import annotations

import sys

import redis
from rq import Queue, Worker

from bench.peers import post

QUEUE = "bench"


def deliver(url: str, body: str, delivery_id: str, event_id: str) -> int:
    """RQ job: POST one delivery."""
    return post(url, body, delivery_id, event_id)


def enqueue(redis_url: str, jobs: list[tuple[str, str, str, str]]) -> None:
    """Enqueue one :func:`deliver` job per ``(url, body, delivery, event)``."""
    client = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=client)
    for start in range(0, len(jobs), 1000):
        queue.enqueue_many(
            [Queue.prepare_data(deliver, job) for job in jobs[start : start + 1000]]
        )
    client.close()


def worker_command(redis_url: str, stock: bool = False) -> list[str]:
    """One default RQ worker process on the benchmark's queue; ``stock``:
    started by the ``rq worker`` command itself."""
    if stock:
        return ["rq", "worker", "--url", redis_url, "--path", ".", QUEUE]

    return [sys.executable, "-m", "bench.peers.rq_naive", redis_url]


def workers_ready(redis_url: str) -> int:
    """How many RQ workers have registered."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(Worker.count(connection=client))
    finally:
        client.close()


def main() -> None:
    client = redis.Redis.from_url(sys.argv[1])
    Worker([Queue(QUEUE, connection=client)], connection=client).work(
        logging_level="INFO"
    )


if __name__ == "__main__":
    main()

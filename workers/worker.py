"""The worker process: an RQ worker that also runs the delivery engine.

RQ runs what is scheduled (retries coming due, operator jobs) and, with
``with_scheduler``, its scheduler; the engine makes the attempts. The worker
class is RQ's non-forking ``SimpleWorker``: relay's jobs are short and
trusted, and a fork per job would cost more than the job.
"""

from __future__ import annotations

import logging
from typing import Any

from rq import Queue, SimpleWorker

from relay.config import Settings
from relay.connection import connect
from relay.stores import Stores
from workers.engine import Engine

log = logging.getLogger(__name__)

#: Seconds a warm shutdown waits for attempts in flight (a dyno gets 30).
SHUTDOWN_GRACE = 25.0


class RelayWorker(SimpleWorker):
    """An RQ worker whose process also runs an :class:`Engine`."""

    def __init__(self, *args: Any, engine: Engine, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine = engine

    def _install_signal_handlers(self) -> None:
        # Called by ``work()`` after RQ has forked its scheduler, so the
        # engine's threads start in this process only.
        super()._install_signal_handlers()  # type: ignore[no-untyped-call]
        self.engine.start()

    def teardown(self) -> None:
        self.engine.stop(SHUTDOWN_GRACE)
        super().teardown()  # type: ignore[no-untyped-call]


def build(settings: Settings, *, name: str | None = None) -> RelayWorker:
    """A worker for ``settings``: RQ on relay's queue, and the engine."""
    client = connect(settings, blocking=True)
    stores = Stores.open(settings, connect(settings))
    queue = Queue(settings.queue_name, connection=client)

    return RelayWorker(
        [queue], connection=client, name=name, engine=Engine(stores, name=name)
    )


def run(settings: Settings, *, burst: bool = False, name: str | None = None) -> None:
    """Run a worker until it is asked to stop (SIGTERM or Ctrl-C)."""
    worker = build(settings, name=name)
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")

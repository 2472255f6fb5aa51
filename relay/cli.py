"""The ``relay`` command: run the relay and operate it.

Every option that names a connection falls back to the environment
(``REDIS_URL``), so commands work unchanged under a Procfile host. Errors are
one line on stderr with exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import redis

from relay import __version__
from relay.config import Settings, from_env
from relay.connection import redacted
from relay.errors import RelayError


class _Group(click.Group):
    """Shows relay's errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RelayError as exc:
            raise click.ClickException(exc.message) from exc
        except redis.RedisError as exc:
            settings = ctx.find_object(Settings) or from_env()
            where = redacted(settings.redis_url)
            raise click.ClickException(f"Redis at {where}: {exc}") from exc


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="relay")
@click.pass_context
def main(ctx: click.Context) -> None:
    """relay: a queue-backed webhook relay."""
    try:
        ctx.obj = from_env()
    except RelayError as exc:
        raise click.ClickException(exc.message) from exc


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@main.command()
@click.option("--burst", is_flag=True, help="Stop once there is no work left.")
@click.option("--name", default=None, help="Worker name (default: host.pid).")
@click.pass_obj
def worker(settings: Settings, burst: bool, name: str | None) -> None:
    """Run a worker: deliveries, retries and RQ's scheduler."""
    from workers.worker import run

    _logging()
    run(settings, burst=burst, name=name)


@main.command()
@click.option("--port", type=int, default=None, envvar="PORT", help="Web port.")
@click.option("--data", default=None, help="Folder of the embedded Valkey's data.")
@click.pass_obj
def dev(settings: Settings, port: int | None, data: str | None) -> None:
    """Run the whole relay locally: Valkey (unless REDIS_URL is set), web, worker."""
    from relay.dev import run_dev

    run_dev(settings, port=port, data_dir=data)

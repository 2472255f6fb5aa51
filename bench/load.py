"""Load generators, each in processes of its own.

- :func:`blast`: as many POSTs as the server takes on N connections, for a
  time or up to a count: ``wrk`` with ``bench/intake.lua`` when it is
  installed, else Python clients (``http.client`` keep-alive connections,
  threads in several processes).
- :func:`paced`: POSTs at a steady rate, recording for each accepted event
  its id and the time its answer arrived (for accepted → delivered latency).

Every request carries a fresh ``Idempotency-Key``: relay answers a repeated
post with the first event and stores nothing.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("intake.lua")


def wrk_path() -> str | None:
    """The wrk binary, unless ``BENCH_NO_WRK`` is set."""
    if os.environ.get("BENCH_NO_WRK"):
        return None
    return shutil.which("wrk")


def percentile(values: list[float], share: float) -> float:
    """The ``share`` (0..100) percentile of ``values`` (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share / 100 * len(ordered)) - 1))

    return ordered[rank]


def blast(
    port: int,
    path: str,
    body_file: Path,
    *,
    connections: int,
    seconds: float,
    until: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """POST ``body_file`` to ``path`` on N connections for ``seconds``, or
    until ``until()`` holds; returns the rate and latency percentiles."""
    run = uuid.uuid4().hex[:10]
    binary = wrk_path()
    if binary is not None:
        return _wrk(binary, port, path, body_file, connections, seconds, until, run)

    return _python_blast(port, path, body_file, connections, seconds, until, run)


def _wrk(
    binary: str,
    port: int,
    path: str,
    body_file: Path,
    connections: int,
    seconds: float,
    until: Callable[[], bool] | None,
    run: str,
) -> dict[str, Any]:
    args = [
        binary,
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}{path}",
        "--",
        run,
    ]
    env = dict(os.environ, BENCH_BODY=str(body_file), BENCH_PATH=path)
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + seconds + 30
    while until is not None and process.poll() is None:
        if until() or time.monotonic() > deadline:
            process.send_signal(signal.SIGINT)  # wrk stops and reports
            break
        time.sleep(0.02)
    stdout, stderr = process.communicate(timeout=seconds + 60)
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {stdout}\n{stderr}")
    found = json.loads(line[6:])
    duration = found["duration_us"] / 1e6
    ok = found["requests"] - found["status"]

    return {
        "tool": "wrk",
        "connections": connections,
        "requests": found["requests"],
        "accepted": ok,
        "seconds": round(duration, 3),
        "rate": round(ok / duration, 1) if duration else 0.0,
        "p50_ms": found["p50_us"] / 1000,
        "p90_ms": found["p90_us"] / 1000,
        "p99_ms": found["p99_us"] / 1000,
        "max_ms": found["max_us"] / 1000,
        "errors": {
            k: found[k] for k in ("connect", "read", "write", "status", "timeout")
        },
    }


# --- the Python load generator ---


def _client_thread(
    port: int,
    path: str,
    body: bytes,
    run: str,
    until: float,
    stop: Any,
    lock: threading.Lock,
    out: dict[str, Any],
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = out["latencies"]
    number = 0
    while time.monotonic() < until and not stop.is_set():
        number += 1
        key = f"{run}-{threading.get_ident()}-{number}"
        began = time.perf_counter()
        try:
            connection.request(
                "POST",
                path,
                body=body,
                headers={"Content-Type": "application/json", "Idempotency-Key": key},
            )
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            with lock:
                out["errors"] += 1
            continue
        took = time.perf_counter() - began
        with lock:
            latencies.append(took)
            if response.status >= 400:
                out["status"] += 1
        if response.will_close:
            connection.close()
    connection.close()


def _client_process(
    port: int,
    path: str,
    body: bytes,
    run: str,
    threads: int,
    seconds: float,
    start_at: float,
    stop: Any,
    results: Any,
) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    until = time.monotonic() + seconds
    lock = threading.Lock()
    out: dict[str, Any] = {"latencies": [], "errors": 0, "status": 0}
    workers = [
        threading.Thread(
            target=_client_thread,
            args=(port, path, body, f"{run}-{os.getpid()}", until, stop, lock, out),
        )
        for _ in range(threads)
    ]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out["seconds"] = time.monotonic() - began
    results.put(out)


def _python_blast(
    port: int,
    path: str,
    body_file: Path,
    connections: int,
    seconds: float,
    until: Callable[[], bool] | None,
    run: str,
) -> dict[str, Any]:
    body = body_file.read_bytes()
    processes = min(4, connections)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    stop = context.Event()
    start_at = time.time() + 1.0
    started = []
    for index in range(processes):
        threads = connections // processes + (index < connections % processes)
        process = context.Process(
            target=_client_process,
            args=(
                port,
                path,
                body,
                f"{run}{index}",
                threads,
                seconds,
                start_at,
                stop,
                results,
            ),
        )
        process.start()
        started.append(process)
    deadline = time.monotonic() + seconds + 30
    while until is not None and any(p.is_alive() for p in started):
        if until() or time.monotonic() > deadline:
            stop.set()
            break
        time.sleep(0.02)
    found = [results.get(timeout=seconds + 60) for _ in started]
    for process in started:
        process.join(timeout=10)
    latencies = [x for f in found for x in f["latencies"]]
    duration = max(f["seconds"] for f in found)
    failed = sum(f["status"] for f in found)
    ok = len(latencies) - failed

    return {
        "tool": "python http.client",
        "connections": connections,
        "requests": len(latencies),
        "accepted": ok,
        "seconds": round(duration, 3),
        "rate": round(ok / duration, 1) if duration else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "errors": {"socket": sum(f["errors"] for f in found), "status": failed},
    }


# --- paced posting (latency) ---


def _paced_process(
    port: int,
    path: str,
    body: bytes,
    rate: float,
    seconds: float,
    threads: int,
    start_at: float,
    results: Any,
) -> None:
    total = int(rate * seconds)
    accepted: list[tuple[str, float, float]] = []
    failures = [0]
    lock = threading.Lock()
    run = uuid.uuid4().hex[:10]

    def work(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for slot in range(offset, total, threads):
            time.sleep(max(0.0, start_at + slot / rate - time.time()))
            sent = time.time()
            try:
                connection.request(
                    "POST",
                    path,
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": f"{run}-{slot}",
                    },
                )
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                with lock:
                    failures[0] += 1
                continue
            done = time.time()
            if response.will_close:
                connection.close()
            if response.status != 202:
                with lock:
                    failures[0] += 1
                continue
            event_id = json.loads(answer)["event"]["id"]
            with lock:
                accepted.append((event_id, sent, done))
        connection.close()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put({"accepted": accepted, "failures": failures[0], "planned": total})


def paced(
    port: int, path: str, body: bytes, *, rate: float, seconds: float, threads: int = 8
) -> dict[str, Any]:
    """POST at ``rate`` per second for ``seconds`` from a process of its own.

    Returns ``accepted``: ``(event id, sent at, accepted at)`` per event
    answered ``202`` (epoch seconds), ``failures`` and ``planned``.
    """
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 1.0
    process = context.Process(
        target=_paced_process,
        args=(port, path, body, rate, seconds, threads, start_at, results),
    )
    process.start()
    found: dict[str, Any] = results.get(timeout=seconds + 120)
    process.join(timeout=10)

    return found

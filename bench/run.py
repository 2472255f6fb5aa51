"""relay's benchmark, in one command: ``python -m bench.run``.

It starts its own Redis server on a free port, the fast sink, and relay as
the Procfile runs it (gunicorn web, N ``relay worker`` processes), and
measures intake, delivery throughput (beside a plain-urllib3 ceiling and the
RQ and Celery peers), fan-out, latency, isolation, growth with history and
memory. It writes ``bench/results/<date>.json``, ``.md`` and ``.png`` and
prints the Markdown table. ``--quick`` runs every measurement with tiny sizes.

All traffic stays on 127.0.0.1; every load is bounded in count and time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if not __package__:  # run as ``python bench/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import delivery, load, phases, report  # noqa: E402
from bench.harness import Sizes, Stage  # noqa: E402
from bench.procs import children, procfile_line  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = [
    "intake",
    "throughput",
    "fanout",
    "latency",
    "isolation",
    "memory",
    "growth",
    "profile",
]
_PACKAGES = [
    "relay",
    "flask",
    "gunicorn",
    "redis",
    "rq",
    "celery",
    "kombu",
    "requests",
    "urllib3",
    "orjson",
]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (a smoke test)"
    )
    parser.add_argument(
        "--counts", type=_ints, help="worker process counts (default 1,2,4,8)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="processes for fan-out, latency, isolation, memory (2)",
    )
    parser.add_argument(
        "--events", type=int, help="events of the one-webhook backlog (10000)"
    )
    parser.add_argument(
        "--growth", type=_ints, help="stored history sizes (0,100000,1000000)"
    )
    parser.add_argument("--only", help="comma-separated phases: " + ",".join(PHASES))
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--logs", type=Path, help="where process logs go (default: a temp dir)"
    )

    return parser.parse_args(argv)


def _meta(stage: Stage, args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    server = stage.redis.info("server")
    wrk = load.wrk_path()
    tool = "python http.client clients"
    if wrk:
        shown = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        tool = (shown.stdout or shown.stderr).split("[")[0].strip() or "wrk"

    return {
        "date": datetime.date.today().isoformat(),
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "redis_server": f"{server.get('redis_version')} ({stage.redis_name})",
        "load_tool": tool,
        "connections": sizes.connections,
        "web_workers": _web_workers(stage),
        "procfile": {"web": procfile_line("web"), "worker": procfile_line("worker")},
        "relay_env": {"RELAY_ALLOW_PRIVATE_TARGETS": "1", "others": "defaults"},
        "sizes": dataclasses.asdict(sizes),
        "logs": str(stage.logs),
        "units": {
            "rate": "deliveries or events per second",
            "seconds": "s",
            "*_ms": "milliseconds",
            "*_mb": "MiB (VmRSS / VmHWM)",
            "bytes_*": "bytes (Redis used_memory deltas)",
        },
        "method": {
            "throughput": "backlog posted through the API (relay) or enqueued by "
            "the bench (peers) before workers start; rate = distinct deliveries "
            "/ (sink's last arrival - first arrival)",
            "fanout": "from the post (relay) or the first enqueue (peers) to the "
            "last arrival; the ceiling from its first to its last arrival",
            "intake": "web process only (no workers), wrk/Python clients, one "
            "Idempotency-Key per request",
            "peers": "jobs enqueued directly from the bench process (no web "
            "intake): the generous choice",
        },
    }


def _web_workers(stage: Stage) -> int:
    """How many workers relay's gunicorn runs (as the Procfile sets them)."""
    stage.relay_web()
    assert stage.web is not None

    return len(children(stage.web.pid))


def _rss(stage: Stage) -> dict[str, Any]:
    def peak(kind: str) -> float | None:
        values = [m.get("VmHWM") for m in stage.rss.get(kind, []) if m.get("VmHWM")]
        return max(values) if values else None

    return {
        "relay_worker_peak_mb": peak("relay_worker"),
        "scheduler_peak_mb": peak("scheduler"),
        "web_master_peak_mb": peak("web"),
        "web_worker_peak_mb": peak("web_child"),
        "samples": stage.rss,
    }


def _step(
    stage: Stage, results: dict[str, Any], name: str, action: Callable[[], Any]
) -> Any:
    """Run one measurement; an error is recorded and the run goes on."""
    began = time.monotonic()
    keep = list(stage.procs.running)
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        value = action()
    except Exception as exc:
        traceback.print_exc()
        value = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        stage.sweep(keep)
    took = time.monotonic() - began
    print(f"[bench] {name} done in {took:.1f} s", file=sys.stderr, flush=True)
    results.setdefault("phase_seconds", {})[name] = round(took, 1)

    return value


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.counts:
        sizes.counts = args.counts
    if args.workers:
        sizes.workers = args.workers
    if args.events:
        sizes.events = args.events
    if args.growth is not None:
        sizes.growth = args.growth
    wanted = set(args.only.split(",")) if args.only else set(PHASES)
    if args.no_profile or args.quick:
        wanted.discard("profile")
    logs = args.logs or Path(tempfile.mkdtemp(prefix="relay-bench-"))
    stage = Stage(sizes, logs)
    results: dict[str, Any] = {}
    began = time.monotonic()
    try:
        stage.open()
        results["meta"] = _meta(stage, args, sizes)
        n = sizes.workers
        seconds = 1 if args.quick else 3
        steps: list[tuple[str, str, Callable[[], Any]]] = [
            ("sink", "sink ceiling", lambda: phases.sink_ceiling(stage, seconds)),
            ("intake", "intake", lambda: phases.intake(stage)),
        ]
        steps += [
            (
                f"throughput:{c}",
                f"throughput x{c}",
                lambda c=c: delivery.throughput(stage, c),
            )
            for c in sizes.counts
        ]
        steps += [
            ("fanout", "fan-out", lambda: delivery.fanout(stage, n)),
            (
                "latency",
                "latency",
                lambda: delivery.latency(stage, n, _max_rate(results, n) / 5),
            ),
            ("isolation", "isolation", lambda: delivery.isolation(stage, n)),
            ("memory", "memory", lambda: phases.memory(stage, n)),
            ("growth", "growth", lambda: phases.growth(stage)),
            ("profile", "profile", lambda: delivery.profile(stage, n, sizes.events)),
        ]
        for key, name, action in steps:
            section, _, count = key.partition(":")
            if section not in wanted and section != "sink":
                continue
            value = _step(stage, results, name, action)
            if count:
                results.setdefault(section, {})[count] = value
            else:
                results[section] = value
    finally:
        stage.close()
    if isinstance(results.get("memory"), dict) and "error" not in results["memory"]:
        results["memory"]["rss"] = _rss(stage)
    elif stage.rss:
        results.setdefault("memory", {})["rss"] = _rss(stage)
    meta = results.setdefault("meta", {})
    meta["wall_seconds"] = round(time.monotonic() - began, 1)
    meta["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    return results


def _max_rate(results: dict[str, Any], processes: int) -> float:
    """The most relay sustained end to end: the lower of its intake and its
    delivery rate at ``processes`` workers (100/s when neither ran)."""
    found = []
    intake = results.get("intake", {}).get("relay", {})
    if intake.get("rate"):
        found.append(intake["rate"])
    row = results.get("throughput", {}).get(str(processes), {})
    if row.get("relay", {}).get("rate"):
        found.append(row["relay"]["rate"])

    return min(found) if found else 100.0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    results = run(args)
    stem = results["meta"].get("date", datetime.date.today().isoformat())
    if args.quick:
        stem += "-quick"
    paths = report.write(results, args.out, stem)
    print(paths["md"].read_text())
    for path in paths.values():
        print(f"[bench] wrote {path}", file=sys.stderr)
    print(f"[bench] process logs in {results['meta'].get('logs')}", file=sys.stderr)

    return 0


if __name__ == "__main__":
    raise SystemExit(main())

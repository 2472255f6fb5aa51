"""The benchmark's harness runs end to end with quick sizes.

This proves ``python -m bench.run`` starts everything, measures every section
and writes its outputs; it asserts no speed (that is the benchmark's job).
It needs the ``bench`` extra (Celery, matplotlib) and is skipped without it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

#: Each section of the results and figures it must hold as numbers.
EXPECTED = {
    "sink": ["rate"],
    "intake": ["ratio", "relay.rate", "relay.p99_ms", "bare_flask.rate"],
    "fanout": ["relay.seconds", "ceiling.rate", "rq.rate", "celery.rate"],
    "latency": ["rate", "p50_ms", "p99_ms", "delivered"],
    "isolation": ["ratio", "alone.rate", "with_slow.rate"],
    "memory": [
        "event.bytes_per_event",
        "pending.bytes_per_delivery",
        "retrying.bytes_per_delivery",
        "rss.relay_worker_peak_mb",
        "rss.web_worker_peak_mb",
    ],
    "growth": ["cli_startup_ms"],
}


def _figure(section: dict[str, Any], dotted: str) -> Any:
    value: Any = section
    for part in dotted.split("."):
        value = value[part]

    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


@pytest.mark.timeout(400)
def test_quick_benchmark_measures_every_section(tmp_path: Path) -> None:
    """``bench.run --quick`` writes JSON, Markdown and a chart with a number
    for every measurement and the targets checked."""
    pytest.importorskip("celery", reason="the bench extra is not installed")
    pytest.importorskip("matplotlib", reason="the bench extra is not installed")
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "| target | relay | goal | pass |" in done.stdout
    [written] = tmp_path.glob("*-quick.json")
    results = json.loads(written.read_text())
    assert (tmp_path / written.name.replace(".json", ".md")).exists()
    assert (tmp_path / written.name.replace(".json", ".png")).exists()
    for section, figures in EXPECTED.items():
        assert "error" not in results[section], results[section]
        for dotted in figures:
            assert _is_number(_figure(results[section], dotted)), (section, dotted)
    counts = results["meta"]["sizes"]["counts"]
    assert sorted(results["throughput"]) == sorted(str(c) for c in counts)
    for row in results["throughput"].values():
        for system in ("relay", "ceiling", "rq", "celery"):
            assert _is_number(row[system]["rate"]), row
    rows = results["growth"]["sizes"]
    assert len(rows) == len(set(results["meta"]["sizes"]["growth"]))
    assert all(_is_number(r["webhooks_list"]["p50_ms"]) for r in rows)
    assert all(_is_number(r["intake"]["rate"]) for r in rows)
    assert results["targets"] and all("pass" in t for t in results["targets"])

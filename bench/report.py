"""The benchmark's outputs: targets checked, a Markdown table, a chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SYSTEMS = [
    ("relay", "relay"),
    ("ceiling", "urllib3 ceiling"),
    ("celery", "Celery peer"),
    ("rq", "RQ peer"),
]


def _target(
    name: str, value: float | None, goal: str, passed: bool | None, unit: str = ""
) -> dict[str, Any]:
    return {"target": name, "value": value, "unit": unit, "goal": goal, "pass": passed}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue, with the figure measured and pass/fail."""
    found: list[dict[str, Any]] = []
    intake = results.get("intake")
    if intake and intake.get("ratio") is not None:
        found.append(
            _target(
                "Intake vs bare Flask",
                intake["ratio"] * 100,
                "≥ 60 %",
                intake["ratio"] >= 0.6,
                "%",
            )
        )
    for count, row in sorted(
        results.get("throughput", {}).items(), key=lambda x: int(x[0])
    ):
        if "ratios" not in row:
            continue
        ratios = row["ratios"]
        found.append(
            _target(
                f"Delivery vs urllib3 ceiling, {count} proc.",
                ratios["relay_vs_ceiling"] * 100,
                "≥ 50 %",
                ratios["relay_vs_ceiling"] >= 0.5,
                "%",
            )
        )
        found.append(
            _target(
                f"Delivery vs RQ peer, {count} proc.",
                ratios["relay_vs_rq"],
                "≥ 20×",
                ratios["relay_vs_rq"] >= 20,
                "×",
            )
        )
        found.append(
            _target(
                f"Delivery vs Celery peer, {count} proc.",
                ratios["relay_vs_celery"],
                "> 1×",
                ratios["relay_vs_celery"] > 1,
                "×",
            )
        )
    fan = results.get("fanout", {}).get("relay")
    if fan:
        webhooks = results["fanout"]["webhooks"]
        found.append(
            _target(
                f"Fan-out, 1 event → {webhooks:,} webhooks",
                fan["seconds"],
                "< 5 s",
                fan["complete"] and fan["seconds"] < 5,
                "s",
            )
        )
    lat = results.get("latency")
    if lat and "p99_ms" in lat:
        found.append(
            _target(
                "p99 accepted → delivered at ⅕ max",
                lat["p99_ms"],
                "< 100 ms",
                lat["p99_ms"] < 100 and lat["delivered"] == lat["accepted"],
                "ms",
            )
        )
    iso = results.get("isolation")
    if iso and "ratio" in iso:
        found.append(
            _target(
                "Fast webhook's rate beside a 2 s one",
                iso["ratio"] * 100,
                "≥ 90 %",
                iso["ratio"] >= 0.9,
                "%",
            )
        )
    memory = results.get("memory", {})
    rss = memory.get("rss", {}).get("relay_worker_peak_mb")
    if rss is not None:
        found.append(_target("Worker RSS (peak)", rss, "< 80 MB", rss < 80, "MB"))
    pending = memory.get("pending", {}).get("bytes_per_delivery")
    if pending is not None:
        found.append(
            _target(
                "Redis bytes per pending delivery",
                pending,
                "< 1,024 B",
                pending < 1024,
                "B",
            )
        )
    rows = results.get("growth", {}).get("sizes", [])
    if len(rows) >= 2:
        found += _growth_targets(rows)

    return found


def _growth_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Costs at the most history against the least: the listings against
    the smallest store that has dead letters (an empty list is no baseline),
    intake and the webhook list against the empty store."""
    last = rows[-1]
    listed = [r for r in rows if r["dead_letters"]]
    size = f"{last['events']:,}"
    found = []

    def ratio(base: dict[str, Any], figure: Any) -> float:
        return round(figure(last) / max(figure(base), 0.01), 2)

    checks = [
        ("GET /v1/webhooks", rows[0], lambda r: r["webhooks_list"]["p50_ms"]),
        ("GET /v1/dead-letters", listed[0], lambda r: r["dead_letters_api"]["p50_ms"]),
    ]
    if "dead_letters_cli_ms" in last:
        checks.append(
            ("relay dead-letters list", listed[0], lambda r: r["dead_letters_cli_ms"])
        )
    for label, base, figure in checks:
        if base is last:
            continue
        value = ratio(base, figure)
        found.append(
            _target(
                f"{label}: {size} vs {base['events']:,} stored",
                value,
                "≤ 2× (bench's bar)",
                value <= 2,
                "×",
            )
        )
    value = ratio(rows[0], lambda r: r["intake"]["rate"]) * 100
    found.append(
        _target(
            f"Intake rate: {size} vs {rows[0]['events']:,} stored",
            value,
            "≥ 50 % (bench's bar)",
            value >= 50,
            "%",
        )
    )

    return found


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _head(*cells: str, align: str = "") -> list[str]:
    """A table's header and rule; ``align`` has one of ``l r c`` per column."""
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    marks = align or "l" + "r" * (len(cells) - 1)

    return ["", _row(*cells), _row(*(rule[m] for m in marks))]


def markdown(results: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    meta = results["meta"]
    quick = " (quick sizes)" if meta.get("quick") else ""
    lines = [
        f"### relay benchmark, {meta['date']}",
        "",
        f"{meta['cpus']} CPUs, Python {meta['python']}, {meta['redis_server']}, "
        f"load from {meta['load_tool']}, {meta['web_workers']} gunicorn workers, "
        f"{meta['connections']} connections; wall time "
        f"{_num(meta.get('wall_seconds'), 0)} s{quick}; load average "
        f"{meta['load_average_at_start'][0]:.2f} before the run.",
    ]
    lines += _head("target", "relay", "goal", "pass", align="lrlc")
    for row in results.get("targets", []):
        mark = {True: "✅", False: "❌", None: "–"}[row["pass"]]
        shown = f"{_num(row['value'])} {row['unit']}"
        lines.append(_row(row["target"], shown, row["goal"], mark))
    parts = (_throughput, _costs, _intake, _fanout, _latency, _isolation, _growth)
    for part in (*parts, _memory, _profile):
        lines += part(results)

    return "\n".join(lines) + "\n"


def _rate(found: dict[str, Any]) -> str:
    """A rate, marked when the run did not finish, with the bulk's rate when
    a slow tail pulled the whole run's well below it."""
    shown = _num(found["rate"], 0)
    if not found.get("complete", True):
        shown += " (incomplete)"
    bulk = found.get("rate_first_90pct")
    if bulk and bulk > 1.5 * found["rate"]:
        shown += f" (first 90 %: {_num(bulk, 0)})"

    return shown


def _throughput(results: dict[str, Any]) -> list[str]:
    rows = results.get("throughput", {})
    if not rows:
        return []
    sizes = results["meta"]["sizes"]
    lines = [
        "",
        f"Deliveries/s to one webhook (relay and ceiling {sizes['events']:,} "
        f"events, RQ {sizes['rq_events']:,}, Celery {sizes['celery_events']:,}; "
        "the sink's first to last arrival):",
    ]
    lines += _head(
        "processes",
        "relay",
        "urllib3 ceiling",
        "Celery peer",
        "RQ peer",
        "relay ÷ ceiling",
        "relay ÷ RQ",
        "relay ÷ Celery",
    )
    for count, row in sorted(rows.items(), key=lambda x: int(x[0])):
        if "ratios" not in row:
            lines.append(_row(count, f"error: {row.get('error', '?')}"))
            continue
        ratios = row["ratios"]
        rates = [_rate(row[k]) for k in ("relay", "ceiling", "celery", "rq")]
        lines.append(
            _row(
                count,
                *rates,
                f"{ratios['relay_vs_ceiling'] * 100:.0f} %",
                f"{ratios['relay_vs_rq']:.1f}×",
                f"{ratios['relay_vs_celery']:.2f}×",
            )
        )

    for count, row in rows.items():
        stock = row.get("rq_stock")
        if stock and "ratios" in row:
            lines += [
                "",
                f"The RQ peer above imports its job module before forking (the "
                f"generous choice); started by the stock `rq worker` command, "
                f"which imports it in every forked horse, it delivers "
                f"{_num(stock['rate'], 0)}/s at {count} processes "
                f"(relay ÷ = {row['relay']['rate'] / stock['rate']:.1f}×).",
            ]

    return lines


def _costs(results: dict[str, Any]) -> list[str]:
    rows = results.get("throughput", {})
    count = str(results["meta"]["sizes"]["workers"])
    row = rows.get(count) or next(iter(rows.values()), {})
    if "ratios" not in row:
        return []
    lines = [
        "",
        f"What one delivery costs at {count} processes (first to last delivery; "
        "Redis commands include those run inside Lua scripts):",
    ]
    lines += _head("per delivery", "Redis commands", "Redis CPU ms", "worker CPU ms")
    shown = SYSTEMS + [("rq_stock", "RQ peer, stock `rq worker`")]
    for key, label in [(k, v) for k, v in shown if k in row]:
        spent = row[key].get("per_delivery", {})
        lines.append(
            _row(
                label,
                _num(spent.get("redis_commands")),
                _num(spent.get("redis_cpu_ms"), 3),
                _num(spent.get("worker_cpu_ms"), 3),
            )
        )

    return lines


def _profile(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key in ("worker", "web"):
        found = results.get("profile", {}).get(key, {})
        if not found.get("samples"):
            continue
        lines += [
            "",
            f"Profile: {found['sampled']} ({found['samples']:,} samples, "
            f"{_num(found['run']['rate'], 0)}/s):",
        ]
        lines += _head("component (inclusive)", "% of samples")
        shares = found["components_percent"]
        lines += [_row(name, _num(share)) for name, share in shares]
        lines += _head("relay's functions (inclusive)", "% of samples")
        shares = found["relay_inclusive_percent"][:10]
        lines += [_row(f"`{name}`", _num(share)) for name, share in shares]
        lines += _head("function (self)", "% of samples")
        shares = found["self_percent"][:10]
        lines += [_row(f"`{name}`", _num(share)) for name, share in shares]

    return lines


def _intake(results: dict[str, Any]) -> list[str]:
    intake = results.get("intake", {})
    if "relay" not in intake:
        return []
    lines = _head("intake, 32 connections", "events/s", "p50 ms", "p99 ms")
    shown = [("relay", intake["relay"]), ("bare Flask ceiling", intake["bare_flask"])]
    sink = results.get("sink", {})
    if "rate" in sink:
        shown.append(("(the sink itself, POSTs/s)", sink))
    for label, row in shown:
        lines.append(
            _row(label, _num(row["rate"], 0), _num(row["p50_ms"]), _num(row["p99_ms"]))
        )

    return lines


def _fanout(results: dict[str, Any]) -> list[str]:
    fan = results.get("fanout", {})
    if "relay" not in fan:
        return []
    title = f"fan-out: 1 event → {fan['webhooks']:,} webhooks"
    lines = _head(title, "seconds", "deliveries/s")
    for key, label in SYSTEMS:
        if key in fan:
            row = fan[key]
            lines.append(_row(label, _num(row["seconds"], 2), _num(row["rate"], 0)))

    return lines


def _latency(results: dict[str, Any]) -> list[str]:
    lat = results.get("latency", {})
    if "p50_ms" not in lat:
        return []
    percentiles = ", ".join(
        f"{name} {_num(lat[key])} ms"
        for name, key in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"))
    )

    return [
        "",
        f"Latency at {_num(lat['rate'], 0)} events/s for {lat['seconds']} s: "
        f"accepted → delivered {percentiles}, max {_num(lat['max_ms'])} ms "
        f"({lat['delivered']:,} of {lat['accepted']:,} delivered); intake "
        f"p50 {_num(lat['intake_p50_ms'])} ms, p99 {_num(lat['intake_p99_ms'])} ms.",
    ]


def _isolation(results: dict[str, Any]) -> list[str]:
    iso = results.get("isolation", {})
    if "ratio" not in iso:
        return []
    mixed = iso["with_slow"]

    return [
        "",
        f"Isolation: the fast webhook alone {_num(iso['alone']['rate'], 0)}/s; "
        f"beside a webhook taking {iso['slow_seconds']:g} s per request "
        f"({mixed['slow_events']:,} of its events queued first) "
        f"{_num(mixed['rate'], 0)}/s = {iso['ratio'] * 100:.0f} %.",
    ]


def _growth(results: dict[str, Any]) -> list[str]:
    grow = results.get("growth", {})
    if not grow.get("sizes"):
        return []
    lines = _head(
        "stored events + dead letters",
        "GET /v1/webhooks p50 ms",
        "GET /v1/dead-letters p50 ms",
        "relay dead-letters list ms",
        "intake events/s",
        "intake p99 ms",
        "Redis MB",
    )
    for row in grow["sizes"]:
        lines.append(
            _row(
                f"{row['events']:,} + {row['dead_letters']:,}",
                _num(row["webhooks_list"]["p50_ms"], 2),
                _num(row["dead_letters_api"]["p50_ms"], 2),
                _num(row.get("dead_letters_cli_ms")),
                _num(row["intake"]["rate"], 0),
                _num(row["intake"]["p99_ms"]),
                _num(row["redis_used_mb"]),
            )
        )
    lines += [
        "",
        f"(`relay --version` alone takes {_num(grow['cli_startup_ms'])} ms: the "
        "CLI's start-up is inside its figures.)",
    ]

    return lines


def _memory(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory", {})
    if not memory.get("event"):
        return []
    event, rss = memory["event"], memory.get("rss", {})
    web = (
        f"{_num(rss.get('web_master_peak_mb'))} / {_num(rss.get('web_worker_peak_mb'))}"
    )
    rows = [
        (
            "relay worker RSS, peak (main process)",
            f"{_num(rss.get('relay_worker_peak_mb'))} MB",
        ),
        (
            "RQ scheduler child of a worker, peak",
            f"{_num(rss.get('scheduler_peak_mb'))} MB",
        ),
        ("gunicorn master / worker RSS, peak", f"{web} MB"),
        (
            f"Redis bytes per stored event (payload {event['payload_bytes']} B)",
            _num(event["bytes_per_event"]),
        ),
        ("… beyond the payload", _num(event["overhead_per_event"])),
        ("… while its fan-out item is queued", _num(event["bytes_per_event_queued"])),
    ]
    for key, label in (
        ("pending", "pending delivery (parked behind a slow receiver)"),
        ("retrying", "delivery to a receiver that is down (retries, breaker)"),
    ):
        found = memory.get(key, {})
        if "bytes_per_delivery" not in found:
            continue
        rows.append((f"Redis bytes per {label}", _num(found["bytes_per_delivery"])))
        parts = found.get("breakdown_bytes_per_delivery", {})
        shown = ", ".join(
            f"{k.replace('_', ' ')} {_num(v, 0)}" for k, v in parts.items()
        )
        rows.append(("… by key (MEMORY USAGE)", shown))

    return _head("memory", "figure") + [_row(*r) for r in rows]


def chart(results: dict[str, Any], path: Path) -> bool:
    """Deliveries/s against process count; False when nothing to draw."""
    rows = {
        int(k): v for k, v in results.get("throughput", {}).items() if "ratios" in v
    }
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted(rows)
    figure, axes = plt.subplots(figsize=(8, 5.4), dpi=110)
    styles = {"relay": "o-", "ceiling": "s--", "celery": "^-", "rq": "v-"}
    for key, label in SYSTEMS:
        values = [rows[c][key]["rate"] for c in counts]
        axes.plot(counts, values, styles[key], label=label, linewidth=2)
        for count, value in zip(counts, values, strict=True):
            axes.annotate(
                f"{value:,.0f}",
                (count, value),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
    half = [rows[c]["ceiling"]["rate"] / 2 for c in counts]
    axes.plot(counts, half, ":", color="grey", label="target: ½ of the ceiling")
    axes.set_xscale("log", base=2)
    axes.set_xticks(counts, [str(c) for c in counts])
    axes.set_yscale("log")
    axes.set_xlabel("worker processes")
    axes.set_ylabel("deliveries per second (log)")
    meta = results["meta"]
    axes.set_title(
        f"One webhook, backlog delivered — {meta['cpus']} CPUs, {meta['date']}"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=5, fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

    return True


def write(results: dict[str, Any], out: Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    png = out / f"{stem}.png"
    if chart(results, png):
        paths["png"] = png
    text = markdown(results)
    if "png" in paths:
        text += f"\n![throughput]({png.name})\n"
    paths["md"].write_text(text)
    paths["json"].write_text(json.dumps(results, indent=2, default=str) + "\n")

    return paths

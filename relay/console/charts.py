"""The console's two charts, as shapes for an SVG drawn on the server.

Both come from the per-minute counters of :mod:`relay.figures`, the same
figures ``/metrics`` shows: deliveries per minute (delivered, retrying,
dead, stacked) and the mean attempt duration per minute, over the last
hour. The template ``console/_chart.html`` draws the shapes; nothing here
is markup, so Jinja escapes every label.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

from relay.figures import Minute

WIDTH = 720
HEIGHT = 190
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 22

#: The series of the deliveries chart, bottom to top, with their legend.
SERIES = (
    ("delivered", "delivered"),
    ("retrying", "failed, retry scheduled"),
    ("dead", "dead-lettered"),
)


@dataclasses.dataclass(frozen=True)
class Rect:
    """One bar segment."""

    x: float
    y: float
    width: float
    height: float
    kind: str
    title: str


@dataclasses.dataclass(frozen=True)
class Dot:
    """One point of a line, with its tooltip."""

    x: float
    y: float
    title: str


@dataclasses.dataclass(frozen=True)
class Tick:
    """An axis mark: where, and its label."""

    at: float
    label: str


@dataclasses.dataclass(frozen=True)
class Chart:
    """Everything the template draws for one chart."""

    title: str
    summary: str
    rects: list[Rect]
    lines: list[str]
    dots: list[Dot]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: tuple[tuple[str, str], ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)

    return float(10 * power)  # pragma: no cover - the loop always returns


def _clock(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%H:%M UTC")


def _slot(index: int, count: int) -> tuple[float, float]:
    """The left edge and width of minute ``index`` of ``count``."""
    width = (WIDTH - RIGHT - LEFT) / count

    return LEFT + index * width, width


def _x_ticks(count: int) -> list[Tick]:
    ticks = []
    for ago in (60, 45, 30, 15, 0):
        if ago < count:
            left, width = _slot(count - 1 - ago, count)
            ticks.append(Tick(left + width / 2, f"-{ago}m" if ago else "now"))

    return ticks


def _y_ticks(top: float, label: str = "{:g}") -> list[Tick]:
    plot = HEIGHT - BOTTOM - TOP

    return [
        Tick(HEIGHT - BOTTOM - plot * share, label.format(top * share))
        for share in (0, 0.5, 1)
    ]


def _y(value: float, top: float) -> float:
    return HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * min(value / top, 1.0)


def deliveries(minutes: list[Minute]) -> Chart:
    """Deliveries per minute: delivered, retrying and dead, stacked."""
    shown = minutes[-60:]
    count = max(len(shown), 1)
    totals = [sum(getattr(m, kind) for kind, _ in SERIES) for m in shown]
    top = nice_ceiling(max(totals, default=0))
    rects = []
    for index, minute in enumerate(shown):
        left, width = _slot(index, count)
        base = 0
        for kind, label in SERIES:
            value = getattr(minute, kind)
            if not value:
                continue
            upper, lower = _y(base + value, top), _y(base, top)
            rects.append(
                Rect(
                    left + width * 0.1,
                    upper,
                    width * 0.8,
                    max(lower - upper, 0.5),
                    kind,
                    f"{_clock(minute.minute)}: {value} {label}",
                )
            )
            base += value
    sums = {kind: sum(getattr(m, kind) for m in shown) for kind, _ in SERIES}
    summary = ", ".join(f"{sums[kind]} {label}" for kind, label in SERIES)

    return Chart(
        title="Deliveries per minute, last hour",
        summary=f"Over the last hour: {summary}.",
        rects=rects,
        lines=[],
        dots=[],
        y_ticks=_y_ticks(top),
        x_ticks=_x_ticks(count),
        legend=SERIES,
    )


def latency(minutes: list[Minute]) -> Chart:
    """The mean attempt duration per minute, in milliseconds."""
    shown = minutes[-60:]
    count = max(len(shown), 1)
    means = [m.mean_duration_ms for m in shown]
    top = nice_ceiling(max((m for m in means if m is not None), default=0))
    lines: list[str] = []
    dots: list[Dot] = []
    run: list[str] = []
    for index, (minute, mean) in enumerate(zip(shown, means, strict=True)):
        if mean is None:
            if run:
                lines.append(" ".join(run))
            run = []
            continue
        left, width = _slot(index, count)
        x, y = left + width / 2, _y(mean, top)
        run.append(f"{x:.1f},{y:.1f}")
        dots.append(
            Dot(
                x,
                y,
                f"{_clock(minute.minute)}: {mean:.0f} ms mean over "
                f"{minute.attempts} attempts",
            )
        )
    if run:
        lines.append(" ".join(run))
    attempts = sum(m.attempts for m in shown)
    total_ms = sum(m.duration_ms for m in shown)
    summary = (
        f"{attempts} attempts, {total_ms / attempts:.0f} ms on average"
        if attempts
        else "no attempts"
    )

    return Chart(
        title="Attempt duration per minute (mean), last hour",
        summary=f"Over the last hour: {summary}.",
        rects=[],
        lines=lines,
        dots=dots,
        y_ticks=_y_ticks(top, "{:g} ms"),
        x_ticks=_x_ticks(count),
        legend=(("line", "mean attempt duration"),),
    )

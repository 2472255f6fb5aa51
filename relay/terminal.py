"""What the ``relay`` command shows an operator, and how it reads what they type.

Tables are aligned, with long cells cut; times in tables are ages
(``3m ago``), in JSON ISO 8601. A bulk operation shows a progress bar only
when standard output is a terminal, and always ends with a summary line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from relay import ids, jsonio
from relay.errors import ValidationFailed
from relay.operations import (
    Result,
    Tally,
    parse_duration,
    parse_rate,
    parse_time,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: The widest a table cell is shown before it is cut.
CELL_MAX = 60
#: Errors of a bulk operation listed one per line before the rest are counted.
ERRORS_SHOWN = 20


# --- what operators type -----------------------------------------------------


def parsed(
    parse: Callable[[str], T],
) -> Callable[[click.Context, click.Parameter, str | None], T | None]:
    """An option callback that reads its value with one of
    :mod:`relay.operations`' parsers; what does not parse is a usage error."""

    def callback(
        ctx: click.Context, param: click.Parameter, value: str | None
    ) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except ValidationFailed as exc:
            raise click.BadParameter(exc.message, ctx, param) from None

    return callback


#: Option keywords for a duration (``90s``, ``30m``, ``2h``, ``30d``), in s.
DURATION: dict[str, Any] = {"metavar": "DURATION", "callback": parsed(parse_duration)}
#: Option keywords for an ISO 8601 time or a duration ago, in ms.
MOMENT: dict[str, Any] = {"metavar": "TIME", "callback": parsed(parse_time)}
#: Option keywords for a rate (``5/s``, ``100/m``, ``off``), per second.
RATE: dict[str, Any] = {"metavar": "RATE", "callback": parsed(parse_rate)}


def json_option(command: F) -> F:
    """Add ``--json``: one JSON document instead of a table."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document."
    )(command)


# --- what operators see ------------------------------------------------------


def echo_json(document: Any) -> None:
    """Print ``document`` as one line of JSON."""
    click.echo(jsonio.dumps(document).decode())


def span(seconds: float) -> str:
    """``42s``, ``3m``, ``2h`` or ``5d``: the largest whole unit."""
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"

    return f"{seconds}s"


def age(ms: int | None, now_ms: int | None = None) -> str:
    """``3m ago`` for a past time, ``in 3m`` for a future one, ``-`` for None."""
    if ms is None:
        return "-"
    now_ms = ids.now_ms() if now_ms is None else now_ms
    if ms > now_ms + 999:
        return "in " + span((ms - now_ms) / 1000)

    return span(max(0, now_ms - ms) / 1000) + " ago"


def cut(text: str, width: int = CELL_MAX) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())

    return flat if len(flat) <= width else flat[: width - 1] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print an aligned table; its cells are cut to :data:`CELL_MAX`."""
    cells = [[cut(str(c)) for c in row] for row in rows]
    widths = [
        max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)
    ]
    for row in [list(headers), *cells]:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )


def fields(pairs: Iterable[tuple[str, str | None]]) -> None:
    """Print ``label  value`` lines, labels aligned; None values are left out."""
    shown = [(label, value) for label, value in pairs if value is not None]
    width = max((len(label) for label, _ in shown), default=0)
    for label, value in shown:
        click.echo(f"{label.ljust(width)}  {value}")


def stdout_is_terminal() -> bool:
    """True when standard output is a terminal (not a pipe or a file)."""
    return sys.stdout is not None and sys.stdout.isatty()


# --- long operations ---------------------------------------------------------


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` (unless ``yes``); stop with one line unless answered yes."""
    if yes:
        return
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.Abort:
        agreed = False
    if not agreed:
        raise click.ClickException(
            "not confirmed, so nothing was changed (--yes skips the question)"
        )


def run_bulk(
    label: str,
    verb: str,
    tally: Tally,
    results: Iterable[Result],
    *,
    quiet: bool = False,
) -> Tally:
    """Count ``results`` into ``tally`` under a progress bar (on a terminal,
    unless ``quiet``) showing counts, rate and errors. Ctrl-C stops with a
    line saying how far it got."""
    started = time.monotonic()
    step = max(1, tally.total // 200)  # redraw about 200 times at most
    unshown = 0

    def info(_: Result | None) -> str:
        rate = tally.seen / max(time.monotonic() - started, 0.001)
        return f"{rate:,.0f}/s  {len(tally.errors):,} errors"

    with click.progressbar(
        length=max(tally.total, 1),
        label=label,
        show_pos=True,
        show_percent=True,
        item_show_func=info,
        hidden=quiet or not stdout_is_terminal(),
    ) as bar:
        try:
            for result in results:
                tally.add(result)
                unshown += 1
                if unshown >= step:
                    bar.update(unshown, result)
                    unshown = 0
        except KeyboardInterrupt:
            raise click.ClickException(f"interrupted: {tally.line(verb)}") from None
        if unshown:
            bar.update(unshown)

    return tally


def finish(tally: Tally, verb: str, document: dict[str, Any] | None) -> None:
    """End a bulk operation: its JSON ``document`` when given, else its errors
    (on stderr) and summary line; exit status 1 when any item failed."""
    if document is not None:
        echo_json(document)
    else:
        report_problems(tally.errors)
        click.echo(tally.line(verb))
    if tally.errors:
        raise click.exceptions.Exit(1)


def report_problems(problems: Sequence[tuple[str, str]]) -> None:
    """Print up to :data:`ERRORS_SHOWN` ``id: problem`` lines on stderr."""
    for item, problem in problems[:ERRORS_SHOWN]:
        click.echo(f"{item}: {problem}", err=True)
    if len(problems) > ERRORS_SHOWN:
        click.echo(f"... and {len(problems) - ERRORS_SHOWN:,} more", err=True)

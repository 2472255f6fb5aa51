"""A summary of a py-spy ``raw`` profile (collapsed stacks): where a relay
process spends its time, by function and by component."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

#: Component of a frame, by the first pattern its file matches.
_COMPONENTS = [
    ("logging", re.compile(r"(^|/)logging/")),
    ("redis client", re.compile(r"(^|/)redis/")),
    (
        "requests + urllib3 + http.client",
        re.compile(r"(^|/)(requests|urllib3|requests_hardened)/|http/client"),
    ),
    ("signing", re.compile(r"standardwebhooks|hmac|hashlib|base64")),
    ("flask + werkzeug", re.compile(r"(^|/)(flask|werkzeug|flask_smorest)/")),
    ("marshmallow", re.compile(r"(^|/)marshmallow/")),
    ("gunicorn", re.compile(r"(^|/)gunicorn/")),
    ("relay (web and stores)", re.compile(r"^relay/")),
    ("relay engine + deliverer", re.compile(r"^workers/")),
    ("rq", re.compile(r"(^|/)rq/")),
    ("thread pool", re.compile(r"concurrent/futures|threading")),
]
_OURS = re.compile(r"^(relay|workers)/")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    found = []
    for part in stack.split(";"):
        match = _FRAME.match(part.strip())
        if match:
            found.append((match["func"], match["file"]))
        else:
            found.append((part.strip(), ""))

    return found


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the samples in a py-spy raw file."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    components: collections.Counter[str] = collections.Counter()
    relay: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        if not frames:
            continue
        func, file = frames[-1]
        own[f"{func} ({file})"] += count
        for name in {f"{f} ({p})" for f, p in frames}:
            inclusive[name] += count
        for name in {f"{f} ({p})" for f, p in frames if _OURS.search(p)}:
            relay[name] += count
        present = set()
        for _, path in frames:
            for component, pattern in _COMPONENTS:
                if pattern.search(path):
                    present.add(component)
                    break
        for component in present:
            components[component] += count

    def share(counter: collections.Counter[str], limit: int) -> list[list[Any]]:
        return [
            [name, round(100 * n / total, 1)] for name, n in counter.most_common(limit)
        ]

    return {
        "samples": total,
        "self_percent": share(own, top) if total else [],
        "inclusive_percent": share(inclusive, top + 10) if total else [],
        "components_percent": share(components, len(_COMPONENTS)) if total else [],
        "relay_inclusive_percent": share(relay, top) if total else [],
    }

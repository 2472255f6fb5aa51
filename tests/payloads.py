"""The spec's example payloads, read from the spec file kept as test data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SPEC = Path(__file__).parent / "data" / "groove-webhooks.md"


def spec_examples() -> dict[str, dict[str, Any]]:
    """Kind ("Ticket", "Customer", "Message", "Agent") -> the spec's example."""
    text = SPEC.read_text()
    found: dict[str, dict[str, Any]] = {}
    for kind, block in re.findall(r"### (\w+)\s+```json\n(.*?)```", text, re.S):
        found[kind] = json.loads(block)

    return found


EXAMPLES = spec_examples()
TICKET = EXAMPLES["Ticket"]

"""A checker of Slack's documented incoming-webhook message format.

Written from Slack's reference (messaging payloads, Block Kit blocks and
text objects), independently of relay's own limits, so that a test can ask
"would Slack take this?" without asking relay's code.
"""

from __future__ import annotations

import re
from typing import Any

#: Block types Slack documents for messages.
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
MAX_BLOCKS = 50
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELDS = 10
FIELD_CHARS = 2000
CONTEXT_ELEMENTS = 10
BUTTON_CHARS = 75
URL_CHARS = 3000

# In mrkdwn, "<" opens a control sequence and "&" an entity: anything else
# means text that was not escaped.
_CONTROL = re.compile(r"<([^<>]*)>")
_ENTITY = re.compile(r"&(amp|lt|gt);")


def problems(payload: Any) -> list[str]:
    """What in ``payload`` Slack's incoming-webhook format does not allow."""
    found: list[str] = []
    if not isinstance(payload, dict):
        return ["the message is not a JSON object"]
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        found.append("text must be a non-empty string")
    else:
        found += _escaped("text", text)
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list):
        return [*found, "blocks must be a list"]
    if len(blocks) > MAX_BLOCKS:
        found.append(f"{len(blocks)} blocks, more than {MAX_BLOCKS}")
    for index, block in enumerate(blocks):
        found += _block(f"blocks[{index}]", block)

    return found


def _block(where: str, block: Any) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return [f"{where} is not a documented block"]
    kind = block["type"]
    if kind == "header":
        return _text(f"{where}.text", block.get("text"), HEADER_CHARS, ("plain_text",))
    if kind == "section":
        return _section(where, block)
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            return [f"{where}.elements must hold 1 to {CONTEXT_ELEMENTS} elements"]
        found: list[str] = []
        for i, element in enumerate(elements):
            found += _text(f"{where}.elements[{i}]", element, SECTION_CHARS)
        return found
    if kind == "actions":
        return _actions(where, block)

    return []


def _section(where: str, block: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if "text" not in block and "fields" not in block:
        found.append(f"{where} has neither text nor fields")
    if "text" in block:
        found += _text(f"{where}.text", block["text"], SECTION_CHARS)
    if "fields" in block:
        fields = block["fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= FIELDS:
            found.append(f"{where}.fields must hold 1 to {FIELDS} text objects")
        else:
            for i, item in enumerate(fields):
                found += _text(f"{where}.fields[{i}]", item, FIELD_CHARS)

    return found


def _actions(where: str, block: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for i, element in enumerate(block.get("elements") or []):
        if element.get("type") == "button":
            found += _text(
                f"{where}.elements[{i}].text",
                element.get("text"),
                BUTTON_CHARS,
                ("plain_text",),
            )
            if len(str(element.get("url", ""))) > URL_CHARS:
                found.append(f"{where}.elements[{i}].url is over {URL_CHARS}")

    return found


def _text(
    where: str,
    obj: Any,
    limit: int,
    kinds: tuple[str, ...] = ("mrkdwn", "plain_text"),
) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where} must be a text object of type {' or '.join(kinds)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}.text must be a non-empty string"]
    if len(text) > limit:
        return [f"{where}.text has {len(text)} characters, over {limit}"]

    return _escaped(where, text)


def _escaped(where: str, text: str) -> list[str]:
    """Unescaped &, < or > (other than a link or an entity) in ``text``."""
    found: list[str] = []
    for control in _CONTROL.findall(text):
        url = control.split("|", 1)[0]
        if not re.match(r"https?://", url):
            found.append(f"{where} has <{control}>, not a link")
        elif len(url) > URL_CHARS:
            found.append(f"{where} links a URL over {URL_CHARS} characters")
    rest = _ENTITY.sub("", _CONTROL.sub("", text))
    for char in "&<>":
        if char in rest:
            found.append(f"{where} has an unescaped {char!r}")

    return found

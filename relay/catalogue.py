"""The 14 events of the helpdesk webhooks API and the payload each carries."""

from __future__ import annotations

from typing import Final

TICKET: Final = "Ticket"
CUSTOMER: Final = "Customer"
MESSAGE: Final = "Message"
AGENT: Final = "Agent"

#: Event name -> payload kind, in the order the spec lists them.
EVENTS: Final[dict[str, str]] = {
    "ticket_started": TICKET,
    "ticket_opened": TICKET,
    "ticket_closed": TICKET,
    "ticket_assigned": TICKET,
    "ticket_priority_changed": TICKET,
    "ticket_deleted": TICKET,
    "ticket_tagged": TICKET,
    "ticket_moved": TICKET,
    "customer_replied": MESSAGE,
    "customer_added": CUSTOMER,
    "agent_invited": AGENT,
    "agent_archived": AGENT,
    "note_added": MESSAGE,
    "agent_replied": MESSAGE,
}

#: The event names, for error messages and validation.
EVENT_NAMES: Final[tuple[str, ...]] = tuple(EVENTS)


def payload_kind(event: str) -> str | None:
    """The payload kind of ``event``, or None for an unknown name."""
    return EVENTS.get(event)

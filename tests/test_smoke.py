"""The spec's walk-through: create a webhook, post a Ticket, read it back."""

from payloads import TICKET


def test_create_webhook_then_post_ticket(client):
    """A webhook is created with 201 and a posted Ticket is accepted with 202."""
    created = client.post(
        "/v1/webhooks",
        json={"event": "ticket_started", "url": "https://www.mysite.com/mywebhook_url"},
    )
    assert created.status_code == 201
    assert created.get_json()["webhook"]["state"] == "active"

    accepted = client.post("/v1/events/ticket_started", json=TICKET)
    assert accepted.status_code == 202
    event_id = accepted.get_json()["event"]["id"]

    stored = client.get(f"/v1/events/{event_id}")
    assert stored.get_json()["event"]["payload"] == TICKET

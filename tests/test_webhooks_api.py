"""``/v1/webhooks``: create, show, list, page, delete, and the signing secret."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

#: The 14 event names of the spec, in its order.
EVENT_NAMES = [
    "ticket_started",
    "ticket_opened",
    "ticket_closed",
    "ticket_assigned",
    "ticket_priority_changed",
    "ticket_deleted",
    "ticket_tagged",
    "ticket_moved",
    "customer_replied",
    "customer_added",
    "agent_invited",
    "agent_archived",
    "note_added",
    "agent_replied",
]

HOOK = "https://www.mysite.com/mywebhook_url"


def create(client, event="ticket_started", url=HOOK, **extra):
    """POST a webhook and return the response."""
    return client.post("/v1/webhooks", json={"event": event, "url": url, **extra})


def created(client, event="ticket_started", url=HOOK, **extra):
    """POST a webhook that must be created and return it as shown."""
    response = create(client, event, url, **extra)
    assert response.status_code == 201, response.get_json()

    return response.get_json()["webhook"]


def assert_error(response, status, code):
    """``response`` is a JSON error of ``status`` with ``code``."""
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]

    return error


def walk(client, query, limit):
    """Every page of ``GET /v1/webhooks?<query>``, following ``next``."""
    pages, cursor = [], None
    for _ in range(100):
        params = {**query, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/v1/webhooks", query_string=params)
        assert response.status_code == 200
        body = response.get_json()
        pages.append([w["id"] for w in body["webhooks"]])
        cursor = body["next"]
        if cursor is None:
            return pages
    raise AssertionError("the pages never ended")


def walk_from(client, cursor):
    """The ids of every page after ``cursor``, three at a time."""
    found = []
    while cursor:
        body = client.get(
            "/v1/webhooks", query_string={"limit": 3, "cursor": cursor}
        ).get_json()
        found += [w["id"] for w in body["webhooks"]]
        cursor = body["next"]

    return found


def test_create_answers_201_with_the_webhook(client):
    """Creating a webhook answers 201 with exactly the documented fields."""
    response = create(client)

    assert response.status_code == 201
    body = response.get_json()
    assert list(body) == ["webhook"]
    webhook = body["webhook"]
    assert set(webhook) == {
        "id",
        "event",
        "url",
        "sink",
        "state",
        "secret",
        "description",
        "created_at",
    }
    assert webhook["id"].startswith("wh_")
    assert webhook["event"] == "ticket_started"
    assert webhook["url"] == HOOK
    assert webhook["state"] == "active"
    assert webhook["description"] is None
    assert datetime.fromisoformat(webhook["created_at"]).tzinfo is not None
    assert response.headers["Location"].endswith(f"/v1/webhooks/{webhook['id']}")


def test_create_gives_a_standard_webhooks_secret(client):
    """The secret is ``whsec_`` and the base64 of 32 bytes, new for each webhook."""
    first = created(client)["secret"]
    second = created(client, url=HOOK + "/2")["secret"]

    for secret in (first, second):
        assert secret.startswith("whsec_")
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        assert len(key) == 32
    assert first != second


@pytest.mark.parametrize(
    ("url", "sink"),
    [
        ("http://example.com/hook", "http"),
        ("https://example.com/hook?x=1", "http"),
        ("https://127.0.0.1:8443/in", "http"),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "slack"),
        ("https://hooks.slack.com.example.com/services/T000", "http"),
        ("mailto:ops@example.com", "email"),
        ("mailto:ops@example.com,oncall@example.com", "email"),
    ],
)
def test_the_url_implies_the_sink(client, url, sink):
    """http(s) URLs deliver over HTTP, Slack's host to Slack, mailto: by email."""
    webhook = created(client, url=url)

    assert webhook["sink"] == sink
    assert webhook["url"] == url


@pytest.mark.parametrize(
    ("url", "sink"),
    [
        ("https://chat.example.com/incoming/abc", "slack"),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "http"),
        ("mailto:ops@example.com", "email"),
        ("https://example.com/hook", "http"),
    ],
)
def test_an_explicit_sink_overrides_the_url(client, url, sink):
    """A ``sink`` field in the body decides the sink whatever the URL implies."""
    webhook = created(client, url=url, sink=sink)

    assert webhook["sink"] == sink
    shown = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
    assert shown["sink"] == sink


@pytest.mark.parametrize(
    ("url", "sink"),
    [
        ("mailto:ops@example.com", "http"),
        ("mailto:ops@example.com", "slack"),
        ("https://example.com/hook", "email"),
        ("https://example.com/hook", "sms"),
        ("https://example.com/hook", ""),
    ],
)
def test_a_sink_that_cannot_use_the_url_is_422(client, redis_client, url, sink):
    """A sink that is unknown or does not fit the URL is refused with 422."""
    response = create(client, url=url, sink=sink)

    assert_error(response, 422, "validation_failed")
    assert set(response.get_json()["error"]["details"]["fields"]) <= {"url", "sink"}
    assert redis_client.keys("relay:wh:*") == []


def test_a_description_is_kept_and_shown(client):
    """An optional description is returned on create and on every read."""
    webhook = created(client, description="orders team: ticket starts")

    assert webhook["description"] == "orders team: ticket starts"
    shown = client.get(f"/v1/webhooks/{webhook['id']}").get_json()["webhook"]
    assert shown["description"] == "orders team: ticket starts"
    listed = client.get("/v1/webhooks").get_json()["webhooks"]
    assert [w["description"] for w in listed] == ["orders team: ticket starts"]


@pytest.mark.parametrize("description", [7, ["x"], {}, "d" * 501])
def test_a_description_that_is_not_short_text_is_422(client, description):
    """A description that is not a string of at most 500 characters is 422."""
    response = create(client, description=description)

    error = assert_error(response, 422, "validation_failed")
    assert list(error["details"]["fields"]) == ["description"]


def test_the_same_event_and_url_twice_answers_the_existing_webhook(
    client, redis_client
):
    """A repeated (event, url) answers 200 with the first webhook and a notice."""
    first = created(client)

    again = create(client)

    assert again.status_code == 200
    body = again.get_json()
    assert body["webhook"]["id"] == first["id"]
    assert body["webhook"]["created_at"] == first["created_at"]
    assert "exists" in body["notice"]
    assert body["webhook"]["secret"] != first["secret"]
    assert first["secret"] not in again.get_data(as_text=True)
    assert len(redis_client.keys("relay:wh:*")) == 1
    listed = client.get("/v1/webhooks").get_json()["webhooks"]
    assert [w["id"] for w in listed] == [first["id"]]


def test_the_same_url_for_another_event_is_a_new_webhook(client):
    """One URL may subscribe to several events, one webhook each."""
    first = created(client, event="ticket_started")
    second = created(client, event="ticket_closed")

    assert first["id"] != second["id"]


def test_an_unknown_event_is_422_listing_the_14_names(client, redis_client):
    """An event name outside the catalogue is 422 naming all 14 events."""
    response = create(client, event="ticket_exploded")

    error = assert_error(response, 422, "validation_failed")
    assert error["details"]["events"] == EVENT_NAMES
    explained = " ".join(error["details"]["fields"]["event"])
    assert all(name in explained for name in EVENT_NAMES)
    assert redis_client.keys("relay:*") == []


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://example.com/hook",
        "/relative/hook",
        "example.com/hook",
        "www.example.com",
        "http://",
        "https:///no-host",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://exa mple.com/",
        "https://example.com/\nhook",
        "http://[::1/hook",
        "http://example.com:99999/",
        "mailto:",
        "mailto:not-an-address",
        "mailto:a@b@example.com",
    ],
)
def test_a_url_that_is_not_absolute_http_or_mailto_is_422(client, redis_client, url):
    """A URL that is not an absolute http(s) or mailto: URL is refused with 422."""
    response = create(client, url=url)

    error = assert_error(response, 422, "validation_failed")
    assert list(error["details"]["fields"]) == ["url"]
    assert redis_client.keys("relay:*") == []


@pytest.mark.parametrize("url", [1, None, ["https://example.com/"], {}])
def test_a_url_that_is_not_a_string_is_422(client, url):
    """A URL given as another JSON type is refused with 422."""
    response = create(client, url=url)

    error = assert_error(response, 422, "validation_failed")
    assert "url" in error["details"]["fields"]


def test_a_url_of_2048_characters_is_accepted(client):
    """A URL exactly 2,048 characters long is within the limit."""
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))

    webhook = created(client, url=url)

    assert webhook["url"] == url


def test_a_url_over_2048_characters_is_422(client, redis_client):
    """A URL longer than 2,048 characters is refused with 422."""
    url = "https://example.com/" + "a" * (2049 - len("https://example.com/"))

    response = create(client, url=url)

    error = assert_error(response, 422, "validation_failed")
    assert list(error["details"]["fields"]) == ["url"]
    assert redis_client.keys("relay:*") == []


@pytest.mark.parametrize(
    "body", [b"[]", b'["ticket_started", "https://x.example/"]', b'"x"', b"1", b"null"]
)
def test_a_body_that_is_not_an_object_is_422(client, redis_client, body):
    """A JSON body that is not an object cannot be a webhook: 422."""
    response = client.post("/v1/webhooks", data=body, content_type="application/json")

    assert_error(response, 422, "validation_failed")
    assert redis_client.keys("relay:*") == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"event", "url"}),
        ({"event": "ticket_started"}, {"url"}),
        ({"url": HOOK}, {"event"}),
        ({"event": 3, "url": HOOK}, {"event"}),
        ({"event": "ticket_started", "url": HOOK, "colour": "red"}, {"colour"}),
    ],
)
def test_missing_or_unknown_fields_are_422_field_by_field(client, body, fields):
    """Each missing, mistyped or unknown field is named in ``details.fields``."""
    response = client.post("/v1/webhooks", json=body)

    error = assert_error(response, 422, "validation_failed")
    assert set(error["details"]["fields"]) == fields


def test_delete_answers_204_then_the_webhook_is_gone(client, redis_client):
    """DELETE answers 204 with no body; the webhook then answers 404."""
    webhook = created(client)
    path = f"/v1/webhooks/{webhook['id']}"

    deleted = client.delete(path)

    assert deleted.status_code == 204
    assert deleted.get_data() == b""
    assert_error(client.get(path), 404, "not_found")
    assert_error(client.delete(path), 404, "not_found")
    assert client.get("/v1/webhooks").get_json()["webhooks"] == []
    assert redis_client.keys("relay:wh:*") == []


def test_a_deleted_webhook_can_be_created_again(client):
    """After a delete the same (event, url) creates a new webhook with 201."""
    first = created(client)
    client.delete(f"/v1/webhooks/{first['id']}")

    second = created(client)

    assert second["id"] != first["id"]


@pytest.mark.parametrize("method", ["get", "delete"])
@pytest.mark.parametrize(
    "suffix", ["wh_01M8Y5QMC187P28WR1NZB4C6EW", "nope", "evt_1", "wh_%00"]
)
def test_an_unknown_id_is_404(client, method, suffix):
    """GET and DELETE of an id that names no webhook answer a JSON 404."""
    created(client)

    response = getattr(client, method)(f"/v1/webhooks/{suffix}")

    assert_error(response, 404, "not_found")


def test_get_one_shows_the_webhook(client):
    """GET of a webhook's id shows the same webhook the create answered."""
    webhook = created(client, description="d")

    response = client.get(f"/v1/webhooks/{webhook['id']}")

    assert response.status_code == 200
    shown = response.get_json()["webhook"]
    assert {k: v for k, v in shown.items() if k not in ("secret", "breaker")} == {
        k: v for k, v in webhook.items() if k != "secret"
    }
    assert shown["breaker"]["state"] == "closed"


def test_get_one_and_the_list_never_show_the_secret_in_full(client):
    """Reads show at most a short prefix of the secret, never the key itself."""
    webhooks = [created(client, url=f"{HOOK}/{n}") for n in range(3)]

    one = client.get(f"/v1/webhooks/{webhooks[0]['id']}")
    listed = client.get("/v1/webhooks")

    shown = [one.get_json()["webhook"]] + listed.get_json()["webhooks"]
    assert len(shown) == 4
    texts = one.get_data(as_text=True) + listed.get_data(as_text=True)
    for webhook in webhooks:
        full = webhook["secret"]
        assert full not in texts
        assert full.removeprefix("whsec_") not in texts
    for item in shown:
        assert item["secret"].startswith("whsec_")
        assert len(item["secret"]) < len(full) // 2


def test_the_secret_route_gives_the_secret_in_full(client):
    """``GET /v1/webhooks/<id>/secret`` answers the whole signing secret."""
    webhook = created(client)

    response = client.get(f"/v1/webhooks/{webhook['id']}/secret")

    assert response.status_code == 200
    assert response.get_json() == {"secret": webhook["secret"]}


def test_the_secret_of_an_unknown_id_is_404(client):
    """The secret route of an id that names no webhook answers 404."""
    assert_error(client.get("/v1/webhooks/wh_nope/secret"), 404, "not_found")


@pytest.fixture
def several(client, stores):
    """Nine webhooks over three events, two of them disabled; id -> webhook."""
    made = {}
    for n in range(9):
        event = ("ticket_started", "ticket_closed", "agent_invited")[n % 3]
        webhook = created(client, event=event, url=f"{HOOK}/{n}")
        made[webhook["id"]] = webhook
    ids = list(made)
    for webhook_id in (ids[2], ids[7]):
        made[webhook_id] = stores.webhooks.disable(webhook_id, "gone").public()

    return made


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"event": "ticket_closed"},
        {"state": "active"},
        {"state": "disabled"},
        {"event": "ticket_closed", "state": "active"},
        {"event": "agent_invited", "state": "disabled"},
        {"event": "ticket_moved"},
    ],
)
def test_the_list_filters_by_event_and_state(client, several, query):
    """``?event=`` and ``?state=`` list exactly the webhooks that match."""
    expected = [
        webhook_id
        for webhook_id, webhook in sorted(several.items())
        if all(webhook[k] == v for k, v in query.items())
    ]

    response = client.get("/v1/webhooks", query_string=query)

    assert response.status_code == 200
    body = response.get_json()
    assert [w["id"] for w in body["webhooks"]] == expected
    assert body["next"] is None


@pytest.mark.parametrize("limit", [1, 2, 4, 9, 10])
@pytest.mark.parametrize(
    "query",
    [{}, {"event": "ticket_started"}, {"state": "active"}, {"state": "disabled"}],
)
def test_paging_visits_every_webhook_once(client, several, query, limit):
    """Following ``next`` with any ``limit`` lists each match once, oldest first."""
    expected = sorted(
        webhook_id
        for webhook_id, webhook in several.items()
        if all(webhook[k] == v for k, v in query.items())
    )

    pages = walk(client, query, limit)

    seen = [webhook_id for page in pages for webhook_id in page]
    assert seen == expected
    assert all(len(page) <= limit for page in pages)
    assert all(len(page) == limit for page in pages[:-1])


def test_paging_with_a_filter_on_event_and_state_loses_nothing(client, several):
    """Paging ``?event=&state=`` one at a time lists each match exactly once."""
    query = {"event": "ticket_started", "state": "active"}
    expected = sorted(
        webhook_id
        for webhook_id, webhook in several.items()
        if webhook["event"] == "ticket_started" and webhook["state"] == "active"
    )

    seen = [webhook_id for page in walk(client, query, 1) for webhook_id in page]

    assert seen == expected


def test_paging_survives_a_delete_between_pages(client, several):
    """Deleting a listed webhook between pages neither repeats nor skips others."""
    first = client.get("/v1/webhooks", query_string={"limit": 3}).get_json()
    client.delete(f"/v1/webhooks/{first['webhooks'][-1]['id']}")

    rest = walk_from(client, first["next"])

    seen = [w["id"] for w in first["webhooks"]] + rest
    assert seen == sorted(several)


def test_a_disabled_webhook_shows_why(client, several):
    """A disabled webhook is listed with its state and reason."""
    body = client.get("/v1/webhooks", query_string={"state": "disabled"}).get_json()

    assert [w["state"] for w in body["webhooks"]] == ["disabled", "disabled"]
    assert [w["disabled_reason"] for w in body["webhooks"]] == ["gone", "gone"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"state": "paused"}, "state"),
    ],
)
def test_a_bad_list_query_is_422(client, query, field):
    """A limit outside 1..200 or an unknown state is refused field by field."""
    response = client.get("/v1/webhooks", query_string=query)

    error = assert_error(response, 422, "validation_failed")
    assert list(error["details"]["fields"]) == [field]


def test_an_empty_list_has_no_next_page(client):
    """With no webhooks the list is empty and ``next`` is null."""
    response = client.get("/v1/webhooks")

    assert response.status_code == 200
    assert response.get_json() == {"webhooks": [], "next": None}

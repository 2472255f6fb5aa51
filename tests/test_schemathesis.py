"""API fuzzing driven by the app's own ``/openapi.json`` (schemathesis).

Every operation gets generated valid and invalid requests: none answers
500, every error is the documented JSON shape, and a rejected request
leaves Redis as it was.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from relay.app import create_app
from relay.config import from_env

pytestmark = pytest.mark.slow


def _operations(app) -> dict[str, object]:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[operation.label] = operation
    return found


# The document does not depend on Redis: list the operations once.
LABELS = sorted(_operations(create_app(from_env({}))))


def test_every_route_is_documented():
    """The OpenAPI document has operations for intake, webhooks and deliveries."""
    assert "POST /v1/events/{event}" in LABELS
    assert "POST /v1/webhooks" in LABELS
    assert "GET /v1/dead-letters" in LABELS


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", LABELS)
def test_no_operation_fails_or_leaks_state(app, redis_client, label, mode):
    """Generated requests never get a 500; rejected ones change nothing."""
    operation = _operations(app)[label]

    @given(data=st.data())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def run(data):
        case = data.draw(operation.as_strategy(mode))
        before = set(redis_client.keys("*"))
        response = case.call()
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"}, body
            assert {"code", "message"} <= set(body["error"])
            assert set(redis_client.keys("*")) == before

    run()

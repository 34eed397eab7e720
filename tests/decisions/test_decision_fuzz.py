"""Whatever a client sends to the decision endpoint, it never gets a 500 or a half-logged row."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from decisions.models import Decision
from tests.decisions.test_decision_api import customer

pytestmark = pytest.mark.django_db

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
FEATURES = ["income", "utilisation", "months_on_book", "delinquencies", "region"]


@st.composite
def bodies(draw):
    features = dict(customer(draw(st.integers(0, 49))))
    for name in draw(st.sets(st.sampled_from(FEATURES), max_size=3)):
        choice = draw(st.sampled_from(["drop", "replace"]))
        if choice == "drop":
            features.pop(name)
        else:
            features[name] = draw(json_values)
    body = {
        "deployment": draw(st.sampled_from(["cross-sell"] * 6 + ["nope", ""])),
        "customer_id": draw(st.text(min_size=1, max_size=30) | st.text(max_size=0)),
        "features": features if draw(st.integers(0, 9)) else draw(json_values),
    }
    if not draw(st.integers(0, 4)):
        body[draw(st.text(max_size=8))] = draw(json_values)
    return body


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies())
def test_no_body_gives_a_500(cross_sell_deployment, api_client_user, body):
    client = APIClient()
    client.force_authenticate(api_client_user)
    before = Decision.objects.count()
    response = client.post("/api/v1/decisions/", body, format="json")
    assert response.status_code in {200, 201, 400, 404, 409, 422}, response.content
    payload = response.json()
    if response.status_code >= 400:
        assert set(payload["error"]) == {"code", "message", "details"}
        assert Decision.objects.count() == before  # a refusal logs nothing
    else:
        assert Decision.objects.count() == before + 1

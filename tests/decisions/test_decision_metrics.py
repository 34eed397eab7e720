"""The decision API's Prometheus counters (GET /metrics; see tests/arbiter/test_metrics.py)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from decisions.decision_log import decision_blocks_seal
from tests.arbiter.test_metrics import TOKEN, sample, scrape
from tests.decisions.test_decision_api import customer, decide


@pytest.mark.django_db
def test_metrics_count_decisions_and_errors_for_a_scraper_with_the_token(
    settings, cross_sell_deployment, api_client_user
):
    settings.METRICS_TOKEN = TOKEN
    web = Client()
    before = scrape(web)
    api = APIClient()
    api.force_authenticate(api_client_user)
    for i in range(3):
        assert decide(api, customer(i), customer_id=f"m-{i}").status_code == 201
    assert decide(api, customer(0), customer_id="m-0", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201
    assert decide(api, customer(0), customer_id="m-0", HTTP_IDEMPOTENCY_KEY="k1").status_code == 200
    bad = customer(1) | {"income": "lots"}
    assert decide(api, bad, customer_id="m-9").status_code == 400
    after = scrape(web)

    def more(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    created = sum(
        more("arbiter_decisions_total", deployment="cross-sell", arm=arm, result="created")
        for arm in ("champion", "challenger")
    )
    assert created == 4
    repeated = sum(
        more("arbiter_decisions_total", deployment="cross-sell", arm=arm, result="repeated")
        for arm in ("champion", "challenger")
    )
    assert repeated == 1
    assert more("arbiter_decision_seconds_count", deployment="cross-sell") == 5
    assert more("arbiter_api_errors_total", status="400", code="invalid") == 1
    assert sample(after, "arbiter_optimisation_runs", status="queued") == 0
    assert "# TYPE arbiter_decision_seconds histogram" in after
    # Four decisions logged, none sealed yet (beat has not run); then sealed.
    assert sample(after, "arbiter_decision_log_unsealed") == 4
    assert 0 < sample(after, "arbiter_decision_log_unsealed_oldest_seconds") < 60
    decision_blocks_seal(grace_seconds=0)
    sealed = scrape(web)
    assert sample(sealed, "arbiter_decision_log_unsealed") == 0
    assert "arbiter_decision_log_unsealed_oldest_seconds 0.0" in sealed

"""Real-time decisions over REST: logged before the answer, explained, idempotent, replayable."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from decisions.decision_log import decision_blocks_seal, decision_log_verify
from decisions.demo_portfolio import synthetic_customers
from decisions.models import Decision

pytestmark = pytest.mark.django_db

URL = "/api/v1/decisions/"


@pytest.fixture
def client(api_client_user):
    client = APIClient()
    client.force_authenticate(api_client_user)
    return client


def customer(i: int = 0) -> dict:
    row = synthetic_customers(50, seed=5).iloc[i]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def decide(client, features, *, customer_id="c-1", **headers):
    return client.post(
        URL,
        {"deployment": "cross-sell", "customer_id": customer_id, "features": features},
        format="json",
        **headers,
    )


def test_deployment_tells_clients_the_schema_and_actions(cross_sell_deployment, client):
    body = client.get("/api/v1/deployments/cross-sell/").json()
    assert [f["name"] for f in body["features"]] == [
        "income",
        "utilisation",
        "months_on_book",
        "delinquencies",
        "region",
    ]
    region = body["features"][-1]
    assert region["type"] == "categorical" and "north" in region["categories"]
    assert [a["key"] for a in body["actions"]] == ["none", "card", "loan"]
    assert body["actions"][1]["attributes"] == {"limit": 3000.0, "apr": 0.24, "cost": 4.0}


def test_a_decision_is_logged_with_reasons_and_versions(cross_sell_deployment, client):
    response = decide(client, customer(0))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["action"]["key"] in {"none", "card", "loan"}
    assert 1 <= len(body["reasons"]) <= 4
    for reason in body["reasons"]:
        assert set(reason) == {"code", "text", "feature", "value", "contribution"}
        assert reason["feature"] in {
            "income",
            "utilisation",
            "months_on_book",
            "delinquencies",
            "region",
        }
    assert body["versions"]["deployment"]["name"] == "cross-sell"
    assert body["versions"]["models"][0]["key"] == "take-up v1"
    assert body["arm"] == "champion"
    assert body["explanation"]["summary"]
    logged = Decision.objects.get()
    assert str(logged.decision_id) == body["id"]
    assert logged.features == customer(0)
    assert logged.prices == {"marketing_budget": 2.5, "new_exposure": 0.0}


@pytest.mark.parametrize("header", ["HTTP_IDEMPOTENCY_KEY", "HTTP_X_REQUEST_ID"])
@pytest.mark.parametrize("value", ["a\x00b", "tab\there", "caf\u00c3\u00a9"])
def test_a_header_the_log_keeps_must_be_printable_ascii(
    cross_sell_deployment, client, header, value
):
    answer = decide(client, customer(1), **{header: value})
    assert answer.status_code == 400
    name = {"HTTP_IDEMPOTENCY_KEY": "Idempotency-Key", "HTTP_X_REQUEST_ID": "X-Request-ID"}[header]
    assert answer.json()["error"]["details"] == {name: ["printable ASCII characters only"]}
    assert not Decision.objects.exists()
    assert decide(client, customer(1), **{header: "order-17 / retry 2"}).status_code == 201


@pytest.mark.parametrize(
    ("header", "name", "most"),
    [("HTTP_IDEMPOTENCY_KEY", "Idempotency-Key", 200), ("HTTP_X_REQUEST_ID", "X-Request-ID", 100)],
)
def test_a_header_the_log_keeps_is_refused_when_too_long_not_cut(
    cross_sell_deployment, client, header, name, most
):
    # The request id used to be cut to 100 characters: the log then held an id that
    # matched nothing the client had.
    answer = decide(client, customer(1), **{header: "r" * (most + 1)})
    assert answer.status_code == 400
    assert answer.json()["error"]["details"] == {name: [f"at most {most} characters"]}
    assert not Decision.objects.exists()
    kept = decide(client, customer(1), **{header: "r" * most})
    assert kept.status_code == 201
    if name == "X-Request-ID":
        assert Decision.objects.get().request_id == "r" * most


def test_idempotency_key_returns_the_same_decision(cross_sell_deployment, client):
    first = decide(client, customer(1), HTTP_IDEMPOTENCY_KEY="k-1")
    again = decide(client, customer(1), HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Decision.objects.count() == 1
    reused = decide(client, customer(2), HTTP_IDEMPOTENCY_KEY="k-1")
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    # The channel is part of the request too: the logged decision names the first one.
    other_channel = client.post(
        URL,
        {
            "deployment": "cross-sell",
            "customer_id": "c-1",
            "features": customer(1),
            "channel": "web",
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert other_channel.status_code == 409
    assert Decision.objects.count() == 1


@pytest.mark.parametrize(
    "change,field",
    [
        ({"income": None}, "features.income"),
        ({"income": "lots"}, "features.income"),
        ({"income": -5}, "features.income"),
        ({"region": "mars"}, "features.region"),
        ({"shoe_size": 42}, "features.shoe_size"),
        ({"delinquencies": True}, "features.delinquencies"),
    ],
)
def test_bad_features_get_field_errors_and_log_nothing(
    cross_sell_deployment, client, change, field
):
    features = {**customer(0), **change}
    if change.get("income", 0) is None:
        del features["income"]
    response = decide(client, features)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]
    assert not Decision.objects.exists()


def test_nan_unknown_deployment_and_huge_bodies_are_refused(cross_sell_deployment, client):
    body = json.dumps({"deployment": "cross-sell", "customer_id": "c", "features": customer(0)})
    nan = client.generic(
        "POST",
        URL,
        body.replace('"income": ', '"income": NaN, "x": '),
        content_type="application/json",
    )
    assert nan.status_code == 400
    unknown = client.post(
        URL, {"deployment": "nope", "customer_id": "c", "features": {}}, format="json"
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "deployment_not_found"
    huge = decide(client, {**customer(0), "padding": "x" * 70_000})
    assert huge.status_code == 400
    assert huge.json()["error"]["code"] == "body_too_large"
    extra = client.post(
        URL,
        {"deployment": "cross-sell", "customer_id": "c", "features": customer(0), "colour": 1},
        format="json",
    )
    assert extra.status_code == 400 and "colour" in extra.json()["error"]["details"]
    assert not Decision.objects.exists()


def test_deep_nesting_huge_integers_and_odd_lengths_are_400s(cross_sell_deployment, client):
    """Bodies Python's own decoder or float conversion chokes on are malformed input."""
    body = json.dumps({"deployment": "cross-sell", "customer_id": "c", "features": customer(0)})
    for depth in (101, 30_000):  # beyond the limit, and beyond the decoder's recursion
        deep = client.generic(
            "POST",
            URL,
            body.replace('"income": ', '"x": ' + "[" * depth + "]" * depth + ', "income": '),
            content_type="application/json",
        )
        assert deep.status_code == 400, deep.content
        assert deep.json()["error"]["code"] == "parse_error"
        assert "nested more than 100 levels" in deep.json()["error"]["message"]
    huge = client.generic(
        "POST",
        URL,
        body.replace('"income": ', '"income": 1' + "0" * 400 + ', "x": '),
        content_type="application/json",
    )
    assert huge.status_code == 400, huge.content
    assert huge.json()["error"]["details"]["features.income"] == ["must be a finite number"]
    odd = client.generic("POST", URL, body, content_type="application/json", CONTENT_LENGTH="abc")
    # Django would read a length that is not a number as none (an empty body, whose
    # fields are missing); the API says what is wrong instead. Never a 500.
    assert odd.status_code == 400, odd.content
    assert odd.json()["error"]["details"] == {"Content-Length": ["must be a whole number of bytes"]}
    assert not Decision.objects.exists()


def test_makers_and_anonymous_cannot_request_decisions(cross_sell_deployment, maker):
    assert APIClient().post(URL, {}, format="json").status_code == 401
    as_maker = APIClient()
    as_maker.force_authenticate(maker)
    assert decide(as_maker, customer(0)).status_code == 403


def test_replay_matches_and_detects_a_changed_input(cross_sell_deployment, client, auditor):
    decision_id = decide(client, customer(3)).json()["id"]
    auditor_client = APIClient()
    auditor_client.force_authenticate(auditor)
    replay = auditor_client.post(f"{URL}{decision_id}/replay/").json()
    assert replay == {"matches": True, "differences": []}
    out = io.StringIO()
    call_command("replay_decision", decision_id, "--user", auditor.username, stdout=out)
    assert "replays identically" in out.getvalue()
    assert client.post(f"{URL}{decision_id}/replay/").status_code == 403


def test_listing_is_cursor_paginated_and_filtered(cross_sell_deployment, client, auditor):
    for i in range(3):
        decide(client, customer(i), customer_id=f"c-{i}")
    auditor_client = APIClient()
    auditor_client.force_authenticate(auditor)
    page = auditor_client.get(URL, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert [d["customer_id"] for d in page["results"]] == ["c-2", "c-1"]
    only = auditor_client.get(URL, {"customer_id": "c-0"}).json()
    assert [d["customer_id"] for d in only["results"]] == ["c-0"]
    detail = auditor_client.get(f"{URL}{only['results'][0]['id']}/").json()
    assert detail["features"] == customer(0) and len(detail["content_hash"]) == 64


def test_sealed_log_verifies(cross_sell_deployment, client):
    for i in range(5):
        decide(client, customer(i), customer_id=f"c-{i}")
    blocks = decision_blocks_seal(max_rows=2, grace_seconds=0)
    assert [b.row_count for b in blocks] == [2, 2, 1]
    report = decision_log_verify()
    assert report.ok and report.rows == 5 and report.blocks == 3


@pytest.mark.django_db(transaction=True)  # autocommit, as in production: no test transaction
def test_when_the_log_cannot_be_written_the_client_gets_503_and_no_decision(
    cross_sell_deployment, client
):
    # The database itself refuses the INSERT (a trigger standing in for a full disk).
    table = Decision._meta.db_table
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute(
                "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER test_refuse BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER test_refuse BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
    try:
        response = decide(client, customer(0))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "decision_log_unavailable"
        assert not Decision.objects.exists()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER test_refuse{' ON ' + table if postgres else ''}")
            if postgres:
                cursor.execute("DROP FUNCTION test_refuse()")


def test_a_retired_deployment_answers_404(cross_sell_deployment, client, checker):
    from governance import services

    services.version_retire(actor=checker, version=cross_sell_deployment, comment="Closed.")
    response = decide(client, customer(0))
    assert response.status_code == 404
    assert "no active version" in response.json()["error"]["message"]
    assert not Decision.objects.exists()


def test_a_new_active_version_decides_from_the_next_request(
    cross_sell_deployment, client, maker, checker
):
    # The process remembers the active version between requests (on PostgreSQL the log's
    # INSERT re-checks it instead of a query of its own): an activation must still take
    # effect at once, and no decision may be logged against the version it replaced.
    from governance import services
    from tests.decisions.conftest import go_live

    before = decide(client, customer(0), customer_id="before").json()
    assert before["versions"]["deployment"]["version"] == 1
    content = {**cross_sell_deployment.content, "prices": {}}
    second = services.version_create(
        actor=maker, kind="deployment", name="cross-sell", content=content
    )
    go_live(second, maker=maker, checker=checker)
    after = decide(client, customer(0), customer_id="after")
    assert after.status_code == 201, after.content
    assert after.json()["versions"]["deployment"]["version"] == 2
    logged = Decision.objects.get(customer_id="after")
    assert logged.deployment_version_id == second.pk
    assert logged.prices == {"marketing_budget": 0.0, "new_exposure": 0.0}
    assert Decision.objects.count() == 2


def test_a_deployment_retired_after_deciding_answers_404_and_logs_nothing(
    cross_sell_deployment, client, checker
):
    from governance import services

    assert decide(client, customer(0), customer_id="before").status_code == 201
    services.version_retire(actor=checker, version=cross_sell_deployment, comment="Closed.")
    response = decide(client, customer(1), customer_id="after")
    assert response.status_code == 404
    assert "no active version" in response.json()["error"]["message"]
    assert list(Decision.objects.values_list("customer_id", flat=True)) == ["before"]


def test_the_log_writes_only_while_the_version_is_active(cross_sell_deployment, client, checker):
    from decisions.decision_log import DeploymentChanged, decision_write
    from governance import services

    decide(client, customer(0), customer_id="first")
    row = Decision.objects.get()
    copy = Decision(
        **{
            f.attname: getattr(row, f.attname)
            for f in Decision._meta.concrete_fields
            if not f.primary_key
        }
    )
    copy.decision_id, copy.request_id, copy.customer_id = uuid.uuid4(), "r-2", "second"
    services.version_retire(actor=checker, version=cross_sell_deployment, comment="Closed.")
    with pytest.raises(DeploymentChanged):
        decision_write(copy, while_active=True)
    assert Decision.objects.count() == 1
    decision_write(copy)  # unguarded, as optimisation runs and restores write
    assert Decision.objects.count() == 2


def test_challenger_arms_are_assigned_by_customer_hash_and_recorded(
    cross_sell_deployment, client, maker, checker
):
    from governance import services
    from tests.decisions.conftest import go_live

    content = dict(cross_sell_deployment.content)
    content["challengers"] = [
        {
            "arm": "no-prices",
            "share": 0.5,
            "strategy": content["strategy"],
            "constraint_set": content["constraint_set"],
            "prices": {},
        }
    ]
    second = services.version_create(
        actor=maker, kind="deployment", name="cross-sell", content=content
    )
    go_live(second, maker=maker, checker=checker)
    arms = {}
    for i in range(40):
        body = decide(client, customer(i % 50), customer_id=f"arm-{i}").json()
        arms[f"arm-{i}"] = body["arm"]
        assert body["versions"]["deployment"]["version"] == 2
    assert set(arms.values()) == {"champion", "no-prices"}
    again = decide(client, customer(3), customer_id="arm-3").json()
    assert again["arm"] == arms["arm-3"]  # the same customer always meets the same arm
    logged = Decision.objects.filter(arm="no-prices").first()
    assert logged.prices == {"marketing_budget": 0.0, "new_exposure": 0.0}


def test_every_arm_s_features_are_accepted_and_each_arm_logs_what_it_used(
    cross_sell_deployment, client, maker, checker
):
    from decisions.demo_portfolio import cross_sell_strategy
    from governance import services
    from tests.decisions.conftest import go_live

    strategy = cross_sell_strategy(model_name="take-up", model_version=1)
    strategy["extra_features"] = [{"name": "tenure_years", "type": "numeric", "min": 0}]
    strategy["eligibility"].append({"name": "settled", "rule": "tenure_years >= 1 or limit == 0"})
    challenger = services.version_create(
        actor=maker, kind="strategy", name="cross-sell", content=strategy
    )
    # Approved, not activated: activating would retire the champion's strategy version.
    services.version_submit(actor=maker, version=challenger)
    services.version_approve(actor=checker, version=challenger, comment="Reviewed.")
    content = dict(cross_sell_deployment.content)
    content["challengers"] = [
        {
            "arm": "tenure",
            "share": 0.5,
            "strategy": {"name": "cross-sell", "version": challenger.number},
            "constraint_set": content["constraint_set"],
        }
    ]
    deployment = services.version_create(
        actor=maker, kind="deployment", name="cross-sell", content=content
    )
    go_live(deployment, maker=maker, checker=checker)

    schema = client.get("/api/v1/deployments/cross-sell/").json()
    assert "tenure_years" in [f["name"] for f in schema["features"]]
    arms = set()
    for i in range(30):
        features = {**customer(i), "tenure_years": 3}
        body = decide(client, features, customer_id=f"t-{i}", HTTP_IDEMPOTENCY_KEY=f"k-{i}")
        assert body.status_code == 201, body.content
        logged = Decision.objects.get(decision_id=body.json()["id"])
        arms.add(logged.arm)
        assert ("tenure_years" in logged.features) == (logged.arm == "tenure")
        again = decide(client, features, customer_id=f"t-{i}", HTTP_IDEMPOTENCY_KEY=f"k-{i}")
        assert again.status_code == 200
    assert arms == {"champion", "tenure"}
    bad = decide(client, {**customer(0), "tenure_years": -4}, customer_id="t-bad")
    assert bad.status_code == 400
    assert "features.tenure_years" in bad.json()["error"]["details"]


# --- the cost of answering: same answers, less work ---------------------------------------


def test_an_api_key_decision_costs_two_or_three_queries(cross_sell_deployment, api_client_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.services import api_key_create

    _, key = api_key_create(actor=None, user=api_client_user)
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert decide(keyed, customer(0), customer_id="warm").status_code == 201  # stamps last use
    with CaptureQueriesContext(connection) as queries:
        response = decide(keyed, customer(1), customer_id="counted")
    assert response.status_code == 201, response.content
    # The key with its user and roles, and the log row. On PostgreSQL the row's INSERT
    # checks that the deployment version this process remembers is still the active one;
    # elsewhere that is a query of its own.
    expected = 2 if connection.vendor == "postgresql" else 3
    assert len(queries.captured_queries) == expected, [q["sql"][:80] for q in queries]


def test_the_answer_is_what_the_serializers_make(cross_sell_deployment, client, auditor):
    from rest_framework.renderers import JSONRenderer

    from decisions.serializers import DecisionDetailSerializer, DecisionSerializer

    def rendered(serializer):  # as JSON: PostgreSQL hands JSON objects back with keys reordered
        return json.loads(JSONRenderer().render(serializer.data))

    response = decide(client, customer(4), HTTP_IDEMPOTENCY_KEY="same")
    logged = Decision.objects.get()
    assert response.json() == rendered(DecisionSerializer(logged))
    again = decide(client, customer(4), HTTP_IDEMPOTENCY_KEY="same")
    assert again.status_code == 200 and again.json() == response.json()
    reader = APIClient()
    reader.force_authenticate(auditor)
    detail = reader.get(f"{URL}{logged.decision_id}/")
    assert detail.json() == rendered(DecisionDetailSerializer(logged))


def test_the_decision_endpoint_is_still_documented(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    post = schema["paths"]["/api/v1/decisions/"]["post"]
    assert post["operationId"] == "decision_create"
    assert {p["name"] for p in post["parameters"]} >= {"Idempotency-Key", "X-Request-ID"}
    assert set(post["responses"]) >= {"200", "201"}
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/DecisionRequestRequest")
    answer = schema["components"]["schemas"]["Decision"]["properties"]
    assert {"id", "action", "reasons", "explanation", "versions", "arm"} <= set(answer)


@pytest.mark.parametrize("rows", [1, 21, 64, 65, 300, 5000])
def test_tree_models_score_as_scikit_learn_does(rows):
    """The compiled walk of HistGradientBoosting trees gives scikit-learn's probabilities
    and values bit for bit, missing values and values on a threshold included."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from decisions.engine.fast_transform import compile_fast_transform

    rng = np.random.default_rng(rows)
    n = 200 + max(400, rows)
    frame = pd.DataFrame(
        {
            "income": rng.normal(40_000, 12_000, n),
            "utilisation": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            "region": rng.choice(["north", "south", "east"], n).astype(object),
        }
    )
    target = (frame["utilisation"].fillna(0.5) + rng.normal(0, 0.3, n) > 0.6).astype(int)
    prep = ColumnTransformer(
        [
            ("num", "passthrough", ["income", "utilisation"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    )
    for final, outputs in (
        (HistGradientBoostingClassifier(max_iter=60, random_state=0), "predict_proba"),
        (HistGradientBoostingRegressor(max_iter=60, random_state=0), "predict"),
    ):
        model = Pipeline([("prep", prep), ("model", final)]).fit(frame, target)
        fast = compile_fast_transform(model, list(frame.columns), frame.iloc[:200])
        assert fast is not None and fast.trees is not None
        sample = frame.iloc[200 : 200 + rows].reset_index(drop=True)
        matrix = fast.transform({c: sample[c].to_numpy() for c in frame.columns}, rows)
        # Values exactly on split thresholds go left, as in scikit-learn.
        thresholds = fast.trees.threshold[fast.trees.feature == 0]
        matrix[: min(rows, len(thresholds)), 0] = thresholds[: min(rows, len(thresholds))]
        expected = getattr(model[-1], outputs)(matrix)
        assert np.array_equal(getattr(fast.trees, outputs)(matrix), expected)

    scaled = Pipeline(
        [
            ("prep", ColumnTransformer([("num", StandardScaler(), ["income"])])),
            ("model", HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])),
        ]
    )
    scaled.fit(frame.assign(income=(frame["income"] // 10_000).clip(0, 8)), target)
    categorical = compile_fast_transform(scaled, ["income"], frame.iloc[:50])
    assert categorical is None or categorical.trees is None

"""KPIs of a small hand-made cohort, checked against figures worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from decisions.models import OptimisationRun
from governance.models import Version
from monitoring.intervals import newcombe_difference, wilson_interval
from monitoring.models import Outcome, OutcomeBatch
from monitoring.selectors import kpi_report
from monitoring.services import outcome_batch_record

pytestmark = pytest.mark.django_db

MON = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
URL = "/api/v1/monitoring/kpis/"


@pytest.fixture
def cohort(make_decision, api_client_user, deployment):
    """Six decisions over two weeks and what happened to them.

    | id | day   | arm        | action | value | ms  | customer | outcomes                       |
    | d1 | Mon 2 | champion   | card   | 20    | 10  | c1       | accepted, paid 100             |
    | d2 | Mon 2 | champion   | card   | 20    | 20  | c1       | declined, complained           |
    | d3 | Mon 2 | champion   | loan   | 40    | 30  | c3       | accepted, paid 50, default 200 |
    | d4 | Tue 3 | champion   | none   | 0     | 40  | c1       | opted_out                      |
    | d5 | Tue 3 | challenger | card   | 25    | 50  | c4       | accepted, paid 80, cured       |
    | d6 | Mon 9 | challenger | loan   | 35    | 100 | c5       | declined                       |

    Action costs (the strategy's ``cost`` attribute): card 4, loan 9, none 0.
    """
    rows = [
        (MON + timedelta(hours=10), "champion", "card", 20, 10, "c1"),
        (MON + timedelta(hours=11), "champion", "card", 20, 20, "c1"),
        (MON + timedelta(hours=12), "champion", "loan", 40, 30, "c3"),
        (MON + timedelta(days=1, hours=10), "champion", "none", 0, 40, "c1"),
        (MON + timedelta(days=1, hours=11), "challenger", "card", 25, 50, "c4"),
        (MON + timedelta(days=7, hours=10), "challenger", "loan", 35, 100, "c5"),
    ]
    d = [
        make_decision(at=at, arm=arm, action=action, value=value, latency_ms=ms, customer=c)
        for at, arm, action, value, ms, c in rows
    ]

    def event(decision, name, hours, amount=None):
        return {
            "decision_id": str(decision.decision_id),
            "event": name,
            "amount": amount,
            "occurred_at": decision.created_at + timedelta(hours=hours),
        }

    report = outcome_batch_record(
        actor=api_client_user,
        items=[
            event(d[0], "accepted", 1),
            event(d[0], "paid", 700, 100),
            event(d[1], "declined", 1),
            event(d[1], "complained", 2),
            event(d[2], "accepted", 1),
            event(d[2], "paid", 700, 50),
            event(d[2], "defaulted", 2000, 200),
            event(d[3], "opted_out", 3),
            event(d[4], "accepted", 1),
            event(d[4], "paid", 200, 80),
            event(d[4], "cured", 201),
            event(d[5], "declined", 5),
        ],
    )
    assert report.created == 12
    # Review cycle: the deployment submitted Tue 09:00, approved 15:00 (6 h); the strategy
    # submitted Wed 00:00, approved Thu 00:00 (24 h). Median 15 h.
    for kind, submitted, reviewed in (
        ("deployment", MON + timedelta(days=1, hours=9), MON + timedelta(days=1, hours=15)),
        ("strategy", MON + timedelta(days=2), MON + timedelta(days=3)),
    ):
        Version.objects.filter(item__kind=kind, item__name="cross-sell").update(
            submitted_at=submitted, reviewed_at=reviewed
        )
    return d


def report_for(user, **kwargs):
    return kpi_report(
        actor=user,
        deployment="cross-sell",
        since=kwargs.get("since", MON),
        until=kwargs.get("until", MON + timedelta(days=14)),
    )


def values(report):
    return {kpi["key"]: kpi["value"] for kpi in report["kpis"]}


def test_totals_match_the_hand_computed_figures(cohort, auditor):
    report = report_for(auditor)
    assert (report["decisions"], report["outcomes"]) == (6, 12)
    expected = {
        # financial
        "expected_value": 140.0,  # 20 + 20 + 40 + 0 + 25 + 35
        "realised_value": 30.0,  # paid 100 + 50 + 80, less the loss of 200
        "profit": 0.0,  # 30 less costs 4 + 4 + 9 + 0 + 4 + 9
        "profit_per_decision": 0.0,
        "value_realisation": 0.0,  # 0 / 140
        "value_gap": -140.0,
        "take_up_rate": 3 / 5,  # d1, d3, d5 of five offers (d4 is the fallback)
        "default_rate": 1 / 3,  # d3 of the three accepted
        "recovery_rate": 3 / 6,
        "cure_rate": 1 / 6,
        # operational
        "decision_volume": 6.0,
        "latency_p50_ms": 35.0,  # between 30 and 40
        "latency_p99_ms": 97.5,  # 50 + 0.95 * (100 - 50)
        "review_cycle_hours": 15.0,  # median of 6 and 24
        "optimisation_run_minutes": None,  # no runs
        "optimisation_gap": None,
        "challenger_share": 2 / 6,
        # customer
        "acceptance_rate": 3 / 5,  # accepted of accepted + declined
        "complaint_rate": 1 / 6,
        "opt_out_rate": 1 / 6,
        "contacts_per_customer": 5 / 4,  # five offers to c1, c3, c4, c5
    }
    got = values(report)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_optimisation_runs_count_in_operations_but_not_in_latency(
    cohort, auditor, maker, make_decision
):
    strategy, limits = cohort[0].strategy_version, cohort[0].constraint_set_version

    def run(minutes, gap, status="succeeded", day=0, population=None):
        started = MON + timedelta(days=day, hours=8)
        return OptimisationRun.objects.create(
            created_by=maker,
            created_at=started,
            deployment_name="cross-sell",
            strategy_version=strategy,
            constraint_set_version=limits,
            population=population or {"kind": "simulated"},
            time_limit_seconds=600,
            status=status,
            started_at=started,
            finished_at=started + timedelta(minutes=minutes),
            gap=gap,
        )

    first = run(10, 1e-6, population={"kind": "file", "name": "march.csv", "sha256": "0" * 64})
    simulated = run(20, 3e-6, day=1)
    run(90, 0.5, status="failed", day=2)  # failed runs do not count
    run(5, 0.2, day=30)  # outside the window
    # A decision of a run: its latency (none: it was not a request) stays out of p50/p99.
    decision = make_decision(at=MON + timedelta(hours=9), latency_ms=5000.0, run=first)
    assert decision.run_id == first.pk
    # A run on simulated customers offered nobody anything: its decisions are no traffic.
    make_decision(at=MON + timedelta(hours=10), latency_ms=5000.0, run=simulated)
    got = values(report_for(auditor))
    assert got["optimisation_run_minutes"] == pytest.approx(15.0)
    assert got["optimisation_gap"] == pytest.approx(3e-6)
    assert got["decision_volume"] == 7.0
    assert got["latency_p50_ms"] == pytest.approx(35.0)
    assert got["latency_p99_ms"] == pytest.approx(97.5)


def test_outcomes_on_a_simulated_runs_decisions_are_not_counted(
    cohort, auditor, maker, make_decision, client_of
):
    # Stored before such outcomes were refused: the answer said 14 outcomes for a cohort
    # of 6 decisions with 12 (the demo's pages: "60 decisions, 1947 outcomes").
    strategy, limits = cohort[0].strategy_version, cohort[0].constraint_set_version
    simulated = OptimisationRun.objects.create(
        created_by=maker,
        created_at=MON,
        deployment_name="cross-sell",
        strategy_version=strategy,
        constraint_set_version=limits,
        population={"kind": "simulated", "customers": 1, "seed": 1},
        time_limit_seconds=600,
        status="succeeded",
    )
    decision = make_decision(at=MON + timedelta(hours=13), run=simulated)
    batch = OutcomeBatch.objects.create(
        source="api",
        posted_by=maker,
        created_at=MON,
        received=2,
        created=2,
        duplicates=0,
        refused=0,
    )
    for event in ("accepted", "complained"):
        Outcome.objects.create(
            decision=decision,
            event=event,
            occurred_at=decision.created_at + timedelta(hours=1),
            batch=batch,
            recorded_at=MON,
        )
    body = (
        client_of(auditor)
        .get(
            URL,
            {
                "deployment": "cross-sell",
                "since": "2026-03-02T00:00:00Z",
                "until": "2026-03-16T00:00:00Z",
            },
        )
        .json()
    )
    assert (body["decisions"], body["outcomes"]) == (6, 12)
    kpis = {kpi["key"]: kpi["value"] for kpi in body["kpis"]}
    assert kpis["complaint_rate"] == pytest.approx(1 / 6)


def test_trends_by_day_and_week(cohort, auditor):
    report = report_for(auditor)
    kpis = {kpi["key"]: kpi for kpi in report["kpis"]}
    daily = kpis["decision_volume"]["daily"]
    assert len(daily) == 14 and daily[0]["start"].isoformat() == "2026-03-02"
    assert [p["value"] for p in daily] == [3, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    take_up = [p["value"] for p in kpis["take_up_rate"]["daily"][:3]]
    assert take_up == [pytest.approx(2 / 3), pytest.approx(1.0), None]
    weekly = kpis["decision_volume"]["weekly"]
    assert [(p["start"].isoformat(), p["value"]) for p in weekly] == [
        ("2026-03-02", 5),
        ("2026-03-09", 1),
    ]
    assert [p["value"] for p in kpis["profit"]["weekly"]] == [
        pytest.approx(96 - 4 - 159 + 0 + 76),  # d1 100-4, d2 -4, d3 50-200-9, d4 0, d5 80-4
        pytest.approx(-9),  # d6: a declined loan offer
    ]
    assert [p["value"] for p in kpis["review_cycle_hours"]["daily"][1:4]] == [6.0, None, 24.0]


def test_figures_by_action(cohort, auditor):
    rows = {row["action"]: row for row in report_for(auditor)["by_action"]}
    assert [row["action"] for row in report_for(auditor)["by_action"]] == ["card", "loan", "none"]
    card, loan = rows["card"], rows["loan"]
    assert (card["decisions"], card["expected_value"], card["realised_value"]) == (3, 65.0, 180.0)
    assert card["profit"] == pytest.approx(168.0) and card["take_up_rate"] == pytest.approx(2 / 3)
    assert (loan["expected_value"], loan["realised_value"], loan["profit"]) == (
        75.0,
        -150.0,
        -168.0,
    )
    assert loan["default_rate"] == 1.0


def test_champion_and_challenger_with_intervals(cohort, auditor):
    arms = report_for(auditor)["arms"]
    assert arms["shares"] == [
        {"arm": "champion", "decisions": 4, "share": pytest.approx(4 / 6)},
        {"arm": "challenger", "decisions": 2, "share": pytest.approx(2 / 6)},
    ]
    take_up = next(r for r in arms["rates"] if r["kpi"] == "take_up_rate")
    champion, challenger = take_up["arms"]
    assert (champion["successes"], champion["trials"]) == (2, 3)
    assert (challenger["successes"], challenger["trials"]) == (1, 2)
    wilson = wilson_interval(2, 3)
    assert (champion["low"], champion["high"]) == (wilson.low, wilson.high)
    assert champion["low"] == pytest.approx(0.2077, abs=1e-4)  # Wilson, 2 of 3
    [difference] = take_up["differences"]
    expected = newcombe_difference(wilson_interval(1, 2), wilson_interval(2, 3))
    assert difference["versus"] == "champion"
    assert difference["difference"] == pytest.approx(-1 / 6)
    assert (difference["low"], difference["high"]) == (expected.low, expected.high)
    assert {r["kpi"] for r in arms["rates"]} == {
        "take_up_rate",
        "default_rate",
        "recovery_rate",
        "cure_rate",
        "acceptance_rate",
        "complaint_rate",
        "opt_out_rate",
    }


def test_the_window_bounds_the_cohort_not_the_outcomes(cohort, auditor):
    second_week = values(report_for(auditor, since=MON + timedelta(days=7)))
    assert second_week["decision_volume"] == 1.0
    assert second_week["acceptance_rate"] == 0.0
    empty = values(report_for(auditor, since=MON - timedelta(days=7), until=MON))
    assert empty["decision_volume"] == 0.0
    assert empty["take_up_rate"] is None and empty["latency_p50_ms"] is None


def test_the_kpi_endpoint(cohort, auditor, client_of):
    response = client_of(auditor).get(
        URL,
        {
            "deployment": "cross-sell",
            "since": "2026-03-02T00:00:00Z",
            "until": "2026-03-16T00:00:00Z",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    kpis = {kpi["key"]: kpi for kpi in body["kpis"]}
    assert kpis["take_up_rate"]["value"] == pytest.approx(0.6)
    assert kpis["take_up_rate"]["target"] is None and kpis["take_up_rate"]["met"] is None
    assert body["methods"]["rate_interval"] == "Wilson score interval"
    assert body["targets_version"] is None


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({}, 400, "deployment"),
        ({"deployment": "cross-sell", "since": "soon"}, 400, "since"),
        (
            {
                "deployment": "cross-sell",
                "since": "2026-03-02T00:00:00Z",
                "until": "2026-03-01T00:00:00Z",
            },
            400,
            "since",
        ),
        (
            {
                "deployment": "cross-sell",
                "since": "2024-01-01T00:00:00Z",
                "until": "2026-01-01T00:00:00Z",
            },
            400,
            "since",
        ),
    ],
)
def test_bad_queries_are_field_level_400s(deployment, auditor, client_of, params, status, field):
    response = client_of(auditor).get(URL, params)
    assert response.status_code == status, response.content
    assert field in response.json()["error"]["details"]


def test_who_reads_kpis(deployment, client_of, auditor, checker, maker, admin_user, api):
    for reader in (auditor, checker, maker, admin_user):
        assert client_of(reader).get(URL, {"deployment": "cross-sell"}).status_code == 200
    refused = api.get(URL, {"deployment": "cross-sell"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    missing = client_of(auditor).get(URL, {"deployment": "nowhere"})
    assert missing.status_code == 404

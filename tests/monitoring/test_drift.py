"""Drift reports: Evidently's data drift, prediction drift and PSI of a model version's
logged inputs against its reference sample; sampling, idempotency, the task and command."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from decisions.decision_log import decision_hash
from decisions.demo_portfolio import synthetic_customers
from decisions.models import Decision
from decisions.services import decision_make
from governance.exceptions import ValidationFailed
from governance.models import Version
from monitoring import drift_tasks, psi
from monitoring.drift import drift_model_versions, drift_report_run, drift_window_default
from monitoring.models import DriftReport, DriftStatus

pytestmark = pytest.mark.django_db

YESTERDAY = drift_window_default()
NOON = YESTERDAY.since + timedelta(hours=12)


def customers(n: int, *, seed: int, income_factor: float = 1.0) -> list[dict]:
    frame = synthetic_customers(n, seed=seed)
    frame["income"] = (frame["income"] * income_factor).clip(upper=900_000)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


@pytest.fixture
def model_version(deployment) -> Version:
    return Version.objects.get(item__kind="model", item__name="take-up", number=1)


def decisions_log(deployment: Version, client, rows: list[dict], *, at: datetime = NOON) -> None:
    """Write decisions of the cross-sell deployment with the given features, as the engine
    logs them (without running it: the statistics need hundreds of rows)."""
    strategy = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=1)
    limits = Version.objects.get(
        item__kind="constraint_set", item__name="cross-sell-limits", number=1
    )
    model = Version.objects.get(item__kind="model", item__name="take-up", number=1)
    versions = {
        "deployment": {"name": "cross-sell", "version": deployment.number},
        "strategy": {"name": "cross-sell", "version": 1},
        "constraint_set": {"name": "cross-sell-limits", "version": 1},
        "models": [
            {"key": "take-up v1", "quantity": "p_accept", "content_hash": model.content_hash}
        ],
    }
    decisions = []
    for i, features in enumerate(rows):
        decision = Decision(
            decision_id=uuid.uuid4(),
            request_id=uuid.uuid4().hex,
            client=client,
            customer_id=f"c-{i}",
            deployment_name="cross-sell",
            deployment_version=deployment,
            strategy_version=strategy,
            constraint_set_version=limits,
            versions=versions,
            arm="champion",
            features=features,
            actions=[],
            action_id="none",
            action={},
            value=0.0,
            prices={},
            reasons=[],
            contributions=[],
            explanation={},
            latency_ms=1.0,
            created_at=at + timedelta(microseconds=i),
        )
        decision.content_hash = decision_hash(decision)
        decisions.append(decision)
    Decision.objects.bulk_create(decisions, batch_size=500)


@pytest.fixture
def log_decisions(deployment, api_client_user):
    def log(rows: list[dict], *, at: datetime = NOON) -> None:
        decisions_log(deployment, api_client_user, rows, at=at)

    return log


def run(version: Version) -> DriftReport:
    return drift_report_run(model_version=version, since=YESTERDAY.since, until=YESTERDAY.until)


# --- PSI ------------------------------------------------------------------------------


def test_psi_of_categories_matches_the_hand_computed_value():
    # reference a, a, b, b (1/2, 1/2); current a, a, a, b (3/4, 1/4):
    # (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5) = 0.274653
    result = psi.categorical_psi(["a", "a", "b", "b"], ["a", "a", "a", "b"])
    assert result.value == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2), abs=1e-12)
    assert result.value == pytest.approx(0.274653, abs=1e-6)
    assert [b["label"] for b in result.bins] == ["a", "b"]


def test_psi_of_numbers_bins_on_reference_deciles_with_an_epsilon_for_empty_bins():
    # Reference 1..10: deciles 1.9, 2.8, ..., 9.1, so each value has a bin of its own
    # (a tenth each). Current: five 1s and five 10s: two bins of a half, eight empty
    # (floored at 0.0001): 2 (0.5 - 0.1) ln 5 + 8 (0.0001 - 0.1) ln(0.001) = 6.808228
    result = psi.numeric_psi(list(range(1, 11)), [1] * 5 + [10] * 5)
    expected = 2 * 0.4 * math.log(5) + 8 * (0.0001 - 0.1) * math.log(0.0001 / 0.1)
    assert result.value == pytest.approx(expected, abs=1e-9)
    assert result.value == pytest.approx(6.808228, abs=1e-6)
    assert len(result.bins) == 10
    assert result.bins[0] == {"label": "(-inf, 1.9]", "reference": 0.1, "current": 0.5}


def test_psi_is_zero_for_the_same_distribution_and_missing_values_are_a_bin():
    assert psi.numeric_psi([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]).value == 0.0
    with_missing = psi.numeric_psi([1.0, 2.0, np.nan, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert with_missing.bins[-1]["label"] == "(missing)"
    assert with_missing.bins[-1] == {"label": "(missing)", "reference": 0.25, "current": 0.0}


@pytest.mark.parametrize(
    ("value", "band"),
    [(0.0, "stable"), (0.0999, "stable"), (0.1, "watch"), (0.25, "watch"), (0.2501, "act")],
)
def test_psi_bands_are_the_ones_credit_risk_reads(value, band):
    assert psi.psi_band(value) == band


# --- drift reports ----------------------------------------------------------------------


def test_a_shifted_income_is_flagged_by_evidently_and_by_psi(model_version, log_decisions):
    log_decisions(customers(400, seed=21, income_factor=2.5))
    report = run(model_version)

    assert report.status == DriftStatus.ACT
    by_name = {f["name"]: f for f in report.features}
    income = by_name["income"]
    assert income["drifted"] is True
    assert income["test"] == "K-S p_value" and income["statistic"] < income["threshold"]
    assert income["psi"] > 0.25 and income["psi_band"] == "act"
    assert by_name["region"]["drifted"] is False
    assert report.drifted_features >= 1
    assert report.share_drifted == pytest.approx(report.drifted_features / 5)
    # Richer customers take up more: the recomputed score moves too.
    assert report.score["current_mean"] > report.score["reference_mean"]
    assert report.score["drifted"] is True and report.psi_score > 0.1
    assert report.psi_max == max([f["psi"] for f in report.features] + [report.psi_score])
    assert (report.current_rows, report.reference_rows, report.sampled) == (400, 300, False)
    html = Path(settings.ARTIFACT_ROOT) / report.html_path
    assert report.html_path.startswith("reports/drift/take-up-v1/")
    assert (
        html.read_text().lstrip().lower().startswith("<!doctype html")
        or "<html" in html.read_text()[:500]
    )


def test_the_same_distribution_is_not_flagged(model_version, log_decisions):
    log_decisions(customers(1000, seed=22))
    report = run(model_version)

    assert report.status == DriftStatus.STABLE
    assert report.dataset_drift is False
    assert report.psi_max < 0.1
    assert {f["name"]: f["drifted"] for f in report.features}["income"] is False
    assert report.score["drifted"] is False


def test_real_decisions_of_a_shifted_population_are_found_by_their_model_version(
    model_version, api_client_user
):
    since = timezone.now()
    for i, features in enumerate(customers(80, seed=23, income_factor=3.0)):
        decision_make(
            actor=api_client_user,
            deployment="cross-sell",
            customer_id=f"shift-{i}",
            features=features,
        )
    report = drift_report_run(model_version=model_version, since=since, until=timezone.now())
    assert report.decisions_in_window == 80
    assert {f["name"]: f for f in report.features}["income"]["drifted"] is True
    assert report.status == DriftStatus.ACT


def test_a_large_window_is_sampled_and_the_report_says_so(
    model_version, log_decisions, settings, client_of, checker
):
    settings.DRIFT_SAMPLE_ROWS = 120
    log_decisions(customers(300, seed=24))
    report = run(model_version)
    assert (report.decisions_in_window, report.current_rows, report.sampled) == (300, 120, True)
    assert report.sample_limit == 120

    body = client_of(checker).get(f"/api/v1/monitoring/drift/{report.pk}/").json()
    assert (body["decisions_in_window"], body["current_rows"], body["sampled"]) == (
        300,
        120,
        True,
    )
    from django.test import Client

    page = Client()
    page.force_login(checker)
    answer = page.get(f"/drift/{report.pk}/")
    assert answer.status_code == 200, answer.content[:300]
    text = answer.content.decode()
    assert "a random sample of the 300 decisions" in text


def test_the_sample_is_the_same_every_time(model_version, log_decisions, settings):
    from monitoring.drift import DriftWindow, logged_features

    settings.DRIFT_SAMPLE_ROWS = 50
    log_decisions(customers(200, seed=25))
    window = DriftWindow(YESTERDAY.since, YESTERDAY.until)
    first = logged_features(model_version, window, limit=50)
    second = logged_features(model_version, window, limit=50)
    assert first == second and len(first[0]) == 50 and first[1] == 200


def test_a_report_is_made_once_per_model_version_and_window(model_version, log_decisions):
    folder = Path(settings.ARTIFACT_ROOT) / "reports" / "drift" / "take-up-v1"
    log_decisions(customers(150, seed=26))
    first = run(model_version)
    files = set(folder.glob("*.html"))
    again = run(model_version)
    assert again.pk == first.pk
    assert DriftReport.objects.count() == 1
    assert set(folder.glob("*.html")) == files  # nothing computed, nothing written
    assert (folder / Path(first.html_path).name) in files


def test_a_window_without_decisions_is_reported_as_no_data(model_version):
    report = run(model_version)
    assert report.status == DriftStatus.NO_DATA
    assert (report.decisions_in_window, report.current_rows, report.html_path) == (0, 0, "")


def test_a_window_still_going_is_refused(model_version):
    with pytest.raises(ValidationFailed, match="not ended"):
        drift_report_run(
            model_version=model_version,
            since=timezone.now() - timedelta(hours=1),
            until=timezone.now() + timedelta(hours=1),
        )


def test_the_watched_model_versions_include_those_active_deployments_use(model_version):
    assert model_version.status == "approved"
    assert drift_model_versions() == [model_version]


def test_the_daily_task_reports_each_recent_day_once(model_version, log_decisions):
    log_decisions(customers(120, seed=27))
    assert drift_tasks.drift_reports_daily_task() == 2  # yesterday and the day before
    assert DriftReport.objects.count() == 2
    assert drift_tasks.drift_reports_daily_task() == 0
    latest = DriftReport.objects.get(window_end=YESTERDAY.until)
    assert latest.current_rows == 120
    assert "drift-reports-daily" in settings.CELERY_BEAT_SCHEDULE
    assert (
        settings.CELERY_BEAT_SCHEDULE["drift-reports-daily"]["task"]
        == drift_tasks.drift_reports_daily_task.name
    )


def test_the_command_reports_now_and_then_says_it_was_made(model_version, log_decisions, capsys):
    log_decisions(customers(100, seed=28))
    day = f"{YESTERDAY.since:%Y-%m-%d}"
    call_command("drift_report", "--model", "take-up", "--version", "1", "--since", day)
    out = capsys.readouterr().out
    assert f"take-up v1 {day} 00:00.." in out and "100 rows): report" in out
    assert "share of features drifted 0%" in out and "PSI of the score 0." in out
    call_command("drift_report")  # every watched version, yesterday by default
    assert "(already made)" in capsys.readouterr().out
    assert DriftReport.objects.count() == 1


def test_the_command_names_what_is_wrong(model_version):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no approved model version nope"):
        call_command("drift_report", "--model", "nope")
    with pytest.raises(CommandError, match="time zone"):
        call_command("drift_report", "--since", "2026-01-01T00:00:00")
    with pytest.raises(CommandError, match="--version needs --model"):
        call_command("drift_report", "--version", "2")


def test_yesterday_is_the_default_window():
    window = drift_window_default(now=datetime(2026, 3, 5, 14, 30, tzinfo=UTC))
    assert (window.since, window.until) == (
        datetime(2026, 3, 4, tzinfo=UTC),
        datetime(2026, 3, 5, tzinfo=UTC),
    )


def test_models_that_take_the_chosen_actions_terms_are_compared_on_customers(db):
    """The demo's onboarding models take the offer's limit and APR, which the strategy
    sets: they are reported, not tested or counted; the score compares customers at the
    reference's mix of offers. (Evidently refused these windows outright before.)"""
    from django.contrib.auth import get_user_model

    from decisions.demo_setup import demo_load
    from decisions.populations import population_simulated

    demo_load()
    client = get_user_model().objects.get(username="lending-app")
    since = timezone.now()
    from decisions.runtime import active_deployment, deployment_features

    wanted = list(deployment_features(active_deployment("onboarding")))
    people = population_simulated("onboarding", 120, seed=31)[wanted]
    for i, row in enumerate(people.to_dict("records")):
        features = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        decision_make(
            actor=client, deployment="onboarding", customer_id=f"o-{i}", features=features
        )
    model = Version.objects.get(item__kind="model", item__name="onboarding-pd", number=1)
    report = drift_report_run(model_version=model, since=since, until=timezone.now())
    assert report.current_rows == 120 and report.status != DriftStatus.NO_DATA
    by_name = {f["name"]: f for f in report.features}
    assert report.parameters["set_by_strategy"] == ["apr", "limit"]
    for name in ("apr", "limit"):
        assert by_name[name]["set_by"] == "strategy"
        assert by_name[name]["test"] is None and by_name[name]["drifted"] is False
    customers_ = [f for f in report.features if f["set_by"] == "customer"]
    assert all(f["test"] for f in customers_)  # Evidently tested every customer input
    assert report.psi_max == max([f["psi"] for f in customers_] + [report.score["psi"]])
    assert report.score["current_rows"] == 120  # every row scored, at reference offers
    from django.test import Client

    page = Client()
    page.force_login(get_user_model().objects.get(username="auditor"))
    answer = page.get(f"/drift/{report.pk}/")
    assert answer.status_code == 200, answer.content[:300]
    text = answer.content.decode()
    assert "7 customer inputs; limit, apr set by the strategy, not counted" in text
    assert "(set by the strategy: the chosen action's, not counted)" in text

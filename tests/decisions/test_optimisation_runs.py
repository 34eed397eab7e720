"""Optimisation runs: solved, explained and logged; idempotent, cancellable; prices published."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.utils import timezone

from decisions import optimisation, runtime
from decisions.decision_log import decision_blocks_seal, decision_log_verify
from decisions.demo_setup import demo_load
from decisions.models import Decision, DecisionBlock, OptimisationRun, RunStatus
from decisions.optimisation import optimisation_run_create, optimisation_run_execute
from decisions.populations import population_simulated
from decisions.services import decision_make, decision_replay
from governance import services as governance
from governance.exceptions import Conflict, PermissionDenied, PreconditionFailed, ValidationFailed

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    demo_load()
    users = get_user_model().objects
    return {
        name: users.get(username=name)
        for name in ("maker", "checker", "auditor", "admin", "lending-app")
    }


def run_now(actor, **kwargs) -> OptimisationRun:
    run = optimisation_run_create(actor=actor, enqueue=False, **kwargs)
    return optimisation_run_execute(run.pk)


def features_of(frame, deployment):
    function = runtime.arm_runtime("champion", runtime.active_deployment(deployment).content)
    names = list(function.function.features)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k in names}
        for row in frame.to_dict("records")
    ]


def csv_bytes(frame) -> io.BytesIO:
    return io.BytesIO(frame.to_csv(index=False).encode())


def test_a_run_logs_one_explained_decision_per_customer_within_the_limits(demo):
    # The demo's limits are sized for 5,000 customers (a minimum of new accounts too).
    run = run_now(demo["maker"], deployment="onboarding", simulated={"customers": 5000, "seed": 4})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.progress == 100.0
    assert run.customers == run.decisions_logged == 5000
    assert run.solver_status in {"optimal", "feasible"}
    assert 0 <= run.gap <= 1e-3
    assert run.bound >= run.objective
    decisions = Decision.objects.filter(run=run)
    assert decisions.count() == 5000
    assert decisions.values("customer_id").distinct().count() == 5000
    for limit in run.limits:
        tolerance = 1e-6 * max(1.0, abs(limit["bound"]))
        if limit["sense"] == "<=":
            assert limit["used"] <= limit["bound"] + tolerance, limit
        else:
            assert limit["used"] >= limit["bound"] - tolerance, limit
        assert limit["price"] >= 0
    assert run.prices == {lim["name"]: lim["price"] for lim in run.limits}
    # The expected KPIs add up to the objective and to the population.
    per_action = run.kpis["per_action"]
    assert sum(a["customers"] for a in per_action) == 5000
    assert sum(a["value"] for a in per_action) == pytest.approx(run.objective, rel=1e-9)
    counts = {a["action"]: a["customers"] for a in per_action}
    for decision in decisions.order_by("seq")[:200]:
        assert decision.channel == "optimisation-run"
        assert decision.versions["optimisation_run"] == run.pk
        assert decision.prices == run.prices
        assert len(decision.reasons) <= 4
        assert decision.explanation["summary"]
        assert counts[decision.action_id] > 0
    assert set(run.phase_seconds) >= {"loading", "scoring", "solving", "logging"}

    # Replays match, declines (Regulation B reasons) included.
    ids = list(decisions.values_list("pk", flat=True))
    sample = np.random.default_rng(3).choice(ids, 40, replace=False).tolist()
    sample += list(decisions.filter(action_id="decline").values_list("pk", flat=True)[:10])
    for decision in Decision.objects.filter(pk__in=sample):
        replay = decision_replay(actor=demo["auditor"], decision=decision)
        assert replay.matches, replay.differences


def test_run_decisions_replay_identically(demo):
    run = run_now(demo["maker"], deployment="collections", simulated={"customers": 800, "seed": 5})
    ids = list(Decision.objects.filter(run=run).values_list("pk", flat=True))
    for decision in Decision.objects.filter(
        pk__in=np.random.default_rng(3).choice(ids, 40, replace=False).tolist()
    ):
        replay = decision_replay(actor=demo["auditor"], decision=decision)
        assert replay.matches, replay.differences
    # Replay catches a changed action: recomputing with another action differs.
    decision = Decision.objects.filter(run=run).first()
    other = next(a["action"] for a in decision.actions if a["action"] != decision.action_id)
    decision.action_id = other
    assert not decision_replay(actor=demo["auditor"], decision=decision).matches


def test_published_prices_make_real_time_agree_with_the_run(demo):
    maker, checker, client = demo["maker"], demo["checker"], demo["lending-app"]
    run = run_now(maker, deployment="cross-sell", simulated={"customers": 2000, "seed": 8})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert any(p > 0 for p in run.prices.values())
    version = optimisation.optimisation_prices_publish(actor=maker, run=run)
    assert version.status == "submitted"
    assert version.content["prices"] == run.prices
    assert version.content["price_source"] == f"optimisation run {run.pk}"
    with pytest.raises(PermissionDenied):  # four eyes: the maker cannot approve it
        governance.version_approve(actor=maker, version=version, comment="Reviewed.")
    governance.version_approve(actor=checker, version=version, comment="prices reviewed")
    governance.version_activate(actor=checker, version=version)
    runtime.clear_caches()

    chosen = dict(Decision.objects.filter(run=run).values_list("customer_id", "action_id"))
    people = population_simulated("cross-sell", 2000, seed=8)
    ids = people["customer_id"].tolist()
    agree = 0
    for customer_id, features in zip(ids, features_of(people, "cross-sell"), strict=True):
        decision = decision_make(
            actor=client, deployment="cross-sell", customer_id=customer_id, features=features
        ).decision
        assert decision.prices == run.prices
        agree += decision.action_id == chosen[customer_id]
    assert agree / len(ids) >= 0.99, agree / len(ids)


def test_whoever_started_the_run_cannot_approve_its_prices(demo, make_user):
    # The prices come from the population the run's starter chose (or uploaded): four
    # eyes count them among the version's writers, though another maker published it.
    both = make_user("mo-both", "maker", "checker")
    run = run_now(both, deployment="cross-sell", simulated={"customers": 300, "seed": 4})
    version = optimisation.optimisation_prices_publish(actor=demo["maker"], run=run)
    assert set(version.contributors.values_list("username", flat=True)) == {"maker", "mo-both"}
    with pytest.raises(PermissionDenied, match=r"^Four eyes: mo-both "):
        governance.version_approve(actor=both, version=version, comment="Looks right.")
    approved = governance.version_approve(actor=demo["checker"], version=version, comment="ok")
    assert approved.status == "approved"


def test_publishing_needs_a_succeeded_run_on_the_current_deployment(demo):
    maker = demo["maker"]
    run = run_now(maker, deployment="cross-sell", simulated={"customers": 300, "seed": 2})
    with pytest.raises(PermissionDenied):
        optimisation.optimisation_prices_publish(actor=demo["checker"], run=run)
    failed = OptimisationRun.objects.create(
        created_by=maker,
        created_at=timezone.now(),
        strategy_version=run.strategy_version,
        constraint_set_version=run.constraint_set_version,
        deployment_name="cross-sell",
        population=run.population,
        time_limit_seconds=60,
        status=RunStatus.FAILED,
    )
    with pytest.raises(PreconditionFailed, match="only a succeeded run"):
        optimisation.optimisation_prices_publish(actor=maker, run=failed)


def test_a_population_with_missing_columns_is_refused_before_a_run_exists(demo):
    """Its header says so at once: no run is queued to fail later, no file is kept."""
    people = population_simulated("onboarding", 50, seed=1).drop(columns=["income", "age"])
    stored = artifact_files()
    with pytest.raises(ValidationFailed, match="lacks the columns income, age") as raised:
        optimisation_run_create(
            actor=demo["maker"],
            deployment="onboarding",
            population_file=csv_bytes(people),
            population_filename="people.csv",
            enqueue=False,
        )
    assert set(raised.value.details) == {"population.columns.income", "population.columns.age"}
    assert not OptimisationRun.objects.exists()
    assert artifact_files() == stored


def artifact_files() -> set[Path]:
    return {p for p in Path(settings.ARTIFACT_ROOT).rglob("*") if p.is_file()}


def test_bad_values_are_reported_by_row_and_column(demo):
    people = population_simulated("onboarding", 20, seed=1)
    people["income"] = people["income"].astype(object)
    people.loc[2, "income"] = "lots"
    people.loc[4, "income"] = ""
    people.loc[6, "employment_type"] = "astronaut"
    people.loc[9, "customer_id"] = people.loc[1, "customer_id"]
    run = run_now(
        demo["maker"],
        deployment="onboarding",
        population_file=csv_bytes(people),
        population_filename="people.csv",
    )
    assert run.status == RunStatus.FAILED
    details = run.error_details
    assert details["population.income"] == ["row 5: missing", "row 3: must be a number"]
    assert details["population.employment_type"][0].startswith("row 7: must be one of")
    assert details["population.customer_id"] == ["row 10: repeats an earlier customer_id"]
    assert Decision.objects.count() == 0


def test_parquet_populations_run(demo, tmp_path):
    people = population_simulated("collections", 400, seed=3)
    path = tmp_path / "people.parquet"
    people.to_parquet(path)
    with open(path, "rb") as handle:
        run = run_now(
            demo["maker"],
            deployment="collections",
            population_file=handle,
            population_filename=path.name,
        )
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.population["format"] == "parquet"
    assert Decision.objects.filter(run=run).count() == 400


def test_an_unreadable_file_is_refused_with_a_sentence(demo):
    with pytest.raises(ValidationFailed, match="could not be read as Parquet"):
        optimisation_run_create(
            actor=demo["maker"],
            deployment="onboarding",
            population_file=io.BytesIO(b"PAR1 this is not parquet"),
            population_filename="people.parquet",
            enqueue=False,
        )
    assert not OptimisationRun.objects.exists()
    with pytest.raises(ValidationFailed, match="neither CSV nor Parquet"):
        optimisation_run_create(
            actor=demo["maker"],
            deployment="onboarding",
            population_file=io.BytesIO(b"x"),
            population_filename="people.xlsx",
            enqueue=False,
        )


def test_contradictory_limits_end_infeasible_naming_them(demo):
    maker, checker = demo["maker"], demo["checker"]
    active = runtime.active_deployment("onboarding")
    limits = runtime.arm_runtime("champion", active.content).constraint_set
    content = dict(limits.content)
    content["portfolio"] = [dict(lim) for lim in content["portfolio"]]
    for lim in content["portfolio"]:
        if lim["name"] == "min_new_accounts":
            lim["bound"] = 10_000_000.0
    version = governance.version_create(
        actor=maker, kind="constraint_set", name=limits.item.name, content=content
    )
    governance.version_submit(actor=maker, version=version)
    governance.version_approve(actor=checker, version=version, comment="Reviewed.")
    strategy = active.content["strategy"]
    run = run_now(
        maker,
        strategy=strategy,
        constraint_set={"name": limits.item.name, "version": version.number},
        simulated={"customers": 300, "seed": 1},
    )
    assert run.status == RunStatus.FAILED
    assert run.solver_status == "infeasible"
    assert "min_new_accounts" in run.error_details["limits"]
    assert "min_new_accounts" in run.error
    assert not Decision.objects.filter(run=run).exists()


def test_cancelling_a_queued_run_means_it_never_runs(demo):
    run = optimisation_run_create(
        actor=demo["maker"],
        deployment="onboarding",
        simulated={"customers": 100},
        enqueue=False,
    )
    run = optimisation.optimisation_run_cancel(actor=demo["maker"], run=run)
    assert run.status == RunStatus.CANCELLED
    assert optimisation_run_execute(run.pk).status == RunStatus.CANCELLED
    assert not Decision.objects.filter(run=run).exists()
    with pytest.raises(Conflict):
        optimisation.optimisation_run_cancel(actor=demo["maker"], run=run)


def test_cancelling_while_it_logs_leaves_no_decisions(demo):
    run = optimisation_run_create(
        actor=demo["maker"],
        deployment="onboarding",
        simulated={"customers": 5000, "seed": 2},
        enqueue=False,
    )
    seen, asked = [], []

    def progress(phase, percent):
        seen.append(phase)
        if phase == "logging" and percent > 70:
            asked.append(True)  # what the cancel endpoint records from another process

    monkey = optimisation._Reporter.cancel_requested
    try:
        # The cross-connection flag itself is tested on PostgreSQL below.
        optimisation._Reporter.cancel_requested = lambda self: bool(asked)
        run = optimisation_run_execute(run.pk, progress=progress)
    finally:
        optimisation._Reporter.cancel_requested = monkey
    assert "logging" in seen
    assert run.status == RunStatus.CANCELLED
    assert run.decisions_logged == 0
    assert not Decision.objects.filter(run=run).exists()


def test_cancel_is_for_the_creator_or_an_admin(demo, make_user):
    run = optimisation_run_create(
        actor=demo["maker"], deployment="onboarding", simulated={"customers": 10}, enqueue=False
    )
    other = make_user("maker-two", "maker")
    for actor in (other, demo["checker"], demo["auditor"]):
        with pytest.raises(PermissionDenied):
            optimisation.optimisation_run_cancel(actor=actor, run=run)
    assert optimisation.optimisation_run_cancel(actor=demo["admin"], run=run).status == "cancelled"


def test_only_makers_and_admins_start_runs(demo):
    for name in ("checker", "auditor", "lending-app"):
        with pytest.raises(PermissionDenied):
            optimisation_run_create(
                actor=demo[name], deployment="onboarding", simulated={"customers": 10}
            )
    assert OptimisationRun.objects.count() == 0


def test_a_downstream_system_reads_no_run(demo):
    """An API client asks for decisions; runs show limits, files and totals it has no
    need of (the registry and the KPIs are closed to it too)."""
    from rest_framework.test import APIClient

    run = run_now(demo["maker"], deployment="onboarding", simulated={"customers": 50})
    for call in (
        lambda actor: optimisation.optimisation_run_get(actor=actor, run_id=run.pk),
        lambda actor: optimisation.optimisation_run_list(actor=actor),
    ):
        with pytest.raises(PermissionDenied):
            call(demo["lending-app"])
        assert call(demo["auditor"])
    client = APIClient()
    client.force_authenticate(demo["lending-app"])
    for url in ("/api/v1/optimisation-runs/", f"/api/v1/optimisation-runs/{run.pk}/"):
        answer = client.get(url)
        assert answer.status_code == 403, url
        assert answer.json()["error"]["code"] == "permission_denied"


def test_a_finished_run_is_not_redone_and_a_crashed_one_restarts(demo):
    run = run_now(demo["maker"], deployment="collections", simulated={"customers": 300})
    assert run.status == RunStatus.SUCCEEDED
    again = optimisation_run_execute(run.pk)
    assert again.status == RunStatus.SUCCEEDED and again.attempts == 1
    assert Decision.objects.filter(run=run).count() == 300

    crashed = optimisation_run_create(
        actor=demo["maker"], deployment="collections", simulated={"customers": 200}, enqueue=False
    )
    # Another worker holds it (fresh heartbeat): leave it alone.
    OptimisationRun.objects.filter(pk=crashed.pk).update(
        status=RunStatus.RUNNING, attempts=1, heartbeat_at=timezone.now(), phase="solving"
    )
    assert optimisation_run_execute(crashed.pk).status == RunStatus.RUNNING
    # Its worker died long ago (stale heartbeat): the redelivered task starts it again.
    OptimisationRun.objects.filter(pk=crashed.pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    restarted = optimisation_run_execute(crashed.pk)
    assert restarted.status == RunStatus.SUCCEEDED
    assert restarted.attempts == 2
    assert Decision.objects.filter(run=restarted).count() == 200


def test_a_simulation_run_on_submitted_versions_logs_nothing(demo):
    from governance.models import Version

    candidate = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=2)
    assert candidate.status == "submitted"
    limits = runtime.arm_runtime(
        "champion", runtime.active_deployment("cross-sell").content
    ).constraint_set
    refs = {
        "strategy": {"name": "cross-sell", "version": 2},
        "constraint_set": {"name": limits.item.name, "version": limits.number},
    }
    with pytest.raises(ValidationFailed, match="needs versions approved for use"):
        optimisation_run_create(
            actor=demo["maker"], simulated={"customers": 100}, enqueue=False, **refs
        )
    run = run_now(demo["maker"], simulated={"customers": 500}, log_decisions=False, **refs)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.decisions_logged == 0 and not Decision.objects.exists()
    assert run.kpis["total"]["customers"] == 500
    with pytest.raises(Conflict, match="simulation"):
        optimisation.optimisation_run_decisions(actor=demo["auditor"], run=run)


def test_a_run_logs_no_decision_with_a_retired_version_even_one_retired_while_queued(demo):
    """Retired versions were withdrawn from use: a run may simulate them, not decide for
    customers with them (models included, as a deployment's activation refuses them)."""
    from governance.models import Version, VersionStatus

    arm = runtime.arm_runtime("champion", runtime.active_deployment("cross-sell").content)
    refs = {
        "strategy": {"name": arm.strategy.item.name, "version": arm.strategy.number},
        "constraint_set": {
            "name": arm.constraint_set.item.name,
            "version": arm.constraint_set.number,
        },
    }
    queued = optimisation_run_create(
        actor=demo["maker"], simulated={"customers": 100}, enqueue=False, **refs
    )
    model_ref = arm.strategy.content["predictions"][0]["model"]
    model = Version.objects.get(
        item__kind="model", item__name=model_ref["name"], number=model_ref["version"]
    )
    # As retiring it would leave it (the service refuses while a deployment uses it).
    Version.objects.filter(pk=model.pk).update(status=VersionStatus.RETIRED)
    label = f"model {model.item.name} v{model.number} (retired)"

    with pytest.raises(ValidationFailed) as refused:
        optimisation_run_create(
            actor=demo["maker"], simulated={"customers": 100}, enqueue=False, **refs
        )
    assert refused.value.details == {"versions": [label]}
    assert OptimisationRun.objects.count() == 1

    failed = optimisation_run_execute(queued.pk)
    assert failed.status == RunStatus.FAILED
    assert label in failed.error and "needs versions approved for use" in failed.error
    assert not Decision.objects.exists()

    simulated = run_now(demo["maker"], simulated={"customers": 200}, log_decisions=False, **refs)
    assert simulated.status == RunStatus.SUCCEEDED, simulated.error
    assert not Decision.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_a_run_stores_each_decision_as_the_canonical_json_it_hashed(demo):
    # The log's json columns keep the text as COPY wrote it: the bytes the hash covers.
    from governance.hashing import canonical_json

    run = run_now(demo["maker"], deployment="collections", simulated={"customers": 400, "seed": 8})
    assert run.status == RunStatus.SUCCEEDED, run.error
    columns = ["features", "actions", "reasons", "contributions", "explanation"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq, features::text, actions::text, reasons::text, contributions::text, "
            "explanation::text FROM decisions_decision WHERE run_id = %s ORDER BY seq LIMIT 50",
            [run.pk],
        )
        stored = cursor.fetchall()
    assert len(stored) == 50
    decisions = Decision.objects.in_bulk([row[0] for row in stored])
    for seq, *texts in stored:
        for column, text in zip(columns, texts, strict=True):
            assert text.encode() == canonical_json(getattr(decisions[seq], column)), column


def test_the_log_verifies_after_a_run_and_sealing(demo):
    run_now(demo["maker"], deployment="cross-sell", simulated={"customers": 1200, "seed": 6})
    decision_make(
        actor=demo["lending-app"],
        deployment="cross-sell",
        customer_id="rt-1",
        features=features_of(population_simulated("cross-sell", 1, seed=9), "cross-sell")[0],
    )
    decision_blocks_seal(grace_seconds=0)
    report = decision_log_verify()
    assert report.ok, report
    assert report.rows == 1201 and report.unsealed == 0


def test_without_a_broker_a_run_seals_its_decisions_once_committed(
    demo, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = run_now(demo["maker"], deployment="cross-sell", simulated={"customers": 300})
    last = run.decisions.order_by("-seq").values_list("seq", flat=True).first()
    sealed = DecisionBlock.objects.filter(last_seq__gte=last).exists()
    # On SQLite (the embedded default) writers take turns: sealed at once. Elsewhere rows
    # younger than the grace period wait for beat or the next full block.
    assert sealed is (connection.vendor == "sqlite")


def test_optimise_command_runs_with_a_progress_bar(demo, tmp_path, capsys):
    path = tmp_path / "people.csv"
    population_simulated("collections", 300, seed=2).to_csv(path, index=False)
    out = io.StringIO()
    call_command(
        "optimise",
        "--deployment",
        "collections",
        "--population",
        str(path),
        "--user",
        "maker",
        stdout=out,
    )
    assert "succeeded: 300 customers" in out.getvalue()
    assert "call_capacity" in out.getvalue()
    assert "100%" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    population_simulated("collections", 30, seed=2).drop(columns=["balance"]).to_csv(
        bad, index=False
    )
    with pytest.raises(CommandError, match="The population lacks the column balance"):
        call_command(
            "optimise",
            "--deployment",
            "collections",
            "--population",
            str(bad),
            "--user",
            "maker",
            stdout=io.StringIO(),
        )
    with pytest.raises(CommandError, match="may not start optimisation runs"):
        call_command(
            "optimise", "--deployment", "collections", "--simulated", "10", "--user", "checker"
        )
    with pytest.raises(CommandError, match="does not exist"):
        call_command(
            "optimise",
            "--deployment",
            "collections",
            "--population",
            "/nope.csv",
            "--user",
            "maker",
        )


def test_optimise_queue_without_a_broker_is_refused_before_a_run_is_created(demo):
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"^--queue needs a task queue and CELERY_BROKER_URL"):
        call_command(
            "optimise", "--deployment", "collections", "--simulated", "300", "--user", "maker",
            "--queue", stdout=out,
        )  # fmt: skip
    assert "queued" not in out.getvalue()
    assert not OptimisationRun.objects.exists()


def test_price_agreement_is_reported(demo):
    run = run_now(demo["maker"], deployment="collections", simulated={"customers": 1000})
    assert run.kpis["price_agreement"] >= 0.99
    assert np.isclose(sum(a["share"] for a in run.kpis["per_action"]), 1.0)


on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)


@on_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_other_connections_see_progress_and_cancel_a_run_while_it_logs(demo, monkeypatch):
    """On PostgreSQL the run writes its decisions in one transaction; meanwhile another
    connection (the API, a reviewer's page) sees its progress, and a cancel stops it."""
    run = optimisation_run_create(
        actor=demo["maker"],
        deployment="collections",
        simulated={"customers": 5000, "seed": 2},
        enqueue=False,
    )
    monkeypatch.setattr(optimisation._Reporter, "WRITE_EVERY_SECONDS", 0.0)
    observer = connections.create_connection("default")
    seen: list[tuple[str, float]] = []

    def progress(phase, percent):
        if phase != "logging" or percent < 75 or seen:
            return
        with observer.cursor() as cursor:
            cursor.execute(
                "SELECT phase, progress FROM decisions_optimisationrun WHERE id = %s", [run.pk]
            )
            seen.append(cursor.fetchone())
            cursor.execute("SELECT count(*) FROM decisions_decision WHERE run_id = %s", [run.pk])
            seen.append(cursor.fetchone())
            cursor.execute(
                "UPDATE decisions_optimisationrun SET cancel_requested = true WHERE id = %s",
                [run.pk],
            )

    try:
        run = optimisation_run_execute(run.pk, progress=progress)
    finally:
        observer.close()
    (phase, percent), (visible,) = seen
    assert phase == "logging" and percent >= 75
    assert visible == 0  # rows being written are not visible before the run commits
    assert run.status == RunStatus.CANCELLED
    assert not Decision.objects.filter(run=run).exists()
    # The log is still whole: sealing and verification see nothing of the cancelled run.
    decision_blocks_seal(grace_seconds=0)
    assert decision_log_verify().ok


def test_a_chunked_run_cancelled_while_it_solves_logs_nothing_and_leaves_no_files(
    demo, monkeypatch, settings
):
    from decisions.engine import distributed
    from decisions.run_chunks import runs_root

    settings.OPTIMISATION_DISTRIBUTED = "on"  # no broker in tests: chunks in this process
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 400
    run = optimisation_run_create(
        actor=demo["maker"],
        deployment="cross-sell",
        simulated={"customers": 1200, "seed": 9},
        enqueue=False,
    )
    dual = distributed.OPERATIONS["dual"]
    calls = []

    def cancel_midway(**call):
        calls.append(call)
        if len(calls) == 7:
            OptimisationRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        return dual(**call)

    monkeypatch.setitem(distributed.OPERATIONS, "dual", cancel_midway)
    run = optimisation_run_execute(run.pk)
    assert run.status == RunStatus.CANCELLED
    assert len(calls) < 12  # it stopped within a round or two of the request
    assert not Decision.objects.filter(run=run).exists()
    assert not list(runs_root().glob(f"run-{run.pk}-*"))


def test_a_chunked_run_in_one_process_logs_every_decision(demo, settings, capsys):
    settings.OPTIMISATION_DISTRIBUTED = "on"
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 700
    call_command("optimise", deployment="cross-sell", simulated=2000, seed=4, user="maker")
    assert "Computed in 3 chunks in this process" in capsys.readouterr().out
    run = OptimisationRun.objects.latest("pk")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.execution["mode"] == "in_process"
    assert run.execution["chunks"] == 3
    assert run.decisions_logged == Decision.objects.filter(run=run).count() == 2000
    assert 0 <= run.gap <= 1e-3
    per_action = run.kpis["per_action"]
    assert sum(a["customers"] for a in per_action) == 2000
    assert sum(a["value"] for a in per_action) == pytest.approx(run.objective, rel=1e-9)
    for limit in run.limits:
        assert limit["used"] <= limit["bound"] + 1e-6 * max(1.0, abs(limit["bound"]))
    for decision in Decision.objects.filter(run=run).order_by("?")[:20]:
        replay = decision_replay(actor=demo["auditor"], decision=decision)
        assert replay.matches, replay.differences


def test_a_large_population_file_goes_to_the_chunks_piece_by_piece(demo, settings, monkeypatch):
    from decisions import populations

    settings.OPTIMISATION_DISTRIBUTED = "on"  # no broker in tests: chunks in this process
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 300
    people = population_simulated("cross-sell", 1000, seed=6)
    seen = []
    check_piece = populations.PopulationCheck.piece

    def piece(self, frame):
        seen.append(len(frame))
        return check_piece(self, frame)

    monkeypatch.setattr(populations.PopulationCheck, "piece", piece)
    run = run_now(
        demo["maker"],
        deployment="cross-sell",
        population_file=csv_bytes(people),
        population_filename="people.csv",
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    # The file was read a chunk at a time: this process never held it whole.
    assert seen == [300, 300, 300, 100]
    assert run.customers == 1000 and run.execution["chunks"] == 4
    logged = Decision.objects.filter(run=run).order_by("seq")
    assert list(logged.values_list("customer_id", flat=True)) == list(people["customer_id"])
    # The same run on the population read whole (one process) reaches the same optimum.
    settings.OPTIMISATION_DISTRIBUTED = "off"
    whole = run_now(
        demo["maker"],
        deployment="cross-sell",
        population_file=csv_bytes(people),
        population_filename="people.csv",
    )
    assert whole.status == RunStatus.SUCCEEDED, whole.error
    assert abs(run.objective - whole.objective) <= max(run.gap, whole.gap, 1e-9) * abs(whole.bound)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_problems_anywhere_in_a_file_read_in_pieces_are_named_by_file_row(
    demo, settings, tmp_path, fmt
):
    from decisions.run_chunks import runs_root

    settings.OPTIMISATION_DISTRIBUTED = "on"
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 250
    people = population_simulated("cross-sell", 1000, seed=6)
    people["income"] = people["income"].astype(object)
    people.loc[3, "income"] = "lots"
    people.loc[820, "income"] = "plenty"
    people.loc[949, "customer_id"] = people.loc[4, "customer_id"]  # a repeat across chunks
    path = tmp_path / f"people.{fmt}"
    if fmt == "csv":
        people.to_csv(path, index=False)
    else:
        people["income"] = people["income"].astype(str)
        people.to_parquet(path, index=False, row_group_size=100)
    with open(path, "rb") as handle:
        run = run_now(
            demo["maker"],
            deployment="cross-sell",
            population_file=handle,
            population_filename=path.name,
        )
    assert run.status == RunStatus.FAILED
    details = run.error_details
    assert details["population.income"] == ["rows 4, 821: must be a number"]
    assert details["population.customer_id"] == ["row 950: repeats an earlier customer_id"]
    assert not Decision.objects.filter(run=run).exists()
    assert not list(runs_root().glob(f"run-{run.pk}-*"))
    # Read whole, the file is described in the same words.
    from decisions import populations
    from decisions.runtime import decision_function

    function = decision_function(run.strategy_version, run.constraint_set_version)
    with pytest.raises(ValidationFailed) as whole:
        populations.population_check(
            next(populations.population_pieces(path, fmt, rows=None)), function.features
        )
    assert whole.value.details == details


def test_a_file_over_the_customer_limit_fails_before_it_is_read_to_the_end(
    demo, settings, monkeypatch
):
    from decisions import populations

    settings.OPTIMISATION_DISTRIBUTED = "on"
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 200
    settings.OPTIMISATION_MAX_CUSTOMERS = 500
    seen = []
    check_piece = populations.PopulationCheck.piece
    monkeypatch.setattr(
        populations.PopulationCheck,
        "piece",
        lambda self, frame: seen.append(len(frame)) or check_piece(self, frame),
    )
    run = run_now(
        demo["maker"],
        deployment="cross-sell",
        population_file=csv_bytes(population_simulated("cross-sell", 1000, seed=6)),
        population_filename="people.csv",
    )
    assert run.status == RunStatus.FAILED
    assert "more than 500 customers" in run.error
    assert run.error_details == {"population": ["too many customers"]}
    assert seen == [200, 200]  # the third piece would pass the limit: never checked


def test_the_optimise_command_says_when_chunks_were_sent_again(demo, settings, capsys, monkeypatch):
    from decisions import distributed_runs

    settings.OPTIMISATION_DISTRIBUTED = "on"
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 400
    # In one process nothing is ever lost; pretend two chunk tasks had to be sent again.
    monkeypatch.setattr(distributed_runs.LocalChunkExecutor, "resent", 2)
    call_command("optimise", deployment="cross-sell", simulated=800, seed=4, user="maker")
    out = capsys.readouterr().out
    assert (
        "Computed in 2 chunks in this process: " in out
        and "; 2 chunk tasks sent again after losing their worker." in out
    )
    assert OptimisationRun.objects.latest("pk").execution["resent"] == 2

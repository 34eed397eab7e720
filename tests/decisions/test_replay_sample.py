"""manage.py replay_decisions: an examiner's random sample of the log, replayed and counted."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from decisions import runtime
from decisions.models import Decision, ReplayCheck
from decisions.replays import IDENTICAL, decision_replay_sample
from decisions.services import decision_make
from governance.exceptions import PermissionDenied
from governance.models import Version
from tests.decisions.test_decision_log import features, tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(cross_sell_deployment, api_client_user) -> list[Decision]:
    return [
        decision_make(
            actor=api_client_user,
            deployment="cross-sell",
            customer_id=f"c-{i % 20}",
            features=features(i),
        ).decision
        for i in range(40)
    ]


def replay(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("replay_decisions", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_a_seeded_draw_is_the_same_again_and_covers_the_whole_set(logged, auditor):
    decisions = Decision.objects.all()
    first = decision_replay_sample(actor=auditor, decisions=decisions, size=10, seed=3)
    again = decision_replay_sample(actor=auditor, decisions=decisions, size=10, seed=3)
    other = decision_replay_sample(actor=auditor, decisions=decisions, size=10, seed=4)
    assert first.population == 40 and first.through_seq == logged[-1].seq
    assert first.seqs == again.seqs != other.seqs
    assert len(set(first.seqs)) == 10 and set(first.seqs) <= {d.seq for d in logged}
    # One decision drawn with each of 400 seeds: every decision is drawn, none favoured.
    drawn = Counter(
        decision_replay_sample(actor=auditor, decisions=decisions, size=1, seed=s).seqs[0]
        for s in range(400)
    )
    assert set(drawn) == {d.seq for d in logged}
    assert max(drawn.values()) <= 25  # 10 expected; 25 is far in the tail of Binomial(400, 1/40)
    # A filtered set draws only from itself.
    mine = decision_replay_sample(
        actor=auditor, decisions=decisions.filter(customer_id="c-3"), size=5, seed=1
    )
    assert mine.population == 2 and mine.seqs is None  # smaller than the sample: all of it
    assert [o.decision.customer_id for o in mine.outcomes()] == ["c-3", "c-3"]
    assert mine.counts[IDENTICAL] == 2 and mine.ok


def test_the_command_replays_the_sample_and_writes_a_report(logged, auditor, tmp_path):
    report = tmp_path / "replay.csv"
    code, out, err = replay(
        "--user", auditor.username, "--sample", "12", "--seed", "7", "--report", str(report)
    )
    assert code == 0, err
    assert "Replaying 12 drawn at random (seed 7) from 40 decisions" in out
    assert "12 replayed: 12 identical, 0 differ, 0 could not be replayed (kept as replay" in out
    kept = ReplayCheck.objects.get()  # the pages and status see it as any other replay
    assert (kept.requested_by, kept.size, kept.seed, kept.identical) == (auditor, 12, 7, 12)
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert len(rows) == 12 and {r["result"] for r in rows} == {"identical"}
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    # The same seed names the same decisions.
    replay("--user", auditor.username, "--sample", "12", "--seed", "7", "--report", str(report))
    assert [r["decision_id"] for r in csv.DictReader(report.open(encoding="utf-8"))] == [
        r["decision_id"] for r in rows
    ]
    code, out, _ = replay("--user", auditor.username, "--all", "--customer-id", "c-5")
    assert code == 0 and "Replaying all 2 decisions" in out and "2 identical" in out
    assert ReplayCheck.objects.latest("pk").size is None  # --all


def test_an_altered_decision_and_a_missing_model_file_are_named_and_exit_1(logged, auditor):
    target = logged[17]
    tamper("UPDATE decisions_decision SET value = value + 1 WHERE seq = %s", (target.seq,))
    code, _, err = replay("--user", auditor.username, "--all")
    assert code == 1
    assert "40 replayed: 39 identical, 1 differ, 0 could not be replayed (kept as" in err
    assert f"{target.decision_id} (seq {target.seq}) differs in value" in err

    model = Version.objects.get(item__kind="model", item__name="take-up")
    path = Path(settings.ARTIFACT_ROOT) / model.artifact_path
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    runtime.clear_caches()
    try:
        code, _, err = replay("--user", auditor.username, "--sample", "5", "--seed", "1")
    finally:
        aside.rename(path)
        runtime.clear_caches()
    assert code == 1
    assert "5 replayed: 0 identical, 0 differ, 5 could not be replayed (kept as" in err
    assert err.count("not replayed: ") == 5


def test_roles_and_bad_arguments_get_a_sentence(logged, auditor, maker):
    with pytest.raises(PermissionDenied):
        decision_replay_sample(actor=maker, decisions=Decision.objects.all(), size=1, seed=1)
    for args, sentence in (
        (["--user", maker.username], "may not replay decisions"),
        (["--user", "nobody"], "There is no user called 'nobody'."),
        (["--user", auditor.username, "--since", "2026-13-01"], "is not a date"),
        (["--user", auditor.username, "--since", "2026-07-02", "--until", "2026-07-01"],
         "--since must be before --until."),
        (["--user", auditor.username, "--run", "999"], "There is no optimisation run 999."),
        (["--user", auditor.username, "--deployment", "nope"], "No logged decision matches"),
        (["--user", auditor.username, "--sample", "0"], "--sample must be at least 1."),
        (["--user", auditor.username, "--report", "/no/such/folder/r.csv"], "does not exist"),
        (["--user", auditor.username, "--report", "/tmp"], "/tmp is a folder"),
        (["--user", auditor.username, "--since", "9999-12-31"], "must be between 1900-01-01"),
        (["--user", auditor.username, "--seed", "-1"], "seed:"),
    ):  # fmt: skip
        with pytest.raises(Exception) as raised:
            call_command("replay_decisions", *args, stdout=io.StringIO(), stderr=io.StringIO())
        assert sentence in str(raised.value), args


def test_a_report_that_cannot_be_written_is_refused_before_any_replay_is_kept(
    logged, auditor, tmp_path
):
    with pytest.raises(CommandError, match=r"^Cannot write the report /proc/rev.csv \("):
        replay("--user", auditor.username, "--report", "/proc/rev.csv")
    assert not ReplayCheck.objects.exists()
    # A refused replay leaves an earlier report as it was, and no scratch file beside it.
    folder = tmp_path / "reports"
    folder.mkdir()
    report = folder / "replay.csv"
    report.write_text("the examiner's earlier report\n")
    with pytest.raises(CommandError, match="No logged decision matches"):
        replay("--user", auditor.username, "--deployment", "nope", "--report", str(report))
    assert report.read_text() == "the examiner's earlier report\n"
    assert [p.name for p in folder.iterdir()] == ["replay.csv"]


def test_a_decision_whose_replay_breaks_is_a_finding_not_the_end(logged, auditor, caplog):
    victim = logged[3]
    tamper(
        "UPDATE decisions_decision SET features = %s WHERE seq = %s",
        ('{"income": [1, 2]}', victim.seq),
    )
    sample = decision_replay_sample(
        actor=auditor, decisions=Decision.objects.all(), size=None, seed=1
    )
    outcomes = {o.decision.seq: o for o in sample.outcomes()}
    assert sample.counts == {"identical": 39, "differs": 0, "not replayed": 1}
    assert outcomes[victim.seq].result == "not replayed"
    assert outcomes[victim.seq].message == (
        "An internal error stopped its replay (KeyError); the server's log has the details."
    )
    assert f"replaying decision {victim.decision_id} failed" in caplog.text


def test_an_interrupted_command_leaves_its_replay_stopped_not_running(logged, auditor):
    from unittest import mock

    interrupted = mock.patch("decisions.replays.decision_replay", side_effect=KeyboardInterrupt)
    stopped = pytest.raises(Exception, match=r"Interrupted: replay \d+ is kept as stopped.")
    with interrupted, stopped:
        call_command("replay_decisions", "--user", auditor.username, stdout=io.StringIO())
    kept = ReplayCheck.objects.get()
    assert (kept.status, kept.error) == (
        "failed",
        "Stopped on the command line before it finished.",
    )

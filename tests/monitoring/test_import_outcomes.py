"""manage.py import_outcomes: CSV and Parquet, bad rows named, good rows loaded once."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError

from monitoring import services
from monitoring.models import Outcome, OutcomeBatch

pytestmark = pytest.mark.django_db

DECIDED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def run(path, user="svc-lending"):
    out = io.StringIO()
    try:
        call_command("import_outcomes", str(path), "--user", user, "--no-progress", stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def decisions(make_decision):
    return [make_decision(at=DECIDED, customer=f"c-{i}") for i in range(3)]


def test_a_csv_loads_its_good_rows_names_the_bad_ones_and_loads_once(
    decisions, api_client_user, tmp_path
):
    a, b, c = (str(d.decision_id) for d in decisions)
    path = tmp_path / "outcomes.csv"
    path.write_text(
        "decision_id,event,amount,occurred_at,source\n"
        f"{a},accepted,,2026-03-02T12:00:00Z,crm\n"
        f"{a},paid,120.50,2026-03-20T09:00:00+01:00,crm\n"
        f"{b},declined,,2026-03-03T10:00:00Z,crm\n"
        f"{c},paid,,2026-03-04T10:00:00Z,crm\n"
        f"{c},accepted,,2026-03-01T10:00:00Z,crm\n"
        "00000000-0000-4000-8000-000000000000,accepted,,2026-03-04T10:00:00Z,crm\n"
        f"{b},declined,abc,2026-03-05T10:00:00Z,crm\n"
    )
    status, text = run(path)
    assert status == 2, text
    assert "7 rows: 3 loaded, 0 already loaded, 4 refused." in text
    assert "Ignored columns: source." in text
    assert "row 5: amount: a paid event needs the amount" in text
    assert "row 6: occurred_at: is before the decision was made" in text
    assert "row 7: decision_id: there is no decision 00000000-0000-4000-8000-000000000000" in text
    assert "row 8: amount: must be a number" in text
    assert Outcome.objects.count() == 3
    paid = Outcome.objects.get(event="paid")
    assert paid.occurred_at == datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
    assert str(paid.amount) == "120.50"
    batch = OutcomeBatch.objects.get()
    assert (batch.source, batch.file_name, len(batch.file_sha256)) == ("file", "outcomes.csv", 64)

    status, text = run(path)
    assert "7 rows: 0 loaded, 3 already loaded, 4 refused." in text
    assert Outcome.objects.count() == 3


def test_bad_rows_are_named_by_their_line_after_blank_lines_and_values_spanning_lines(
    decisions, tmp_path
):
    # As a spreadsheet writes a note with a line break in it, and a person leaves blank
    # lines: these rows were named as rows 3 and 4.
    a, b, _ = (str(d.decision_id) for d in decisions)
    path = tmp_path / "outcomes.csv"
    path.write_text(
        "decision_id,event,amount,occurred_at,note\n"  # line 1
        f'{a},accepted,,2026-03-02T12:00:00Z,"called back;\nkeen"\n'  # lines 2-3
        "\n"  # line 4
        f'{a},paid,,2026-03-04T10:00:00Z,"first\n\nsecond payment"\n'  # lines 5-7
        "   \n"  # line 8
        f"{b},declined,abc,2026-03-05T10:00:00Z,\n"  # line 9
    )
    status, text = run(path)
    assert status == 2, text
    assert "3 rows: 1 loaded, 0 already loaded, 2 refused." in text
    assert "  row 5: amount: a paid event needs the amount\n" in text
    assert "  row 9: amount: must be a number\n" in text


def test_a_file_whose_every_row_is_refused_loads_nothing_and_exits_1(decisions, tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text(
        "decision_id,event,amount,occurred_at\n"
        f"{decisions[0].decision_id},paid,,2026-03-04T10:00:00Z\n"
        "00000000-0000-4000-8000-000000000000,accepted,,2026-03-04T10:00:00Z\n"
    )
    status, text = run(path)
    assert status == 1, text  # was 2, "the good rows loaded", with none loaded
    assert "2 rows: 0 loaded, 0 already loaded, 2 refused." in text
    assert "row 2: amount: a paid event needs the amount" in text
    assert text.endswith("Nothing was loaded: every row was refused.\n")
    assert not Outcome.objects.exists()


def payments(path, decision, rows):
    """A CSV of ``rows`` payments on ``decision``, a minute apart."""
    path.write_text(
        "decision_id,event,amount,occurred_at\n"
        + "".join(
            f"{decision.decision_id},paid,1.00,{(DECIDED + timedelta(minutes=i)).isoformat()}\n"
            for i in range(1, rows + 1)
        )
    )
    return path


def fail_batch(monkeypatch, number):
    """The database refuses the ``number``-th batch written (from 1)."""
    real, calls = services._store, []

    def store(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise DatabaseError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "_store", store)


def test_a_write_refused_midway_says_what_is_stored_and_a_rerun_loads_the_rest(
    decisions, tmp_path, monkeypatch
):
    # Batches of 2,000: the first is stored, the second refused. It said "nothing of this
    # batch was written" and exited 1 ("nothing loaded") with 2,000 rows in.
    path = payments(tmp_path / "outcomes.csv", decisions[0], 2_500)
    fail_batch(monkeypatch, 2)
    with pytest.raises(CommandError) as caught:
        run(path)
    assert caught.value.returncode == 2
    assert str(caught.value) == (
        "The database refused the write at row 2002 of outcomes.csv. The 2,000 rows before "
        "it are done (2,000 loaded, 0 already loaded, 0 refused); the 500 from row 2002 on "
        "were not stored. Re-run the same file to load them: rows already loaded come back "
        "as duplicates, none is loaded twice."
    )
    assert Outcome.objects.count() == 2_000
    monkeypatch.undo()
    assert run(path) == (
        0,
        "outcomes.csv: 2500 rows: 500 loaded, 2000 already loaded, 0 refused.\n",
    )
    assert Outcome.objects.count() == 2_500
    assert run(path)[1].endswith("0 loaded, 2500 already loaded, 0 refused.\n")
    assert Outcome.objects.count() == 2_500


def test_a_write_refused_at_the_first_batch_stored_nothing_and_exits_1(
    decisions, tmp_path, monkeypatch
):
    path = payments(tmp_path / "outcomes.csv", decisions[0], 3)
    fail_batch(monkeypatch, 1)
    with pytest.raises(CommandError) as caught:
        run(path)
    assert caught.value.returncode == 1
    assert str(caught.value).startswith("Nothing of outcomes.csv was stored")
    assert not Outcome.objects.exists()


def test_a_semicolon_csv_with_a_byte_order_mark_loads(decisions, api_client_user, tmp_path):
    """As Excel writes "CSV UTF-8" where the decimal separator is a comma."""
    a = str(decisions[0].decision_id)
    path = tmp_path / "outcomes.csv"
    text = f"decision_id;event;amount;occurred_at\r\n{a};paid;80.25;2026-03-20T09:00:00Z\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    status, out = run(path)
    assert status == 0, out
    assert "outcomes.csv: 1 row: 1 loaded, 0 already loaded, 0 refused." in out
    assert str(Outcome.objects.get(event="paid").amount) == "80.25"


def test_a_parquet_file_loads_like_a_csv(decisions, tmp_path):
    a, b, _ = (str(d.decision_id) for d in decisions)
    frame = pd.DataFrame(
        {
            "decision_id": [a, a, b],
            "event": ["accepted", "defaulted", "complained"],
            "amount": [None, 2550.0, None],
            "occurred_at": pd.to_datetime(
                [DECIDED + timedelta(days=d) for d in (1, 90, 2)], utc=True
            ),
        }
    )
    path = tmp_path / "outcomes.parquet"
    frame.to_parquet(path)
    status, text = run(path)
    assert status == 0, text
    assert "3 rows: 3 loaded, 0 already loaded, 0 refused." in text
    loss = Outcome.objects.get(event="defaulted")
    assert (str(loss.amount), loss.occurred_at) == ("2550.00", DECIDED + timedelta(days=90))
    assert run(path) == (0, f"{path.name}: 3 rows: 0 loaded, 3 already loaded, 0 refused.\n")


def test_time_zone_naive_parquet_times_are_refused_by_row(decisions, tmp_path):
    frame = pd.DataFrame(
        {
            "decision_id": [str(decisions[0].decision_id)],
            "event": ["accepted"],
            "occurred_at": [datetime(2026, 3, 3, 9, 0)],
        }
    )
    path = tmp_path / "naive.parquet"
    frame.to_parquet(path)
    status, text = run(path)
    assert status == 1  # its only row refused: nothing loaded
    assert "row 1: occurred_at: needs a time zone" in text


@pytest.mark.parametrize(
    ("name", "content", "sentence"),
    [
        ("broken.parquet", b"PAR1 not really", "broken.parquet could not be read as Parquet"),
        (
            "trailing.csv",
            b"decision_id,event,occurred_at\nx,accepted,2026-03-02T12:00:00Z,\n",
            "trailing.csv could not be read as CSV: line 2 has 4 fields where the header has 3",
        ),
        ("legacy.csv", "decision_id,event,occurred_at\nx,déclin,y\n".encode("cp1252"), "not UTF-8"),
        ("outcomes.xlsx", b"whatever", "is neither a CSV nor a Parquet file"),
        (
            "short.csv",
            b"decision_id,when\nx,y\n",
            "short.csv lacks the columns event, occurred_at",
        ),
    ],
)
def test_an_unreadable_file_or_missing_columns_stop_with_a_sentence(
    api_client_user, tmp_path, name, content, sentence
):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CommandError, match=sentence):
        run(path)
    assert not OutcomeBatch.objects.exists()


def test_a_missing_file_and_an_unknown_user_are_named(api_client_user, tmp_path):
    with pytest.raises(CommandError, match="There is no file"):
        run(tmp_path / "nowhere.csv")
    with pytest.raises(CommandError, match="There is no user called 'nobody'"):
        run(tmp_path / "nowhere.csv", user="nobody")


def test_only_clients_and_admins_import(maker, decisions, tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text("decision_id,event,occurred_at\n")
    with pytest.raises(CommandError, match="may not report outcomes"):
        run(path, user=maker.username)

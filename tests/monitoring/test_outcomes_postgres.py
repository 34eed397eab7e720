"""On PostgreSQL: outcomes are append-only, and racing batches store each outcome once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from monitoring.models import Outcome, OutcomeBatch
from monitoring.services import outcome_batch_record

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)
DECIDED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def recorded(make_decision, api_client_user):
    decision = make_decision(at=DECIDED)
    outcome_batch_record(
        actor=api_client_user,
        items=[
            {
                "decision_id": str(decision.decision_id),
                "event": "paid",
                "amount": 10,
                "occurred_at": DECIDED + timedelta(days=1),
            }
        ],
    )
    return decision


@on_postgres
@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE monitoring_outcome SET amount = 1000000",
        "DELETE FROM monitoring_outcome",
        "UPDATE monitoring_outcomebatch SET created = 0, refused = 1",
        "DELETE FROM monitoring_outcomebatch",
    ],
)
def test_postgres_refuses_changes_to_outcomes(recorded, sql):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert Outcome.objects.get().amount == 10


@on_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_batches_store_each_outcome_once(make_decision, api_client_user):
    decisions = [make_decision(at=DECIDED, customer=f"c-{i}") for i in range(50)]
    items = [
        {
            "decision_id": str(d.decision_id),
            "event": event,
            "occurred_at": DECIDED + timedelta(hours=1),
        }
        for d in decisions
        for event in ("accepted", "complained")
    ]
    barrier = threading.Barrier(4)
    reports, errors = [], []

    def post() -> None:
        try:
            barrier.wait(timeout=10)
            reports.append(outcome_batch_record(actor=api_client_user, items=items))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert Outcome.objects.count() == len(items)
    assert sum(r.created for r in reports) == len(items)
    assert sum(r.duplicates for r in reports) == 3 * len(items)
    assert OutcomeBatch.objects.count() == 4

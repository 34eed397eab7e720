"""The PostgreSQL backend's socket health check and the prepared decision path."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from arbiter.db import prepared_cursor, prepares_statements

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)
pytestmark = [on_postgres, pytest.mark.postgres]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid: int) -> None:
    """Have the server end a backend, as a restart or an idle timeout would."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(200):  # the backend is gone once pg_stat_activity stops listing it
            gone = other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
            if gone.fetchone() is None:
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} did not end")


def next_request() -> None:
    """What Django does between requests for a kept connection (``request_started``)."""
    connection.close_if_unusable_or_obsolete()


@pytest.mark.django_db(transaction=True)  # autocommit, as a web request's connection is
def test_a_connection_the_server_ended_is_replaced_before_the_next_requests_query():
    assert settings.DATABASES["default"]["ENGINE"] == "arbiter.db.postgresql"
    first = backend_pid()
    terminate(first)
    next_request()
    assert backend_pid() != first  # no error: the dead connection was noticed and replaced


@pytest.mark.django_db(transaction=True)
def test_without_the_health_check_the_same_request_would_fail(monkeypatch):
    backend_pid()
    monkeypatch.setattr(connection, "health_check_enabled", False)
    terminate(backend_pid())
    next_request()
    with pytest.raises(Exception, match=r"terminat|closed|server"):
        backend_pid()
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_live_idle_connection_is_not_pinged(monkeypatch):
    first = backend_pid()
    pings = []
    real = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: pings.append(1) or real())
    for _ in range(3):
        next_request()
        assert backend_pid() == first
    assert pings == []  # Django's own check would have sent SELECT 1 three times


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_a_prepared_cursor_prepares_once_and_answers_like_a_plain_one():
    assert prepares_statements()
    sql = "SELECT %s::int + 1, %s::text"
    for value in (1, 2, 3):
        with prepared_cursor() as cursor:
            cursor.execute(sql, [value, "x"])
            assert cursor.fetchone() == (value + 1, "x")
    assert sum("+ 1" in text for text in prepared_statements()) == 1


@pytest.mark.django_db
def test_prepared_statements_can_be_turned_off(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::int * 7", [6])
        assert cursor.fetchone() == (42,)
    assert not any("* 7" in text for text in prepared_statements())


@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_survives_a_migration_changing_a_column_it_returns():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE test_prepared_cols (a integer)")
        cursor.execute("INSERT INTO test_prepared_cols VALUES (7)")
    try:
        with prepared_cursor() as cursor:
            cursor.execute("SELECT a FROM test_prepared_cols WHERE a = %s", [7])
            assert cursor.fetchone() == (7,)
        params = connection.get_connection_params()
        for name in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(name, None)
        with psycopg.connect(**params, autocommit=True) as other:  # a migration elsewhere
            other.execute("ALTER TABLE test_prepared_cols ALTER COLUMN a TYPE bigint")
        # PostgreSQL refuses the old plan ("cached plan must not change result type"):
        # the cursor prepares the statement again instead of failing every request.
        with prepared_cursor() as cursor:
            cursor.execute("SELECT a FROM test_prepared_cols WHERE a = %s", [7])
            assert cursor.fetchone() == (7,)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE test_prepared_cols")

"""Database helpers for the few statements every real-time decision runs.

A decision request asks the database two things on PostgreSQL: its API key (with the user
and roles), and the INSERT that logs the decision (checking on the way that the deployment
version is still active). Django binds
parameters on the client, so PostgreSQL parses and plans each statement afresh; planning
the key lookup alone cost 0.33 ms, several times its execution. ``prepared_cursor`` runs
them as server-side prepared statements instead: parsed and planned once per connection,
then only executed (ADR 0012).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connections


def _prepared_cursor_class() -> type:
    import psycopg

    class PreparedCursor(psycopg.Cursor):
        """Binds parameters on the server and prepares every statement it runs.

        psycopg keeps the prepared statements per connection (``prepared_max`` of them,
        least recently used out first), so a statement is planned once per connection.
        """

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs["prepare"] = True
            try:
                return super().execute(query, params, **kwargs)
            except psycopg.errors.FeatureNotSupported:
                # "cached plan must not change result type": a migration (on another
                # connection) changed the type of a column this statement returns. Outside
                # a transaction nothing was done: drop this connection's prepared
                # statements (psycopg forgets its own on DEALLOCATE ALL) and run it again.
                # Inside one, the rollback to come makes psycopg forget them.
                if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    raise
                super().execute("DEALLOCATE ALL", prepare=False)
                return super().execute(query, params, **kwargs)

    return PreparedCursor


_classes: list[type] = []


def prepares_statements(using: str = "default") -> bool:
    """Whether ``prepared_cursor`` prepares on this database: PostgreSQL (psycopg 3),
    unless ``DATABASE_PREPARED_STATEMENTS`` is off (a connection pooler that cannot keep
    prepared statements, such as PgBouncer before 1.21 in transaction mode)."""
    return connections[using].vendor == "postgresql" and settings.DATABASE_PREPARED_STATEMENTS


@contextmanager
def prepared_cursor(using: str = "default") -> Iterator[Any]:
    """A cursor like ``connection.cursor()`` (same connection and transaction, Django's
    error classes, query logging and execute wrappers) whose statements are prepared on
    PostgreSQL. Elsewhere it is ``connection.cursor()``.

    Only for statements written once and run often with different parameters: each
    distinct text becomes a prepared statement of the connection.
    """
    connection = connections[using]
    if not prepares_statements(using):
        with connection.cursor() as cursor:
            yield cursor
        return
    if not _classes:
        _classes.append(_prepared_cursor_class())
    # What ``connection.cursor()`` does before it makes Django's own cursor.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        if connection.connection.prepare_threshold is None:
            # Django turns psycopg's preparing off (None) for poolers' sake; a threshold
            # no count reaches prepares only what asks to be (``prepare=True``, below).
            # Django's own cursors bind on the client and never prepare.
            connection.connection.prepare_threshold = sys.maxsize
        raw = _classes[0](connection.connection)
    if connection.queries_logged:
        cursor = connection.make_debug_cursor(raw)
    else:
        cursor = connection.make_cursor(raw)
    with cursor:
        yield cursor

"""Deployment checks (``manage.py check --deploy``): the embedded defaults that suit the
demo but not a production service."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import Error as DatabaseError
from django.db import connections


@checks.register(checks.Tags.compatibility, deploy=True)
def embedded_defaults(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if settings.CELERY_TASK_ALWAYS_EAGER:
        found.append(
            checks.Warning(
                "CELERY_BROKER_URL is not set, so tasks run inside the web request that "
                "starts them: an optimisation run, a seal of the decision log or a "
                "verification of it outlives the web server's timeout on a large portfolio, "
                "and nothing runs the schedules (the daily verification, drift checks, "
                "reports, the recovery of stopped runs).",
                hint="Set CELERY_BROKER_URL (docker-compose.yml runs Redis) and run a worker "
                "and one beat (docs/operations.md).",
                id="arbiter.W001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        found.append(
            checks.Warning(
                "The database is SQLite: the decision log's append-only triggers exist "
                "only on PostgreSQL, and SQLite takes one writer at a time, so decisions "
                "wait on each other and on optimisation runs.",
                hint="Set DATABASE_URL to PostgreSQL (docker-compose.yml runs it).",
                id="arbiter.W002",
            )
        )
    return found


@checks.register(checks.Tags.database)
def database_reachable(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``manage.py check --database NAME`` (the container entrypoint's wait for the
    database, and ``migrate``): connect as the application will. Django's own database
    checks do not connect on PostgreSQL, so without this a wrong password, a role not
    created yet or a server not up passed the wait, and the server started without its
    database."""
    found: list[checks.CheckMessage] = []
    for alias in databases or []:
        try:
            connections[alias].ensure_connection()
        except DatabaseError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            found.append(
                checks.Error(
                    f"Cannot connect to database {alias!r}: {reason}",
                    hint="Check DATABASE_URL, that the server is up, and that its role "
                    'exists (docs/operations.md, "The database role").',
                    id="arbiter.E001",
                )
            )
    return found

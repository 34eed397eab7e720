"""The application's database role (platform/postgres/app-role.sql) keeps the log append-only.

The triggers that refuse changes to the decision log and the audit trail hold only against a
role that does not own the tables: an owner or a superuser can switch them off. Each test
applies the file to the test database for a role of its own, as docker-compose.yml does on a
new volume, and drops the role after. The tables' owner is the user pytest-django created
them with (DATABASE_URL's, a superuser), as in compose it is the user that runs migrations.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from psycopg import errors, sql

from decisions.decision_log import decision_blocks_seal, decision_log_verify
from decisions.models import Decision, DecisionPurge
from decisions.retention import decision_log_purge
from decisions.services import decision_make
from tests.decisions.test_decision_log import features

SQL_FILE = Path(__file__).resolve().parents[2] / "platform" / "postgres" / "app-role.sql"

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)
# Committed rows: the role's connections are separate sessions and see only those.
pytestmark = [on_postgres, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


# --- connections ----------------------------------------------------------------------------


def _params() -> dict[str, Any]:
    """libpq parameters of Django's connection to the test database (as the owner)."""
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    return params


def _owner() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


@contextmanager
def as_owner() -> Iterator[psycopg.Connection]:
    with psycopg.connect(**_params(), autocommit=True) as owner:
        yield owner


@contextmanager
def as_role(role: tuple[str, str]) -> Iterator[psycopg.Connection]:
    name, password = role
    with psycopg.connect(**{**_params(), "user": name, "password": password}) as app:
        yield app


@contextmanager
def django_as_role(role: tuple[str, str]) -> Iterator[None]:
    """Django's own connection logs in as the role inside the block, as the application's
    does in production."""
    saved = {key: connection.settings_dict[key] for key in ("USER", "PASSWORD")}
    connection.close()
    connection.settings_dict.update(USER=role[0], PASSWORD=role[1])
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def apply_sql(**variables: str) -> subprocess.CompletedProcess[str]:
    """``psql -v NAME=VALUE ... -f app-role.sql`` as the owner, on the test database."""
    libpq = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
    params = _params()
    env = {**os.environ, "PGDATABASE": params["dbname"]}
    env |= {libpq[key]: str(value) for key, value in params.items() if key in libpq and value}
    command = ["psql", "--no-psqlrc", "--quiet"]
    for name, value in variables.items():
        command += ["--set", f"{name}={value}"]
    return subprocess.run(
        [*command, "--file", str(SQL_FILE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def drop_role(name: str) -> None:
    """The role and every privilege it holds here, default privileges included."""
    with as_owner() as owner:
        if owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def unique_role_name() -> str:
    return f"arbiter_app_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def app_role() -> Iterator[tuple[str, str]]:
    role = (unique_role_name(), secrets.token_urlsafe(24))
    try:
        result = apply_sql(app_role=role[0], app_password=role[1])
        assert result.returncode == 0, result.stderr
        yield role
    finally:
        drop_role(role[0])


@pytest.fixture
def logged(cross_sell_deployment, api_client_user, settings) -> list[Decision]:
    """Four decisions sealed in two blocks, written by the owner."""
    settings.DECISION_BLOCK_ROWS = 2
    decisions = [
        decision_make(
            actor=api_client_user,
            deployment="cross-sell",
            customer_id=f"logged-{i}",
            features=features(i),
        ).decision
        for i in range(4)
    ]
    assert len(decision_blocks_seal(grace_seconds=0)) == 2
    return decisions


def assert_log_intact(decisions: list[Decision]) -> None:
    stored = Decision.objects.order_by("seq").values_list("decision_id", "value")
    assert list(stored) == [(d.decision_id, d.value) for d in decisions]
    assert decision_log_verify().ok


# --- what the role may do -------------------------------------------------------------------


def test_the_application_logs_seals_and_verifies_decisions_as_the_role(
    app_role, cross_sell_deployment, api_client_user, settings
):
    settings.DECISION_BLOCK_ROWS = 2
    with django_as_role(app_role):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            assert cursor.fetchone() == (app_role[0], False)
        for i in range(3):
            decision_make(
                actor=api_client_user,
                deployment="cross-sell",
                customer_id=f"c-{i}",
                features=features(i),
            )
        assert len(decision_blocks_seal(grace_seconds=0)) == 2
        assert decision_log_verify().ok
    assert Decision.objects.count() == 3


def test_the_retention_purge_still_removes_old_blocks_as_the_role(
    app_role, logged, admin_user, settings
):
    # The one DELETE the triggers let through: its purge record first, then the rows.
    settings.DECISION_RETENTION_MONTHS = 0
    with django_as_role(app_role):
        report = decision_log_purge(actor=admin_user)
        assert decision_log_verify().ok
    assert (report.blocks, report.rows) == (2, 4)
    assert not Decision.objects.exists()
    assert DecisionPurge.objects.get().through_block == 2


def test_the_role_owns_nothing_and_may_change_rows_but_not_tables(app_role):
    name = app_role[0]
    with as_owner() as owner:
        tables = [
            row[0]
            for row in owner.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        sequences = [
            row[0]
            for row in owner.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
        ]
        assert "decisions_decision" in tables and sequences

        def table_privileges(table: str) -> set[str]:
            asked = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
            return {
                privilege
                for privilege in asked
                if owner.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", [name, f"public.{table}", privilege]
                ).fetchone()[0]
            }

        for table in tables:
            assert table_privileges(table) == {"SELECT", "INSERT", "UPDATE", "DELETE"}, table
        for sequence in sequences:
            granted = owner.execute(
                "SELECT has_sequence_privilege(%(r)s, %(s)s, 'USAGE'),"
                " has_sequence_privilege(%(r)s, %(s)s, 'SELECT'),"
                " has_sequence_privilege(%(r)s, %(s)s, 'UPDATE')",
                {"r": name, "s": f"public.{sequence}"},
            ).fetchone()
            assert granted == (True, True, False), sequence
        database = owner.execute(
            "SELECT has_database_privilege(%(r)s, current_database(), 'CONNECT'),"
            " has_database_privilege(%(r)s, current_database(), 'CREATE'),"
            " has_database_privilege(%(r)s, current_database(), 'TEMPORARY'),"
            " has_schema_privilege(%(r)s, 'public', 'USAGE'),"
            " has_schema_privilege(%(r)s, 'public', 'CREATE')",
            {"r": name},
        ).fetchone()
        assert database == (True, False, False, True, False)
        attributes = owner.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin"
            " FROM pg_roles WHERE rolname = %s",
            [name],
        ).fetchone()
        assert attributes == (False, False, False, False, False, True)
        owned = owner.execute(
            "SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid"
            " WHERE r.rolname = %s AND d.deptype = 'o'",
            [name],
        ).fetchone()[0]
        assert owned == 0


def test_a_table_a_later_migration_creates_is_usable_by_the_role(app_role):
    table = f"later_{uuid.uuid4().hex[:8]}"
    create = sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, note text NOT NULL)")
    with as_owner() as owner:
        owner.execute(create.format(sql.Identifier(table)))
    try:
        with as_role(app_role) as app:
            t = sql.Identifier(table)
            app.execute(sql.SQL("INSERT INTO {} (note) VALUES ('a'), ('b')").format(t))
            app.execute(sql.SQL("UPDATE {} SET note = 'c' WHERE id = 1").format(t))
            app.execute(sql.SQL("DELETE FROM {} WHERE id = 2").format(t))
            assert app.execute(sql.SQL("SELECT id, note FROM {}").format(t)).fetchall() == [
                (1, "c")
            ]
            app.commit()
            for statement in (
                "TRUNCATE {}",
                "ALTER TABLE {} ADD COLUMN extra int",
                "DROP TABLE {}",
            ):
                with pytest.raises(errors.InsufficientPrivilege):
                    app.execute(sql.SQL(statement).format(t))
                app.rollback()
    finally:
        with as_owner() as owner:
            owner.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


# --- what it may not ------------------------------------------------------------------------

# Each would let the role change logged decisions; PostgreSQL refuses it a privilege.
SWITCHING_OFF = {
    "disable-all-triggers": "ALTER TABLE decisions_decision DISABLE TRIGGER ALL",
    "disable-the-trigger": (
        "ALTER TABLE decisions_decision DISABLE TRIGGER decisions_decision_append_only"
    ),
    "replica-mode": "SET session_replication_role = replica",
    "drop-the-trigger": "DROP TRIGGER decisions_decision_append_only ON decisions_decision",
    "drop-the-table": "DROP TABLE decisions_decision CASCADE",
    # Row triggers do not fire on TRUNCATE.
    "truncate": "TRUNCATE decisions_decision CASCADE",
    "replace-the-function": (
        "CREATE OR REPLACE FUNCTION decisions_refuse_change() RETURNS trigger"
        " LANGUAGE plpgsql AS 'BEGIN RETURN OLD; END'"
    ),
    # A temporary table is found before the real one: the trigger would then ask this one
    # whether a purge record covers the row.
    "shadow-the-purge-records": "CREATE TEMPORARY TABLE decisions_decisionpurge (last_seq bigint)",
    "become-the-owner": "SET ROLE {owner}",
    "become-a-superuser": "ALTER ROLE CURRENT_USER SUPERUSER",
}

# The triggers refuse these for the role as for anyone.
CHANGING_ROWS = {
    "update-a-decision": ["UPDATE decisions_decision SET value = value + 1"],
    "delete-a-decision": ["DELETE FROM decisions_decision"],
    "delete-as-the-purge-would": [
        "SET LOCAL arbiter.retention_purge = 'on'",
        "DELETE FROM decisions_decision",
    ],
    "update-a-block": ["UPDATE decisions_decisionblock SET row_count = 0"],
    "delete-a-block": ["DELETE FROM decisions_decisionblock"],
    "update-an-audit-event": ["UPDATE governance_auditevent SET actor_username = 'someone-else'"],
    "delete-an-audit-event": ["DELETE FROM governance_auditevent"],
}


@pytest.mark.parametrize("statement", SWITCHING_OFF.values(), ids=SWITCHING_OFF.keys())
def test_the_role_cannot_switch_the_triggers_off(app_role, logged, statement):
    with as_role(app_role) as app:
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute(sql.SQL(statement).format(owner=sql.Identifier(_owner())))
        app.rollback()
        # The same session still meets the trigger.
        with pytest.raises(errors.IntegrityConstraintViolation, match="append-only"):
            app.execute("DELETE FROM decisions_decision")
        app.rollback()
    assert_log_intact(logged)


@pytest.mark.parametrize("statements", CHANGING_ROWS.values(), ids=CHANGING_ROWS.keys())
def test_the_role_cannot_change_logged_rows(app_role, logged, statements):
    *before, change = statements
    with as_role(app_role) as app:
        for statement in before:
            app.execute(statement)
        with pytest.raises(errors.IntegrityConstraintViolation, match="append-only"):
            app.execute(change)
        app.rollback()
    assert_log_intact(logged)


# --- running the file -----------------------------------------------------------------------


def test_running_it_again_changes_nothing_but_the_password(app_role):
    def privileges() -> list[tuple]:
        with as_owner() as owner:
            return owner.execute(
                "SELECT c.relname, c.relacl::text FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                " UNION ALL SELECT 'default', defaclacl::text FROM pg_default_acl"
                " UNION ALL SELECT datname, datacl::text FROM pg_database"
                " WHERE datname = current_database() ORDER BY 1, 2"
            ).fetchall()

    before = privileges()
    password = secrets.token_urlsafe(24)
    result = apply_sql(app_role=app_role[0], app_password=password)
    assert result.returncode == 0, result.stderr
    assert privileges() == before
    with as_role((app_role[0], password)) as app:
        assert app.execute("SELECT current_user").fetchone() == (app_role[0],)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(None, "must not be the owner", id="the-owner-itself"),
        pytest.param("CREATE ROLE {role} SUPERUSER", "has SUPERUSER", id="a-superuser"),
        pytest.param(
            "CREATE ROLE {role}; GRANT {owner} TO {role}",
            "is a member of",
            id="a-member-of-the-owner",
        ),
        pytest.param(
            "CREATE ROLE {role}; CREATE TABLE {table} (id int);"
            " ALTER TABLE {table} OWNER TO {role}",
            "owns objects",
            id="an-owner-of-a-table",
        ),
    ],
)
def test_it_refuses_a_role_that_could_switch_the_triggers_off(setup, message):
    name = _owner() if setup is None else unique_role_name()
    table = f"owned_{uuid.uuid4().hex[:8]}"
    try:
        if setup:
            with as_owner() as owner:
                for statement in setup.split(";"):
                    owner.execute(
                        sql.SQL(statement).format(
                            role=sql.Identifier(name),
                            owner=sql.Identifier(_owner()),
                            table=sql.Identifier(table),
                        )
                    )
        result = apply_sql(app_role=name, app_password="unused")
        assert result.returncode != 0
        assert message in result.stderr
        if setup:  # nothing was granted: the transaction never committed
            with as_owner() as owner:
                granted = owner.execute(
                    "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a"
                    " JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = %s",
                    [name],
                ).fetchone()
                assert granted == (0,)
    finally:
        with as_owner() as owner:
            owner.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        if setup:
            drop_role(name)


def test_it_refuses_an_owner_whose_tables_these_are_not():
    # The default privileges would follow the wrong role: the next migration's tables would
    # be out of the application's reach.
    bystander = unique_role_name()
    try:
        with as_owner() as owner:
            owner.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(bystander)))
        result = apply_sql(app_role=unique_role_name(), app_password="unused", owner=bystander)
        assert result.returncode != 0
        assert f"{bystander} owns no table here" in result.stderr
    finally:
        drop_role(bystander)


def test_it_names_the_variables_it_needs():
    result = apply_sql(app_role=unique_role_name())
    assert result.returncode != 0
    assert "needs -v app_password=SECRET" in result.stderr

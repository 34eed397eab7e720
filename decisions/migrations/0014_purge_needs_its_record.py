"""The retention purge's DELETE gets through the log's trigger only for rows a purge record
covers.

Before, ``arbiter.retention_purge`` alone let any DELETE of decisions through, and any
session may set a setting: whoever held the application's database credentials could
remove decisions not yet sealed (which no check can then miss) by setting it first. Now a
row goes only if its ``seq`` is at most the ``last_seq`` of a ``DecisionPurge``, which
``decision_log_purge`` writes before it deletes and which is itself append-only: rows not
yet sealed can never be deleted, and a purge cannot happen without a lasting record that
verification checks against the blocks (``docs/decisions.md``, Retention).
"""

from django.db import migrations

PREVIOUS = r"""
CREATE OR REPLACE FUNCTION decisions_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'decisions_decision'
            AND current_setting('arbiter.retention_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""

# Nested: PL/pgSQL does not promise to stop at the first false AND, and OLD has no seq
# in the other tables this function guards. The purge records' table is named with its
# schema ({schema}, the migration's): a bare name would find a temporary table of that name
# first, which a session could fill with any last_seq.
FORWARD = r"""
CREATE OR REPLACE FUNCTION decisions_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'decisions_decision'
            AND current_setting('arbiter.retention_purge', true) = 'on' THEN
        IF OLD.seq <= (SELECT max(last_seq) FROM {schema}.decisions_decisionpurge) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            schema = schema_editor.quote_name(cursor.fetchone()[0])
            cursor.execute(FORWARD.replace("{schema}", schema))


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [("decisions", "0013_log_verification_source_api")]

    operations = [migrations.RunPython(forward, backward)]

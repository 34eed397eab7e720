"""Outcomes go with their decisions only: the retention purge's DELETE gets through the
outcome trigger only for outcomes of decisions a purge record covers (as for the
decisions themselves, ``decisions/0014``), not for any session that sets
``arbiter.retention_purge``."""

from django.db import migrations

PREVIOUS = r"""
CREATE OR REPLACE FUNCTION monitoring_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'monitoring_outcome'
            AND current_setting('arbiter.retention_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""

FORWARD = r"""
CREATE OR REPLACE FUNCTION monitoring_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'monitoring_outcome'
            AND current_setting('arbiter.retention_purge', true) = 'on' THEN
        IF (SELECT seq FROM {schema}.decisions_decision WHERE decision_id = OLD.decision_id)
                <= (SELECT max(last_seq) FROM {schema}.decisions_decisionpurge) THEN
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
            # Tables named with their schema: a bare name would find a temporary table of
            # that name first (decisions/0014).
            cursor.execute("SELECT current_schema()")
            schema = schema_editor.quote_name(cursor.fetchone()[0])
            cursor.execute(FORWARD.replace("{schema}", schema))


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0005_outcomes_purged_with_their_decisions"),
        ("decisions", "0014_purge_needs_its_record"),
    ]

    operations = [migrations.RunPython(forward, backward)]

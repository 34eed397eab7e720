"""Retention purges remove the outcomes of the decisions they remove: the outcome trigger
lets a DELETE through inside ``decision_log_purge``'s transaction (``arbiter.retention_purge``
set LOCAL); every other UPDATE or DELETE of outcomes and their batches is still refused."""

from django.db import migrations

REFUSE = r"""
CREATE OR REPLACE FUNCTION monitoring_refuse_change() RETURNS trigger AS $$
BEGIN
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
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(REFUSE)


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0004_drift_reports")]

    operations = [migrations.RunPython(forward, backward)]

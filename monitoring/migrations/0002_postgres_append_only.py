"""PostgreSQL triggers: outcomes and their batches are append-only (a correction is a new
event, never an edit)."""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION monitoring_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS monitoring_outcome_append_only ON monitoring_outcome;
CREATE TRIGGER monitoring_outcome_append_only
    BEFORE UPDATE OR DELETE ON monitoring_outcome
    FOR EACH ROW EXECUTE FUNCTION monitoring_refuse_change();

DROP TRIGGER IF EXISTS monitoring_outcomebatch_append_only ON monitoring_outcomebatch;
CREATE TRIGGER monitoring_outcomebatch_append_only
    BEFORE UPDATE OR DELETE ON monitoring_outcomebatch
    FOR EACH ROW EXECUTE FUNCTION monitoring_refuse_change();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS monitoring_outcomebatch_append_only ON monitoring_outcomebatch;
DROP TRIGGER IF EXISTS monitoring_outcome_append_only ON monitoring_outcome;
DROP FUNCTION IF EXISTS monitoring_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]

"""PostgreSQL triggers: the decision log and its seals are append-only."""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION decisions_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS decisions_decision_append_only ON decisions_decision;
CREATE TRIGGER decisions_decision_append_only
    BEFORE UPDATE OR DELETE ON decisions_decision
    FOR EACH ROW EXECUTE FUNCTION decisions_refuse_change();

DROP TRIGGER IF EXISTS decisions_decisionblock_append_only ON decisions_decisionblock;
CREATE TRIGGER decisions_decisionblock_append_only
    BEFORE UPDATE OR DELETE ON decisions_decisionblock
    FOR EACH ROW EXECUTE FUNCTION decisions_refuse_change();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS decisions_decisionblock_append_only ON decisions_decisionblock;
DROP TRIGGER IF EXISTS decisions_decision_append_only ON decisions_decision;
DROP FUNCTION IF EXISTS decisions_refuse_change();
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
    dependencies = [("decisions", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]

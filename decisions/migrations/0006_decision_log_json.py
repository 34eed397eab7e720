"""PostgreSQL: the decision log's JSON columns become ``json`` instead of ``jsonb``.

The log is written once and read whole; nothing queries inside its JSON. Parsing each
decision's JSON into ``jsonb`` was about half of the server's work per row when a run
COPYs its decisions (191 us a row into ``jsonb``, 92 us into ``json``, both with lz4;
ADR 0011, benchmarks/RESULTS.md). One ALTER TABLE changes all eight columns, so the
table is rewritten once (it holds an exclusive lock meanwhile: on a large log, run it in
a maintenance window). A type change resets a column's compression, so lz4 is set again
where the server has it. Other databases keep their own JSON type: nothing changes there.
"""

import decisions.models
from django.db import migrations

COLUMNS = (
    "versions",
    "features",
    "actions",
    "action",
    "prices",
    "reasons",
    "contributions",
    "explanation",
)
HELP = {
    "versions": "every version used, with its content hash",
    "actions": "each action: eligible, value, score, failed rules",
    "contributions": "raw SHAP contributions per model",
}


def _retype(schema_editor, kind: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        changes = ", ".join(f"ALTER COLUMN {c} TYPE {kind} USING {c}::{kind}" for c in COLUMNS)
        cursor.execute(f"ALTER TABLE decisions_decision {changes}")
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        row = cursor.fetchone()
        if row and row[0]:
            changes = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION lz4" for c in COLUMNS)
            cursor.execute(f"ALTER TABLE decisions_decision {changes}")


def forward(apps, schema_editor):
    _retype(schema_editor, "json")


def backward(apps, schema_editor):
    _retype(schema_editor, "jsonb")


class Migration(migrations.Migration):
    dependencies = [("decisions", "0005_decision_log_lz4")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
                migrations.AlterField(
                    model_name="decision",
                    name=name,
                    field=decisions.models.LogJSONField(help_text=HELP.get(name, "")),
                )
                for name in COLUMNS
            ],
        )
    ]

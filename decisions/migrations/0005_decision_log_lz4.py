"""PostgreSQL: compress the decision log's JSON columns with lz4 instead of pglz.

A logged decision is about 4 KB, so PostgreSQL compresses its JSON columns (TOAST) on
every insert. pglz cost about a third of the server's time per row when an optimisation
run COPYs its decisions (20,000 onboarding decisions: 161-173 us per row with pglz,
102-110 with lz4, on the same rows; benchmarks/RESULTS.md). Only new values are
compressed the new way; nothing is rewritten. Servers built without lz4 keep pglz.
"""

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


def _lz4_available(cursor) -> bool:
    cursor.execute(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def _set(schema_editor, method: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if method == "lz4" and not _lz4_available(cursor):
            return
        changes = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in COLUMNS)
        cursor.execute(f"ALTER TABLE decisions_decision {changes}")


def forward(apps, schema_editor):
    _set(schema_editor, "lz4")


def backward(apps, schema_editor):
    _set(schema_editor, "default")


class Migration(migrations.Migration):
    dependencies = [("decisions", "0004_run_execution")]

    operations = [migrations.RunPython(forward, backward)]

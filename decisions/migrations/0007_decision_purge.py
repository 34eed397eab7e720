"""Retention purges: their record, and the one DELETE the log's trigger lets through.

``decision_log_purge`` sets ``arbiter.retention_purge`` for its own transaction (SET
LOCAL) to remove the rows of whole sealed blocks past retention; every other UPDATE or
DELETE of the log, its blocks or the purge records is still refused.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

REFUSE = r"""
CREATE OR REPLACE FUNCTION decisions_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""

FORWARD = r"""
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

DROP TRIGGER IF EXISTS decisions_decisionpurge_append_only ON decisions_decisionpurge;
CREATE TRIGGER decisions_decisionpurge_append_only
    BEFORE UPDATE OR DELETE ON decisions_decisionpurge
    FOR EACH ROW EXECUTE FUNCTION decisions_refuse_change();
"""

BACKWARD = (
    "DROP TRIGGER IF EXISTS decisions_decisionpurge_append_only ON decisions_decisionpurge;"
    + REFUSE
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKWARD)


class Migration(migrations.Migration):

    dependencies = [
        ('decisions', '0006_decision_log_json'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='DecisionPurge',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('through_block', models.PositiveBigIntegerField(unique=True)),
                ('last_seq', models.BigIntegerField(help_text='the last seq of block through_block')),
                ('rows_removed', models.PositiveBigIntegerField()),
                ('outcomes_removed', models.PositiveBigIntegerField()),
                ('before', models.DateTimeField(help_text='blocks sealed before this time were purged')),
                ('purged_at', models.DateTimeField()),
                ('purged_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['through_block'],
            },
        ),
        migrations.RunPython(forward, backward),
    ]

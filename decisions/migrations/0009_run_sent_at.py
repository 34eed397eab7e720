from django.db import migrations, models
from django.db.models import F


def queued_runs_were_sent_when_created(apps, schema_editor):
    """Queued runs handed to the task queue before this field count from their creation,
    so beat sends them again should the broker have lost them."""
    run = apps.get_model("decisions", "OptimisationRun")
    run.objects.filter(status="queued").exclude(task_id="").update(sent_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("decisions", "0008_log_verifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="optimisationrun",
            name="sent_at",
            field=models.DateTimeField(
                blank=True,
                help_text="when the run's task was last handed to the task queue",
                null=True,
            ),
        ),
        migrations.RunPython(queued_runs_were_sent_when_created, migrations.RunPython.noop),
    ]

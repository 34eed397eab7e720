"""Alerts and the executive report archive; the report's weekly schedule as a periodic task.

The schedule (Mondays 07:00 UTC) is a django-celery-beat row, so operators change it in the
admin; it is created only when absent, never overwritten.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


REPORT_TASK_NAME = "executive-report-weekly"


def create_report_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=REPORT_TASK_NAME).exists():
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0",
        hour="7",
        day_of_week="1",
        day_of_month="*",
        month_of_year="*",
        timezone="UTC",
    )
    PeriodicTask.objects.create(
        name=REPORT_TASK_NAME,
        task="monitoring.tasks.executive_report_send_task",
        crontab=crontab,
        kwargs='{"report": "executive"}',
        description=(
            "The executive KPI report by e-mail (monitoring). Recipients are the active "
            "report_recipients version named in kwargs; change the time here."
        ),
        enabled=True,
    )


def remove_report_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=REPORT_TASK_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0003_postgres_guards'),
        ('monitoring', '0002_postgres_append_only'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Alert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('deployment_name', models.CharField(max_length=100)),
                ('rule_name', models.CharField(max_length=60)),
                ('rule_kind', models.CharField(choices=[('kpi_below_target', 'KPI misses its target'), ('drift_share', 'Share of drifted features above a threshold'), ('psi', 'Population stability index above a threshold')], max_length=20)),
                ('subject', models.CharField(help_text='the KPI key or the model name', max_length=200)),
                ('status', models.CharField(choices=[('open', 'Open (the condition holds)'), ('cleared', 'Cleared (the condition no longer holds)')], default='open', max_length=8)),
                ('message', models.TextField()),
                ('observed', models.FloatField(blank=True, null=True)),
                ('threshold', models.FloatField(blank=True, null=True)),
                ('opened_at', models.DateTimeField()),
                ('last_seen_at', models.DateTimeField(help_text='the last evaluation that found the breach')),
                ('cleared_at', models.DateTimeField(blank=True, null=True)),
                ('recipients', models.JSONField(default=list)),
                ('notified_at', models.DateTimeField(blank=True, null=True)),
                ('notify_attempts', models.PositiveIntegerField(default=0)),
                ('notify_error', models.TextField(blank=True, default='')),
                ('rules_version', models.ForeignKey(help_text='the alert_rules version whose rule was breached', on_delete=django.db.models.deletion.PROTECT, related_name='+', to='governance.version')),
            ],
            options={
                'ordering': ['-opened_at', '-pk'],
                'indexes': [models.Index(fields=['status', '-opened_at'], name='alert_status_opened_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('deployment_name', 'rule_name'), name='alert_one_open_per_rule'), models.CheckConstraint(condition=models.Q(('status__in', ['open', 'cleared'])), name='alert_status_known'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'open'), ('cleared_at__isnull', True)), models.Q(('status', 'cleared'), ('cleared_at__isnull', False)), _connector='OR'), name='alert_cleared_when_cleared')],
            },
        ),
        migrations.CreateModel(
            name='ExecutiveReport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('report_name', models.CharField(max_length=100)),
                ('trigger', models.CharField(choices=[('schedule', 'Scheduled (Celery beat)'), ('manual', 'Sent now from the reviewer pages'), ('command', 'manage.py send_report')], max_length=8)),
                ('status', models.CharField(choices=[('sent', 'Sent'), ('failed', 'Failed to send')], max_length=8)),
                ('created_at', models.DateTimeField()),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('since', models.DateTimeField()),
                ('until', models.DateTimeField()),
                ('recipients', models.JSONField(default=list)),
                ('subject', models.CharField(max_length=300)),
                ('text_body', models.TextField()),
                ('html_body', models.TextField()),
                ('message', models.TextField(help_text='the MIME message as sent, inline images included')),
                ('summary', models.JSONField(default=dict, help_text='the figures shown, per deployment')),
                ('error', models.TextField(blank=True, default='')),
                ('recipients_version', models.ForeignKey(help_text='the report_recipients version the report went to', on_delete=django.db.models.deletion.PROTECT, related_name='+', to='governance.version')),
                ('sent_by', models.ForeignKey(blank=True, help_text='who pressed send now; empty for the schedule', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at', '-pk'],
                'constraints': [models.CheckConstraint(condition=models.Q(('status__in', ['sent', 'failed'])), name='report_status_known'), models.CheckConstraint(condition=models.Q(('trigger__in', ['schedule', 'manual', 'command'])), name='report_trigger_known')],
            },
        ),
        migrations.RunPython(create_report_schedule, remove_report_schedule),
    ]

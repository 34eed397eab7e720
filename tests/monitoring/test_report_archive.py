"""Sent reports are archived and readable in the UI; only admins send one now; beat sends it
on the schedule kept in the database."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from decisions.decision_log import decision_blocks_seal, decision_log_verify_record
from decisions.models import DecisionBlock, LogVerification
from governance import services
from governance.exceptions import PermissionDenied, PreconditionFailed, ValidationFailed
from governance.models import AuditEvent
from monitoring.models import ExecutiveReport, ReportStatus, ReportTrigger
from monitoring.reports import report_send
from monitoring.tasks import executive_report_send_task
from tests.decisions.test_decision_log import tamper
from tests.monitoring.conftest import go_live

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recipients(deployment, maker, checker):
    return go_live(
        services.version_create(
            actor=maker,
            kind="report_recipients",
            name="executive",
            content={"recipients": ["cfo@bank.example"], "window_days": 14},
        ),
        maker=maker,
        checker=checker,
    )


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_recipients_are_governed(deployment, maker, checker):
    with pytest.raises(ValidationFailed) as caught:
        services.version_create(
            actor=maker,
            kind="report_recipients",
            name="executive",
            content={"recipients": ["not-an-address"], "window_days": 0, "cc": []},
        )
    assert set(caught.value.details) == {"recipients[0]", "window_days", "cc"}
    draft = services.version_create(
        actor=maker,
        kind="report_recipients",
        name="executive",
        content={"recipients": ["CFO@bank.example"]},
    )
    assert draft.content == {
        "description": "",
        "recipients": ["cfo@bank.example"],
        "deployments": [],
        "window_days": 7,
    }
    draft = services.version_submit(actor=maker, version=draft)
    with pytest.raises(PermissionDenied):
        services.version_approve(actor=maker, version=draft, comment="Reviewed.")
    # Without an active version nothing is sent to anybody.
    with pytest.raises(PreconditionFailed) as refused:
        report_send(actor=None)
    assert refused.value.code == "no_report_recipients"
    assert not mail.outbox


def test_only_admins_send_now_and_the_report_is_archived_and_viewable(
    recipients, admin_user, checker, auditor, maker
):
    with pytest.raises(PermissionDenied):
        report_send(actor=checker, trigger=ReportTrigger.MANUAL)
    for user in (checker, auditor, maker):
        response = client_for(user).post("/monitoring/reports/send/")
        assert response.status_code == 403
        assert "Send now" not in client_for(user).get("/monitoring/reports/").content.decode()
    assert not mail.outbox and not ExecutiveReport.objects.exists()

    admin = client_for(admin_user)
    assert "Send now" in admin.get("/monitoring/reports/").content.decode()
    # Without the tick nothing goes out: the e-mail cannot be called back.
    unticked = admin.post("/monitoring/reports/send/", {"report": "executive"}, follow=True)
    assert "Nothing was sent: tick the box" in unticked.content.decode()
    assert not mail.outbox and not ExecutiveReport.objects.exists()
    response = admin.post(
        "/monitoring/reports/send/", {"report": "executive", "confirm": "yes"}, follow=True
    )
    archived = ExecutiveReport.objects.get()
    assert response.redirect_chain[-1][0] == f"/monitoring/reports/{archived.pk}/"
    assert "Report sent to 1 recipients and archived." in response.content.decode()
    assert archived.status == ReportStatus.SENT
    assert archived.trigger == ReportTrigger.MANUAL and archived.sent_by == admin_user
    assert archived.recipients_version == recipients
    assert (archived.until - archived.since).days == 14
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["cfo@bank.example"]

    # Any reader of KPIs finds it in the archive and reads it as it was sent.
    reader = client_for(auditor)
    listing = reader.get("/monitoring/reports/").content.decode()
    assert archived.subject in listing
    page = reader.get(f"/monitoring/reports/{archived.pk}/").content.decode()
    assert "cfo@bank.example" in page and "Sent now from the reviewer pages by ola-admin" in page
    assert f'<iframe src="/monitoring/reports/{archived.pk}/email/"' in page
    assert "ARBITER EXECUTIVE REPORT" in page  # the text part
    framed = reader.get(f"/monitoring/reports/{archived.pk}/email/")
    assert framed["Content-Type"].startswith("text/html")
    assert "script-src" not in framed["Content-Security-Policy"]
    assert framed["Content-Security-Policy"].startswith("default-src 'none'; img-src data:")
    assert framed["X-Frame-Options"] == "SAMEORIGIN"
    body = framed.content.decode()
    assert "cid:" not in body
    assert len(re.findall(r'src="data:image/png;base64,', body)) == archived.html_body.count(
        'src="cid:'
    )
    assert reader.get("/monitoring/reports/999999/").status_code == 404


def test_the_report_says_whether_the_heads_it_mails_were_found_intact(
    recipients, admin_user, make_decision
):
    """A head is worth keeping only if the log up to it was intact: the report gives the
    decision log's last check (and what it has not covered yet) and re-verifies the audit
    chain, and a log that failed puts its failure in the subject line."""
    now = timezone.now()
    make_decision(at=now - timedelta(hours=2), customer="c-1")
    decision_blocks_seal(grace_seconds=0)
    decision_log_verify_record(source=LogVerification.Source.COMMAND)
    make_decision(at=now - timedelta(hours=1), customer="c-2")
    decision_blocks_seal(grace_seconds=0)
    head = DecisionBlock.objects.order_by("-number").first()
    assert head.number == 2

    report = report_send(actor=admin_user, trigger=ReportTrigger.MANUAL)
    assert "NOT intact" not in report.subject
    assert "Last check, " in report.text_body
    assert ": intact through block 1. The 1 block sealed since has not been checked yet." in (
        report.text_body
    )
    assert report.summary["heads"]["decision_log"]["unchecked_blocks"] == 1
    assert report.summary["heads"]["audit_chain"]["ok"] is True

    # The daily check finds a decision altered after it was sealed.
    tamper("UPDATE decisions_decision SET value = 1e9 WHERE customer_id = %s", ("c-1",))
    failed = decision_log_verify_record(source=LogVerification.Source.DAILY)
    assert not failed.ok and failed.first_bad_block == 1
    report = report_send(actor=admin_user, trigger=ReportTrigger.MANUAL)
    assert report.subject.endswith("; decision log NOT intact")
    assert "WARNING: the last check, " in report.text_body
    assert "found the decision log NOT intact (first bad block 1): " in report.text_body
    assert failed.problems[0] in report.text_body
    assert "found it NOT intact (first bad block 1)" in report.html_body
    assert "intact through block" not in report.text_body

    # An audit event altered: no head to keep, and the report says why.
    victim = AuditEvent.objects.order_by("seq").first()
    tamper("UPDATE governance_auditevent SET comment = %s WHERE seq = %s", ("x", victim.seq))
    report = report_send(actor=admin_user, trigger=ReportTrigger.MANUAL)
    assert report.subject.endswith("; decision log and audit chain NOT intact")
    assert f"event #{victim.seq} was altered" in report.text_body
    assert "Audit chain head:" not in report.text_body
    assert report.summary["heads"]["audit_chain"]["head"] is None
    assert "The audit chain is NOT intact" in report.html_body


def test_the_command_sends_as_the_operator_or_a_named_admin(recipients, admin_user, checker):
    call_command("send_report")
    call_command("send_report", "--user", admin_user.username)
    first, second = ExecutiveReport.objects.order_by("pk")
    assert (first.trigger, first.sent_by) == (ReportTrigger.COMMAND, None)
    assert second.sent_by == admin_user
    with pytest.raises(CommandError, match="may not send the executive report"):
        call_command("send_report", "--user", checker.username)
    with pytest.raises(CommandError, match="has no active report_recipients"):
        call_command("send_report", "--report", "board")
    assert len(mail.outbox) == 2


def test_the_scheduled_task_sends_once_per_delivery_window(recipients):
    result = executive_report_send_task.delay(report="executive").get()
    assert result["status"] == "sent"
    # The same beat message delivered again (a worker died after sending): skipped.
    assert executive_report_send_task.delay(report="executive").get()["status"] == "skipped"
    assert len(mail.outbox) == 1
    archived = ExecutiveReport.objects.get()
    assert archived.trigger == ReportTrigger.SCHEDULE and archived.sent_by is None


def test_beat_reads_the_schedule_from_the_database():
    assert django_settings.CELERY_BEAT_SCHEDULER == (
        "django_celery_beat.schedulers:DatabaseScheduler"
    )
    assert "django_celery_beat" in django_settings.INSTALLED_APPS
    task = PeriodicTask.objects.get(name="executive-report-weekly")
    assert task.task == "monitoring.tasks.executive_report_send_task"
    assert json.loads(task.kwargs) == {"report": "executive"}
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "7", "1")
    assert task.enabled
    hourly = django_settings.CELERY_BEAT_SCHEDULE["evaluate-alerts-hourly"]
    assert hourly["task"] == "monitoring.tasks.alerts_evaluate_task"
    # The beat container must not name another scheduler on its command line.
    entrypoint = (ROOT / "platform" / "entrypoint.sh").read_text(encoding="utf-8")
    assert "celery -A arbiter beat" in entrypoint
    assert "--scheduler" not in entrypoint and " -S " not in entrypoint


def test_schedule_and_task_are_editable_in_the_admin():
    from django.contrib import admin

    assert PeriodicTask in admin.site._registry


def test_an_administrator_changes_the_report_schedule_and_sees_sign_in_pauses_in_the_admin(
    admin_user, checker
):
    """The docs send administrators (the role, not a Django superuser) to the admin's
    Periodic tasks for the report's time, and to Access attempts for paused sign-ins."""
    task = PeriodicTask.objects.get(name="executive-report-weekly")
    pages = (
        "/admin/django_celery_beat/periodictask/",
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
        f"/admin/django_celery_beat/crontabschedule/{task.crontab_id}/change/",
        "/admin/django_celery_beat/crontabschedule/add/",
        "/admin/axes/accessattempt/",
    )
    admin = client_for(admin_user)
    for url in pages:
        assert admin.get(url).status_code == 200, url
        # Not staff: the admin sends a checker to its login.
        assert client_for(checker).get(url).status_code == 302, url
    # Another time for the report: the crontab's hour changed from the admin applies.
    crontab = task.crontab
    data = {
        "minute": crontab.minute,
        "hour": "9",
        "day_of_week": crontab.day_of_week,
        "day_of_month": crontab.day_of_month,
        "month_of_year": crontab.month_of_year,
        "timezone": str(crontab.timezone),
        # The page's inline list of the tasks on this crontab, sent back unchanged.
        "periodictask_set-TOTAL_FORMS": "0",
        "periodictask_set-INITIAL_FORMS": "0",
    }
    saved = admin.post(f"/admin/django_celery_beat/crontabschedule/{task.crontab_id}/change/", data)
    assert saved.status_code == 302, saved.context["errors"]
    crontab.refresh_from_db()
    assert crontab.hour == "9"

"""The executive report through a real SMTP server: what arrives is what the database says.

An aiosmtpd server listens on a free loopback port; Django's SMTP backend talks to it like
it talks to the bank's relay in production (``EMAIL_URL=smtp://...``).
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from governance import services
from monitoring.charts import format_kpi
from monitoring.models import ExecutiveReport, ReportStatus, ReportTrigger
from monitoring.reports import report_send
from monitoring.selectors import kpi_report
from monitoring.services import outcome_batch_record
from tests.monitoring.conftest import go_live

pytestmark = pytest.mark.django_db

RECIPIENTS = ["cfo@bank.example", "cro@bank.example"]


class Inbox:
    """aiosmtpd handler keeping every envelope it is given."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it by this name
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    settings.DEFAULT_FROM_EMAIL = "arbiter@bank.example"
    yield inbox
    controller.stop()


@pytest.fixture
def reported_world(deployment, maker, checker, make_decision, api_client_user):
    """Targets, recipients and a day of decisions: champion 1 of 4 taken up, challenger 2 of 2."""
    go_live(
        services.version_create(
            actor=maker,
            kind="kpi_targets",
            name="cross-sell",
            content={
                "targets": {
                    "take_up_rate": {"target": 0.5},
                    "complaint_rate": {"target": 0.01},
                }
            },
        ),
        maker=maker,
        checker=checker,
    )
    go_live(
        services.version_create(
            actor=maker,
            kind="report_recipients",
            name="executive",
            content={"description": "Board pack.", "recipients": list(reversed(RECIPIENTS))},
        ),
        maker=maker,
        checker=checker,
    )
    start = timezone.now() - timedelta(days=1)
    decisions = [
        make_decision(at=start + timedelta(minutes=i), arm=arm, customer=f"c-{i}")
        for i, arm in enumerate(["champion"] * 4 + ["challenger"] * 2)
    ]
    taken = [decisions[0], decisions[4], decisions[5]]
    outcome_batch_record(
        actor=api_client_user,
        items=[
            {
                "decision_id": str(d.decision_id),
                "event": "accepted",
                "occurred_at": d.created_at + timedelta(hours=1),
            }
            for d in taken
        ]
        + [
            {
                "decision_id": str(decisions[1].decision_id),
                "event": "complained",
                "occurred_at": decisions[1].created_at + timedelta(hours=2),
            }
        ],
    )
    return decisions


def test_the_report_arrives_over_smtp_with_both_parts_inline_charts_and_true_figures(
    smtp_server, reported_world, admin_user
):
    archived = report_send(actor=admin_user, trigger=ReportTrigger.MANUAL)
    assert archived.status == ReportStatus.SENT, archived.error

    assert len(smtp_server.envelopes) == 1
    envelope = smtp_server.envelopes[0]
    assert envelope.mail_from == "arbiter@bank.example"
    assert sorted(envelope.rcpt_tos) == RECIPIENTS
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["Subject"] == archived.subject
    assert "KPIs off target" in message["Subject"]
    assert sorted(a.strip() for a in message["To"].split(",")) == RECIPIENTS

    # related( alternative(text/plain, text/html), image/png ... )
    assert message.get_content_type() == "multipart/related"
    parts = list(message.walk())
    types = [part.get_content_type() for part in parts]
    assert "multipart/alternative" in types
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert types.index("text/plain") < types.index("text/html")

    # Every cid: in the HTML has its image/png part, and there is no image without a cid.
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert cids, "the report has trend charts"
    images = {
        part["Content-ID"].strip("<>"): part.get_content()
        for part in parts
        if part.get_content_type() == "image/png"
    }
    assert set(cids) == set(images)
    for payload in images.values():
        assert payload.startswith(b"\x89PNG\r\n\x1a\n") and len(payload) > 1000
    for alt in re.findall(r'<img [^>]*alt="([^"]*)"', html):
        assert alt.startswith(("Take-up", "Complaints", "Decisions", "Profit")), alt
    assert "<script" not in html.lower()

    # The figures are the database's.
    report = kpi_report(
        actor=admin_user, deployment="cross-sell", since=archived.since, until=archived.until
    )
    kpis = {row["key"]: row for row in report["kpis"]}
    assert report["decisions"] == 6
    assert kpis["take_up_rate"]["value"] == pytest.approx(0.5)
    assert kpis["complaint_rate"]["value"] == pytest.approx(1 / 6)
    assert "cross-sell: 6 decisions, 4 outcomes" in text
    take_up = format_kpi("take_up_rate", kpis["take_up_rate"]["value"])
    complaints = format_kpi("complaint_rate", kpis["complaint_rate"]["value"])
    assert take_up == "50.0%" and complaints == "16.7%"
    assert f"- Take-up: {take_up} (target: at least 50.0%; met)" in text
    assert f"- Complaints: {complaints} (target: at most 1.0%; missed)" in text
    assert f">{take_up}</td>" in html and f">{complaints}</td>" in html
    # Champion 1 of 4 (25%) against challenger 2 of 2 (100%): the intervals are shown.
    assert "champion 25.0% (" in text and "[1/4]" in text and "[2/2]" in text
    assert "challenger 100.0% (" in text
    assert "take-up: no drift report yet" in text
    assert "0 versions are waiting for a checker." in text
    # The logs' heads, for the recipients to keep (verify_decisions --head later).
    from decisions.decision_log import decision_blocks_seal
    from decisions.models import DecisionBlock
    from governance.models import AuditEvent

    event = AuditEvent.objects.latest("seq")
    assert f"Audit chain head: event #{event.seq}, " in text and event.hash in text
    assert "Verified as this report was built: intact." in text
    assert archived.summary["heads"]["audit_chain"]["head"]["hash"] == event.hash
    block = DecisionBlock.objects.order_by("-number").first()
    if block is None:
        assert "Decision log: no block sealed yet." in text
    else:
        assert f"Decision log head: block {block.number}, " in text and block.hash in text
    assert "verify_decisions --head &lt;hash&gt;" in html
    decision_blocks_seal(grace_seconds=0)
    sealed = report_send(actor=admin_user, trigger=ReportTrigger.MANUAL)
    block = DecisionBlock.objects.order_by("-number").first()
    assert f"Decision log head: block {block.number}, " in sealed.text_body
    assert "Not checked yet: run python manage.py verify_decisions." in sealed.text_body
    assert sealed.summary["heads"]["decision_log"]["head"]["hash"] == block.hash

    assert archived.summary["deployments"]["cross-sell"]["kpis"]["take_up_rate"] == {
        "value": kpis["take_up_rate"]["value"],
        "target": 0.5,
        "met": True,
    }
    assert archived.recipients == RECIPIENTS
    assert archived.sent_by == admin_user
    assert ExecutiveReport.objects.count() == 2
    stored = email.message_from_string(archived.message, policy=email.policy.default)
    assert stored["Message-ID"] == message["Message-ID"]


def test_a_refusing_mail_server_is_archived_as_a_failure(reported_world, admin_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nobody listens
    settings.EMAIL_TIMEOUT = 5
    archived = report_send(actor=admin_user, trigger=ReportTrigger.MANUAL)
    assert archived.status == ReportStatus.FAILED
    assert archived.sent_at is None and "ConnectionRefusedError" in archived.error
    assert archived.html_body and archived.text_body


def test_the_scheduled_send_retries_with_back_off_while_the_server_is_down(
    reported_world, settings, monkeypatch
):
    from monitoring import tasks
    from monitoring.models import ExecutiveReport

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nobody listens
    settings.EMAIL_TIMEOUT = 5
    countdowns = []
    real_retry = tasks.executive_report_send_task.retry

    def spy(*args, **kwargs):
        countdowns.append(kwargs.get("countdown"))
        return real_retry(*args, **kwargs)

    monkeypatch.setattr(tasks.executive_report_send_task, "retry", spy)
    # Eagerly, Celery runs each retry at once (a worker would wait the countdown); with
    # propagation on, the first Retry would escape instead.
    monkeypatch.setitem(tasks.executive_report_send_task.app.conf, "task_eager_propagates", False)
    result = tasks.executive_report_send_task.apply()
    assert countdowns == [60, 120, 240, 480]
    attempts = ExecutiveReport.objects.filter(trigger=ReportTrigger.SCHEDULE)
    assert attempts.count() == 1 + tasks.REPORT_RETRIES
    assert set(attempts.values_list("status", flat=True)) == {ReportStatus.FAILED}
    assert result.get()["status"] == ReportStatus.FAILED

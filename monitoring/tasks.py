"""Celery tasks of monitoring (beat runs them: see CELERY_BEAT_SCHEDULE and the admin's
periodic tasks)."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="monitoring.tasks.alerts_evaluate_task", acks_late=True)
def alerts_evaluate_task() -> dict[str, Any]:
    """Evaluate every active alert rule; hourly. Safe to run twice: an open alert is
    e-mailed once (``monitoring.alerts``)."""
    from monitoring.alerts import alerts_evaluate

    evaluation = alerts_evaluate()
    return {
        "rules": len(evaluation.results),
        "opened": evaluation.count("opened"),
        "cleared": evaluation.count("cleared"),
        "notified": evaluation.notified,
        "notify_failed": evaluation.notify_failed,
    }


REPORT_RETRIES = 4
REPORT_RETRY_SECONDS = 60


@shared_task(
    name="monitoring.tasks.executive_report_send_task",
    acks_late=True,
    bind=True,
    max_retries=REPORT_RETRIES,
)
def executive_report_send_task(self: Any, report: str = "executive") -> dict[str, Any]:
    """Send the executive report ``report`` to its governed recipients and archive it; the
    schedule is the periodic task ``executive-report-weekly`` (admin). A re-delivered
    message within 30 minutes of the last scheduled send is skipped.

    When the mail server cannot be reached the attempt is archived as failed and the task
    tries again after 1, 2, 4 and 8 minutes (``REPORT_RETRIES``)."""
    from monitoring.models import ReportStatus, ReportTrigger
    from monitoring.reports import report_send

    archived = report_send(actor=None, report=report, trigger=ReportTrigger.SCHEDULE)
    if archived is None:
        return {"report": report, "status": "skipped"}
    if archived.status == ReportStatus.FAILED and self.request.retries < REPORT_RETRIES:
        raise self.retry(countdown=REPORT_RETRY_SECONDS * 2**self.request.retries)
    return {"report": report, "status": archived.status, "archive_id": archived.pk}

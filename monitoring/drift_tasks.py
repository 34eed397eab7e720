"""Celery tasks of drift: the daily fan-out, and one report per model version and window.

Beat runs ``drift_reports_daily_task`` (``CELERY_BEAT_SCHEDULE`` in the settings); it
queues one ``drift_report_task`` per watched model version and recent complete day. Both
are safe to run twice: a report already stored for a version and window is kept.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from governance.models import Version


@shared_task(name="monitoring.drift_tasks.drift_report_task", acks_late=True)
def drift_report_task(model_version_id: int, since: str, until: str) -> int:
    """Make (or find) the drift report of one model version over ``[since, until)`` (ISO
    8601 with a time zone); returns the report's id. Idempotent."""
    from monitoring.drift import drift_report_run

    version = Version.objects.select_related("item").get(pk=model_version_id)
    report = drift_report_run(
        model_version=version,
        since=datetime.fromisoformat(since),
        until=datetime.fromisoformat(until),
    )
    return report.pk


@shared_task(name="monitoring.drift_tasks.drift_reports_daily_task", acks_late=True)
def drift_reports_daily_task() -> int:
    """Queue a report for every watched model version and each of the last complete UTC
    days not reported yet (``monitoring.drift.CATCH_UP_DAYS``); returns how many were queued."""
    from monitoring.drift import drift_model_versions, drift_windows_recent
    from monitoring.models import DriftReport

    queued = 0
    for version in drift_model_versions():
        for window in drift_windows_recent():
            done = DriftReport.objects.filter(
                model_version=version, window_start=window.since, window_end=window.until
            ).exists()
            if not done:
                drift_report_task.delay(
                    version.pk, window.since.isoformat(), window.until.isoformat()
                )
                queued += 1
    return queued

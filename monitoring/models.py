"""Outcomes: what happened after a decision, as downstream systems report it.

An ``Outcome`` is one event (accepted, paid, defaulted, ...) on one logged decision. The
same event on the same decision at the same instant is one outcome: the unique constraint
makes a re-posted batch or a re-imported file load nothing twice. Every outcome belongs
to the ``OutcomeBatch`` that brought it (one API post or one file), so a figure can be
traced back to who reported it and when. On PostgreSQL, triggers (migration ``0002``)
refuse UPDATE and DELETE of both tables: a correction is a new event, not an edit.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class OutcomeEvent(models.TextChoices):
    ACCEPTED = "accepted", "Offer accepted (taken up)"
    DECLINED = "declined", "Offer declined"
    PAID = "paid", "Payment received"
    CURED = "cured", "Account back in order (arrears cleared)"
    DEFAULTED = "defaulted", "Defaulted (charged off)"
    COMPLAINED = "complained", "Customer complained"
    OPTED_OUT = "opted_out", "Customer opted out of contact"


class BatchSource(models.TextChoices):
    API = "api", "REST API"
    FILE = "file", "Imported file"


class OutcomeBatch(models.Model):
    """One delivery of outcomes (an API post or a file) and what became of its items."""

    batch_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=8, choices=BatchSource.choices)
    file_name = models.CharField(max_length=300, blank=True, default="")
    file_sha256 = models.CharField(max_length=64, blank=True, default="")
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    received = models.PositiveIntegerField()
    created = models.PositiveIntegerField()
    duplicates = models.PositiveIntegerField()
    refused = models.PositiveIntegerField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    received=models.F("created") + models.F("duplicates") + models.F("refused")
                ),
                name="outcome_batch_counts_add_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} batch {self.batch_id} ({self.created}/{self.received})"


class Outcome(models.Model):
    decision = models.ForeignKey(
        "decisions.Decision",
        on_delete=models.PROTECT,
        related_name="outcomes",
        to_field="decision_id",
        db_column="decision_id",
    )
    event = models.CharField(max_length=16, choices=OutcomeEvent.choices)
    amount = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    occurred_at = models.DateTimeField()
    batch = models.ForeignKey(OutcomeBatch, on_delete=models.PROTECT, related_name="outcomes")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["occurred_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["decision", "event", "occurred_at"], name="outcome_once_per_event_time"
            ),
            models.CheckConstraint(
                condition=Q(event__in=OutcomeEvent.values), name="outcome_event_known"
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0),
                name="outcome_amount_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["event", "occurred_at"], name="outcome_event_time_idx")]

    def __str__(self) -> str:
        return f"{self.decision_id} {self.event} at {self.occurred_at:%Y-%m-%d %H:%M}"


# --- alerts and executive reports -------------------------------------------------------


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open (the condition holds)"
    CLEARED = "cleared", "Cleared (the condition no longer holds)"


class AlertRuleKind(models.TextChoices):
    KPI_BELOW_TARGET = "kpi_below_target", "KPI misses its target"
    DRIFT_SHARE = "drift_share", "Share of drifted features above a threshold"
    PSI = "psi", "Population stability index above a threshold"


class Alert(models.Model):
    """One breach of a governed alert rule, from the evaluation that found it until the one
    that found the condition cleared.

    At most one alert per deployment and rule is open (a partial unique constraint), which
    is what makes the e-mail go out once per breach: an evaluation that finds the breach
    still there updates the open alert; only a new breach, after a clearing, opens a new one.
    """

    deployment_name = models.CharField(max_length=100)
    rule_name = models.CharField(max_length=60)
    rule_kind = models.CharField(max_length=20, choices=AlertRuleKind.choices)
    subject = models.CharField(max_length=200, help_text="the KPI key or the model name")
    rules_version = models.ForeignKey(
        "governance.Version",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="the alert_rules version whose rule was breached",
    )
    status = models.CharField(max_length=8, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    message = models.TextField()
    observed = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="the last evaluation that found the breach")
    cleared_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list)
    notified_at = models.DateTimeField(null=True, blank=True)
    notify_attempts = models.PositiveIntegerField(default=0)
    notify_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment_name", "rule_name"],
                condition=Q(status="open"),
                name="alert_one_open_per_rule",
            ),
            models.CheckConstraint(
                condition=Q(status__in=AlertStatus.values), name="alert_status_known"
            ),
            models.CheckConstraint(
                condition=(Q(status="open") & Q(cleared_at__isnull=True))
                | (Q(status="cleared") & Q(cleared_at__isnull=False)),
                name="alert_cleared_when_cleared",
            ),
        ]
        indexes = [models.Index(fields=["status", "-opened_at"], name="alert_status_opened_idx")]

    def __str__(self) -> str:
        return f"{self.deployment_name}/{self.rule_name} {self.status} since {self.opened_at}"


class ReportTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Scheduled (Celery beat)"
    MANUAL = "manual", "Sent now from the reviewer pages"
    COMMAND = "command", "manage.py send_report"


class ReportStatus(models.TextChoices):
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed to send"


class ExecutiveReport(models.Model):
    """An executive report as it was sent (or failed to be): the whole MIME message with
    its inline charts, its HTML and text parts, and the figures it showed."""

    report_name = models.CharField(max_length=100)
    recipients_version = models.ForeignKey(
        "governance.Version",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="the report_recipients version the report went to",
    )
    trigger = models.CharField(max_length=8, choices=ReportTrigger.choices)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        help_text="who pressed send now; empty for the schedule",
    )
    status = models.CharField(max_length=8, choices=ReportStatus.choices)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    since = models.DateTimeField()
    until = models.DateTimeField()
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=300)
    text_body = models.TextField()
    html_body = models.TextField()
    message = models.TextField(help_text="the MIME message as sent, inline images included")
    summary = models.JSONField(default=dict, help_text="the figures shown, per deployment")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ReportStatus.values), name="report_status_known"
            ),
            models.CheckConstraint(
                condition=Q(trigger__in=ReportTrigger.values), name="report_trigger_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.report_name} report of {self.created_at:%Y-%m-%d %H:%M} ({self.status})"


# --- drift ------------------------------------------------------------------------------


class DriftStatus(models.TextChoices):
    STABLE = "stable", "Stable (every PSI below 0.1)"
    WATCH = "watch", "Watch (a PSI from 0.1 to 0.25)"
    ACT = "act", "Act (a PSI above 0.25)"
    NO_DATA = "no_data", "No decisions in the window"


class DriftReport(models.Model):
    """Drift of one model version's inputs and score over one window of logged decisions,
    against the version's reference sample (``monitoring.drift``).

    One report per (model version, window): the unique constraint makes the daily task and
    the command safe to run twice. The Evidently HTML report is a file under
    ``ARTIFACT_ROOT`` (``html_path``, with its SHA-256); the figures are here, as data.
    """

    model_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(help_text="exclusive")
    status = models.CharField(max_length=8, choices=DriftStatus.choices)
    decisions_in_window = models.PositiveIntegerField(
        help_text="decisions in the window that used the model version"
    )
    current_rows = models.PositiveIntegerField(help_text="rows compared (the sample, if any)")
    reference_rows = models.PositiveIntegerField()
    sampled = models.BooleanField(default=False)
    sample_limit = models.PositiveIntegerField(help_text="DRIFT_SAMPLE_ROWS when computed")
    share_drifted = models.FloatField(null=True, blank=True)
    drifted_features = models.PositiveIntegerField(default=0)
    dataset_drift = models.BooleanField(
        default=False, help_text="Evidently's verdict: share drifted at least its drift_share"
    )
    psi_score = models.FloatField(null=True, blank=True, help_text="PSI of the model's score")
    psi_max = models.FloatField(
        null=True, blank=True, help_text="largest PSI over every feature and the score"
    )
    features = models.JSONField(
        default=list,
        help_text="per feature: Evidently test and verdict, PSI and band",
    )
    score = models.JSONField(default=dict, help_text="prediction drift: test, statistic, PSI")
    parameters = models.JSONField(default=dict, help_text="binning, sampling seed, versions")
    html_path = models.CharField(max_length=300, blank=True, default="")
    html_sha256 = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-window_end", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "window_start", "window_end"],
                name="drift_report_once_per_window",
            ),
            models.CheckConstraint(
                condition=Q(window_start__lt=models.F("window_end")),
                name="drift_report_window_ordered",
            ),
            models.CheckConstraint(
                condition=Q(status__in=DriftStatus.values), name="drift_report_status_known"
            ),
        ]
        indexes = [
            models.Index(fields=["model_version", "-window_end"], name="drift_version_window_idx")
        ]

    def __str__(self) -> str:
        return (
            f"drift of version {self.model_version_id} "
            f"{self.window_start:%Y-%m-%d %H:%M}..{self.window_end:%Y-%m-%d %H:%M} ({self.status})"
        )

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

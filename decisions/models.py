"""The decision log: one append-only row per decision, sealed in hash-linked blocks.

Rows carry their own content hash; ``DecisionBlock`` rows seal consecutive ranges of
them (by ``seq``) into a chain, so verification scales with the number of blocks and
writers never wait on a global lock. On PostgreSQL, triggers refuse UPDATE and DELETE of
both tables (migration ``0002``); ``verify_decisions`` detects what someone who skipped
the triggers changed.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Decision(models.Model):
    seq = models.BigAutoField(primary_key=True)
    decision_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    request_id = models.CharField(max_length=100)
    # NULL, not "", when absent: the unique index must ignore requests without a key.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    customer_id = models.CharField(max_length=200)
    channel = models.CharField(max_length=100, blank=True, default="")
    deployment_name = models.CharField(max_length=100)
    deployment_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    strategy_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    constraint_set_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    versions = models.JSONField(help_text="every version used, with its content hash")
    arm = models.CharField(max_length=40)
    features = models.JSONField()
    actions = models.JSONField(help_text="each action: eligible, value, score, failed rules")
    action_id = models.CharField(max_length=64)
    action = models.JSONField()
    value = models.FloatField()
    prices = models.JSONField()
    reasons = models.JSONField()
    contributions = models.JSONField(help_text="raw SHAP contributions per model")
    explanation = models.JSONField()
    latency_ms = models.FloatField()
    created_at = models.DateTimeField()
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["customer_id", "created_at"], name="decision_customer_idx"),
            models.Index(fields=["deployment_name", "created_at"], name="decision_deploy_idx"),
            models.Index(fields=["created_at"], name="decision_time_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="decision_idempotency_per_client",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision_id} {self.deployment_name} {self.customer_id} -> {self.action_id}"


class DecisionBlock(models.Model):
    """A sealed range ``(first_seq, last_seq]`` of the decision log.

    ``rows_digest`` = SHA-256 over the (seq, content_hash) of every row in the range, in
    order; ``hash`` covers the digest, the range, the count and the previous block's hash.
    """

    number = models.PositiveBigIntegerField(unique=True)
    after_seq = models.BigIntegerField(help_text="the last seq of the previous block")
    last_seq = models.BigIntegerField()
    row_count = models.PositiveIntegerField()
    rows_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"block {self.number} ({self.after_seq}, {self.last_seq}]"

"""The decision log: one append-only row per decision, sealed in hash-linked blocks.

Rows carry their own content hash; ``DecisionBlock`` rows seal consecutive ranges of
them (by ``seq``) into a chain, so verification scales with the number of blocks and
writers never wait on a global lock. On PostgreSQL, triggers refuse UPDATE and DELETE of
both tables (migration ``0002``); ``verify_decisions`` detects what someone who skipped
the triggers changed.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from psycopg.types.json import Json, Jsonb


class LogJSONField(models.JSONField):
    """A JSON column of the decision log: ``json`` on PostgreSQL, not ``jsonb``.

    The log is written once and read whole, never queried inside its JSON, and parsing
    a decision's JSON into ``jsonb`` was half of the server's work per logged row
    (ADR 0011). ``json`` keeps the text as written: for an optimisation run's rows, the
    canonical JSON that was hashed. Other databases keep ``JSONField``'s own type.
    """

    def db_type(self, connection: Any) -> str | None:
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        adapted = super().get_db_prep_value(value, connection, prepared)
        if isinstance(adapted, Jsonb):  # sent as json, so the server does not parse it twice
            return Json(adapted.obj, dumps=adapted.dumps)
        return adapted


def json_columns_as_text(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created``: read ``json`` columns as text, as Django has psycopg read
    ``jsonb``, so that ``JSONField.from_db_value`` parses both alike (and a column holding
    a JSON string is not parsed twice)."""
    if connection.vendor == "postgresql":
        from psycopg.types.string import TextLoader

        connection.connection.adapters.register_loader("json", TextLoader)


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
    # NULL only for decisions of an optimisation run on versions no deployment uses yet.
    deployment_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    strategy_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    constraint_set_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    versions = LogJSONField(help_text="every version used, with its content hash")
    arm = models.CharField(max_length=40)
    features = LogJSONField()
    actions = LogJSONField(help_text="each action: eligible, value, score, failed rules")
    action_id = models.CharField(max_length=64)
    action = LogJSONField()
    value = models.FloatField()
    prices = LogJSONField()
    reasons = LogJSONField()
    contributions = LogJSONField(help_text="raw SHAP contributions per model")
    explanation = LogJSONField()
    latency_ms = models.FloatField()
    created_at = models.DateTimeField()
    content_hash = models.CharField(max_length=64)
    run = models.ForeignKey(
        "OptimisationRun",
        on_delete=models.PROTECT,
        related_name="decisions",
        null=True,
        blank=True,
        help_text="the optimisation run that made this decision; empty for real time",
    )

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


class DecisionPurge(models.Model):
    """Decisions past retention removed: every row of blocks ``1..through_block``.

    Only whole sealed blocks go, oldest first, and the blocks themselves stay: the chain
    of block hashes still verifies from the first block, and a row missing from a block
    that no purge covers is still reported. Append-only on PostgreSQL, like the log.
    """

    through_block = models.PositiveBigIntegerField(unique=True)
    last_seq = models.BigIntegerField(help_text="the last seq of block through_block")
    rows_removed = models.PositiveBigIntegerField()
    outcomes_removed = models.PositiveBigIntegerField()
    before = models.DateTimeField(help_text="blocks sealed before this time were purged")
    purged_at = models.DateTimeField()
    purged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["through_block"]

    def __str__(self) -> str:
        return f"decisions of blocks 1..{self.through_block} purged"


class LogVerification(models.Model):
    """One check of the whole decision log (``decision_log_verify``): when, how long,
    and what it found. Written by the daily task, ``verify_decisions`` and the
    decision pages' "Verify now"; the pages show the latest."""

    class Source(models.TextChoices):
        DAILY = "daily", "the daily check"
        COMMAND = "command", "manage.py verify_decisions"
        PAGE = "page", "Verify now"
        API = "api", "the API (POST /api/v1/decision-log/verifications/)"

    started_at = models.DateTimeField()
    seconds = models.FloatField()
    source = models.CharField(max_length=10, choices=Source.choices)
    requested_by = models.CharField(max_length=150, blank=True, default="")
    ok = models.BooleanField()
    blocks = models.PositiveBigIntegerField()
    rows = models.PositiveBigIntegerField(help_text="sealed decisions checked")
    unsealed = models.PositiveBigIntegerField()
    purged_blocks = models.PositiveBigIntegerField(default=0)
    purged_rows = models.PositiveBigIntegerField(default=0)
    skipped_blocks = models.PositiveBigIntegerField(
        default=0, help_text="blocks whose links were checked but rows not re-hashed (rolling)"
    )
    skipped_rows = models.PositiveBigIntegerField(default=0)
    head_hash = models.CharField(max_length=64)
    first_bad_block = models.PositiveBigIntegerField(null=True, blank=True)
    first_bad_row = models.CharField(max_length=64, blank=True, default="")
    problems = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        state = "intact" if self.ok else "NOT intact"
        return f"decision log {state} at {self.started_at:%Y-%m-%d %H:%M}"


class ReplayCheck(models.Model):
    """A random sample of logged decisions replayed by a worker (``decisions.replays``):
    who asked, which decisions it drew from and with what seed, and what it found. Asked
    for on the decision pages, the API or ``manage.py replay_decisions`` (which runs it in
    its own process), or beat's daily sample (no one asked)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        help_text="empty for beat's daily sample",
    )
    requested_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when its task was last sent to the workers; empty: replayed in the "
        "process that asked (manage.py replay_decisions, beat's daily sample)",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="times a worker or process has started it"
    )
    beat_at = models.DateTimeField(
        null=True, blank=True, help_text="the replaying process's last progress report"
    )
    filters = models.JSONField(
        default=dict, blank=True, help_text="deployment, customer_id, run, since, until"
    )
    size = models.PositiveIntegerField(
        null=True, blank=True, help_text="decisions to draw; empty: every one selected"
    )
    seed = models.PositiveBigIntegerField()
    population = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="decisions the filters selected when it ran"
    )
    through_seq = models.PositiveBigIntegerField(null=True, blank=True)
    identical = models.PositiveIntegerField(default=0)
    differs = models.PositiveIntegerField(default=0)
    not_replayed = models.PositiveIntegerField(default=0)
    findings = models.JSONField(
        default=list, blank=True, help_text="the decisions that differ or could not be replayed"
    )
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"replay check {self.pk} ({self.status})"

    @property
    def replayed(self) -> int:
        return self.identical + self.differs + self.not_replayed

    @property
    def ok(self) -> bool | None:
        """Whether every drawn decision replayed identically (None until it is done)."""
        if self.status != self.Status.DONE:
            return None
        return self.identical == self.replayed


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class OptimisationRun(models.Model):
    """One portfolio optimisation: a population scored, solved, explained and logged.

    Its decisions are written in the same transaction that marks it succeeded, so a run
    that failed or was cancelled has logged none, and a run that succeeded has logged one
    per customer.
    """

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    description = models.CharField(max_length=300, blank=True, default="")
    deployment_name = models.CharField(max_length=100, blank=True, default="")
    deployment_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    strategy_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    constraint_set_version = models.ForeignKey(
        "governance.Version", on_delete=models.PROTECT, related_name="+"
    )
    population = models.JSONField(
        help_text="simulated (use case, customers, seed) or a stored file (name, sha256)"
    )
    time_limit_seconds = models.FloatField()
    log_decisions = models.BooleanField(default=True)

    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    phase = models.CharField(max_length=20, blank=True, default="")
    progress = models.FloatField(default=0.0, help_text="percent done, 0 to 100")
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True, default="")
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="when the run's task was last handed to the task queue"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    customers = models.PositiveIntegerField(null=True, blank=True)
    solver_status = models.CharField(max_length=12, blank=True, default="")
    objective = models.FloatField(null=True, blank=True)
    bound = models.FloatField(null=True, blank=True)
    gap = models.FloatField(null=True, blank=True)
    limits = models.JSONField(default=list, help_text="each limit: bound, use, slack, price")
    prices = models.JSONField(default=dict)
    kpis = models.JSONField(default=dict, help_text="expected KPIs in total and per action")
    phase_seconds = models.JSONField(default=dict)
    execution = models.JSONField(
        default=dict,
        blank=True,
        help_text="how the run was computed: in one process, or in chunks on which workers",
    )
    decisions_logged = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    error_details = models.JSONField(default=dict, blank=True)
    published_version = models.ForeignKey(
        "governance.Version",
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        help_text="the deployment version proposed with this run's prices",
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="run_status_idx")]

    def __str__(self) -> str:
        return f"optimisation run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES

    @property
    def waiting(self) -> bool:
        """Queued, handed to the task queue, and still not taken by a worker
        ``OPTIMISATION_QUEUED_RESEND_SECONDS`` after it was created: no worker is free
        (or running), or the broker lost the message; beat sends it again."""
        if self.status != RunStatus.QUEUED or self.sent_at is None:
            return False
        waited = (timezone.now() - self.created_at).total_seconds()
        return waited > settings.OPTIMISATION_QUEUED_RESEND_SECONDS

    @property
    def stalled(self) -> bool:
        """Running, but its worker has not been heard from for longer than
        ``OPTIMISATION_HEARTBEAT_STALE_SECONDS``: beat sends it again."""
        if self.status != RunStatus.RUNNING or self.heartbeat_at is None:
            return False
        silent = (timezone.now() - self.heartbeat_at).total_seconds()
        return silent > settings.OPTIMISATION_HEARTBEAT_STALE_SECONDS

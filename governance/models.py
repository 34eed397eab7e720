"""Governed items, their immutable versions, API keys and the audit chain.

Invariants the database holds itself (not only the services):

* one version number per item, one ``active`` and one ``submitted`` version per item;
* a reviewed status (approved, rejected, active, retired) always names its reviewer;
* on PostgreSQL, triggers (migration ``0003``) refuse UPDATE/DELETE of audit events and
  any change of the content, hash or artifact of a version past draft.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
name_validator = RegexValidator(
    NAME_PATTERN,
    "Use 1-100 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted for review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


REVIEWED_STATUSES = (
    VersionStatus.APPROVED,
    VersionStatus.REJECTED,
    VersionStatus.ACTIVE,
    VersionStatus.RETIRED,
)


class Item(models.Model):
    """A named thing under governance (a model, a strategy, ...) of one registered kind."""

    kind = models.CharField(max_length=40)
    name = models.CharField(max_length=100, validators=[name_validator])
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="item_unique_name_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class Version(models.Model):
    """One immutable version of an item: canonical JSON content plus an optional artifact.

    ``content_hash`` is the SHA-256 of the canonical JSON of
    ``{"artifact_sha256": ..., "content": ...}`` (``governance.hashing.version_hash``), so
    it covers the artifact file too.
    """

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    content = models.JSONField()
    content_hash = models.CharField(max_length=64)
    artifact_path = models.CharField(max_length=300, blank=True, default="")
    artifact_sha256 = models.CharField(max_length=64, blank=True, default="")
    artifact_size = models.PositiveBigIntegerField(null=True, blank=True)
    change_note = models.TextField(blank=True, default="")

    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="authored_versions"
    )
    contributors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="contributed_versions",
        help_text="Everyone who wrote any of this version's content (four eyes exclude them).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="submitted_versions",
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reviewed_versions",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True, default="")
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["item_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["item", "number"], name="version_unique_number"),
            models.UniqueConstraint(
                fields=["item"],
                condition=Q(status=VersionStatus.ACTIVE),
                name="version_one_active_per_item",
                violation_error_message="An item can have at most one active version.",
            ),
            models.UniqueConstraint(
                fields=["item"],
                condition=Q(status=VersionStatus.SUBMITTED),
                name="version_one_open_review_per_item",
                violation_error_message="An item can have at most one version under review.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=VersionStatus.values),
                name="version_status_known",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=REVIEWED_STATUSES) | Q(reviewed_by__isnull=False),
                name="version_reviewed_status_has_reviewer",
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="version_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.item.kind} {self.item.name} v{self.number} ({self.status})"

    @property
    def is_locked(self) -> bool:
        """Content can change only while a draft."""
        return self.status != VersionStatus.DRAFT

    @property
    def has_artifact(self) -> bool:
        return bool(self.artifact_sha256)


class ApiKey(models.Model):
    """A key a downstream system presents as ``Authorization: Api-Key <key>``.

    Only the SHA-256 of the secret is kept; the key is shown once, when created. Keys are
    long random strings, so a fast hash is enough (no password stretching needed).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="refused from then on; blank: never (API_KEY_DAYS)"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class AuditAction(models.TextChoices):
    CREATE = "create", "Created a draft"
    EDIT = "edit", "Edited a draft"
    SUBMIT = "submit", "Submitted for review"
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"
    ACTIVATE = "activate", "Activated"
    RETIRE = "retire", "Retired"
    USER_CREATE = "user_create", "Created a user"
    ROLE_GRANT = "role_grant", "Granted roles"
    ROLE_REVOKE = "role_revoke", "Revoked roles"
    USER_UPDATE = "user_update", "Updated a user"
    USER_DEACTIVATE = "user_deactivate", "Deactivated a user"
    USER_REACTIVATE = "user_reactivate", "Reactivated a user"
    API_KEY_CREATE = "api_key_create", "Created an API key"
    API_KEY_REVOKE = "api_key_revoke", "Revoked an API key"
    DECISION_PURGE = "decision_purge", "Purged decisions past retention"
    PASSWORD_CHANGE = "password_change", "Changed their password"
    PASSWORD_RESET = "password_reset", "Reset a password"


class AuditEvent(models.Model):
    """One governance action, sealed into a hash chain.

    ``hash`` = SHA-256 of the canonical JSON of every other field, ``prev_hash``
    included, so altering, removing or inserting any event breaks the chain from there
    on (``governance.audit.audit_chain_verify``). ``seq`` runs 1, 2, 3, ... without gaps.
    """

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    kind = models.CharField(max_length=40, blank=True, default="")
    item_name = models.CharField(max_length=100, blank=True, default="")
    version_number = models.PositiveIntegerField(null=True, blank=True)
    old_status = models.CharField(max_length=16, blank=True, default="")
    new_status = models.CharField(max_length=16, blank=True, default="")
    content_hash = models.CharField(max_length=64, blank=True, default="")
    comment = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["kind", "item_name"], name="audit_item_idx"),
            models.Index(fields=["actor_username"], name="audit_actor_idx"),
            models.Index(fields=["created_at"], name="audit_time_idx"),
        ]

    def __str__(self) -> str:
        target = f" {self.kind} {self.item_name}" if self.item_name else ""
        version = f" v{self.version_number}" if self.version_number else ""
        return f"#{self.seq} {self.actor_username} {self.action}{target}{version}"


class ChainHead(models.Model):
    """The last sealed link of a hash chain; appends lock this row to stay in order.

    ``verify_audit`` prints it: an auditor who records it elsewhere can later prove that
    no event was cut from the end.
    """

    name = models.CharField(max_length=40, primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seq}"

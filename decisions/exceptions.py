"""Domain errors of the decisions app (each with a stable code and an HTTP status)."""

from __future__ import annotations

from governance.exceptions import DomainError, ValidationFailed


class UntrustedArtifact(ValidationFailed):
    """A model file that is not skops, or names types outside the allow-list."""

    code = "untrusted_artifact"


class ServiceUnavailable(DomainError):
    """The decision log could not be written, so no decision was made."""

    code = "decision_log_unavailable"
    status = 503


class DeploymentUnavailable(DomainError):
    """A deployment cannot decide: a model file it needs is missing or was altered."""

    code = "deployment_unavailable"
    status = 503


class QueueUnavailable(DomainError):
    """The Celery broker did not take a task, so the work it stands for was not started."""

    code = "task_queue_unavailable"
    status = 503


class NoEligibleAction(DomainError):
    """The deployment's rules leave the customer no action and no fallback."""

    code = "no_eligible_action"
    status = 422

"""The lifecycle of a version, in one table.

::

    draft --submit--> submitted --approve--> approved --activate--> active --retire--> retired
                                 \\--reject--> rejected      \\------------retire-----------/

``activate`` retires the item's previously active version in the same transaction, so a
channel never goes without one and never has two (the database refuses two as well).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from governance.models import AuditAction, VersionStatus
from governance.roles import Role


class Move(models.TextChoices):
    SUBMIT = "submit", "Submit for review"
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    ACTIVATE = "activate", "Activate"
    RETIRE = "retire", "Retire"


@dataclass(frozen=True)
class Transition:
    move: Move
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    four_eyes: bool = False
    comment_required: bool = False

    @property
    def audit_action(self) -> str:
        return AuditAction(self.move.value)


TRANSITIONS: dict[str, Transition] = {
    t.move: t
    for t in (
        Transition(
            Move.SUBMIT,
            frozenset({VersionStatus.DRAFT}),
            VersionStatus.SUBMITTED,
            frozenset({Role.MAKER}),
        ),
        Transition(
            Move.APPROVE,
            frozenset({VersionStatus.SUBMITTED}),
            VersionStatus.APPROVED,
            frozenset({Role.CHECKER}),
            four_eyes=True,
            comment_required=True,
        ),
        Transition(
            Move.REJECT,
            frozenset({VersionStatus.SUBMITTED}),
            VersionStatus.REJECTED,
            frozenset({Role.CHECKER}),
            four_eyes=True,
            comment_required=True,
        ),
        Transition(
            Move.ACTIVATE,
            frozenset({VersionStatus.APPROVED}),
            VersionStatus.ACTIVE,
            frozenset({Role.CHECKER, Role.ADMIN}),
        ),
        Transition(
            Move.RETIRE,
            frozenset({VersionStatus.APPROVED, VersionStatus.ACTIVE}),
            VersionStatus.RETIRED,
            frozenset({Role.CHECKER, Role.ADMIN}),
        ),
    )
}


def moves_open_to(roles: frozenset[str] | set[str], status: str) -> list[Move]:
    """The moves the lifecycle table offers someone with ``roles`` from ``status``, in table
    order. Four eyes are checked separately: they depend on who wrote the version."""
    return [
        move
        for move, transition in TRANSITIONS.items()
        if status in transition.sources and roles & transition.roles
    ]


# Who may write drafts (create a version, edit a draft).
AUTHOR_ROLES = frozenset({Role.MAKER})
# Who may read the registry and the audit trail.
READER_ROLES = frozenset(Role.values)
# The registry's content: everyone who works with it, not a downstream system (an
# ``api_client`` asks for decisions; a model version's reference sample holds rows of
# customer data it has no need to read). The pages were never open to it either.
REGISTRY_READER_ROLES = READER_ROLES - {Role.API_CLIENT}
AUDIT_READER_ROLES = frozenset({Role.AUDITOR, Role.CHECKER, Role.ADMIN})

"""Reads of the decision log."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from decisions.models import Decision, LogVerification, OptimisationRun, ReplayCheck
from decisions.services import READER_ROLES, REPLAY_ROLES, check_visible, require_reader
from governance.exceptions import NotFound
from governance.models import Item, Version
from governance.roles import Role, require_role, roles_of
from governance.selectors import version_active_list


def decision_get(*, actor: AbstractBaseUser, decision_id: str) -> Decision:
    require_reader(actor)
    try:
        key = uuid.UUID(str(decision_id))
    except ValueError:
        raise NotFound(f"There is no decision {decision_id!r}.") from None
    decision = Decision.objects.filter(decision_id=key).first()
    if decision is None:
        raise NotFound(f"There is no decision {decision_id}.")
    check_visible(actor, decision)
    return decision


def decision_list(
    *,
    actor: AbstractBaseUser,
    customer_id: str | None = None,
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Decision]:
    """Decisions the actor may see: all for auditors, checkers, admins; a client's own."""
    decisions = Decision.objects.all()
    if not roles_of(actor) & (READER_ROLES - {Role.API_CLIENT}):
        decisions = decisions.filter(client=actor)
    if customer_id:
        decisions = decisions.filter(customer_id=customer_id)
    if deployment:
        decisions = decisions.filter(deployment_name=deployment)
    if since:
        decisions = decisions.filter(created_at__gte=since)
    if until:
        decisions = decisions.filter(created_at__lt=until)
    return decisions


def decision_search(
    *,
    actor: AbstractBaseUser,
    query: str = "",
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Decision]:
    """Decisions matching a decision id (a UUID) or else a customer id (any, if
    ``query`` is empty) and the filters, newest first."""
    require_reader(actor)
    query = query.strip()
    try:
        key = uuid.UUID(query)
    except ValueError:
        key = None
    decisions = decision_list(
        actor=actor,
        customer_id=query if key is None else None,
        deployment=deployment,
        since=since,
        until=until,
    )
    if key is not None:
        decisions = decisions.filter(decision_id=key)
    return decisions.order_by("-seq")


def customer_decisions() -> QuerySet[Decision]:
    """Decisions about real customers: real time, and optimisation runs on a population
    file. A run on simulated customers logs its decisions too (to explain and replay
    them), but nobody was offered anything: monitoring leaves them out."""
    simulated = OptimisationRun.objects.filter(population__kind="simulated").values("pk")
    return Decision.objects.filter(Q(run__isnull=True) | ~Q(run_id__in=simulated))


def deployment_active_list() -> QuerySet[Version]:
    """The active version of every deployment (channel), by name."""
    return version_active_list(kind="deployment")


def deployment_name_list() -> list[str]:
    """Every deployment's name, active or not (a retired one's decisions still replay)."""
    return list(
        Item.objects.filter(kind="deployment").order_by("name").values_list("name", flat=True)
    )


def log_verification_list(*, actor: AbstractBaseUser) -> QuerySet[LogVerification]:
    """Every check of the whole decision log, newest first: for auditors, checkers and
    admins, the roles that may replay decisions."""
    require_role(actor, REPLAY_ROLES, action="read the decision log's verifications")
    return LogVerification.objects.all()


def replay_check_list(*, actor: AbstractBaseUser) -> QuerySet[ReplayCheck]:
    """Every replay of a random sample, newest first, for the roles that may replay."""
    require_role(actor, REPLAY_ROLES, action="read replays of the decision log")
    return ReplayCheck.objects.select_related("requested_by")


def replay_check_get(*, actor: AbstractBaseUser, check_id: int) -> ReplayCheck:
    check = replay_check_list(actor=actor).filter(pk=check_id).first()
    if check is None:
        raise NotFound(f"There is no replay check {check_id}.")
    return check

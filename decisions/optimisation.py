"""Optimisation runs: a whole population decided at once within the portfolio's limits.

A run scores every customer on every action with the compiled decision function, solves
the portfolio problem (``engine.portfolio.solve_portfolio``) for one action per customer,
and logs every customer's decision in the same decision log as real time, with reasons.
Its dual prices can then be published to the deployment as a governed change, so real
time makes the same choices.

Life of a run: ``queued -> running -> succeeded | failed | cancelled``. The Celery task
takes the run id and is idempotent: a finished run is not redone, a run another worker
is running (recent heartbeat) is left alone, and a run whose worker died (stale
heartbeat; the broker redelivers the task, which acks late) starts again from the
beginning. While a worker runs it, a thread keeps the run's heartbeat fresh whatever the
phase (a long solve reports no progress). A run whose heartbeat stopped and whose task
will not come back (its worker lost the database or the task queue, or the broker lost
the message) is sent again by beat (``optimisation_runs_recover``), and after
``OPTIMISATION_MAX_ATTEMPTS`` starts is failed with a sentence rather than left
``running``. Only the latest claim may finish a run: an earlier attempt still going
when another worker took over rolls back instead. Decisions are written in the same
transaction that marks the run succeeded, so a failed or cancelled run has logged none.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import Q, QuerySet
from django.utils import timezone

from decisions import runtime, strategies
from decisions.background import repeating
from decisions.decision_log import (
    HASHED_FIELDS,
    decision_blocks_seal,
    decision_hash,
    decision_hash_of_texts,
    log_writer_enter,
)
from decisions.deployments import CHAMPION, strategy_model_refs
from decisions.engine.decision_function import DecisionFunction, Evaluation
from decisions.exceptions import DeploymentUnavailable, QueueUnavailable
from decisions.models import FINISHED_RUN_STATUSES, Decision, OptimisationRun, RunStatus
from decisions.populations import (
    ID_COLUMN,
    Population,
    PopulationCheck,
    population_columns,
    population_columns_check,
    population_format,
    population_pieces,
    population_simulated,
    population_slice,
)
from governance import services as governance
from governance.artifacts import (
    ArtifactIntegrityError,
    artifact_commit,
    artifact_discard,
    artifact_open_verified,
    artifact_stage,
)
from governance.exceptions import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ValidationFailed,
)
from governance.hashing import canonical_json, canonical_json_plain
from governance.models import Version, VersionStatus
from governance.roles import Role, require_role, roles_of

logger = logging.getLogger(__name__)

CREATOR_ROLES = frozenset({Role.MAKER, Role.ADMIN})
# The people who work with runs; not a downstream system (``api_client``), which asks for
# decisions: a run shows the constraint set's limits, its population file and its
# portfolio totals, and the registry and the KPIs are closed to it too.
READER_ROLES = frozenset(Role.values) - {Role.API_CLIENT}
# A run's decisions are customers' decisions: the decision log's readers (people), as for
# any other decision. Who starts a run sees its totals and per-action KPIs, not each
# customer's features and reasons.
DECISION_READER_ROLES = frozenset({Role.AUDITOR, Role.CHECKER, Role.ADMIN})
PUBLISHER_ROLES = frozenset({Role.MAKER})
CHANNEL = "optimisation-run"
SCORE_CHUNK = 20_000
LOG_CHUNK = 2_000
# A run that logs decisions decides for customers: with versions approved for use, down to
# the strategy's models. A retired version was withdrawn from use; it may be simulated
# (what would the old strategy have done?), as may one under review (impact comparisons).
LOGGABLE = frozenset({VersionStatus.APPROVED, VersionStatus.ACTIVE})
SIMULABLE = LOGGABLE | {VersionStatus.SUBMITTED, VersionStatus.RETIRED}

Progress = Callable[[str, float], None]


class RunCancelled(Exception):
    """The run's cancel flag was seen between two steps."""


class RunSuperseded(Exception):
    """Another worker claimed the run meanwhile (its heartbeat looked stale): only the
    latest claim may finish it, so this one rolls back what it wrote and stops."""


class RunFailed(DomainError):
    """The run cannot finish: bad population, infeasible limits, no feasible choice."""

    code = "run_failed"
    status = 422


# --- creating, cancelling, reading -----------------------------------------------------


@dataclass(frozen=True)
class RunTarget:
    deployment: Version | None
    strategy: Version
    constraint_set: Version


DESCRIPTION_MAX = 300
"""Characters of a run's description (the column's length)."""


def _version_ref(kind: str, ref: Any, field: str) -> Version:
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        raise ValidationFailed(
            f"{field} needs a name and a version.", details={field: ["needs name and version"]}
        )
    number = ref.get("version")
    if not isinstance(number, int) or isinstance(number, bool):
        raise ValidationFailed(
            f"{field}.version must be an integer.", details={f"{field}.version": ["integer"]}
        )
    version = (
        Version.objects.select_related("item")
        .filter(item__kind=kind, item__name=ref["name"], number=number)
        .first()
    )
    if version is None:
        raise ValidationFailed(
            f"There is no {kind.replace('_', ' ')} {ref['name']!r} version {number}.",
            details={field: ["does not exist"]},
        )
    return version


def _target(
    *, deployment: str | None, strategy: Any, constraint_set: Any, log_decisions: bool
) -> RunTarget:
    if deployment:
        if strategy is not None or constraint_set is not None:
            raise ValidationFailed(
                "Give a deployment or a strategy and constraint set, not both.",
                details={"deployment": ["give either a deployment or versions"]},
            )
        version = runtime.active_deployment(deployment)
        content = version.content
        return RunTarget(
            deployment=version,
            strategy=_version_ref("strategy", content["strategy"], "strategy"),
            constraint_set=_version_ref(
                "constraint_set", content["constraint_set"], "constraint_set"
            ),
        )
    if strategy is None or constraint_set is None:
        raise ValidationFailed(
            "A run needs a deployment, or a strategy and a constraint set.",
            details={"deployment": ["give a deployment or strategy and constraint_set"]},
        )
    target = RunTarget(
        deployment=None,
        strategy=_version_ref("strategy", strategy, "strategy"),
        constraint_set=_version_ref("constraint_set", constraint_set, "constraint_set"),
    )
    if not log_decisions:
        for field in ("strategy", "constraint_set"):
            version = getattr(target, field)
            if version.status not in SIMULABLE:
                raise ValidationFailed(
                    f"{version.item.name} v{version.number} is {version.status}; a run that "
                    "only simulates needs submitted, approved or retired versions.",
                    details={field: ["must be submitted, approved or retired"]},
                )
    if log_decisions:
        versions_loggable_check(target.strategy, target.constraint_set)
    if target.constraint_set.content.get("strategy") != target.strategy.item.name:
        raise ValidationFailed(
            f"Constraint set {target.constraint_set.item.name} is written for strategy "
            f"{target.constraint_set.content.get('strategy')!r}, "
            f"not {target.strategy.item.name!r}.",
            details={"constraint_set": ["is written for another strategy"]},
        )
    return target


def versions_loggable_check(strategy: Version, constraint_set: Version) -> None:
    """Refuse to log decisions with versions not approved for use (approved or active):
    the strategy, the constraint set, and the models the strategy predicts with (retired
    ones included: withdrawn from use, they must not decide for customers again, as a
    deployment's activation refuses them). ``ValidationFailed`` naming each version."""
    refs = [
        ("strategy", {"name": strategy.item.name, "version": strategy.number}),
        ("constraint_set", {"name": constraint_set.item.name, "version": constraint_set.number}),
    ]
    refs += [("model", model) for model in strategy_model_refs(refs[0][1])]
    pending = strategies.references_not_in(refs, LOGGABLE)
    if pending:
        raise ValidationFailed(
            "A run that logs decisions decides for customers, so it needs versions approved "
            f"for use; these are not: {', '.join(pending)}. Approve them (or use versions "
            "that are), or start a simulation (log_decisions false).",
            details={"versions": pending},
        )


def _simulated_spec(target: RunTarget, raw: Any) -> dict[str, Any]:
    from decisions.simulator.population import USE_CASES

    if not isinstance(raw, dict):
        raise ValidationFailed(
            "simulated must be an object.", details={"simulated": ["must be an object"]}
        )
    use_case = target.strategy.content.get("use_case")
    if use_case not in USE_CASES:
        raise ValidationFailed(
            f"Strategy {target.strategy.item.name} is not one of the simulator's use cases; "
            "upload a population file instead.",
            details={"population": ["this strategy needs an uploaded population"]},
        )
    customers, seed = raw.get("customers", 5_000), raw.get("seed", 1)
    problems: dict[str, list[str]] = {}
    if not isinstance(customers, int) or isinstance(customers, bool):
        problems["simulated.customers"] = ["must be an integer"]
    elif not 1 <= customers <= settings.OPTIMISATION_MAX_CUSTOMERS:
        problems["simulated.customers"] = [
            f"must be between 1 and {settings.OPTIMISATION_MAX_CUSTOMERS}"
        ]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        problems["simulated.seed"] = ["must be a whole number from 0 to 4294967295"]
    unknown = sorted(set(raw) - {"customers", "seed"})
    for name in unknown:
        problems[f"simulated.{name}"] = ["unknown field"]
    if problems:
        first = next(iter(problems))
        raise ValidationFailed(f"{first}: {problems[first][0]}", details=problems)
    return {"kind": "simulated", "use_case": use_case, "customers": customers, "seed": seed}


def _file_spec(upload: IO[bytes], filename: str, target: RunTarget) -> dict[str, Any]:
    """Store an uploaded population file, once its header (CSV) or schema (Parquet) has
    the columns the target needs: a file that cannot be read or lacks a column is
    refused here (400) instead of queuing a run that would fail. Values are checked by
    the run, which reads the whole file."""
    fmt = population_format(filename)
    staged = artifact_stage(
        upload,
        max_bytes=settings.OPTIMISATION_POPULATION_MAX_BYTES,
        field="population",
        noun="population file",
    )
    try:
        columns = population_columns(staged.path, fmt)
        population_columns_check(columns, [ID_COLUMN, *_target_features(target)])
        path = artifact_commit(staged, suffix=f".{fmt}")
    except BaseException:
        artifact_discard(staged)
        raise
    return {
        "kind": "file",
        "name": Path(filename).name[:200],
        "format": fmt,
        "path": path,
        "sha256": staged.sha256,
        "bytes": staged.size,
    }


def _target_features(target: RunTarget) -> list[str]:
    """The features the target's decision function needs from each customer."""
    try:
        function = runtime.decision_function(target.strategy, target.constraint_set)
    except ArtifactIntegrityError as exc:
        logger.error("no run of %s can start: %s", target.strategy, exc.message)
        raise DeploymentUnavailable(
            "The run cannot start now: a model file its strategy needs is missing or no "
            "longer matches its sealed hash. Nothing was created; the server's log names "
            "the file for Arbiter's administrators."
        ) from None
    return list(function.features)


def optimisation_run_create(
    *,
    actor: AbstractBaseUser,
    deployment: str | None = None,
    strategy: Any = None,
    constraint_set: Any = None,
    population_file: IO[bytes] | None = None,
    population_filename: str = "",
    simulated: Any = None,
    description: str = "",
    time_limit_seconds: float | None = None,
    log_decisions: bool = True,
    enqueue: bool = True,
) -> OptimisationRun:
    """Queue a run. Raises ``ValidationFailed`` (field details), ``NotFound`` (no active
    deployment), ``PermissionDenied``. The task starts when the transaction commits."""
    require_role(actor, CREATOR_ROLES, action="start optimisation runs")
    return _run_create(
        actor=actor,
        deployment=deployment,
        strategy=strategy,
        constraint_set=constraint_set,
        population_file=population_file,
        population_filename=population_filename,
        simulated=simulated,
        description=description,
        time_limit_seconds=time_limit_seconds,
        log_decisions=log_decisions,
        enqueue=enqueue,
    )


def _run_create(
    *,
    actor: AbstractBaseUser,
    deployment: str | None,
    strategy: Any,
    constraint_set: Any,
    population_file: IO[bytes] | None,
    population_filename: str,
    simulated: Any,
    description: str,
    time_limit_seconds: float | None,
    log_decisions: bool,
    enqueue: bool,
    population_spec: dict[str, Any] | None = None,
) -> OptimisationRun:
    """``optimisation_run_create`` after the caller checked the actor's roles.

    ``population_spec`` reuses the population of an earlier run (its stored file, or its
    simulation) as it is."""
    if len(description) > DESCRIPTION_MAX:
        raise ValidationFailed(
            f"The description is {len(description)} characters long; at most {DESCRIPTION_MAX}.",
            details={"description": [f"at most {DESCRIPTION_MAX} characters"]},
        )
    target = _target(
        deployment=deployment,
        strategy=strategy,
        constraint_set=constraint_set,
        log_decisions=log_decisions,
    )
    if population_spec is not None:
        simulated, population_file = None, None
    elif (population_file is None) == (simulated is None):
        raise ValidationFailed(
            "Give a population file or a simulated population (one of them).",
            details={"population": ["upload a file or ask for a simulated population"]},
        )
    limit = settings.OPTIMISATION_TIME_LIMIT_SECONDS
    if time_limit_seconds is not None:
        if not 1 <= float(time_limit_seconds) <= limit:
            raise ValidationFailed(
                f"time_limit_seconds must be between 1 and {limit}.",
                details={"time_limit_seconds": [f"between 1 and {limit}"]},
            )
        limit = float(time_limit_seconds)
    if population_spec is not None:
        spec = dict(population_spec)
    elif simulated is not None:
        spec = _simulated_spec(target, simulated)
    else:
        spec = _file_spec(population_file, population_filename, target)
    with transaction.atomic():
        run = OptimisationRun.objects.create(
            created_by=actor,
            created_at=timezone.now(),
            description=description,
            deployment_name=target.deployment.item.name if target.deployment else "",
            deployment_version=target.deployment,
            strategy_version=target.strategy,
            constraint_set_version=target.constraint_set,
            population=spec,
            time_limit_seconds=limit,
            log_decisions=log_decisions,
        )
        if enqueue:
            transaction.on_commit(lambda: optimisation_run_enqueue(run.pk))
    return run


def optimisation_run_enqueue(run_id: int) -> None:
    """Hand run ``run_id`` to the Celery workers.

    When the broker does not take the message (down or unreachable, after Celery's publish
    retries) the run is marked failed rather than left ``queued`` with no task behind it,
    and ``QueueUnavailable`` (503) says so.
    """
    from kombu.exceptions import OperationalError

    from decisions.tasks import optimisation_run_task

    task_id = uuid.uuid4().hex
    OptimisationRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        task_id=task_id, sent_at=timezone.now()
    )
    try:
        optimisation_run_task.apply_async(args=[run_id], task_id=task_id)
    except OperationalError as exc:
        logger.error("optimisation run %s could not be queued: %s", run_id, exc)
        message = (
            f"Optimisation run {run_id} was not started: the task queue (the Celery broker) "
            "did not answer. Start the run again once the broker is back."
        )
        OptimisationRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), error=message
        )
        raise QueueUnavailable(message) from None


def optimisation_run_cancel(*, actor: AbstractBaseUser, run: OptimisationRun) -> OptimisationRun:
    """Cancel a queued run at once, or ask a running one to stop at its next step."""
    roles = roles_of(actor)
    if Role.ADMIN not in roles and not (run.created_by_id == actor.pk and roles & CREATOR_ROLES):
        raise PermissionDenied(
            "Only the run's creator or an administrator may cancel it.",
            details={"required_roles": sorted(CREATOR_ROLES)},
        )
    with transaction.atomic():
        run = OptimisationRun.objects.select_for_update().get(pk=run.pk)
        if run.finished:
            raise Conflict(
                f"Optimisation run {run.pk} already {run.status}; there is nothing to cancel.",
                code="run_finished",
            )
        run.cancel_requested = True
        fields = ["cancel_requested"]
        if run.status == RunStatus.QUEUED:
            run.status, run.finished_at, run.phase = RunStatus.CANCELLED, timezone.now(), ""
            run.error = f"Cancelled by {actor.get_username()} before it started."
            fields += ["status", "finished_at", "phase", "error"]
        run.save(update_fields=fields)
    if run.status == RunStatus.CANCELLED and run.task_id:
        from kombu.exceptions import OperationalError

        from arbiter.celery import app

        # Only spares a worker the message: one that takes it finds the run cancelled.
        try:
            app.control.revoke(run.task_id)
        except OperationalError as exc:
            logger.warning("could not revoke the task of cancelled run %s: %s", run.pk, exc)
    return run


def optimisation_run_get(*, actor: AbstractBaseUser, run_id: Any) -> OptimisationRun:
    require_role(actor, READER_ROLES, action="read optimisation runs")
    try:
        key = int(run_id)
    except (TypeError, ValueError):
        raise NotFound(f"There is no optimisation run {run_id!r}.") from None
    run = (
        OptimisationRun.objects.select_related(
            "created_by", "strategy_version__item", "constraint_set_version__item"
        )
        .filter(pk=key)
        .first()
    )
    if run is None:
        raise NotFound(f"There is no optimisation run {run_id}.")
    return run


def optimisation_run_list(
    *, actor: AbstractBaseUser, status: str | None = None, deployment: str | None = None
) -> QuerySet[OptimisationRun]:
    require_role(actor, READER_ROLES, action="read optimisation runs")
    runs = OptimisationRun.objects.select_related(
        "created_by", "strategy_version__item", "constraint_set_version__item"
    )
    if status:
        runs = runs.filter(status=status)
    if deployment:
        runs = runs.filter(deployment_name=deployment)
    return runs


def optimisation_run_decisions(*, actor: AbstractBaseUser, run: OptimisationRun) -> QuerySet:
    """The run's decisions in population order; only a succeeded run has a decision set."""
    require_role(actor, DECISION_READER_ROLES, action="read a run's decisions")
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(
            f"Optimisation run {run.pk} is {run.status}: it has no complete decision set.",
            code="run_not_succeeded",
        )
    if not run.log_decisions:
        raise Conflict(
            f"Optimisation run {run.pk} was a simulation and logged no decisions.",
            code="run_not_logged",
        )
    return Decision.objects.filter(run=run)


# --- publishing prices --------------------------------------------------------------


def optimisation_prices_publish(
    *, actor: AbstractBaseUser, run: OptimisationRun, comment: str = ""
) -> Version:
    """Propose the run's prices for its deployment: a new deployment version, submitted
    for review. A checker approves and activates it like any other change (four eyes)."""
    require_role(actor, PUBLISHER_ROLES, action="publish optimisation prices")
    governance.direction_controls_refuse(comment=comment)
    if run.status != RunStatus.SUCCEEDED:
        raise PreconditionFailed(
            f"Optimisation run {run.pk} is {run.status}; only a succeeded run has prices.",
            code="run_not_succeeded",
        )
    if not run.deployment_name:
        raise PreconditionFailed(
            f"Optimisation run {run.pk} ran on versions, not a deployment: there is no "
            "deployment to publish its prices to.",
            code="run_without_deployment",
        )
    active = runtime.active_deployment(run.deployment_name)
    content = dict(active.content)
    same = content["strategy"] == {
        "name": run.strategy_version.item.name,
        "version": run.strategy_version.number,
    } and content["constraint_set"] == {
        "name": run.constraint_set_version.item.name,
        "version": run.constraint_set_version.number,
    }
    if not same:
        raise PreconditionFailed(
            f"Deployment {run.deployment_name} no longer uses the strategy and constraint "
            f"set run {run.pk} optimised; run it again.",
            code="run_outdated",
        )
    content["prices"] = dict(run.prices)
    content["price_source"] = f"optimisation run {run.pk}"
    with transaction.atomic():
        note = comment or f"Prices from optimisation run {run.pk}."
        version = governance.version_create(
            actor=actor,
            kind="deployment",
            name=run.deployment_name,
            content=content,
            change_note=note,
        )
        if run.created_by_id is not None and run.created_by_id != actor.pk:
            # Whoever started the run chose the population the prices come from: four
            # eyes keep them, as any contributor, from approving the prices themselves.
            version.contributors.add(run.created_by_id)
        # The submit comment becomes the change note the checker reads: the maker's.
        version = governance.version_submit(actor=actor, version=version, comment=note)
        OptimisationRun.objects.filter(pk=run.pk).update(published_version=version)
    run.published_version = version
    return version


# --- executing ------------------------------------------------------------------------


class _Reporter:
    """Phase, progress and heartbeat, written where other processes can read them.

    While the decisions are being written the run's own connection is inside a long
    transaction, so on PostgreSQL updates go through a second, autocommit connection.
    """

    WRITE_EVERY_SECONDS = 1.0

    def __init__(self, run: OptimisationRun, callback: Progress | None) -> None:
        self.run = run
        self.callback = callback
        self.side = None
        self.phase_started = time.perf_counter()
        self.phase_seconds: dict[str, float] = {}
        self._last_write = 0.0
        self._closed = False
        self.in_log_transaction = False

    def phase(self, name: str, percent: float) -> None:
        now = time.perf_counter()
        if self.run.phase:
            self.phase_seconds[self.run.phase] = round(
                self.phase_seconds.get(self.run.phase, 0.0) + now - self.phase_started, 3
            )
        self.phase_started = now
        self.run.phase = name
        self.progress(percent, force=True)

    def progress(self, percent: float, *, force: bool = False) -> None:
        self.run.progress = round(min(100.0, max(0.0, percent)), 1)
        now = time.perf_counter()
        if force or now - self._last_write >= self.WRITE_EVERY_SECONDS:
            self._last_write = now
            values = {"phase": self.run.phase, "progress": self.run.progress}
            if self.in_log_transaction:
                self._side_update(values)
            else:
                OptimisationRun.objects.filter(pk=self.run.pk).update(
                    heartbeat_at=timezone.now(), **values
                )
        if self.callback is not None:
            self.callback(self.run.phase, self.run.progress)

    def _side_update(self, values: dict[str, Any]) -> None:
        if connection.vendor != "postgresql":
            return  # SQLite has one writer: the run's own transaction.
        if self.side is None:
            self.side = connections.create_connection("default")
        with self.side.cursor() as cursor:
            cursor.execute(
                "UPDATE decisions_optimisationrun SET phase = %s, progress = %s, "
                "heartbeat_at = %s WHERE id = %s",
                [values["phase"], values["progress"], timezone.now(), self.run.pk],
            )

    def cancel_requested(self) -> bool:
        if self.in_log_transaction and connection.vendor == "postgresql":
            if self.side is None:
                self.side = connections.create_connection("default")
            with self.side.cursor() as cursor:
                cursor.execute(
                    "SELECT cancel_requested FROM decisions_optimisationrun WHERE id = %s",
                    [self.run.pk],
                )
                row = cursor.fetchone()
            return bool(row and row[0])
        return OptimisationRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists()

    def check(self) -> None:
        if self.cancel_requested():
            raise RunCancelled

    def close(self) -> None:
        """Book the current phase's time and drop the side connection (idempotent)."""
        if self.run.phase and not self._closed:
            now = time.perf_counter()
            self.phase_seconds[self.run.phase] = round(
                self.phase_seconds.get(self.run.phase, 0.0) + now - self.phase_started, 3
            )
        self._closed = True
        if self.side is not None:
            self.side.close()
            self.side = None


def _claim(run_id: int) -> OptimisationRun | None:
    """Mark the run running for this worker; None when there is nothing to do."""
    stale = timezone.now() - timedelta(seconds=settings.OPTIMISATION_HEARTBEAT_STALE_SECONDS)
    with transaction.atomic():
        run = OptimisationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in FINISHED_RUN_STATUSES:
            return None
        if run.cancel_requested:
            run.status, run.finished_at = RunStatus.CANCELLED, timezone.now()
            run.error = run.error or "Cancelled before it started."
            run.save(update_fields=["status", "finished_at", "error"])
            return None
        if run.status == RunStatus.RUNNING and run.heartbeat_at and run.heartbeat_at > stale:
            return None  # another worker is on it
        now = timezone.now()
        run.status, run.phase, run.progress = RunStatus.RUNNING, "loading", 0.0
        run.attempts += 1
        run.started_at = run.heartbeat_at = now
        run.error, run.error_details = "", {}
        run.save(
            update_fields=[
                "status",
                "phase",
                "progress",
                "attempts",
                "started_at",
                "heartbeat_at",
                "error",
                "error_details",
            ]
        )
        return run


def optimisation_run_execute(
    run_id: int, *, progress: Progress | None = None, resumable: bool = False
) -> OptimisationRun:
    """Run ``run_id`` to the end (the task's body); returns the run as it ended.

    Never raises for a problem with the run itself: bad populations, infeasible limits
    and internal errors end the run ``failed`` with a message. Losing the database or the
    task queue is not the run's fault: with ``resumable`` (the Celery task) the run is
    left ``running`` for beat to start again once its heartbeat is stale
    (``optimisation_runs_recover``); without (``manage.py optimise``, whose user is
    waiting) it ends ``failed`` saying which went away.
    """
    run = _claim(run_id)
    if run is None:
        found = OptimisationRun.objects.filter(pk=run_id).first()
        if found is None:
            raise NotFound(f"There is no optimisation run {run_id}.")
        return found
    reporter = _Reporter(run, progress)
    try:
        with _run_heartbeat(run.pk):
            _execute(run, reporter)
    except RunCancelled:
        _finish(run, reporter, RunStatus.CANCELLED, error="Cancelled while running.")
    except RunSuperseded:
        logger.warning(
            "optimisation run %s: attempt %s was superseded by a later one; it logged nothing",
            run.pk,
            run.attempts,
        )
        return run
    except DomainError as exc:
        _finish(run, reporter, RunStatus.FAILED, error=exc.message, details=exc.details)
    except Exception as exc:
        lost = _lost(exc)
        if lost is not None:
            # A restart, a failover, the network. The run's transaction rolled back (no
            # decisions); its chunks' folders are removed, and a restart clears any left.
            if resumable:
                logger.error(
                    "optimisation run %s lost %s (%s); beat will start it again", run.pk, lost, exc
                )
                return run
            logger.error("optimisation run %s lost %s: %s", run.pk, lost, exc)
            message = (
                f"The run lost {lost} ({exc}) and stopped. No decision of it was logged; "
                "start it again once that is back."
            )
        elif type(exc).__name__ == "SoftTimeLimitExceeded":
            message = "The run exceeded the worker's time limit."
        elif isinstance(exc, OSError):
            logger.exception("optimisation run %s could not use its files", run.pk)
            message = (
                "The run could not write or read its working files in the file storage "
                f"({exc.strerror or exc}). Free space there or fix ARTIFACT_ROOT, then start "
                "the run again. No decision of it was logged."
            )
        else:
            logger.exception("optimisation run %s failed", run.pk)
            message = f"An internal error stopped the run ({type(exc).__name__}); see the log."
        _finish(run, reporter, RunStatus.FAILED, error=message)
    finally:
        reporter.close()
    run.refresh_from_db()
    return run


def _lost(exc: BaseException) -> str | None:
    """What an exception says went away: "the database", "the task queue (...)", or None
    for anything else. Looks down the chain: Celery's Redis result backend, for one,
    gives up reconnecting with a RuntimeError raised from Redis' ConnectionError."""
    queue_errors = _infrastructure_errors()
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OperationalError | InterfaceError):
            return "the database"
        if isinstance(seen, queue_errors):
            return "the task queue (the Celery broker or result backend)"
        seen = seen.__cause__ or seen.__context__
    return None


def _infrastructure_errors() -> tuple[type[BaseException], ...]:
    """What losing the task queue raises (Redis' own errors are not kombu's: the result
    backend raises them as they come)."""
    from kombu.exceptions import OperationalError as BrokerError

    errors: tuple[type[BaseException], ...] = (BrokerError,)
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # a deployment on another broker
        return errors
    return (*errors, RedisConnectionError, RedisTimeoutError)


@contextmanager
def _run_heartbeat(run_id: int) -> Iterator[None]:
    """Keep run ``run_id``'s heartbeat fresh from a thread while this worker runs it.

    Progress reports refresh it too, but a phase may report none for longer than
    ``OPTIMISATION_HEARTBEAT_STALE_SECONDS`` (a solve with a long time limit), and a run
    with a stale heartbeat is taken over by another worker. The thread writes on its own
    autocommit connection, so the run's long logging transaction does not hold it back.
    Only on PostgreSQL: SQLite has one writer, the run's own transaction.
    """
    if connection.vendor != "postgresql":
        yield
        return

    def beating() -> None:
        try:
            OptimisationRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
                heartbeat_at=timezone.now()
            )
        except DatabaseError as exc:  # a missed beat; the next one tries again
            logger.warning("optimisation run %s: heartbeat not written (%s)", run_id, exc)
        finally:
            connection.close()  # this thread's own; a fresh one next time, even after an error

    with repeating(
        settings.OPTIMISATION_HEARTBEAT_SECONDS, beating, name=f"run-heartbeat-{run_id}"
    ):
        yield


def optimisation_runs_recover() -> dict[str, list[int]]:
    """Send again the runs whose task no worker is on; fail those that have been started
    ``OPTIMISATION_MAX_ATTEMPTS`` times. Beat calls it every minute.

    Two kinds of run are sent again:

    - ``running`` runs whose heartbeat is older than ``OPTIMISATION_HEARTBEAT_STALE_SECONDS``:
      their worker died with the broker unable to redeliver its task, or lost the
      database or the task queue mid-run;
    - ``queued`` runs that no worker has taken ``OPTIMISATION_QUEUED_RESEND_SECONDS`` after
      their task was sent (``_resend_due``): the broker may have lost the message (a Redis
      restarted without its append-only file), or every worker is busy or stopped.

    Sending a task again is safe: the task claims the run under a row lock and leaves
    alone a run another worker is running or has finished; a spare message costs a
    worker one query. Returns the ids ``{"resent": [...], "failed": [...]}``.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.OPTIMISATION_HEARTBEAT_STALE_SECONDS)
    stopped = OptimisationRun.objects.filter(status=RunStatus.RUNNING).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )
    done: dict[str, list[int]] = {"resent": [], "failed": []}
    for run in stopped.only("pk", "attempts", "heartbeat_at").order_by("pk"):
        same = OptimisationRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, heartbeat_at=run.heartbeat_at
        )
        if run.attempts >= settings.OPTIMISATION_MAX_ATTEMPTS:
            message = (
                f"The run was started {run.attempts} times and stopped each time without "
                "finishing (its worker died, or lost the database). It is not started "
                "again; the workers' log names the cause. No decision of it was logged."
            )
            if same.update(
                status=RunStatus.FAILED, phase="", finished_at=timezone.now(), error=message
            ):
                logger.error("optimisation run %s failed: %s", run.pk, message)
                done["failed"].append(run.pk)
            continue
        reason = "stopped without finishing"
        if _resend(run.pk, same, reason=reason):
            done["resent"].append(run.pk)

    first_due = now - timedelta(seconds=settings.OPTIMISATION_QUEUED_RESEND_SECONDS)
    waiting = OptimisationRun.objects.filter(
        status=RunStatus.QUEUED, cancel_requested=False, sent_at__lt=first_due
    )
    for run in waiting.only("pk", "created_at", "sent_at").order_by("pk"):
        if not _resend_due(run, now):
            continue
        same = OptimisationRun.objects.filter(
            pk=run.pk, status=RunStatus.QUEUED, sent_at=run.sent_at
        )
        waited = round((now - run.sent_at).total_seconds())
        reason = f"was not taken by a worker {waited} s after it was sent"
        if _resend(run.pk, same, reason=reason):
            done["resent"].append(run.pk)
    return done


def _resend_due(run: OptimisationRun, now: datetime) -> bool:
    """Whether queued ``run`` has waited long enough since its last send to be sent again.

    The first wait is ``OPTIMISATION_QUEUED_RESEND_SECONDS``; each later one is as long as
    the run had been queued when last sent (so the waits double), at most
    ``OPTIMISATION_QUEUED_RESEND_MAX_SECONDS``.
    """
    assert run.sent_at is not None
    return resend_due(
        run.created_at, run.sent_at, now, first=settings.OPTIMISATION_QUEUED_RESEND_SECONDS
    )


def resend_due(created_at: datetime, sent_at: datetime, now: datetime, *, first: float) -> bool:
    """Whether a task queued at ``created_at``, last sent at ``sent_at`` and not taken by
    a worker since, should be sent again at ``now``: after ``first`` seconds, then after
    as long as it had been queued when last sent (the waits double), at most
    ``OPTIMISATION_QUEUED_RESEND_MAX_SECONDS``. Runs and replay checks wait the same way."""
    queued_when_sent = (sent_at - created_at).total_seconds()
    wait = min(max(first, queued_when_sent), settings.OPTIMISATION_QUEUED_RESEND_MAX_SECONDS)
    return (now - sent_at).total_seconds() >= wait


def _resend(run_id: int, same: QuerySet[OptimisationRun], *, reason: str) -> bool:
    """Send a run's task again (a new task id, so a cancel revokes this one)."""
    from kombu.exceptions import OperationalError as BrokerError

    from decisions.tasks import optimisation_run_task

    task_id = uuid.uuid4().hex
    if not same.update(task_id=task_id, sent_at=timezone.now()):
        return False  # it moved on meanwhile (taken, finished, cancelled, or beating again)
    logger.warning("optimisation run %s %s; sending it again", run_id, reason)
    try:
        optimisation_run_task.apply_async(args=[run_id], task_id=task_id)
    except BrokerError as exc:
        logger.error("optimisation run %s could not be sent again: %s", run_id, exc)
        return False
    return True


def _finish(
    run: OptimisationRun,
    reporter: _Reporter,
    status: str,
    *,
    error: str = "",
    details: Any = None,
) -> None:
    reporter.close()
    # Only this attempt's claim: a later one (another worker) owns the run now otherwise.
    OptimisationRun.objects.filter(pk=run.pk, attempts=run.attempts).update(
        status=status,
        phase="",
        finished_at=timezone.now(),
        error=error,
        error_details=details or {},
        phase_seconds=reporter.phase_seconds,
        execution=run.execution,
        solver_status=run.solver_status,
        objective=run.objective,
        bound=run.bound,
        gap=run.gap,
        limits=run.limits,
        prices=run.prices,
        customers=run.customers,
    )


def _population(run: OptimisationRun, function: DecisionFunction) -> Population:
    """The whole population, validated (``ValidationFailed`` names rows and columns)."""
    pieces = list(_population_pieces(run, function, rows=None))
    return pieces[0]


def _population_pieces(
    run: OptimisationRun, function: DecisionFunction, *, rows: int | None
) -> Iterator[Population]:
    """The run's population in validated pieces of at most ``rows`` customers (None: one).

    An uploaded file is read piece by piece (``population_pieces``), so this process never
    holds more than one piece of it; every piece is checked as it comes and, after the
    last, ``ValidationFailed`` is raised naming the rows and columns of every problem in
    the file (a piece with problems is yielded all the same: the caller must consume the
    whole iterator before it acts on anything).
    """
    spec = run.population
    check = PopulationCheck(function.features)
    path = None
    if spec["kind"] == "simulated":
        frames: Any = [population_simulated(spec["use_case"], spec["customers"], seed=spec["seed"])]
    else:
        target = Path(settings.ARTIFACT_ROOT) / "staging" / f"run-{run.pk}-{uuid.uuid4().hex}"
        path = artifact_open_verified(spec["path"], spec["sha256"], into=target)
        frames = population_pieces(
            path, spec["format"], rows=rows, columns=[ID_COLUMN, *function.features]
        )
    try:
        for frame in frames:
            if check.rows + len(frame) > settings.OPTIMISATION_MAX_CUSTOMERS:
                raise ValidationFailed(
                    f"The population has more than {settings.OPTIMISATION_MAX_CUSTOMERS:,} "
                    f"customers, the limit.",
                    details={"population": ["too many customers"]},
                )
            population = check.piece(frame)
            size = rows or max(1, population.size)
            for start in range(0, population.size, size):
                yield population_slice(population, slice(start, start + size))
        check.finish()
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


def _score(function: DecisionFunction, population: Population, reporter: _Reporter) -> Evaluation:
    """Evaluate every customer on every action at zero prices, in chunks."""

    def each(done: int) -> None:
        reporter.progress(10 + 30 * done / population.size)
        reporter.check()

    return evaluate_population(function, population, each)


def evaluate_population(
    function: DecisionFunction,
    population: Population,
    each: Callable[[int], None] | None = None,
) -> Evaluation:
    """``function.evaluate`` over the population ``SCORE_CHUNK`` customers at a time (the
    models' inputs for customers x actions stay bounded); ``each(customers_done)`` after
    every piece."""
    n = population.size
    parts: list[Evaluation] = []
    for start in range(0, n, SCORE_CHUNK):
        rows = slice(start, min(n, start + SCORE_CHUNK))
        parts.append(
            function.evaluate({name: col[rows] for name, col in population.columns.items()})
        )
        if each is not None:
            each(rows.stop)
    if len(parts) == 1:
        return parts[0]
    return Evaluation(
        action_ids=parts[0].action_ids,
        quantities={
            q: np.concatenate([p.quantities[q] for p in parts]) for q in parts[0].quantities
        },
        value=np.concatenate([p.value for p in parts]),
        usage=np.concatenate([p.usage for p in parts], axis=1),
        eligible=np.concatenate([p.eligible for p in parts]),
        failed_rules={
            name: np.concatenate([p.failed_rules[name] for p in parts])
            for name in parts[0].failed_rules
        },
        prices=parts[0].prices,
        score=np.concatenate([p.score for p in parts]),
        choice=np.concatenate([p.choice for p in parts]),
    )


def at_prices(result: Evaluation, prices: np.ndarray) -> Evaluation:
    """The same evaluation with scores and best choices at ``prices``."""
    score = (
        result.value - np.tensordot(prices, result.usage, axes=1)
        if len(prices)
        else result.value.copy()
    )
    score = np.where(result.eligible, score, -np.inf)
    return Evaluation(
        action_ids=result.action_ids,
        quantities=result.quantities,
        value=result.value,
        usage=result.usage,
        eligible=result.eligible,
        failed_rules=result.failed_rules,
        prices=prices,
        score=score,
        choice=np.argmax(score, axis=1),
    )


def _limits_report(
    function: DecisionFunction, used: np.ndarray, prices: np.ndarray
) -> list[dict[str, Any]]:
    out = []
    for m, limit in enumerate(function.limits):
        use = float(limit.sign * used[m])
        slack = limit.bound - use if limit.sense == "<=" else use - limit.bound
        out.append(
            {
                "name": limit.name,
                "description": limit.description,
                "sense": limit.sense,
                "bound": float(limit.bound),
                "used": use,
                "slack": float(slack),
                "utilisation": use / limit.bound if limit.bound else None,
                "price": float(prices[m]),
                "binding": bool(prices[m] > 0 or abs(slack) <= 1e-6 * max(1.0, abs(limit.bound))),
            }
        )
    return out


def _kpis(function: DecisionFunction, result: Evaluation, choice: np.ndarray) -> dict[str, Any]:
    """Expected KPIs of the chosen actions: in total and per action."""
    return kpis_from_sums(function, kpi_sums(function, result, choice))


def kpi_sums(function: DecisionFunction, result: Evaluation, choice: np.ndarray) -> dict[str, Any]:
    """What the KPIs of a set of customers add up from (JSON): counts and sums per action,
    and over the actioned customers. Sums of disjoint sets add up to the sums of the union,
    so a distributed run sums its chunks'."""
    rows = np.arange(len(choice))
    chosen_value = result.value[rows, choice]
    quantities = {q: values[rows, choice] for q, values in result.quantities.items()}
    fallback = function.fallback_index
    acted = choice != fallback if fallback is not None else np.ones(len(choice), dtype=bool)
    per_action = []
    for k in range(function.k):
        mask = choice == k
        per_action.append(
            {
                "customers": int(mask.sum()),
                "value": float(chosen_value[mask].sum()),
                "sum": {q: float(v[mask].sum()) for q, v in quantities.items()},
            }
        )
    return {
        "customers": len(choice),
        "value": float(chosen_value.sum()),
        "actioned": int(acted.sum()),
        "actioned_sum": {q: float(v[acted].sum()) for q, v in quantities.items()},
        "per_action": per_action,
    }


def kpi_sums_add(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The KPI sums of the union of disjoint sets of customers."""
    total = parts[0]
    for part in parts[1:]:
        total = {
            "customers": total["customers"] + part["customers"],
            "value": total["value"] + part["value"],
            "actioned": total["actioned"] + part["actioned"],
            "actioned_sum": {
                q: v + part["actioned_sum"][q] for q, v in total["actioned_sum"].items()
            },
            "per_action": [
                {
                    "customers": a["customers"] + b["customers"],
                    "value": a["value"] + b["value"],
                    "sum": {q: v + b["sum"][q] for q, v in a["sum"].items()},
                }
                for a, b in zip(total["per_action"], part["per_action"], strict=True)
            ],
        }
    return total


def kpis_from_sums(function: DecisionFunction, sums: dict[str, Any]) -> dict[str, Any]:
    n, acted = sums["customers"], sums["actioned"]
    per_action = []
    for key, label, part in zip(
        function.action_ids, function.action_labels, sums["per_action"], strict=True
    ):
        count = part["customers"]
        per_action.append(
            {
                "action": key,
                "label": label,
                "customers": count,
                "share": count / n if n else 0.0,
                "value": part["value"],
                "mean_value": part["value"] / count if count else None,
                "mean": {q: v / count if count else None for q, v in part["sum"].items()},
            }
        )
    return {
        "total": {
            "customers": n,
            "value": sums["value"],
            "mean_value": sums["value"] / n if n else None,
            "actioned": acted,
            "actioned_share": acted / n if n else 0.0,
            "mean": {q: v / acted if acted else None for q, v in sums["actioned_sum"].items()},
        },
        "per_action": per_action,
    }


def record_solution(run: OptimisationRun, function: DecisionFunction, solution: Any) -> np.ndarray:
    """The solver's outcome on the run (objective, bound, gap, limits, prices); returns the
    prices. Raises ``RunFailed`` for infeasible limits or no feasible choice in time.

    ``solution`` is a ``PortfolioSolution`` or a distributed run's ``ChunkedSolution``.
    """
    from decisions.engine.portfolio import INFEASIBLE, TIME_LIMIT

    run.solver_status = solution.status
    if solution.status == INFEASIBLE:
        names = [function.limits[i].name for i in solution.infeasible_limits]
        raise RunFailed(
            f"The limits cannot all be met for this population: {solution.message}"
            + (f" ({', '.join(names)})." if names else "."),
            code="infeasible",
            details={"limits": names, "solver_status": INFEASIBLE},
        )
    if solution.status == TIME_LIMIT:
        raise RunFailed(
            "The solver found no choice within the limits before the time limit.",
            code="time_limit",
            details={"solver_status": TIME_LIMIT},
        )
    prices = np.asarray(solution.prices, dtype=np.float64)
    run.objective, run.bound, run.gap = (
        float(solution.objective),
        float(solution.bound),
        float(solution.gap),
    )
    used = solution.usage if solution.usage is not None else np.zeros(function.m)
    run.limits = _limits_report(function, used, prices)
    run.prices = {lim.name: float(p) for lim, p in zip(function.limits, prices, strict=True)}
    return prices


def _execute(run: OptimisationRun, reporter: _Reporter) -> None:
    from decisions.distributed_runs import chunked_mode, execute_chunked
    from decisions.engine.portfolio import solve_portfolio

    deadline = time.monotonic() + run.time_limit_seconds
    reporter.progress(0, force=True)
    if run.log_decisions:
        # Again: a run waits in the queue, and a version may be retired meanwhile.
        versions_loggable_check(run.strategy_version, run.constraint_set_version)
    function = runtime.decision_function(run.strategy_version, run.constraint_set_version)
    size = settings.OPTIMISATION_CHUNK_CUSTOMERS
    large_mode = chunked_mode(size + 1)  # how a population of more than one chunk runs
    if large_mode is None:  # never in chunks: read the population whole
        population = _population(run, function)
    else:
        # Read a chunk at a time: a population of more than one chunk goes to the chunks
        # piece by piece, without ever being in this process whole.
        pieces = _population_pieces(run, function, rows=size)
        first = next(pieces)
        second = next(pieces, None)  # after the last piece the whole file is checked
        if second is not None:
            chunks = itertools.chain([first, second], pieces)
            execute_chunked(run, reporter, function, chunks, mode=large_mode, deadline=deadline)
            return
        population = first
    run.customers = population.size
    OptimisationRun.objects.filter(pk=run.pk).update(customers=run.customers)
    reporter.check()
    mode = chunked_mode(population.size)
    if mode is not None:
        execute_chunked(run, reporter, function, iter([population]), mode=mode, deadline=deadline)
        return

    reporter.phase("scoring", 10)
    result = _score(function, population, reporter)

    reporter.phase("solving", 40)
    solution = solve_portfolio(
        result.value,
        result.usage,
        function.limit_bounds(),
        allowed=result.eligible,
        time_limit=max(1.0, deadline - time.monotonic()),
    )
    run.execution = {"mode": "single_process"}
    prices = record_solution(run, function, solution)
    run.kpis = _kpis(function, result, solution.choice)
    reporter.check()

    priced = at_prices(result, prices)
    agreement = float(np.mean(priced.choice == solution.choice))
    run.kpis["price_agreement"] = agreement
    if not run.log_decisions:
        reporter.phase("finishing", 99)
        succeed(run, reporter, logged=0)
        return
    reporter.phase("logging", 60)
    with transaction.atomic():
        reporter.in_log_transaction = True
        try:
            log_writer_enter()
            logged = _log(run, function, population, priced, solution.choice, reporter)
            reporter.phase("finishing", 99)
            succeed(run, reporter, logged=logged)
        finally:
            reporter.in_log_transaction = False


def succeed(run: OptimisationRun, reporter: _Reporter, *, logged: int) -> None:
    """Mark the run succeeded; inside the logging transaction when it logged decisions.

    The run's row is locked and must still be this attempt's claim (``RunSuperseded``
    otherwise, which rolls back the decisions): two workers that both ran the run, one
    taking over from the other, cannot both commit its decisions.
    """
    with transaction.atomic():
        owner = (
            OptimisationRun.objects.select_for_update()
            .filter(pk=run.pk)
            .values_list("status", "attempts")
            .first()
        )
        if owner != (RunStatus.RUNNING, run.attempts):
            raise RunSuperseded
        reporter.close()
        if reporter.callback is not None:
            reporter.callback("done", 100.0)
        run.status, run.phase, run.progress = RunStatus.SUCCEEDED, "", 100.0
        run.finished_at = timezone.now()
        run.decisions_logged = logged
        if logged:
            transaction.on_commit(_seal_without_beat)
        run.phase_seconds = reporter.phase_seconds
        run.save(
            update_fields=[
                "status",
                "phase",
                "progress",
                "finished_at",
                "decisions_logged",
                "phase_seconds",
                "execution",
                "customers",
                "solver_status",
                "objective",
                "bound",
                "gap",
                "limits",
                "prices",
                "kpis",
            ]
        )


def _seal_without_beat() -> None:
    """Without a broker there is no beat to seal the run's decisions: seal them here, once
    they are committed. On SQLite (the embedded default) writers take turns, so no
    decision can still be committing and none needs the grace period; elsewhere the
    grace period applies and beat, or the next full block, seals the rest."""
    from decisions.tasks import decision_blocks_seal_task

    if not decision_blocks_seal_task.app.conf.task_always_eager:
        return  # beat seals within DECISION_SEAL_SECONDS
    try:
        grace = 0.0 if connection.vendor == "sqlite" else None
        decision_blocks_seal(grace_seconds=grace)
    except Exception:  # the decisions are committed; the next seal covers them
        logger.exception("sealing optimisation run decisions in-process failed")


# --- writing the decisions ------------------------------------------------------------------

# Every hashed field, then the hash and the run.
COLUMNS = (*HASHED_FIELDS, "content_hash", "run_id")
JSON_COLUMNS = frozenset(
    {
        "versions",
        "features",
        "actions",
        "action",
        "prices",
        "reasons",
        "contributions",
        "explanation",
    }
)


def _versions(run: OptimisationRun, function: DecisionFunction) -> dict[str, Any]:
    from decisions.services import versions_record

    return {
        **versions_record(
            deployment=run.deployment_version,
            strategy=run.strategy_version,
            constraint_set=run.constraint_set_version,
            function=function,
        ),
        "optimisation_run": run.pk,
    }


def log_common(run: OptimisationRun, function: DecisionFunction) -> dict[str, Any]:
    """The fields every decision of the run shares (JSON)."""
    return {
        "request_id": f"optimisation-run-{run.pk}",
        "idempotency_key": None,
        "client_id": run.created_by_id,
        "channel": CHANNEL,
        "deployment_name": run.deployment_name,
        "deployment_version_id": run.deployment_version_id,
        "strategy_version_id": run.strategy_version_id,
        "constraint_set_version_id": run.constraint_set_version_id,
        "versions": _versions(run, function),
        "arm": CHAMPION if run.deployment_version_id else "run",
        "latency_ms": 0.0,
        "run_id": run.pk,
    }


def log_rows(
    function: DecisionFunction,
    common: dict[str, Any],
    population: Population,
    priced: Evaluation,
    choice: np.ndarray,
) -> Iterator[list[dict[str, Any]]]:
    """The log rows of a population's decisions, ``LOG_CHUNK`` at a time, each with its
    content hash and ``_texts`` (every JSON column serialised once, for the hash and for
    COPY; fields every row shares once per call)."""
    from decisions.batch_records import batch_records

    n = population.size
    names = list(function.features)
    columns = {name: population.columns[name].tolist() for name in names}
    hashed = (*HASHED_FIELDS, "run_id")
    shared = {name: canonical_json(common[name]) for name in common if name in hashed}
    for start in range(0, n, LOG_CHUNK):
        rows = slice(start, min(n, start + LOG_CHUNK))
        chunk = _slice(priced, rows)
        customer = {name: columns[name][rows] for name in names}
        records = batch_records(function, customer, chunk, choice[rows])
        now = timezone.now()
        now_text = canonical_json(now.isoformat())
        prices_text = canonical_json(records[0]["prices"]) if records else b"{}"
        batch = []
        for i, record in enumerate(records):
            row = dict(common)
            row.update(record)
            row["decision_id"] = uuid.uuid4()
            row["customer_id"] = population.customer_ids[start + i]
            row["features"] = {name: customer[name][i] for name in names}
            row["created_at"] = now
            texts = dict(shared)
            texts["prices"] = prices_text
            texts["created_at"] = now_text
            texts["decision_id"] = canonical_json_plain(str(row["decision_id"]))
            # Plain JSON types with finite numbers (batch_records checks the floats).
            for name in _ROW_FIELDS:
                texts[name] = canonical_json_plain(row[name])
            row["content_hash"] = decision_hash_of_texts(texts) or decision_hash(
                SimpleNamespace(**row)
            )
            row["_texts"] = texts
            batch.append(row)
        yield batch


def _log(
    run: OptimisationRun,
    function: DecisionFunction,
    population: Population,
    priced: Evaluation,
    choice: np.ndarray,
    reporter: _Reporter,
) -> int:
    """Write one decision per customer (COPY on PostgreSQL); returns how many."""
    n = population.size
    common = log_common(run, function)
    writer = _copy_writer() if connection.vendor == "postgresql" else _bulk_writer()
    written = 0
    with writer as write:
        for batch in log_rows(function, common, population, priced, choice):
            write(batch)
            written += len(batch)
            reporter.progress(60 + 39 * written / n)
            reporter.check()
    return written


_ROW_FIELDS = (
    "customer_id",
    "features",
    "actions",
    "action_id",
    "action",
    "value",
    "reasons",
    "contributions",
    "explanation",
)


def _slice(result: Evaluation, rows: slice) -> Evaluation:
    return Evaluation(
        action_ids=result.action_ids,
        quantities={q: v[rows] for q, v in result.quantities.items()},
        value=result.value[rows],
        usage=result.usage[:, rows],
        eligible=result.eligible[rows],
        failed_rules={name: mask[rows] for name, mask in result.failed_rules.items()},
        prices=result.prices,
        score=result.score[rows],
        choice=result.choice[rows],
    )


class _copy_writer:
    """PostgreSQL: COPY each chunk into the log (JSON columns as text), in a thread of
    its own, so that the server takes in one chunk while this process builds the next.

    One COPY per chunk, not one for the whole run: a chunk is sent while the next is being
    built, and ``write`` waits for the chunk before it, so at most one COPY is in flight
    and the connection is only ever used by one thread at a time. The run's progress and
    cancel checks meanwhile go through the reporter's side connection. A COPY error is
    raised by the next ``write`` or on leaving, and the caller's transaction rolls back.
    """

    def __enter__(self) -> Callable[[list[dict[str, Any]]], None]:
        self.cursor = connection.cursor()
        raw = self.cursor.cursor  # psycopg's own cursor: usable from the sending thread
        sql = f"COPY decisions_decision ({', '.join(COLUMNS)}) FROM STDIN"
        self.sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decision-copy")
        self.pending: Future[None] | None = None

        def send(batch: list[dict[str, Any]]) -> None:
            with raw.copy(sql) as copy:
                for row in batch:
                    texts = row["_texts"]
                    copy.write_row(
                        [texts[c].decode() if c in JSON_COLUMNS else row[c] for c in COLUMNS]
                    )

        def write(batch: list[dict[str, Any]]) -> None:
            self._wait()
            self.pending = self.sender.submit(send, batch)

        return write

    def _wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()  # raises the COPY's error, if any

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            if exc_type is None:
                self._wait()
            elif self.pending is not None:
                # Already failing: let the COPY in flight end before the rollback, and
                # keep the first error.
                self.pending.exception()
        finally:
            self.sender.shutdown(wait=True)
            self.cursor.close()


class _bulk_writer:
    """Other databases: bulk INSERT."""

    def __enter__(self) -> Callable[[list[dict[str, Any]]], None]:
        def write(batch: list[dict[str, Any]]) -> None:
            Decision.objects.bulk_create(
                [Decision(**{k: v for k, v in row.items() if k != "_texts"}) for row in batch],
                batch_size=500,
            )

        return write

    def __exit__(self, *exc: Any) -> None:
        return None


__all__ = [
    "CREATOR_ROLES",
    "DECISION_READER_ROLES",
    "READER_ROLES",
    "RunCancelled",
    "RunFailed",
    "optimisation_prices_publish",
    "optimisation_run_cancel",
    "optimisation_run_create",
    "optimisation_run_decisions",
    "optimisation_run_execute",
    "optimisation_run_get",
    "optimisation_run_list",
]

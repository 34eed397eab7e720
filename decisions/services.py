"""Making, logging and replaying real-time decisions.

``decision_make`` is the one path from a request to a logged decision: validate the
features against the deployment's schema, assign the champion/challenger arm, evaluate
the compiled decision function with the published prices, explain the choice with SHAP
reason codes and the prices that separated it from the runner-up, and commit the log
row before returning. If the row cannot be written the caller gets 503 and no decision
exists.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from arbiter.db import prepares_statements
from decisions import runtime
from decisions.decision_log import DeploymentChanged, decision_write
from decisions.deployments import arm_for
from decisions.engine.decision_function import NO_ACTION, DecisionFunction, Evaluation
from decisions.exceptions import (
    DeploymentUnavailable,
    NoEligibleAction,
    QueueUnavailable,
    ServiceUnavailable,
)
from decisions.feature_schema import value_problem
from decisions.models import Decision, LogVerification
from governance.artifacts import ArtifactIntegrityError
from governance.exceptions import Conflict, DomainError, PermissionDenied, ValidationFailed
from governance.models import Version
from governance.roles import Role, require_role, roles_of

DECIDER_ROLES = {Role.API_CLIENT, Role.ADMIN}
READER_ROLES = {Role.AUDITOR, Role.CHECKER, Role.ADMIN, Role.API_CLIENT}
REPLAY_ROLES = {Role.AUDITOR, Role.CHECKER, Role.ADMIN}
MAX_REASONS = 4

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionOutcome:
    decision: Decision
    created: bool


def _num(value: Any) -> float | None:
    """A JSON-safe float: None for NaN and infinities, 0.0 for -0.0 (as jsonb stores it)."""
    value = float(value) + 0.0
    return value if math.isfinite(value) else None


def features_check(
    *, function: DecisionFunction, features: Any, known: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Field-level validation of a request's features against the deployment's schema.

    ``known`` holds what other arms of the deployment need: accepted (a client cannot know
    its customer's arm) but not passed on to this arm's models.
    """
    if not isinstance(features, Mapping):
        raise ValidationFailed(
            "features must be an object.", details={"features": ["must be an object"]}
        )
    problems: dict[str, list[str]] = {}
    schema = {**(known or {}), **function.features}
    for name in sorted(set(features) - set(schema)):
        problems[f"features.{name}"] = ["unknown feature"]
    clean: dict[str, Any] = {}
    for name, spec in schema.items():
        if name not in features or features[name] is None:
            if name in function.features:
                problems[f"features.{name}"] = ["this field is required"]
            continue
        problem = value_problem(spec, features[name])
        if problem:
            problems[f"features.{name}"] = [problem]
        elif name in function.features:
            clean[name] = features[name]
    if problems:
        first = next(iter(problems))
        raise ValidationFailed(f"{first}: {problems[first][0]}", details=problems)
    return clean


def _columns(function: DecisionFunction, features: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, spec in function.features.items():
        dtype = np.float64 if spec["type"] == "numeric" else object
        out[name] = np.array([features[name]], dtype=dtype)
    return out


def _reference_action(function: DecisionFunction, result: Evaluation, chosen: int) -> int:
    """The action a risk model is explained at: the chosen one, or for a decline the offer
    the customer would have been most valuable on."""
    if chosen != function.fallback_index:
        return chosen
    values = np.where(np.isfinite(result.value[0]), result.value[0], -np.inf)
    values[function.fallback_index] = -np.inf
    return int(np.argmax(values)) if np.isfinite(values).any() else chosen


def _is_adverse(function: DecisionFunction, chosen: int) -> bool:
    """For a credit decision: declined, or a lower limit or higher APR than the grid's best.

    Only strategies that decide credit applications (``credit_decision``) have adverse
    actions in Regulation B's sense; not offering a cross-sell product is not one.
    """
    if not function.extra.get("credit_decision"):
        return False
    if function.fallback_index is not None and chosen == function.fallback_index:
        return True
    offers = [i for i in range(function.k) if i != function.fallback_index]
    limits = function.numeric_attributes.get("limit")
    aprs = function.numeric_attributes.get("apr")
    if limits is not None and limits[chosen] < limits[offers].max():
        return True
    return bool(aprs is not None and aprs[chosen] > aprs[offers].min())


def _explain_models(
    function: DecisionFunction, features: Mapping[str, Any], result: Evaluation, chosen: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Raw SHAP contributions of every model behind the choice, and the principal reasons."""
    from decisions.engine.explain import principal_reasons

    adverse = _is_adverse(function, chosen)
    contributions: list[dict[str, Any]] = []
    reasons: list[dict[str, Any]] = []
    risk_done = False
    for index, prediction in enumerate(function.predictions):
        at = _reference_action(function, result, chosen) if prediction.risk else chosen
        inputs: dict[str, Any] = {c: [features[c]] for c in prediction.customer_inputs}
        attributes = function.action_attributes(at)
        for name in prediction.action_inputs:
            inputs[name] = [attributes[name]]
        explanation = runtime.explainer(prediction.runtime).explain_columns(
            inputs, predicted=result.quantities[prediction.quantity][0, at : at + 1]
        )
        contributions.append(
            {
                "model": prediction.runtime.key,
                "quantity": prediction.quantity,
                "action": function.action_ids[at],
                "base_value": float(explanation.base_value[0]),
                "output": float(explanation.output[0]),
                "contributions": {
                    name: float(explanation.contributions[0, j])
                    for j, name in enumerate(explanation.features)
                },
            }
        )
        wants_risk = adverse and prediction.risk and not risk_done
        if wants_risk or (not adverse and index == 0) or (adverse and not reasons and index == 0):
            reasons = principal_reasons(
                explanation=explanation,
                row=0,
                values={k: v[0] for k, v in inputs.items()},
                catalog=prediction.runtime.reason_codes,
                exclude=prediction.action_inputs,
                direction="raise" if wants_risk else "magnitude",
                limit=MAX_REASONS,
                adverse=adverse,
            )
            risk_done = risk_done or wants_risk
    return contributions, reasons


def _explanation(function: DecisionFunction, result: Evaluation, chosen: int) -> dict[str, Any]:
    scores = result.score[0].copy()
    scores[chosen] = -np.inf
    ids = function.action_ids
    text_chosen = ids[chosen]
    out: dict[str, Any] = {
        "chosen": {
            "action": text_chosen,
            "value": _num(result.value[0, chosen]),
            "score": _num(result.score[0, chosen]),
        },
        "runner_up": None,
        "price_effects": [],
        "ineligible": [
            {
                "action": ids[k],
                "rules": sorted(n for n, failed in result.failed_rules.items() if failed[0, k]),
            }
            for k in range(function.k)
            if not result.eligible[0, k]
        ],
    }
    if not np.isfinite(scores).any():
        out["summary"] = f"{text_chosen} was the only eligible action."
        return out
    runner = int(np.argmax(scores))
    effects = []
    for m, limit in enumerate(function.limits):
        price = result.prices[m]
        if price <= 0:
            continue
        used_chosen, used_runner = result.usage[m, 0, chosen], result.usage[m, 0, runner]
        effects.append(
            {
                "limit": limit.name,
                "price": _num(price),
                "usage_chosen": _num(used_chosen),
                "usage_runner_up": _num(used_runner),
                "effect": _num(price * (used_runner - used_chosen)),
            }
        )
    effects.sort(key=lambda e: -(e["effect"] or 0))
    out["runner_up"] = {
        "action": ids[runner],
        "value": _num(result.value[0, runner]),
        "score": _num(result.score[0, runner]),
    }
    out["price_effects"] = effects
    v_chosen, v_runner = result.value[0, chosen], result.value[0, runner]
    if v_runner > v_chosen and effects and (effects[0]["effect"] or 0) > 0:
        out["summary"] = (
            f"The {effects[0]['limit']}'s price made {ids[runner]} worth less than "
            f"{text_chosen}, although {ids[runner]} has the higher value "
            f"({v_runner:.2f} against {v_chosen:.2f})."
        )
    else:
        out["summary"] = (
            f"{text_chosen} has the highest price-adjusted value "
            f"({result.score[0, chosen]:.2f}), ahead of {ids[runner]} "
            f"({result.score[0, runner]:.2f})."
        )
    return out


def versions_record(
    *,
    deployment: Version | None,
    strategy: Version,
    constraint_set: Version,
    function: DecisionFunction,
) -> dict[str, Any]:
    """Every version a decision used, with its content hash (the log's ``versions``)."""

    def ref(version: Version) -> dict[str, Any]:
        return {
            "id": version.pk,
            "name": version.item.name,
            "version": version.number,
            "content_hash": version.content_hash,
        }

    return {
        "deployment": ref(deployment) if deployment is not None else None,
        "strategy": ref(strategy),
        "constraint_set": ref(constraint_set),
        "models": [
            {"key": p.runtime.key, "quantity": p.quantity, "content_hash": p.runtime.content_hash}
            for p in function.predictions
        ],
    }


def _versions(deployment: Version, arm: runtime.ArmRuntime) -> dict[str, Any]:
    return versions_record(
        deployment=deployment,
        strategy=arm.strategy,
        constraint_set=arm.constraint_set,
        function=arm.function,
    )


def run_choice_summary(explanation: dict[str, Any]) -> dict[str, Any]:
    """Say so when an optimisation run chose an action other than the best-scoring one.

    The run's solver keeps the whole portfolio within its limits, which can give a
    customer an action that scores a little below another at the run's prices.
    """
    runner, chosen = explanation.get("runner_up"), explanation["chosen"]
    if runner and (runner["score"] or 0) > (chosen["score"] or 0):
        explanation["summary"] = (
            f"The optimisation run assigned {chosen['action']} to keep the portfolio within "
            f"its limits, although {runner['action']} scores higher at the run's prices "
            f"({runner['score']:.2f} against {chosen['score']:.2f})."
        )
    return explanation


def _evaluate(
    *, arm: runtime.ArmRuntime, features: Mapping[str, Any], chosen: str | None = None
) -> tuple[Evaluation, int, dict[str, Any]]:
    """Run the decision function for one customer; the logged record of what it computed.

    ``chosen`` is the action an optimisation run assigned (replaying its decision);
    otherwise the best eligible action at the arm's prices is chosen.
    """
    function = arm.function
    result = function.evaluate(_columns(function, features), prices=arm.prices)
    index = int(result.choice[0])
    if chosen is not None:
        if chosen not in function.action_ids:
            raise ValidationFailed(
                f"The strategy has no action {chosen!r}.", details={"action": ["unknown action"]}
            )
        index = function.action_ids.index(chosen)
    if index == NO_ACTION:
        raise NoEligibleAction(
            "No action is eligible for this customer under the deployment's rules.",
            details={"failed_rules": {n: bool(f[0].all()) for n, f in result.failed_rules.items()}},
        )
    contributions, reasons = _explain_models(function, features, result, index)
    explanation = _explanation(function, result, index)
    record = {
        "actions": [
            {
                "action": function.action_ids[k],
                "eligible": bool(result.eligible[0, k]),
                "value": _num(result.value[0, k]),
                "score": _num(result.score[0, k]),
            }
            for k in range(function.k)
        ],
        "action_id": function.action_ids[index],
        "action": function.action_attributes(index),
        "value": float(result.value[0, index]) + 0.0,
        "prices": {lim.name: float(p) for lim, p in zip(function.limits, arm.prices, strict=True)},
        "reasons": reasons,
        "contributions": contributions,
        "explanation": run_choice_summary(explanation) if chosen is not None else explanation,
    }
    return result, index, record


def _decision_of(
    *,
    deployment: str,
    version: Version,
    actor: AbstractBaseUser,
    customer_id: str,
    features: Any,
    channel: str,
    idempotency_key: str | None,
    request_id: str | None,
    started: float,
) -> Decision:
    """The decision of ``version``, the deployment's active version, for one customer:
    made, not yet logged."""
    arm_name, arm_content = arm_for(content=version.content, customer_id=customer_id)
    try:
        arm = runtime.arm_runtime(arm_name, arm_content)
    except ArtifactIntegrityError as exc:
        # The server's fault, not the client's: 503, and an ERROR for the operators.
        logger.error("deployment %s (%s) cannot decide: %s", deployment, arm_name, exc.message)
        raise DeploymentUnavailable(
            f"The deployment {deployment} cannot decide now: a model file it needs is "
            "missing or no longer matches its sealed hash. No decision was made; the "
            "server's log names the file for Arbiter's administrators."
        ) from None
    clean = features_check(
        function=arm.function, features=features, known=runtime.deployment_features(version)
    )
    _, _, record = _evaluate(arm=arm, features=clean)
    decision = Decision(
        decision_id=uuid.uuid4(),
        request_id=request_id or uuid.uuid4().hex,
        idempotency_key=idempotency_key or None,
        client=actor,
        customer_id=customer_id,
        channel=channel,
        deployment_name=deployment,
        deployment_version=version,
        strategy_version=arm.strategy,
        constraint_set_version=arm.constraint_set,
        versions=_versions(version, arm),
        arm=arm_name,
        features=clean,
        created_at=timezone.now(),
        latency_ms=0.0,
        **record,
    )
    decision.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return decision


def _ids_check(*, idempotency_key: str | None, request_id: str | None) -> None:
    """The client's ids fit the log's columns, or a field error naming the header. Not cut
    to fit: an id the log holds cut short matches nothing the client has."""
    for name, value, field in (
        ("Idempotency-Key", idempotency_key, "idempotency_key"),
        ("X-Request-ID", request_id, "request_id"),
    ):
        most = Decision._meta.get_field(field).max_length
        if value is not None and len(value) > most:
            raise ValidationFailed(
                f"The {name} is longer than {most} characters.",
                details={name: [f"at most {most} characters"]},
            )


def decision_make(
    *,
    actor: AbstractBaseUser,
    deployment: str,
    customer_id: str,
    features: Any,
    channel: str = "",
    idempotency_key: str | None = None,
    request_id: str | None = None,
) -> DecisionOutcome:
    """Decide for one customer and log it durably before returning.

    A repeated ``idempotency_key`` (per client) returns the first decision unchanged and
    logs nothing; concurrent repeats race on a unique index and the loser returns the
    winner's row. Raises ``ValidationFailed`` (bad features), ``NotFound`` (no active
    deployment), ``Conflict`` (key reused for another request), ``NoEligibleAction``,
    ``ServiceUnavailable`` (the log could not be written).
    """
    started = time.perf_counter()
    require_role(actor, DECIDER_ROLES, action="request decisions")
    _ids_check(idempotency_key=idempotency_key, request_id=request_id)
    if idempotency_key:
        existing = Decision.objects.filter(client=actor, idempotency_key=idempotency_key).first()
        if existing is not None:
            return DecisionOutcome(
                _same_request(existing, deployment, customer_id, channel, features), False
            )

    # On PostgreSQL the log's INSERT checks that the deployment version is still active,
    # so the version this process found last time serves without a query of its own; if
    # it was superseded since, nothing is written and the decision is made again.
    guarded = prepares_statements()
    for attempt in range(3):
        version = runtime.active_deployment(deployment, remembered=guarded and attempt == 0)
        decision = _decision_of(
            deployment=deployment,
            version=version,
            actor=actor,
            customer_id=customer_id,
            features=features,
            channel=channel,
            idempotency_key=idempotency_key,
            request_id=request_id,
            started=started,
        )
        try:
            # One INSERT, committed by itself (autocommit): no BEGIN/COMMIT round trips.
            decision_write(decision, while_active=guarded)
            break
        except DeploymentChanged:
            runtime.active_deployment_forget(deployment)
        except IntegrityError:
            existing = Decision.objects.filter(
                client=actor, idempotency_key=idempotency_key
            ).first()
            if idempotency_key and existing is not None:
                return DecisionOutcome(
                    _same_request(existing, deployment, customer_id, channel, features), False
                )
            raise ServiceUnavailable(
                "The decision could not be logged; no decision was made."
            ) from None
        except DatabaseError:
            raise ServiceUnavailable(
                "The decision could not be logged; no decision was made."
            ) from None
    else:  # activated, superseded and activated again while deciding, three times over
        raise ServiceUnavailable(
            f"The deployment {deployment} changed while deciding; no decision was made. "
            "Send the request again."
        )
    if decision.seq % settings.DECISION_BLOCK_ROWS == 0:
        # A block's worth has accumulated: seal now rather than wait for beat.
        transaction.on_commit(_seal_soon)
    return DecisionOutcome(decision, True)


def _seal_soon() -> None:
    """Have the full block sealed now rather than at beat's next tick.

    The decision is committed already, so this must neither fail nor hold up its
    response. With a broker the task is queued from a short-lived thread: a broker that is
    down or slow costs a warning in the log, not a 503 or a wait (beat seals on its
    schedule anyway). Without one (the embedded default, tasks in-process) it seals here.
    """
    from decisions.tasks import decision_blocks_seal_request, decision_blocks_seal_task

    if not decision_blocks_seal_task.app.conf.task_always_eager:
        threading.Thread(
            target=decision_blocks_seal_request, name="arbiter-seal-request", daemon=True
        ).start()
        return
    try:
        decision_blocks_seal_task.delay()
    except Exception:  # the next full block (or manage.py seal_decisions) seals these rows
        logger.exception("sealing the decision log in-process failed")


def _same_request(
    existing: Decision, deployment: str, customer_id: str, channel: str, features: Any
) -> Decision:
    # The log keeps only what the arm used; extra features meant for other arms may differ.
    used = {k: features.get(k) for k in existing.features} if isinstance(features, Mapping) else {}
    if (existing.deployment_name, existing.customer_id, existing.channel) != (
        deployment,
        customer_id,
        channel or "",
    ) or (isinstance(features, Mapping) and used != existing.features):
        raise Conflict(
            "This Idempotency-Key was already used for a different request.",
            code="idempotency_key_reused",
            details={"decision_id": str(existing.decision_id)},
        )
    return existing


def decision_visible_to(actor: AbstractBaseUser, decision: Decision) -> bool:
    roles = roles_of(actor)
    return bool(roles & (READER_ROLES - {Role.API_CLIENT})) or decision.client_id == actor.pk


@dataclass(frozen=True)
class Replay:
    matches: bool
    differences: list[dict[str, Any]]


def _close(a: Any, b: Any, *, tol: float = 1e-9) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol=tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol=tol) for x, y in zip(a, b, strict=True))
    return a == b


def decision_replay(*, actor: AbstractBaseUser, decision: Decision) -> Replay:
    """Recompute a logged decision from its logged inputs, versions and prices.

    Loads exactly the versions the decision names (verifying every model file's hash) and
    compares action, value, per-action scores, reasons, contributions and explanation.
    """
    require_role(actor, REPLAY_ROLES, action="replay decisions")
    return decision_replay_unchecked(decision)


def decision_replay_unchecked(decision: Decision) -> Replay:
    """``decision_replay`` without the role check: for beat's daily replay sample, which
    no person asks for. Everything a person asks for goes through ``decision_replay``."""
    versions = decision.versions
    content = {
        "strategy": {
            "name": versions["strategy"]["name"],
            "version": versions["strategy"]["version"],
        },
        "constraint_set": {
            "name": versions["constraint_set"]["name"],
            "version": versions["constraint_set"]["version"],
        },
        "prices": decision.prices,
    }
    arm = runtime.arm_runtime(decision.arm, content)
    differences: list[dict[str, Any]] = []
    for kind in ("strategy", "constraint_set"):
        version = getattr(arm, kind)
        if version.content_hash != versions[kind]["content_hash"]:
            differences.append(
                {
                    "field": f"versions.{kind}",
                    "logged": versions[kind]["content_hash"],
                    "replayed": version.content_hash,
                }
            )
    try:
        _, _, record = _evaluate(
            arm=arm,
            features=decision.features,
            chosen=decision.action_id if decision.run_id is not None else None,
        )
    except DomainError as exc:
        return Replay(
            False, [{"field": "decision", "logged": decision.action_id, "replayed": exc.message}]
        )
    for name in (
        "action_id",
        "action",
        "value",
        "actions",
        "reasons",
        "contributions",
        "explanation",
    ):
        logged, replayed = getattr(decision, name), record[name]
        if not _close(logged, replayed):
            differences.append({"field": name, "logged": logged, "replayed": replayed})
    return Replay(not differences, differences)


def require_reader(actor: AbstractBaseUser) -> None:
    require_role(actor, READER_ROLES, action="read decisions")


def check_visible(actor: AbstractBaseUser, decision: Decision) -> None:
    if not decision_visible_to(actor, decision):
        raise PermissionDenied("This decision was made for another client.")


def decision_log_verify_request(
    *, actor: AbstractBaseUser, source: str = LogVerification.Source.PAGE
) -> LogVerification | None:
    """Check the whole decision log now, for the decision pages' "Verify now" or the API
    (``source``).

    With a broker the check is queued (a large log takes minutes: about 0.1 ms a
    decision) and None is returned; its ``LogVerification`` appears when a worker is
    done. Without one it runs here and its record is returned. Raises
    ``PermissionDenied`` for roles that may not read the log, ``QueueUnavailable`` when
    the broker does not take the task.
    """
    from kombu.exceptions import OperationalError

    from decisions.tasks import decision_log_verify_task

    require_role(actor, REPLAY_ROLES, action="verify the decision log")
    try:
        decision_log_verify_task.delay(
            source=LogVerification.Source(source), requested_by=actor.get_username()
        )
    except OperationalError:
        raise QueueUnavailable(
            "The decision log was not checked: the task queue (the Celery broker) did not "
            "answer. Try again later, or run manage.py verify_decisions."
        ) from None
    if decision_log_verify_task.app.conf.task_always_eager:
        return LogVerification.objects.first()
    return None

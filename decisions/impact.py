"""Simulated impact of a candidate version: what it would do to a portfolio.

For a submitted (or approved) strategy, constraint set or deployment version, the
comparison is two simulation runs (optimisation runs that log no decisions) on the same
reference population: the active deployment's strategy and constraint set, and the same
with the candidate in place. Runs are reused while they are queued, running or succeeded
for the same pair of versions and population, so the comparison is computed once per
pair (a cache that needs no invalidation: versions never change).

The reference population is the deployment's own: the population file of its latest
succeeded optimisation run (a bank's real portfolio, stored once and reused as it is).
Without one, a simulated population of the strategy's use case (5,000 customers, a fixed
seed); a strategy outside the simulator's use cases with no run yet has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from decisions.models import OptimisationRun, RunStatus
from decisions.optimisation import _run_create
from decisions.selectors import deployment_active_list
from governance.exceptions import PreconditionFailed
from governance.kinds import kind_get
from governance.models import Version, VersionStatus
from governance.roles import Role, require_role

IMPACT_ROLES = frozenset({Role.MAKER, Role.CHECKER, Role.ADMIN})
REFERENCE = {"customers": 5_000, "seed": 2026}
KINDS = ("strategy", "constraint_set", "deployment")
CANDIDATE_STATUSES = (VersionStatus.DRAFT, VersionStatus.SUBMITTED, VersionStatus.APPROVED)
ACTIONED_LABEL = {
    "onboarding": "Applicants approved (approval rate)",
    "cross-sell": "Customers made an offer",
    "collections": "Customers contacted",
}
"""What "given an action other than the fallback" means in each use case."""


@dataclass(frozen=True)
class ImpactPair:
    deployment: Version
    baseline: tuple[Version, Version]
    """(strategy, constraint set) the deployment uses now."""
    candidate: tuple[Version, Version]
    """The same with the candidate version in place."""
    population: dict[str, Any] | None
    """The reference population's spec (as a run stores it), None when there is none."""
    version: Version | None = None
    """The version under review the comparison is for."""

    @property
    def population_label(self) -> str:
        spec = self.population or {}
        if spec.get("kind") == "file":
            return f"the population of {spec['name']} (the deployment's latest run)"
        if spec.get("kind") == "simulated":
            return f"{spec['customers']:,} simulated {spec['use_case']} customers"
        return "no reference population"

    @property
    def change_label(self) -> str:
        """The versions the candidate puts in place, as a checker reads them: one version,
        or a strategy and its constraint set reviewed as one change."""
        changed = [
            f"{label} {new.item.name} v{new.number}"
            for label, old, new in zip(
                ("strategy", "constraint set"), self.baseline, self.candidate, strict=True
            )
            if old.pk != new.pk
        ]
        if self.version is not None and self.version.item.kind == "deployment":
            name = f"deployment {self.version.item.name} v{self.version.number}"
            return f"{name} ({' and '.join(changed)})" if changed else name
        return " and ".join(changed) or "this version"

    @property
    def drafts(self) -> list[Version]:
        """Candidate versions still in draft: a simulation needs them submitted, since a
        draft can change after its runs (which are kept per pair of versions)."""
        return [v for v in self.candidate if v.status == VersionStatus.DRAFT]

    @property
    def drafts_label(self) -> str:
        return " and ".join(
            f"{kind_get(v.item.kind).label} {v.item.name} v{v.number}" for v in self.drafts
        )


def _ref(version: Version) -> dict[str, Any]:
    return {"name": version.item.name, "version": version.number}


def _lookup(kind: str, ref: dict[str, Any]) -> Version | None:
    return (
        Version.objects.select_related("item")
        .filter(item__kind=kind, item__name=ref["name"], number=ref["version"])
        .first()
    )


def impact_pair(version: Version, *, together: bool = False) -> ImpactPair | None:
    """The comparison a candidate version calls for, or None (nothing active to compare
    with, or not a kind that steers decisions).

    The candidate is this version alone in place of what is active, unless ``together``
    asks for the other half under review (``impact_partner``) to be put in place too.
    """
    kind = version.item.kind
    if kind not in KINDS:
        return None
    partner = impact_partner(version) if together else None
    for deployment in deployment_active_list():
        content = deployment.content
        if kind == "deployment":
            if deployment.item_id != version.item_id:
                continue
            candidate_content = version.content
        elif content["strategy" if kind == "strategy" else "constraint_set"]["name"] != (
            version.item.name
        ):
            continue
        else:
            candidate_content = {**content, kind: _ref(version)}
            if partner is not None:
                candidate_content[partner.item.kind] = _ref(partner)
        strategy = _lookup("strategy", content["strategy"])
        limits = _lookup("constraint_set", content["constraint_set"])
        new_strategy = _lookup("strategy", candidate_content["strategy"])
        new_limits = _lookup("constraint_set", candidate_content["constraint_set"])
        if None in (strategy, limits, new_strategy, new_limits):
            return None
        if new_limits.content.get("strategy") != new_strategy.item.name:
            return None
        if (new_strategy.pk, new_limits.pk) == (strategy.pk, limits.pk):
            # The same strategy and limits (a deployment version changing only prices or
            # shares, or the active versions themselves): the optimum cannot differ.
            return None
        return ImpactPair(
            deployment=deployment,
            baseline=(strategy, limits),
            candidate=(new_strategy, new_limits),
            population=_reference_population(deployment.item.name, new_strategy),
            version=version,
        )
    return None


def impact_partner(version: Version) -> Version | None:
    """The other half (strategy or constraint set) under review alongside a submitted
    version, which a checker may choose to simulate with it; None when there is none.

    Arbiter records no link between versions submitted at the same time, so this is only
    "also under review for the same strategy": two makers' independent changes qualify
    too, which is why the comparison puts this version alone in place unless asked.
    Versions that are not under review themselves (drafts, approved, active, rejected)
    have no partner: their comparison is always against what is live.
    """
    if version.status != VersionStatus.SUBMITTED:
        return None
    if version.item.kind not in ("strategy", "constraint_set"):
        return None
    kind = "constraint_set" if version.item.kind == "strategy" else "strategy"
    versions = Version.objects.select_related("item").filter(
        item__kind=kind, status=VersionStatus.SUBMITTED
    )
    if kind == "constraint_set":
        versions = versions.filter(content__strategy=version.item.name)
    else:
        versions = versions.filter(item__name=version.content.get("strategy"))
    return versions.order_by("-id").first()


def _reference_population(deployment: str, strategy: Version) -> dict[str, Any] | None:
    from decisions.simulator.population import USE_CASES

    latest = (
        OptimisationRun.objects.filter(
            deployment_name=deployment, status=RunStatus.SUCCEEDED, population__kind="file"
        )
        .order_by("-id")
        .first()
    )
    if latest is not None:
        return dict(latest.population)
    use_case = strategy.content.get("use_case")
    if use_case in USE_CASES:
        return {"kind": "simulated", "use_case": use_case, **REFERENCE}
    return None


def _existing(strategy: Version, limits: Version, spec: dict[str, Any]) -> OptimisationRun | None:
    runs = OptimisationRun.objects.filter(
        strategy_version=strategy,
        constraint_set_version=limits,
        log_decisions=False,
        population__kind=spec["kind"],
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED],
    )
    if spec["kind"] == "file":
        runs = runs.filter(population__sha256=spec["sha256"])
    else:
        runs = runs.filter(
            population__use_case=spec["use_case"],
            population__customers=spec["customers"],
            population__seed=spec["seed"],
        )
    return runs.order_by("-id").first()


def impact_runs(pair: ImpactPair) -> tuple[OptimisationRun | None, OptimisationRun | None]:
    if pair.population is None:
        return None, None
    return _existing(*pair.baseline, pair.population), _existing(*pair.candidate, pair.population)


def impact_start(
    *, actor: AbstractBaseUser, version: Version, together: bool = False
) -> tuple[OptimisationRun, ...]:
    """Start the simulations a candidate's comparison still lacks; returns both runs.

    The candidate is the version alone, or with ``together`` the version and the other
    half under review (``impact_partner``) in place. Makers, checkers and admins may
    (checkers are who needs it). Raises ``PreconditionFailed`` when there is nothing to
    compare with, no reference population, or nothing to simulate ``together`` with.
    """
    require_role(actor, IMPACT_ROLES, action="simulate the impact of a version")
    if version.item.kind not in KINDS:
        raise PreconditionFailed(
            "The impact is simulated for strategies, constraint sets and deployments; a "
            "model's shows on the page of the strategy version that uses it.",
            code="no_impact_for_kind",
        )
    if version.status not in CANDIDATE_STATUSES:
        raise PreconditionFailed(
            f"{version.item.name} v{version.number} is {version.status}: the impact is "
            "simulated for a draft, submitted or approved version, against what is active.",
            code="not_a_candidate",
        )
    if together and impact_partner(version) is None:
        raise PreconditionFailed(
            f"Nothing else is under review with {version.item.name} v{version.number} now: "
            "its impact is simulated with it alone in place.",
            code="no_partner",
        )
    pair = impact_pair(version, together=together)
    if pair is None:
        raise PreconditionFailed(
            f"No active deployment decides with {version.item.name} in a way this version "
            "would change (its strategy and constraint set are the ones in force, or no "
            "active deployment uses the item): there is nothing to compare it with.",
            code="no_baseline",
        )
    if pair.drafts:
        raise PreconditionFailed(
            f"The impact is simulated once {pair.drafts_label} is submitted: a draft can "
            "still change, and the simulations are kept for the versions they ran on.",
            code="draft_candidate",
        )
    if pair.population is None:
        raise PreconditionFailed(
            f"Deployment {pair.deployment.item.name} has no optimisation run on a population "
            "file yet and its strategy is not one of the simulator's use cases: there is no "
            "reference population to simulate the impact on.",
            code="no_reference_population",
        )
    runs = []
    with transaction.atomic():
        for label, (strategy, limits) in (("active", pair.baseline), ("candidate", pair.candidate)):
            run = _existing(strategy, limits, pair.population)
            if run is None:
                run = _run_create(
                    actor=actor,
                    deployment=None,
                    strategy=_ref(strategy),
                    constraint_set=_ref(limits),
                    population_file=None,
                    population_filename="",
                    simulated=None,
                    population_spec=pair.population,
                    description=(
                        f"Impact of {version.item.name} v{version.number}: the {label} versions"
                    ),
                    time_limit_seconds=None,
                    log_decisions=False,
                    enqueue=True,
                )
            runs.append(run)
    return tuple(runs)


def _risk_quantity(strategy: Version) -> str | None:
    for prediction in strategy.content.get("predictions", []):
        if prediction.get("risk"):
            return prediction["quantity"]
    return None


def impact_comparison(
    pair: ImpactPair, baseline: OptimisationRun, candidate: OptimisationRun
) -> dict[str, Any]:
    """Side by side: expected value, approval (actioned) rate, average risk, limit use,
    volume per action, with the change."""

    def change(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    rows = []
    totals = (baseline.kpis.get("total", {}), candidate.kpis.get("total", {}))
    rows.append(
        {
            "label": "Expected value",
            "format": "money",
            "active": baseline.objective,
            "candidate": candidate.objective,
            "change": change(baseline.objective, candidate.objective),
        }
    )
    shares = [
        None if t.get("actioned_share") is None else 100 * t["actioned_share"] for t in totals
    ]
    rows.append(
        {
            "label": ACTIONED_LABEL.get(
                pair.candidate[0].content.get("use_case"), "Customers given an action"
            ),
            "format": "percent",
            "active": shares[0],
            "candidate": shares[1],
            "change": change(*shares),
        }
    )
    risk = _risk_quantity(pair.candidate[0]) or _risk_quantity(pair.baseline[0])
    if risk:
        a, b = totals[0].get("mean", {}).get(risk), totals[1].get("mean", {}).get(risk)
        rows.append(
            {
                "label": f"Average {risk} of those given an action",
                "format": "ratio",
                "active": a,
                "candidate": b,
                "change": change(a, b),
            }
        )
    limits = []
    active_limits = {lim["name"]: lim for lim in baseline.limits}
    for lim in candidate.limits:
        old = active_limits.get(lim["name"])
        limits.append(
            {
                "name": lim["name"],
                "sense": lim["sense"],
                "active_bound": old["bound"] if old else None,
                "active_used": old["used"] if old else None,
                "active_price": old["price"] if old else None,
                "bound": lim["bound"],
                "used": lim["used"],
                "price": lim["price"],
            }
        )
    for name, old in active_limits.items():
        if name not in {lim["name"] for lim in candidate.limits}:
            limits.append(
                {
                    "name": name,
                    "sense": old["sense"],
                    "active_bound": old["bound"],
                    "active_used": old["used"],
                    "active_price": old["price"],
                    "bound": None,
                    "used": None,
                    "price": None,
                }
            )
    # Rows are matched by action id, and a candidate may change what an id offers (an APR
    # lowered, its label with it): the row names what the candidate offers, and what the
    # active version offered too when the labels differ, so a count is never read against
    # the terms it no longer has.
    volumes: dict[str, dict[str, Any]] = {}
    for which, run in (("active", baseline), ("candidate", candidate)):
        for action in run.kpis.get("per_action", []):
            entry = volumes.setdefault(action["action"], {"active": 0, "candidate": 0})
            entry[which] = action["customers"]
            entry[f"{which}_label"] = action["label"]
    actions = []
    for v in volumes.values():
        if not (v["active"] or v["candidate"]):
            continue
        old, new = v.get("active_label"), v.get("candidate_label")
        label = new if old in (None, new) else old if new is None else f"{old} \u2192 {new}"
        actions.append(
            {
                "action": label,
                "active": v["active"],
                "candidate": v["candidate"],
                "change": v["candidate"] - v["active"],
            }
        )
    return {
        "customers": candidate.customers,
        "rows": rows,
        "limits": limits,
        "actions": actions,
        "gaps": (baseline.gap, candidate.gap),
        "within_tolerance": _within_tolerance(baseline, candidate),
    }


def _within_tolerance(baseline: OptimisationRun, candidate: OptimisationRun) -> bool:
    """Whether the two optima differ by no more than the solvers certify each to be from
    its best: then the difference is the optimiser's tolerance, not the versions' doing
    (a change to a description alone still runs both, and may differ by a customer)."""
    values = (baseline.objective, candidate.objective, baseline.bound, candidate.bound)
    if any(v is None for v in values):
        return False
    slack = (baseline.bound - baseline.objective) + (candidate.bound - candidate.objective)
    return abs(candidate.objective - baseline.objective) <= slack + 1e-9 * max(
        1.0, abs(baseline.objective)
    )

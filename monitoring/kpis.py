"""The KPI catalog and how each KPI is computed from a frame of decisions and outcomes.

KPIs are computed per **decision cohort**: the decisions made in a window, with every
outcome reported on them so far (whenever it happened). A cohort's realised figures grow
as outcomes arrive, so a recent week reads lower than an old one until it matures.

The frame (``selectors.decision_frame``) has one row per decision:

``created_at`` (UTC), ``arm``, ``action_id``, ``customer_id``, ``value`` (the value the
optimiser expected for the chosen action), ``latency_ms``, ``is_offer`` (the chosen action
is not the strategy's fallback: an offer or a contact was made), ``cost`` (the chosen
action's ``cost`` plus ``contact_cost`` attributes), one 0/1 column per outcome event
(``accepted`` ... ``opted_out``: at least one such event was reported), ``paid_amount``
(sum of ``paid`` amounts) and ``loss_amount`` (sum of ``defaulted`` amounts).

Pure: pandas in, numbers out; no Django.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from monitoring.intervals import RateInterval, newcombe_difference, wilson_interval

Family = Literal["financial", "operational", "customer"]
Unit = Literal["rate", "money", "ratio", "count", "ms", "hours", "minutes", "per_customer"]

EVENTS: Final = (
    "accepted",
    "declined",
    "paid",
    "cured",
    "defaulted",
    "complained",
    "opted_out",
)
#: Action attributes that are a cost of taking the action (the strategies' value
#: expressions subtract them: onboarding and cross-sell ``cost``, collections
#: ``contact_cost``).
COST_ATTRIBUTES: Final = ("cost", "contact_cost")
CHAMPION: Final = "champion"
OFFERS: Final = ("onboarding", "cross-sell")
ARREARS: Final = ("collections",)
KNOWN_USE_CASES: Final = (*OFFERS, *ARREARS)


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    family: Family
    unit: Unit
    better: Literal["higher", "lower"]
    description: str
    rate: tuple[Callable[[pd.DataFrame], pd.Series], Callable[[pd.DataFrame], pd.Series]] | None = (
        None
    )
    """For rates: (successes, trials) as boolean columns of the frame."""
    use_cases: tuple[str, ...] = ()
    """The use cases whose outcomes it measures (``collections`` has no offers to take up,
    onboarding no arrears to cure); empty: every deployment."""

    def applies_to(self, use_case: str | None) -> bool:
        """Whether the KPI means something for a deployment of ``use_case`` (a strategy
        outside the known use cases, or None, is shown every KPI)."""
        if not self.use_cases or use_case not in KNOWN_USE_CASES:
            return True
        return use_case in self.use_cases


def _all(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(True, index=frame.index)


def _flag(name: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda frame: frame[name].astype(bool)


def _offered(frame: pd.DataFrame) -> pd.Series:
    return frame["is_offer"].astype(bool)


def _taken_up(frame: pd.DataFrame) -> pd.Series:
    return frame["accepted"].astype(bool) & frame["is_offer"].astype(bool)


def _answered(frame: pd.DataFrame) -> pd.Series:
    return frame["accepted"].astype(bool) | frame["declined"].astype(bool)


def _defaulted_booked(frame: pd.DataFrame) -> pd.Series:
    return frame["defaulted"].astype(bool) & frame["accepted"].astype(bool)


_CATALOG: Final = (
    # --- financial ---
    Kpi(
        "expected_value",
        "Expected value",
        "financial",
        "money",
        "higher",
        "Sum of the value the optimiser expected for each chosen action (the logged value).",
    ),
    Kpi(
        "realised_value",
        "Realised value",
        "financial",
        "money",
        "higher",
        "Payments received (`paid` amounts) less losses (`defaulted` amounts).",
    ),
    Kpi(
        "profit",
        "Profit",
        "financial",
        "money",
        "higher",
        "Realised value less the cost of the actions taken (their cost attributes).",
    ),
    Kpi(
        "profit_per_decision",
        "Profit per decision",
        "financial",
        "money",
        "higher",
        "Profit divided by the number of decisions.",
    ),
    Kpi(
        "value_realisation",
        "Profit against expected value",
        "financial",
        "ratio",
        "higher",
        "Profit divided by the expected value: 1 means the optimiser's promise was kept.",
    ),
    Kpi(
        "value_gap",
        "Profit less expected value",
        "financial",
        "money",
        "higher",
        "Profit minus the expected value (negative: less than the optimiser expected).",
    ),
    Kpi(
        "take_up_rate",
        "Take-up",
        "financial",
        "rate",
        "higher",
        "Share of offers made (chosen action other than the fallback) that were accepted.",
        rate=(_taken_up, _offered),
        use_cases=OFFERS,
    ),
    Kpi(
        "default_rate",
        "Loss (default) rate",
        "financial",
        "rate",
        "lower",
        "Share of accepted offers that defaulted.",
        rate=(_defaulted_booked, _flag("accepted")),
        use_cases=OFFERS,
    ),
    Kpi(
        "recovery_rate",
        "Recovery rate",
        "financial",
        "rate",
        "higher",
        "Share of decisions on which a payment was received.",
        rate=(_flag("paid"), _all),
        use_cases=ARREARS,
    ),
    Kpi(
        "cure_rate",
        "Cure rate",
        "financial",
        "rate",
        "higher",
        "Share of decisions whose account was cured (arrears cleared).",
        rate=(_flag("cured"), _all),
        use_cases=ARREARS,
    ),
    # --- operational ---
    Kpi(
        "decision_volume",
        "Decisions",
        "operational",
        "count",
        "higher",
        "Number of decisions logged.",
    ),
    Kpi(
        "latency_p50_ms",
        "Latency p50",
        "operational",
        "ms",
        "lower",
        "Median time to decide and log (the log's latency_ms).",
    ),
    Kpi(
        "latency_p99_ms",
        "Latency p99",
        "operational",
        "ms",
        "lower",
        "99th percentile of the time to decide and log.",
    ),
    Kpi(
        "review_cycle_hours",
        "Review cycle time",
        "operational",
        "hours",
        "lower",
        "Median hours from submission to approval of the versions the deployment uses "
        "(the deployment, its strategies, constraint sets and KPI targets), by approval date.",
    ),
    Kpi(
        "optimisation_run_minutes",
        "Optimisation run time",
        "operational",
        "minutes",
        "lower",
        "Median minutes from start to finish of the deployment's optimisation runs that "
        "succeeded in the window.",
    ),
    Kpi(
        "optimisation_gap",
        "Optimisation gap",
        "operational",
        "rate",
        "lower",
        "Largest certified optimality gap of those runs: how far from the best possible "
        "portfolio value their answers can be at most.",
    ),
    Kpi(
        "challenger_share",
        "Challenger share",
        "operational",
        "rate",
        "higher",
        "Share of decisions made by a challenger arm.",
        rate=(lambda frame: frame["arm"] != CHAMPION, _all),
    ),
    # --- customer experience ---
    Kpi(
        "acceptance_rate",
        "Offer acceptance",
        "customer",
        "rate",
        "higher",
        "Share of answered offers (accepted or declined) that were accepted.",
        rate=(_flag("accepted"), _answered),
        use_cases=OFFERS,
    ),
    Kpi(
        "complaint_rate",
        "Complaints",
        "customer",
        "rate",
        "lower",
        "Share of decisions followed by a complaint.",
        rate=(_flag("complained"), _all),
    ),
    Kpi(
        "opt_out_rate",
        "Opt-outs",
        "customer",
        "rate",
        "lower",
        "Share of decisions followed by an opt-out.",
        rate=(_flag("opted_out"), _all),
    ),
    Kpi(
        "contacts_per_customer",
        "Contacts per customer",
        "customer",
        "per_customer",
        "lower",
        "Offers and contacts made (chosen action other than the fallback) per distinct "
        "customer decided on.",
    ),
)
KPIS: Final[dict[str, Kpi]] = {kpi.key: kpi for kpi in _CATALOG}
RATE_KPIS: Final = tuple(k for k, kpi in KPIS.items() if kpi.rate is not None)
#: Rates compared between champion and challengers (the arm's own share is not one).
ARM_RATE_KPIS: Final = tuple(k for k in RATE_KPIS if k != "challenger_share")

FRAME_COLUMNS: Final = (
    "created_at",
    "arm",
    "action_id",
    "customer_id",
    "value",
    "latency_ms",
    "is_offer",
    "cost",
    *EVENTS,
    "paid_amount",
    "loss_amount",
)


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=_dtype(name)) for name in FRAME_COLUMNS})


def _dtype(name: str) -> Any:
    if name == "created_at":
        return "datetime64[ns, UTC]"
    if name in ("arm", "action_id", "customer_id"):
        return object
    if name in EVENTS or name == "is_offer":
        return np.int64
    return np.float64


def rate_counts(frame: pd.DataFrame, key: str) -> tuple[int, int]:
    """(successes, trials) of KPI ``key``, a rate, in ``frame``."""
    rate = KPIS[key].rate
    if rate is None:
        raise ValueError(f"{key} is not a rate")
    successes, trials = rate
    included = trials(frame)
    return int((successes(frame) & included).sum()), int(included.sum())


def rate_interval(frame: pd.DataFrame, key: str) -> RateInterval:
    """KPI ``key`` (a rate) of ``frame`` with its Wilson interval."""
    return wilson_interval(*rate_counts(frame, key))


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def kpi_values(frame: pd.DataFrame) -> dict[str, float | None]:
    """Every frame-based KPI of ``frame`` (all but ``review_cycle_hours``); None where a
    KPI has nothing to measure (no decisions, no offers, no answers)."""
    n = len(frame)
    expected = float(frame["value"].sum())
    realised = float(frame["paid_amount"].sum() - frame["loss_amount"].sum())
    profit = realised - float(frame["cost"].sum())
    latency = frame["latency_ms"].to_numpy(dtype=np.float64)
    latency = latency[~np.isnan(latency)]  # real-time decisions only
    out: dict[str, float | None] = {
        "expected_value": expected if n else None,
        "realised_value": realised if n else None,
        "profit": profit if n else None,
        "profit_per_decision": _ratio(profit, n),
        "value_realisation": _ratio(profit, expected),
        "value_gap": profit - expected if n else None,
        "decision_volume": float(n),
        "latency_p50_ms": float(np.percentile(latency, 50)) if len(latency) else None,
        "latency_p99_ms": float(np.percentile(latency, 99)) if len(latency) else None,
        "contacts_per_customer": _ratio(
            float(frame["is_offer"].sum()), float(frame["customer_id"].nunique())
        ),
    }
    for key in RATE_KPIS:
        successes, trials = rate_counts(frame, key)
        out[key] = _ratio(successes, trials)
    return out


def action_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Financial KPIs per chosen action, most frequent first."""
    rows = []
    for action_id, group in frame.groupby("action_id", sort=False):
        values = kpi_values(group)
        rows.append(
            {
                "action": str(action_id),
                "decisions": len(group),
                **{
                    key: values[key]
                    for key in (
                        "expected_value",
                        "realised_value",
                        "profit",
                        "value_realisation",
                        "take_up_rate",
                        "default_rate",
                        "recovery_rate",
                    )
                },
            }
        )
    return sorted(rows, key=lambda row: (-row["decisions"], row["action"]))


def arm_comparison(frame: pd.DataFrame) -> dict[str, Any]:
    """Each arm's share of decisions and, per rate KPI, each arm's rate with its 95%
    interval and each challenger's difference from the champion with its interval."""
    n = len(frame)
    arms = sorted(frame["arm"].unique(), key=lambda arm: (arm != CHAMPION, arm))
    groups = {arm: frame[frame["arm"] == arm] for arm in arms}
    shares = [
        {"arm": str(arm), "decisions": len(groups[arm]), "share": _ratio(len(groups[arm]), n)}
        for arm in arms
    ]
    rates = []
    for key in ARM_RATE_KPIS:
        intervals = {arm: rate_interval(groups[arm], key) for arm in arms}
        champion = intervals.get(CHAMPION)
        rates.append(
            {
                "kpi": key,
                "arms": [{"arm": str(arm), **vars(ci)} for arm, ci in intervals.items()],
                "differences": [
                    {
                        "arm": str(arm),
                        "versus": CHAMPION,
                        **vars(newcombe_difference(ci, champion)),
                    }
                    for arm, ci in intervals.items()
                    if arm != CHAMPION and champion is not None
                ],
            }
        )
    return {"shares": shares, "rates": rates}


def target_met(value: float | None, target: dict[str, Any] | None) -> bool | None:
    """Whether ``value`` meets ``target`` (``{"target", "direction"}``); None if either
    is missing."""
    if value is None or target is None:
        return None
    if target["direction"] == "at_least":
        return value >= target["target"]
    return value <= target["target"]


def median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None

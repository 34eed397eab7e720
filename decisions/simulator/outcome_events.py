"""Outcome events as a downstream system would report them, drawn from the simulated world.

``behaviour.outcomes_sample`` draws what truly happened to each customer (taken up,
defaulted, paid, amounts); this module turns those draws into the events monitoring
records (``accepted``, ``declined``, ``paid``, ``cured``, ``defaulted``, ``complained``,
``opted_out``), each with an amount where it carries one and a delay in days after the
decision. ``outcomes_sample`` is called unchanged, with the caller's seed, so the same
seed meets the same luck as every other user of the simulator.

Events and amounts, so that realised value is comparable with the optimiser's expected
value (the strategies' value expressions):

- onboarding and cross-sell, for offers (``is_offer``): ``accepted`` or ``declined``; an
  accepted line earns its first-year margin (``apr * drawn * limit + fee_income``),
  reported as one ``paid`` event, and a defaulted one reports the loss (``defaulted``,
  exposure at default times LGD) some months later;
- collections: ``paid`` with the amount recovered, and ``cured`` when the payment cleared
  at least 95% of what was due.

Complaints and opt-outs have no ground-truth curve in ``behaviour``: they are drawn here
from a deliberately plain rule (a small base rate per offer or contact, raised by calls,
contact fatigue, declines and defaults), enough to give the customer-experience KPIs
something to show. No Django here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from decisions.simulator import behaviour

#: Share of what was due that a payment must reach to count as a cure.
CURE_SHARE: Final = 0.95
EVENT_COLUMNS: Final = ("row", "event", "amount", "delay_days")


def outcome_events(
    use_case: str, customers: pd.DataFrame, action_ids: Sequence[str], *, seed: int
) -> pd.DataFrame:
    """The events reported after each customer's action (``action_ids``, one per row).

    Returns one row per event: ``row`` (position in ``customers``), ``event``, ``amount``
    (USD, NaN when the event carries none) and ``delay_days`` after the decision, sorted by
    row and delay. Deterministic for a seed.
    """
    actions = behaviour.action_frame(use_case, action_ids)
    drawn = behaviour.outcomes_sample(use_case, customers, actions, seed=seed)
    # A generator of its own: the draws above stay exactly those of outcomes_sample.
    rng = np.random.default_rng([seed, 2])
    n = len(customers)
    rows: list[tuple[int, str, float, float]] = []
    if use_case in ("onboarding", "cross-sell"):
        offered = actions["is_offer"].to_numpy(int) == 1
        taken = drawn["taken_up"].to_numpy(int) == 1
        defaulted = drawn["defaulted"].to_numpy(int) == 1
        margin = (
            actions["apr"].to_numpy(float)
            * actions["drawn"].to_numpy(float)
            * actions["limit"].to_numpy(float)
        )
        if "fee_income" in actions:
            margin = margin + actions["fee_income"].to_numpy(float)
        answer_delay = rng.uniform(1.0, 14.0, n)
        paid_delay = answer_delay + rng.uniform(25.0, 35.0, n)
        default_delay = answer_delay + rng.uniform(60.0, 330.0, n)
        complaint = rng.random(n) < np.where(defaulted, 0.05, np.where(taken, 0.003, 0.006))
        opt_out = rng.random(n) < np.where(taken, 0.002, 0.02)
        for i in np.flatnonzero(offered):
            if not taken[i]:
                rows.append((i, "declined", np.nan, answer_delay[i]))
            else:
                rows.append((i, "accepted", np.nan, answer_delay[i]))
                if margin[i] > 0:
                    rows.append((i, "paid", round(float(margin[i]), 2), paid_delay[i]))
                if defaulted[i]:
                    loss = float(drawn["loss_amount"].iloc[i])
                    rows.append((i, "defaulted", loss, default_delay[i]))
            if complaint[i]:
                rows.append((i, "complained", np.nan, answer_delay[i] + 1.0))
            if opt_out[i]:
                rows.append((i, "opted_out", np.nan, answer_delay[i] + 0.5))
    elif use_case == "collections":
        contacted = actions["is_contact"].to_numpy(int) == 1
        is_call = actions["is_call"].to_numpy(int) == 1
        fatigue = customers["contacts_last_7d"].to_numpy(float)
        paid = drawn["paid"].to_numpy(int) == 1
        recovered = drawn["amount_recovered"].to_numpy(float)
        due = customers["balance"].to_numpy(float) * (1.0 - actions["discount"].to_numpy(float))
        pay_delay = rng.uniform(1.0, 30.0, n)
        contact_delay = rng.uniform(0.0, 2.0, n)
        complaint = contacted & (rng.random(n) < 0.002 + 0.01 * is_call + 0.005 * fatigue)
        opt_out = contacted & ~is_call & (rng.random(n) < 0.01 + 0.004 * fatigue)
        for i in range(n):
            if paid[i]:
                rows.append((i, "paid", float(recovered[i]), pay_delay[i]))
                if recovered[i] >= CURE_SHARE * due[i]:
                    rows.append((i, "cured", np.nan, pay_delay[i] + 1.0))
            if complaint[i]:
                rows.append((i, "complained", np.nan, contact_delay[i]))
            if opt_out[i]:
                rows.append((i, "opted_out", np.nan, contact_delay[i]))
    else:
        raise ValueError(f"unknown use case {use_case!r}")
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame = frame.astype({"row": np.int64, "amount": np.float64, "delay_days": np.float64})
    return frame.sort_values(["row", "delay_days"], kind="stable").reset_index(drop=True)

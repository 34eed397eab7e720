"""The simulator reports outcome events drawn from its ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from decisions.simulator import behaviour
from decisions.simulator.outcome_events import outcome_events
from decisions.simulator.population import customers


def ids(use_case: str, n: int, seed: int) -> list[str]:
    catalog = [a["id"] for a in behaviour.action_catalog(use_case)]
    return list(np.random.default_rng(seed).choice(catalog, n))


@pytest.mark.parametrize("use_case", ["onboarding", "cross-sell", "collections"])
def test_events_are_deterministic_ordered_and_consistent(use_case):
    people = customers(use_case, 400, seed=3)
    actions = ids(use_case, 400, seed=4)
    events = outcome_events(use_case, people, actions, seed=5)
    pd.testing.assert_frame_equal(events, outcome_events(use_case, people, actions, seed=5))
    assert list(events.columns) == ["row", "event", "amount", "delay_days"]
    assert (events["delay_days"] >= 0).all()
    assert events.equals(events.sort_values(["row", "delay_days"], kind="stable"))
    assert not events.duplicated(["row", "event"]).any()
    paid = events[events["event"] == "paid"]
    assert (paid["amount"] > 0).all()
    by_row = events.groupby("row")["event"].apply(set)
    if use_case == "collections":
        assert set(events["event"]) <= {"paid", "cured", "complained", "opted_out"}
        assert all("paid" in e for e in by_row if "cured" in e)
    else:
        fallback = {"onboarding": "decline", "cross-sell": "none"}[use_case]
        offered = {i for i, a in enumerate(actions) if a != fallback}
        assert set(events["row"]) <= offered
        assert all(("accepted" in e) != ("declined" in e) for e in by_row)
        assert all("accepted" in e for e in by_row if {"paid", "defaulted"} & e)


def test_take_up_follows_the_ground_truth():
    people = customers("cross-sell", 4000, seed=8)
    actions = ["card"] * len(people)
    events = outcome_events("cross-sell", people, actions, seed=9)
    truth = behaviour.cross_sell_take_up_probability(people, product="card").mean()
    accepted = (events["event"] == "accepted").sum() / len(people)
    assert accepted == pytest.approx(truth, abs=0.02)
    # The margin of an accepted card: apr 22% on 45% of a 3,000 limit.
    assert set(events.loc[events["event"] == "paid", "amount"]) == {297.0}


def test_outcomes_sample_is_unchanged_by_the_event_draws():
    people = customers("onboarding", 50, seed=1)
    actions = ids("onboarding", 50, seed=2)
    before = behaviour.outcomes_sample(
        "onboarding", people, behaviour.action_frame("onboarding", actions), seed=3
    )
    events = outcome_events("onboarding", people, actions, seed=3)
    accepted = set(events.loc[events["event"] == "accepted", "row"])
    assert accepted == set(np.flatnonzero(before["taken_up"].to_numpy() == 1))

"""How an optimisation run's logged records name the rules that made actions ineligible."""

from __future__ import annotations

import numpy as np
import pytest

from decisions.batch_records import failed_rule_combinations


@pytest.mark.parametrize("rules", [0, 1, 3, 62, 63, 70])
def test_each_row_and_action_gets_the_sorted_names_of_the_rules_it_fails(rules: int) -> None:
    rng = np.random.default_rng(rules)
    n, k = 40, 6
    # Names out of alphabetical order, so that sorting them is checked too.
    names = [f"rule-{(7 * j) % max(rules, 1):03d}-{j}" for j in range(rules)]
    failed = {name: rng.random((n, k)) < 0.15 for name in names}

    named, failing = failed_rule_combinations(failed, n, k)

    for row in range(n):
        for action in range(k):
            expected = sorted(name for name in names if failed[name][row, action])
            assert named[failing[row][action]] == expected
    # Combinations are distinct: each is named once however many pairs share it.
    assert len({tuple(combo) for combo in named}) == len(named)


@pytest.mark.django_db
def test_a_record_with_a_non_finite_number_is_refused_not_logged_as_null() -> None:
    # The bulk writers serialise with msgspec, which writes NaN as null where the
    # canonical JSON of a real-time decision refuses it: batch_records refuses it first.
    from dataclasses import replace

    from decisions import runtime
    from decisions.batch_records import batch_records
    from decisions.demo_setup import demo_load
    from decisions.populations import population_simulated

    demo_load()
    function = runtime.arm_runtime(
        "champion", runtime.active_deployment("cross-sell").content
    ).function
    frame = population_simulated("cross-sell", 6, seed=1)
    customer = {name: frame[name].tolist() for name in function.features}
    result = function.evaluate({name: frame[name].to_numpy() for name in function.features})
    chosen = result.choice.copy()
    assert len(batch_records(function, customer, result, chosen)) == 6  # finite: logged

    value = result.value.copy()
    value[3, chosen[3]] = np.nan
    with pytest.raises(ValueError, match="not all finite"):
        batch_records(function, customer, replace(result, value=value), chosen)
    prices = np.full_like(np.asarray(result.prices, dtype=np.float64), np.inf)
    with pytest.raises(ValueError, match="not all finite"):
        batch_records(function, customer, replace(result, prices=prices), chosen)

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

"""Readers of the public MMKP and GAP formats: small inline texts in each format."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.instance_formats import (
    FormatError,
    assignment,
    gap_instances,
    hifi_instance,
    hiremath_hill_instances,
    khan_instance,
    yagiura_instance,
)
from decisions.engine.portfolio import solve_portfolio

KHAN = """
 3  2 2
 10  8
 1
 5.00  3  1
 9.00  6  2
 2
 4.00  1  1
 7.00  4  5
 3
 2.00  0  0
 6.00  3  2
 Solutions by  Mosers Solution
 0  1  0  14.00
 Solutions by  HEU
 1  0  1  19.00
 Upper bound
 20.50
 Solutions by  Exact Solution
 1  0  1  19.00
"""

HIFI = """2 2
9 7
3
5 1 2
8 4 4
9 8 5
1
4 2 1
"""

# Tab separated with empty fields and CRLF, as the published files are.
HIREMATH_HILL = (
    "1\t2\t2\t1\t\t\r\n"
    "\t5\t\t\r\n"
    "1\t\t\t\r\n"
    "3\t2\t\t\r\n"
    "7\t4\t\t\r\n"
    "2\t\t\t\r\n"
    "1\t1\t\t\r\n"
    "6\t3\t\t\r\n"
    "2\t1\t2\t1\t\t\r\n"
    "\t9\t\t\r\n"
    "1\t\t\t\r\n"
    "1\t1\t\t\r\n"
    "2\t2\t\t\r\n"
)

ORLIB_GAP = """ 2
 2 3
 4 2 5
 1 6 3
 3 2 2
 2 3 1
 4 3
 2 2
 1 1
 1 1
 1 1
 1 1
 1 1
"""

YAGIURA = """ 2 3
 4 2 5
 1 6 3
 3 2 2
 2 3 1
 4 3
"""


def test_khan_reads_groups_and_the_trailing_solutions():
    instance = khan_instance(KHAN, "tiny")
    assert instance.value.shape == (3, 2)
    assert instance.usage.shape == (2, 3, 2)
    assert list(instance.limit) == [10, 8]
    assert list(instance.value[1]) == [4, 7]
    assert list(instance.usage[:, 1, 1]) == [4, 5]  # group 2, item 2 uses 4 and 5
    assert instance.allowed is None
    assert instance.reference == {"moser": 14.0, "heu": 19.0, "upper bound": 20.5, "exact": 19.0}
    exact = instance.solutions["exact"]
    assert list(exact) == [1, 0, 1]
    assert instance.score(exact) == 19.0 and instance.feasible(exact)


def test_khan_optimum_is_what_the_solver_finds():
    instance = khan_instance(KHAN, "tiny")
    solution = solve_portfolio(instance.value, instance.usage, instance.limit)
    assert solution.status == "optimal"
    assert instance.score(solution.choice) == instance.reference["exact"]


def test_khan_refuses_a_misnumbered_group():
    with pytest.raises(FormatError, match="expected group 2"):
        khan_instance(KHAN.replace("\n 2\n", "\n 7\n", 1))


def test_hifi_pads_classes_of_different_sizes():
    instance = hifi_instance(HIFI)
    assert instance.value.shape == (2, 3)
    assert instance.allowed is not None
    assert instance.allowed.tolist() == [[True, True, True], [True, False, False]]
    assert list(instance.usage[:, 0, 2]) == [8, 5]
    solution = solve_portfolio(
        instance.value, instance.usage, instance.limit, allowed=instance.allowed
    )
    assert solution.status == "optimal"
    assert list(solution.choice) == [1, 0]  # 8 + 4: item 3 of class 1 breaks limit 2
    assert instance.score(solution.choice) == 12


def test_hifi_refuses_a_short_text():
    with pytest.raises(FormatError, match="ends early"):
        hifi_instance(HIFI.rsplit("\n", 2)[0])


def test_hiremath_hill_reads_several_problems_with_tabs_and_crlf():
    first, second = hiremath_hill_instances(HIREMATH_HILL, "set")
    assert first.name == "set-1" and second.name == "set-2"
    assert first.value.shape == (2, 2) and first.usage.shape == (1, 2, 2)
    assert list(first.limit) == [5]
    assert first.value.tolist() == [[3, 7], [1, 6]]
    assert first.usage[0].tolist() == [[2, 4], [1, 3]]
    assert second.value.shape == (1, 2) and list(second.limit) == [9]
    best = solve_portfolio(first.value, first.usage, first.limit)
    assert best.objective == 9  # 3 + 6 (uses 2 + 3); 7 + 1 uses 5 but is only 8


def test_orlib_gap_maps_agents_to_actions_and_minimises_cost():
    first, second = gap_instances(ORLIB_GAP, "g")
    assert first.sense == "min"
    assert first.value.shape == (3, 2)  # 3 jobs x 2 agents
    assert first.usage.shape == (2, 3, 2)  # one capacity per agent
    assert first.value.tolist() == [[-4, -1], [-2, -6], [-5, -3]]
    # an agent's capacity is used only when the job goes to that agent
    assert first.usage[0].tolist() == [[3, 0], [2, 0], [2, 0]]
    assert first.usage[1].tolist() == [[0, 2], [0, 3], [0, 1]]
    assert list(first.limit) == [4, 3]
    solution = solve_portfolio(first.value, first.usage, first.limit)
    # agent 0 takes job 1 (weight 2) and job 0 cannot join it (2 + 3 > 4): cost 1 + 2 + 3
    assert first.score(solution.choice) == 6
    assert list(solution.choice) == [1, 0, 1]
    assert second.limit.tolist() == [1, 1]


def test_orlib_gap_as_a_maximisation():
    (first, _) = gap_instances(ORLIB_GAP, "g", sense="max")
    assert first.sense == "max"
    assert first.value.tolist() == [[4, 1], [2, 6], [5, 3]]
    solution = solve_portfolio(first.value, first.usage, first.limit)
    # every job must go somewhere: the best is 1 + 2 + 5 (agent 0 full at 4)
    assert first.score(solution.choice) == 8
    assert list(solution.choice) == [1, 0, 0]


def test_orlib_gap_refuses_left_over_numbers():
    with pytest.raises(FormatError, match="left over"):
        gap_instances(ORLIB_GAP.replace(" 2\n", " 1\n", 1))


def test_yagiura_is_one_problem_without_a_count():
    instance = yagiura_instance(YAGIURA, "y")
    (orlib, _) = gap_instances(ORLIB_GAP)
    np.testing.assert_array_equal(instance.value, orlib.value)
    np.testing.assert_array_equal(instance.usage, orlib.usage)
    np.testing.assert_array_equal(instance.limit, orlib.limit)


def test_assignment_files_and_checks():
    instance = yagiura_instance(YAGIURA)
    choice = assignment("1\t0\t1\t\n")
    assert list(choice) == [1, 0, 1]
    assert instance.feasible(choice) and instance.score(choice) == 6
    assert not instance.feasible(np.array([0, 0, 0]))  # agent 0 would carry 7 > 4

"""Readers for the public MMKP and GAP benchmark formats, as portfolio problems.

Each reader takes the text of a file and returns ``Instance`` objects shaped for
``solve_portfolio``: customers x actions values, limits x customers x actions usage
("<=" form) and limits. The mapping (see ``../shared/benchmarks/optimisation/README.md``):

- MMKP (Khan, Hifi, Hiremath-Hill): classes are customers, items are actions, knapsack
  dimensions are limits; maximise value. Classes of different sizes are padded, the
  padding not allowed.
- GAP (OR-Library, Yagiura): jobs are customers, agents are actions, one capacity per
  agent (``usage[a, job, a] = weight``). GAP minimises cost, so ``value = -cost`` and
  ``sense = "min"``; the OR-Library gap1-gap12 sets are also published as maximisation
  problems (``gap_instances(text, sense="max")`` gives ``value = cost``).

No Django and no file access here: the benchmark scripts read the files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


class FormatError(ValueError):
    """The text does not follow the format it was read as."""


@dataclass(frozen=True)
class Instance:
    name: str
    value: np.ndarray
    """(N, K) value of giving customer n action k (objective to maximise)."""
    usage: np.ndarray
    """(M, N, K) use of limit m."""
    limit: np.ndarray
    """(M,)"""
    allowed: np.ndarray | None = None
    """(N, K) or None when every action is allowed."""
    sense: str = "max"
    """"max": the published value is the total value; "min": it is minus the total."""
    reference: dict[str, float] = field(default_factory=dict)
    """Values the file itself carries (e.g. Khan's heuristic solutions, upper bound)."""
    solutions: dict[str, np.ndarray] = field(default_factory=dict)
    """Assignments the file carries (0-based action per customer)."""

    def score(self, choice: np.ndarray) -> float:
        """The published-sense objective of a choice (a cost for GAP, a value for MMKP)."""
        total = float(self.value[np.arange(len(choice)), choice].sum())
        return -total if self.sense == "min" else total

    def feasible(self, choice: np.ndarray) -> bool:
        rows = np.arange(len(choice))
        if self.allowed is not None and not self.allowed[rows, choice].all():
            return False
        used = self.usage[:, rows, choice].sum(axis=1)
        return bool(np.all(used <= self.limit + 1e-9 * (np.abs(self.limit) + 1)))


class _Numbers:
    """The numbers of a text, read in order."""

    def __init__(self, tokens: list[str], name: str) -> None:
        self.tokens, self.position, self.name = tokens, 0, name

    def take(self, count: int) -> np.ndarray:
        end = self.position + count
        if end > len(self.tokens):
            raise FormatError(f"{self.name}: the text ends early ({len(self.tokens)} numbers)")
        try:
            numbers = np.array(self.tokens[self.position : end], dtype=np.float64)
        except ValueError as error:
            raise FormatError(f"{self.name}: {error}") from None
        self.position = end
        return numbers

    def count(self) -> int:
        number = self.take(1)[0]
        if number != int(number) or number < 0:
            raise FormatError(f"{self.name}: expected a count, found {number}")
        return int(number)


def _mmkp(name: str, classes: list[np.ndarray], capacity: np.ndarray, **extra: object) -> Instance:
    """Items as rows ``value w_1 .. w_M`` per class -> a padded portfolio instance."""
    n, k, m = len(classes), max(len(items) for items in classes), len(capacity)
    value = np.zeros((n, k))
    usage = np.zeros((m, n, k))
    allowed = np.zeros((n, k), dtype=bool)
    for i, items in enumerate(classes):
        value[i, : len(items)] = items[:, 0]
        usage[:, i, : len(items)] = items[:, 1:].T
        allowed[i, : len(items)] = True
    return Instance(
        name=name,
        value=value,
        usage=usage,
        limit=capacity,
        allowed=None if allowed.all() else allowed,
        **extra,  # type: ignore[arg-type]
    )


def khan_instance(text: str, name: str = "khan") -> Instance:
    """Khan's MMKP format: ``n l m``, ``m`` capacities, per group its number and ``l``
    rows ``value r_1 .. r_m``; then titled sections with Moser's and HEU's solutions,
    an upper bound and (I01-I06) the exact solution, kept in ``reference``/``solutions``.
    """
    lines = text.splitlines()
    tokens: list[str] = []
    tail_start = len(lines)
    for index, line in enumerate(lines):
        if any(ch.isalpha() for ch in line):
            tail_start = index
            break
        tokens.extend(line.split())
    numbers = _Numbers(tokens, name)
    n, items, m = numbers.count(), numbers.count(), numbers.count()
    capacity = numbers.take(m)
    classes = []
    for group in range(n):
        number = numbers.count()
        if number != group + 1:
            raise FormatError(f"{name}: expected group {group + 1}, found {number}")
        classes.append(numbers.take(items * (1 + m)).reshape(items, 1 + m))
    if numbers.position != len(tokens):
        raise FormatError(f"{name}: {len(tokens) - numbers.position} numbers left over")
    reference: dict[str, float] = {}
    solutions: dict[str, np.ndarray] = {}
    for title, data in _sections(lines[tail_start:]):
        key = _section_key(title)
        if key == "upper bound":
            reference[key] = float(data[0])
        elif len(data) == n + 1:
            reference[key] = float(data[-1])
            solutions[key] = data[:n].astype(np.int64)
        else:
            raise FormatError(f"{name}: section {title!r} has {len(data)} numbers")
    return _mmkp(name, classes, capacity, reference=reference, solutions=solutions)


def _sections(lines: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    title, data = None, []
    for line in lines:
        if any(ch.isalpha() for ch in line):
            if title is not None:
                yield title, np.array(data, dtype=np.float64)
            title, data = line.strip(), []
        else:
            data.extend(line.split())
    if title is not None:
        yield title, np.array(data, dtype=np.float64)


def _section_key(title: str) -> str:
    lowered = " ".join(title.lower().replace(":", " ").split())
    for key in ("moser", "heu", "upper bound", "exact"):
        if key in lowered:
            return key
    return lowered


def hifi_instance(text: str, name: str = "hifi") -> Instance:
    """Hifi's MMKP format: ``N M``, ``M`` capacities, then per class its item count and
    that many rows ``value w_1 .. w_M`` (classes may differ in size)."""
    numbers = _Numbers(text.split(), name)
    n, m = numbers.count(), numbers.count()
    capacity = numbers.take(m)
    classes = []
    for _ in range(n):
        items = numbers.count()
        if items == 0:
            raise FormatError(f"{name}: a class without items")
        classes.append(numbers.take(items * (1 + m)).reshape(items, 1 + m))
    if numbers.position != len(numbers.tokens):
        raise FormatError(f"{name}: numbers left over after {n} classes")
    return _mmkp(name, classes, capacity)


def hiremath_hill_instances(text: str, name: str = "hiremath-hill") -> list[Instance]:
    """Hiremath and Hill's MMKP format, several problems a file: ``ProblemNo m n l``,
    ``l`` right-hand sides, then per class its number and ``n`` rows ``value w_1 .. w_l``
    (tab separated, often with empty fields and CRLF line ends)."""
    numbers = _Numbers(text.split(), name)
    problems = []
    while numbers.position < len(numbers.tokens):
        number, classes_count, items, dims = (numbers.count() for _ in range(4))
        capacity = numbers.take(dims)
        classes = []
        for group in range(classes_count):
            label = numbers.count()
            if label != group + 1:
                raise FormatError(f"{name} problem {number}: expected class {group + 1}")
            classes.append(numbers.take(items * (1 + dims)).reshape(items, 1 + dims))
        problems.append(_mmkp(f"{name}-{number}", classes, capacity))
    return problems


def _gap(name: str, cost: np.ndarray, weight: np.ndarray, capacity: np.ndarray, sense: str):
    agents, jobs = cost.shape
    usage = np.zeros((agents, jobs, agents))
    usage[np.arange(agents), :, np.arange(agents)] = weight
    value = -cost.T if sense == "min" else cost.T.copy()
    return Instance(name=name, value=value, usage=usage, limit=capacity, sense=sense)


def _read_gap(numbers: _Numbers, name: str, sense: str) -> Instance:
    agents, jobs = numbers.count(), numbers.count()
    cost = numbers.take(agents * jobs).reshape(agents, jobs)
    weight = numbers.take(agents * jobs).reshape(agents, jobs)
    capacity = numbers.take(agents)
    return _gap(name, cost, weight, capacity, sense)


def gap_instances(text: str, name: str = "gap", sense: str = "min") -> list[Instance]:
    """The OR-Library GAP format: the number of problems, then per problem ``m n``, the
    ``m x n`` costs, the ``m x n`` weights and ``m`` capacities (m agents, n jobs)."""
    if sense not in ("min", "max"):
        raise ValueError("sense is 'min' or 'max'")
    numbers = _Numbers(text.split(), name)
    count = numbers.count()
    problems = [_read_gap(numbers, f"{name}-{i + 1}", sense) for i in range(count)]
    if numbers.position != len(numbers.tokens):
        raise FormatError(f"{name}: numbers left over after {count} problems")
    return problems


def yagiura_instance(text: str, name: str = "yagiura") -> Instance:
    """Yagiura's GAP format: one problem, ``m n``, costs, weights, capacities (minimise)."""
    numbers = _Numbers(text.split(), name)
    problem = _read_gap(numbers, name, "min")
    if numbers.position != len(numbers.tokens):
        raise FormatError(f"{name}: numbers left over")
    return problem


def assignment(text: str) -> np.ndarray:
    """A solution file: one 0-based action per customer, separated by white space."""
    return np.array(text.split(), dtype=np.int64)

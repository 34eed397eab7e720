"""Populations an optimisation run decides on: an uploaded CSV or Parquet file, or simulated.

A population is one row per customer: a ``customer_id`` column and a column for every
feature the strategy's models and rules need (the deployment's feature schema). Other
columns are ignored. ``population_check`` refuses the whole file, naming rows and
columns, when a needed column is missing or a value does not fit the schema, so a run
never decides on part of a population.

Rows are numbered from 1 in file order (the first data row after a CSV header is row 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arbiter.tables import TableUnreadable, table_columns, table_pieces
from governance.exceptions import ValidationFailed

ID_COLUMN = "customer_id"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MAX_ROWS_NAMED = 5
"""How many bad rows a message names per column (the count says how many there are)."""


@dataclass(frozen=True)
class Population:
    customer_ids: list[str]
    columns: dict[str, np.ndarray]
    """feature name -> (N,) float64 (numeric) or object (categorical) array."""

    @property
    def size(self) -> int:
        return len(self.customer_ids)


def population_slice(population: Population, rows: slice) -> Population:
    """The customers ``rows`` of ``population`` (views, not copies, of its columns)."""
    if rows.start in (0, None) and (rows.stop is None or rows.stop >= population.size):
        return population
    return Population(
        customer_ids=population.customer_ids[rows],
        columns={name: values[rows] for name, values in population.columns.items()},
    )


def population_format(filename: str) -> str:
    """``csv`` or ``parquet`` from a file name; ``ValidationFailed`` for anything else."""
    suffix = Path(filename).suffix.lower()
    if suffix not in FORMATS:
        raise ValidationFailed(
            f"The population file {filename!r} is neither CSV nor Parquet.",
            details={"population": ["must be a .csv or .parquet file"]},
        )
    return FORMATS[suffix]


def population_pieces(
    path: Path, fmt: str, *, rows: int | None, columns: Collection[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The file in frames of at most ``rows`` rows (None: one frame), read as they are
    needed, so a large file is never in memory whole; ``ValidationFailed`` when
    unreadable, also midway (``arbiter.tables``: delimiters, encodings, a line longer
    than the header). CSV values are strings (types are checked per column against the
    schema, so a stray "n/a" is reported by row instead of silently becoming NaN);
    Parquet keeps its own types; of a Parquet file only ``columns`` are read (the others
    are never decoded)."""
    try:
        yield from table_pieces(path, fmt, rows=rows, columns=columns)
    except TableUnreadable as exc:
        raise _population_error(exc) from None


def population_columns(path: Path, fmt: str) -> list[str]:
    """The file's column names, read from its header (CSV) or schema (Parquet) alone;
    ``ValidationFailed`` when the file is unreadable or names a column twice."""
    try:
        return table_columns(path, fmt)
    except TableUnreadable as exc:
        raise _population_error(exc) from None


def _population_error(exc: TableUnreadable) -> ValidationFailed:
    if exc.columns:
        details = {f"population.columns.{name}": [exc.detail] for name in exc.columns}
    else:
        details = {"population": [exc.detail]}
    return ValidationFailed(f"The population file {exc.predicate}", details=details)


Found = list[tuple[str, np.ndarray]]
"""A column's problems in one piece: (problem, mask of the piece's rows with it), in a
fixed order per check so that a file read in pieces is described as if read whole."""


def _describe(rows: list[int], count: int, problem: str) -> str:
    named = ", ".join(str(r) for r in rows)
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    noun = "row" if count == 1 else "rows"
    return f"{noun} {named}{more}: {problem}"


def _numeric(raw: pd.Series, spec: Mapping[str, Any]) -> tuple[np.ndarray, Found]:
    missing = raw.isna().to_numpy()
    comma = np.zeros(len(raw), dtype=bool)
    if raw.dtype == object:
        # Bytes (a Parquet binary column) are text that may not be UTF-8: never a number.
        readable = raw.map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
        text = readable.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        comma = text.str.contains(",", regex=False).to_numpy(dtype=bool, na_value=False)
    elif pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
        values = np.full(len(raw), np.nan)
        missing = np.zeros(len(raw), dtype=bool)
    else:
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    found: Found = [
        ("missing", missing),
        ("must be a number", np.isnan(values) & ~missing & ~comma),
        (
            "must be a number written without thousands separators or a decimal comma (1234.5)",
            np.isnan(values) & ~missing & comma,
        ),
        ("must be a finite number", ~finite & ~np.isnan(values)),
    ]
    if "min" in spec:
        found.append((f"must be at least {spec['min']}", finite & (values < spec["min"])))
    if "max" in spec:
        found.append((f"must be at most {spec['max']}", finite & (values > spec["max"])))
    return values, found


def _categorical(raw: pd.Series, spec: Mapping[str, Any]) -> tuple[np.ndarray, Found]:
    missing = raw.isna().to_numpy()
    values = raw.astype(object).where(~raw.isna(), None).to_numpy(dtype=object)
    text = np.array([v if isinstance(v, str) else None for v in values], dtype=object)
    wrong_type = np.array([v is None for v in text], dtype=bool) & ~missing
    allowed = set(spec["categories"])
    unknown = np.array([v is not None and v not in allowed for v in text], dtype=bool)
    found: Found = [
        ("missing", missing),
        ("must be text", wrong_type),
        (f"must be one of {', '.join(spec['categories'])}", unknown),
    ]
    return text, found


def population_columns_check(columns: list[str], needed: list[str]) -> None:
    """``ValidationFailed`` naming the ``needed`` columns the file lacks, and the file's
    columns that differ from them only in case (names are case-sensitive)."""
    missing = [name for name in needed if name not in columns]
    if not missing:
        return
    folded = {column.casefold(): column for column in columns if column}
    near = {name: folded[name.casefold()] for name in missing if name.casefold() in folded}
    hint = ""
    if near:
        hint = (
            " Names are case-sensitive: the file has "
            + ", ".join(f"{found} for {name}" for name, found in near.items())
            + "."
        )
    elif len(columns) == 1 and missing:
        hint = (
            f" The file has one column, {columns[0][:80]!r}: are its columns separated by "
            "something other than a comma, semicolon, tab or vertical bar?"
        )
    raise ValidationFailed(
        f"The population lacks the column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(missing)}.{hint}",
        details={
            f"population.columns.{name}": [
                f"column missing (the file has {near[name]})" if name in near else "column missing"
            ]
            for name in missing
        },
    )


class PopulationCheck:
    """Validates a population piece by piece (a file read in pieces, or whole as one piece),
    keeping only the problems: the first ``MAX_ROWS_NAMED`` rows and a count per problem,
    and a 128-bit digest per customer id for the repeats. ``finish`` raises one
    ``ValidationFailed`` naming rows and columns, as if the file had been read whole.
    """

    def __init__(self, features: Mapping[str, Mapping[str, Any]]) -> None:
        self.features = features
        self.rows = 0
        # field -> problem -> (first rows named, how many)
        self.problems: dict[str, dict[str, tuple[list[int], int]]] = {}
        self._digests: list[np.ndarray] = []
        self._blank: list[np.ndarray] = []

    def piece(self, frame: pd.DataFrame) -> Population:
        """Check the next rows; their values (valid ones exact, bad ones NaN or None)."""
        needed = [ID_COLUMN, *self.features]
        population_columns_check(list(frame.columns), needed)
        ids_raw = frame[ID_COLUMN]
        ids = ids_raw.astype(object).where(~ids_raw.isna(), None).to_numpy(dtype=object)
        id_text = [None if v is None else str(v).strip() for v in ids]
        blank = np.array([not v for v in id_text], dtype=bool)
        too_long = np.array([bool(v) and len(v) > 200 for v in id_text], dtype=bool)
        self._note(ID_COLUMN, [("missing", blank), ("longer than 200 characters", too_long)])
        self._digests.append(
            np.frombuffer(
                b"".join(
                    hashlib.blake2b((v or "").encode("utf-8"), digest_size=16).digest()
                    for v in id_text
                ),
                dtype="V16",
            )
        )
        self._blank.append(blank)
        columns: dict[str, np.ndarray] = {}
        for name, spec in self.features.items():
            check = _numeric if spec["type"] == "numeric" else _categorical
            columns[name], found = check(frame[name], spec)
            self._note(name, found)
        self.rows += len(frame)
        return Population(customer_ids=[str(v) for v in id_text], columns=columns)

    def _note(self, field: str, found: Found, *, offset: int | None = None) -> None:
        """Add one piece's problems; its first row is row ``offset + 1`` (default: the
        rows checked so far)."""
        offset = self.rows if offset is None else offset
        for problem, mask in found:
            known = self.problems.setdefault(field, {})
            rows, count = known.get(problem, ([], 0))
            bad = np.flatnonzero(mask)
            room = MAX_ROWS_NAMED - len(rows)
            rows = rows + [offset + int(i) + 1 for i in bad[: max(0, room)]]
            known[problem] = (rows, count + len(bad))

    def finish(self) -> None:
        """Raise ``ValidationFailed`` for every problem found, or return (all rows good)."""
        if not self.rows:
            raise ValidationFailed(
                "The population has no customers.", details={"population": ["has no rows"]}
            )
        digests = np.concatenate(self._digests)
        blank = np.concatenate(self._blank)
        _, first = np.unique(digests, return_index=True)
        repeats = np.ones(len(digests), dtype=bool)
        repeats[first] = False
        # A 128-bit digest is the id for this purpose: two different ids share one with a
        # probability of about 1e-26 in a population of two million.
        self._note(ID_COLUMN, [("repeats an earlier customer_id", repeats & ~blank)], offset=0)
        problems: dict[str, list[str]] = {}
        for field, known in self.problems.items():
            described = [
                _describe(rows, count, problem) for problem, (rows, count) in known.items() if count
            ]
            if described:
                problems[f"population.{field}"] = described
        if problems:
            first_field = next(iter(problems))
            column = first_field.removeprefix("population.")
            raise ValidationFailed(
                f"The population has bad values in {len(problems)} column"
                f"{'s' if len(problems) > 1 else ''}; first, {column}: "
                f"{problems[first_field][0]}.",
                details=problems,
            )


def population_check(frame: pd.DataFrame, features: Mapping[str, Mapping[str, Any]]) -> Population:
    """Validate a population against the feature schema; every problem in one error."""
    if frame.empty:
        raise ValidationFailed(
            "The population has no customers.", details={"population": ["has no rows"]}
        )
    check = PopulationCheck(features)
    population = check.piece(frame)
    check.finish()
    return population


def population_simulated(use_case: str, customers: int, *, seed: int) -> pd.DataFrame:
    """A simulated population of ``use_case`` with ``customer_id`` values ``sim-<seed>-<i>``."""
    from decisions.simulator.population import customers as simulate

    frame = simulate(use_case, customers, seed=seed)
    frame = frame.reset_index(drop=True)
    frame.insert(0, ID_COLUMN, [f"sim-{seed}-{i}" for i in range(len(frame))])
    return frame

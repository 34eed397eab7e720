"""Populations an optimisation run decides on: an uploaded CSV or Parquet file, or simulated.

A population is one row per customer: a ``customer_id`` column and a column for every
feature the strategy's models and rules need (the deployment's feature schema). Other
columns are ignored. ``population_check`` refuses the whole file, naming rows and
columns, when a needed column is missing or a value does not fit the schema, so a run
never decides on part of a population.

Rows are numbered from 1 in file order (the first data row after a CSV header is row 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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


def population_format(filename: str) -> str:
    """``csv`` or ``parquet`` from a file name; ``ValidationFailed`` for anything else."""
    suffix = Path(filename).suffix.lower()
    if suffix not in FORMATS:
        raise ValidationFailed(
            f"The population file {filename!r} is neither CSV nor Parquet.",
            details={"population": ["must be a .csv or .parquet file"]},
        )
    return FORMATS[suffix]


def population_read(path: Path, fmt: str) -> pd.DataFrame:
    """The file as a frame of strings or numbers; ``ValidationFailed`` when unreadable."""
    try:
        if fmt == "csv":
            # Strings first: types are checked per column against the schema, so a stray
            # "n/a" is reported by row instead of silently becoming NaN.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            frame = pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValidationFailed(
            f"The population file could not be read as {fmt.upper()}: {exc}",
            details={"population": [f"not a readable {fmt.upper()} file"]},
        ) from None
    except Exception as exc:  # pyarrow raises its own types for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise ValidationFailed(
                f"The population file could not be read as {fmt.upper()}: {exc}",
                details={"population": [f"not a readable {fmt.upper()} file"]},
            ) from None
        raise
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _rows(mask: np.ndarray) -> tuple[list[int], int]:
    bad = np.flatnonzero(mask)
    return [int(i) + 1 for i in bad[:MAX_ROWS_NAMED]], len(bad)


def _describe(rows: list[int], count: int, problem: str) -> str:
    named = ", ".join(str(r) for r in rows)
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    noun = "row" if count == 1 else "rows"
    return f"{noun} {named}{more}: {problem}"


def _numeric(raw: pd.Series, spec: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    problems: list[str] = []
    missing = raw.isna().to_numpy()
    if raw.dtype == object:
        text = raw.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
        values = np.full(len(raw), np.nan)
        missing = np.zeros(len(raw), dtype=bool)
    else:
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    not_number = np.isnan(values) & ~missing
    if missing.any():
        problems.append(_describe(*_rows(missing), "missing"))
    if not_number.any():
        problems.append(_describe(*_rows(not_number), "must be a number"))
    finite = np.isfinite(values)
    infinite = ~finite & ~np.isnan(values)
    if infinite.any():
        problems.append(_describe(*_rows(infinite), "must be a finite number"))
    if "min" in spec:
        low = finite & (values < spec["min"])
        if low.any():
            problems.append(_describe(*_rows(low), f"must be at least {spec['min']}"))
    if "max" in spec:
        high = finite & (values > spec["max"])
        if high.any():
            problems.append(_describe(*_rows(high), f"must be at most {spec['max']}"))
    return values, problems


def _categorical(raw: pd.Series, spec: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    problems: list[str] = []
    missing = raw.isna().to_numpy()
    values = raw.astype(object).where(~raw.isna(), None).to_numpy(dtype=object)
    text = np.array([v if isinstance(v, str) else None for v in values], dtype=object)
    wrong_type = np.array([v is None for v in text]) & ~missing
    allowed = set(spec["categories"])
    unknown = np.array([v is not None and v not in allowed for v in text], dtype=bool)
    if missing.any():
        problems.append(_describe(*_rows(missing), "missing"))
    if wrong_type.any():
        problems.append(_describe(*_rows(wrong_type), "must be text"))
    if unknown.any():
        problems.append(
            _describe(*_rows(unknown), f"must be one of {', '.join(spec['categories'])}")
        )
    return text, problems


def population_check(frame: pd.DataFrame, features: Mapping[str, Mapping[str, Any]]) -> Population:
    """Validate a population against the feature schema; every problem in one error."""
    if frame.empty:
        raise ValidationFailed(
            "The population has no customers.", details={"population": ["has no rows"]}
        )
    needed = [ID_COLUMN, *features]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise ValidationFailed(
            f"The population lacks the column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}.",
            details={f"population.columns.{name}": ["column missing"] for name in missing},
        )
    problems: dict[str, list[str]] = {}
    ids_raw = frame[ID_COLUMN]
    ids = ids_raw.astype(object).where(~ids_raw.isna(), None).to_numpy(dtype=object)
    id_text = [None if v is None else str(v).strip() for v in ids]
    blank = np.array([not v for v in id_text], dtype=bool)
    if blank.any():
        problems.setdefault(f"population.{ID_COLUMN}", []).append(
            _describe(*_rows(blank), "missing")
        )
    too_long = np.array([bool(v) and len(v) > 200 for v in id_text], dtype=bool)
    if too_long.any():
        problems.setdefault(f"population.{ID_COLUMN}", []).append(
            _describe(*_rows(too_long), "longer than 200 characters")
        )
    duplicated = pd.Series(id_text).duplicated(keep="first").to_numpy() & ~blank
    if duplicated.any():
        problems.setdefault(f"population.{ID_COLUMN}", []).append(
            _describe(*_rows(duplicated), "repeats an earlier customer_id")
        )
    columns: dict[str, np.ndarray] = {}
    for name, spec in features.items():
        check = _numeric if spec["type"] == "numeric" else _categorical
        values, column_problems = check(frame[name], spec)
        if column_problems:
            problems[f"population.{name}"] = column_problems
        columns[name] = values
    if problems:
        first = next(iter(problems))
        column = first.removeprefix("population.")
        raise ValidationFailed(
            f"The population has bad values in {len(problems)} column"
            f"{'s' if len(problems) > 1 else ''}; first, {column}: {problems[first][0]}.",
            details=problems,
        )
    return Population(customer_ids=[str(v) for v in id_text], columns=columns)


def population_simulated(use_case: str, customers: int, *, seed: int) -> pd.DataFrame:
    """A simulated population of ``use_case`` with ``customer_id`` values ``sim-<seed>-<i>``."""
    from decisions.simulator.population import customers as simulate

    frame = simulate(use_case, customers, seed=seed)
    frame = frame.reset_index(drop=True)
    frame.insert(0, ID_COLUMN, [f"sim-{seed}-{i}" for i in range(len(frame))])
    return frame

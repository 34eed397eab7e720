"""Populations an optimisation run decides on: an uploaded CSV or Parquet file, or simulated.

A population is one row per customer: a ``customer_id`` column and a column for every
feature the strategy's models and rules need (the deployment's feature schema). Other
columns are ignored. ``population_check`` refuses the whole file, naming rows and
columns, when a needed column is missing or a value does not fit the schema, so a run
never decides on part of a population.

Rows are numbered from 1 in file order (the first data row after a CSV header is row 1).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator, Mapping
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


CSV_DELIMITERS = (",", ";", "\t", "|")
"""What may separate a CSV file's columns: the one its header line uses most (Excel writes
``;`` where the decimal separator is a comma)."""
_SAMPLE_BYTES = 64 * 1024
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def population_pieces(path: Path, fmt: str, *, rows: int | None) -> Iterator[pd.DataFrame]:
    """The file in frames of at most ``rows`` rows (None: one frame), read as they are
    needed, so a large file is never in memory whole; ``ValidationFailed`` when
    unreadable, also midway. CSV values are strings (types are checked per column
    against the schema, so a stray "n/a" is reported by row instead of silently becoming
    NaN); Parquet keeps its own types.

    A CSV row with more fields than the header is refused by line number (pandas would
    otherwise take a first column for the index, and shift every value one column to the
    left, when a line ends with a delimiter)."""
    try:
        if fmt == "csv":
            yield from _csv_frames(path, rows)
            return
        if rows is None:
            frames: Any = [pd.read_parquet(path)]
        else:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            frames = (pa_batch.to_pandas() for pa_batch in parquet.iter_batches(batch_size=rows))
        for frame in frames:
            frame.columns = _column_names(frame.columns)
            yield frame
    except ValidationFailed:
        raise
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc) from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise _unreadable(fmt, exc) from None
    except Exception as exc:  # pyarrow raises its own types for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise _unreadable(fmt, exc) from None
        raise


def population_columns(path: Path, fmt: str) -> list[str]:
    """The file's column names, read from its header (CSV) or schema (Parquet) alone;
    ``ValidationFailed`` when the file is unreadable or names a column twice."""
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, nrows=0, **_csv_options(path))
            return _column_names(frame.columns)
        import pyarrow.parquet as pq

        return _column_names(pq.read_schema(path).names)
    except ValidationFailed:
        raise
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc) from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise _unreadable(fmt, exc) from None
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):
            raise _unreadable(fmt, exc) from None
        raise


def _csv_options(path: Path) -> dict[str, Any]:
    """How to read the CSV file at ``path``: UTF-8 (a byte-order mark allowed), and the
    delimiter its header line uses most. ``ValidationFailed`` for other encodings."""
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    if not sample.strip():
        raise ValidationFailed(
            "The population file is empty.", details={"population": ["the file is empty"]}
        )
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValidationFailed(
            "The population file is UTF-16 text; save it as UTF-8 CSV (in Excel: CSV UTF-8).",
            details={"population": ["must be UTF-8 text"]},
        )
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc, sample) from None
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in CSV_DELIMITERS}
    delimiter = max(CSV_DELIMITERS, key=lambda d: counts[d]) if any(counts.values()) else ","
    return {
        "sep": delimiter,
        "dtype": str,
        "keep_default_na": False,
        "na_values": [""],
        "encoding": "utf-8",
    }


def _csv_frames(path: Path, rows: int | None) -> Iterator[pd.DataFrame]:
    options = _csv_options(path)
    # No header for pandas: the first line is read as a row, which fixes the number of
    # fields, so a longer line is an error instead of an index column.
    try:
        with pd.read_csv(path, header=None, iterator=True, **options) as reader:
            frame = reader.read() if rows is None else reader.get_chunk(rows + 1)
            names = _column_names(frame.iloc[0].tolist())
            frame = frame.iloc[1:]
            while True:
                frame.columns = names
                yield frame.reset_index(drop=True)
                if rows is None:
                    return
                try:
                    frame = reader.get_chunk(rows)
                except StopIteration:
                    return
    except pd.errors.ParserError as exc:
        match = _FIELDS.search(str(exc))
        if match is None:
            raise
        expected, line, saw = match.groups()
        raise ValidationFailed(
            f"The population file could not be read as CSV: line {line} has {saw} fields "
            f"where the header has {expected} (a value with an unquoted "
            f"{_delimiter_name(options['sep'])}, or one at the end of the line).",
            details={"population": [f"line {line}: {saw} fields, the header {expected}"]},
        ) from None


def _delimiter_name(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}[delimiter]


def _column_names(raw: Any) -> list[str]:
    """Column names as text, trimmed (a missing name is blank); a name twice is refused."""
    names = [
        "" if name is None or (isinstance(name, float) and name != name) else str(name)
        for name in raw
    ]
    names = [name.strip() for name in names]
    twice = sorted({name for name in names if name and names.count(name) > 1})
    if twice:
        raise ValidationFailed(
            f"The population names the column{'s' if len(twice) > 1 else ''} "
            f"{', '.join(twice)} more than once.",
            details={f"population.columns.{name}": ["column named twice"] for name in twice},
        )
    return names


def _not_utf8(exc: UnicodeDecodeError, sample: bytes | None = None) -> ValidationFailed:
    """``sample``: the file's first bytes, where ``exc`` was found (to name the line)."""
    where = ""
    if sample is not None:
        line = sample[: exc.start].count(b"\n") + 1
        where = f" on line {line}"
    byte = exc.object[exc.start : exc.start + 1].hex()
    return ValidationFailed(
        f"The population file is not UTF-8 text (byte 0x{byte}{where}); save it as UTF-8 CSV "
        "(in Excel: CSV UTF-8).",
        details={"population": ["must be UTF-8 text"]},
    )


def _unreadable(fmt: str, exc: Exception) -> ValidationFailed:
    return ValidationFailed(
        f"The population file could not be read as {fmt.upper()}: {exc}",
        details={"population": [f"not a readable {fmt.upper()} file"]},
    )


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
        text = raw.astype("string").str.strip()
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

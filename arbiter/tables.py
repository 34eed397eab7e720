"""Tabular files (CSV and Parquet) read as lenders' tools write them.

Spreadsheets write CSV with a byte-order mark, with semicolons where the decimal
separator is a comma, with a delimiter at the end of each line, or in a legacy encoding.
Every such file is either read as its author meant or refused with a sentence that says
what to change; none is read wrongly:

- CSV is UTF-8 (a byte-order mark is skipped); UTF-16 and other encodings are refused.
- The delimiter is the one the header line uses most of ``CSV_DELIMITERS``.
- The header fixes the number of fields: a longer line is refused by its line number.
  (pandas alone takes a first column for the index when the data lines have one field
  more than the header, as when each line ends with a delimiter, and silently reads
  every value one column to the left.)
- A column named twice is refused; names are trimmed.
- CSV values are text (blank: NaN): each caller checks them against its own schema.
- Blank lines (nothing, or only spaces and tabs) are skipped; a quoted value may span
  lines. A line number in a message is the file's, as an editor shows it
  (``csv_row_lines`` gives each row's for callers that name rows by line).
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

CSV_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
_SAMPLE_BYTES = 64 * 1024
# A file with more columns is refused before its values are read: lenders' extracts have
# tens or hundreds; tens of thousands of names only cost time.
MAX_COLUMNS = 10_000
MAX_HEADER_BYTES = 1024 * 1024
# A Parquet file is refused when the columns read decode to more than this many bytes a
# row on average over a batch (a customer's features and an outcome's fields are numbers
# and short text: well under 1 KiB), or to more than MAX_DECODED_BYTES in all.
MAX_ROW_BYTES = 16 * 1024
MAX_DECODED_BYTES = 2 * 1024**3
_PARQUET_BATCH = 65_536
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class TableUnreadable(Exception):
    """A file that cannot be read as a table. ``predicate`` completes a sentence whose
    subject is the file ("is empty."), ``detail`` is a short phrase for field details,
    and ``columns`` names the columns at fault, if that is the problem."""

    def __init__(self, predicate: str, detail: str, columns: tuple[str, ...] = ()) -> None:
        super().__init__(predicate)
        self.predicate, self.detail, self.columns = predicate, detail, columns


def table_pieces(
    path: Path,
    fmt: str,
    *,
    rows: int | None = None,
    columns: Collection[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """The file (``fmt`` ``csv`` or ``parquet``) in frames of at most ``rows`` rows (None:
    one frame), read as they are needed; ``TableUnreadable``, also midway. ``columns``: of
    a Parquet file, read only those (the others are never decoded; a missing one is
    simply absent, for the caller to name)."""
    with _reading(fmt):
        if fmt == "csv":
            yield from _csv_frames(path, rows)
        else:
            yield from _parquet_frames(path, rows, columns)


def _parquet_frames(
    path: Path, rows: int | None, columns: Collection[str] | None
) -> Iterator[pd.DataFrame]:
    """Batches of a Parquet file, its size once decoded checked before it is decoded.

    Parquet compresses repeated values to almost nothing, so a file of a few hundred
    kilobytes can hold gigabytes: a long value repeated in every row, through a
    dictionary or plainly compressed. The plainly stored pages of the columns read must
    fit ``MAX_DECODED_BYTES`` uncompressed (the file's own metadata says so before
    anything is read); text columns are read as dictionaries and their dense size summed
    from the value lengths before each batch is expanded.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    raw = schema.names
    names = column_names(raw)
    chosen = list(raw)
    if columns is not None:
        wanted = set(columns)
        chosen = [r for r, name in zip(raw, names, strict=True) if name in wanted]
    text = [name for name in chosen if _is_text(schema.field(name).type)]
    parquet = pq.ParquetFile(path, read_dictionary=text)
    _check_stored_size(parquet, chosen)
    batches, decoded, first_row = [], 0, 1
    for batch in parquet.iter_batches(batch_size=rows or _PARQUET_BATCH, columns=chosen):
        size = _dense_bytes(batch)
        decoded += size
        if batch.num_rows and (
            size > batch.num_rows * MAX_ROW_BYTES or decoded > MAX_DECODED_BYTES
        ):
            last_row = first_row + batch.num_rows - 1
            raise TableUnreadable(
                f"decodes to {size / batch.num_rows / 1024:,.1f} KiB a row in rows "
                f"{first_row:,}-{last_row:,} ({decoded / 2**20:,.0f} MiB so far; at most "
                f"{MAX_ROW_BYTES // 1024} KiB a row and {MAX_DECODED_BYTES // 2**20:,} MiB "
                "in all): a column holds very long values.",
                "too large once decoded",
            )
        first_row += batch.num_rows
        batch = _dictionaries_decoded(batch)
        if rows is None:
            batches.append(batch)
        else:
            yield _frame(batch.to_pandas())
    if rows is None:
        fields = [schema.field(name) for name in chosen]
        yield _frame(pa.Table.from_batches(batches, schema=pa.schema(fields)).to_pandas())


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _check_stored_size(parquet: Any, chosen: list[str]) -> None:
    """Refuse before reading when the chosen columns' pages are too large uncompressed."""
    metadata = parquet.metadata
    positions = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    stored = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for name in chosen:
            if name in positions:
                stored += row_group.column(positions[name]).total_uncompressed_size
    if stored > MAX_DECODED_BYTES:
        raise TableUnreadable(
            f"holds {stored / 2**20:,.0f} MiB uncompressed in the columns read, more than "
            f"the {MAX_DECODED_BYTES // 2**20:,} MiB allowed.",
            "too large once uncompressed",
        )


def _dense_bytes(batch: Any) -> int:
    """What ``batch`` takes once its dictionary columns are expanded, computed from the
    value lengths without expanding them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            lengths = pc.binary_length(column.dictionary).take(column.indices)
            total += int(pc.sum(lengths).as_py() or 0) + 8 * len(column)
        else:
            total += column.nbytes
    return total


def _dictionaries_decoded(batch: Any) -> Any:
    """Dictionary columns as plain ones, as the file's readers expect their values."""
    import pyarrow as pa

    if not any(pa.types.is_dictionary(column.type) for column in batch.columns):
        return batch
    arrays = [
        column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
        for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = column_names(frame.columns)
    return frame


def table_columns(path: Path, fmt: str) -> list[str]:
    """The file's column names, from its header (CSV) or schema (Parquet) alone."""
    with _reading(fmt):
        if fmt == "csv":
            # The header as a row (pandas would rename a name's second use to "age.1").
            options = {**_csv_options(path), "dtype": object}
            first = pd.read_csv(path, header=None, nrows=1, **options)
            return column_names(first.iloc[0].tolist()) if len(first) else []
        import pyarrow.parquet as pq

        return column_names(pq.read_schema(path).names)


@contextmanager
def _reading(fmt: str) -> Iterator[None]:
    """pandas' and pyarrow's errors for a bad file, as ``TableUnreadable``."""
    try:
        yield
    except TableUnreadable:
        raise
    except Exception as exc:
        if not _file_problem(exc):
            raise
        raise _unreadable(fmt, exc) from None


def column_names(raw: Any) -> list[str]:
    """Column names as text, trimmed (a missing name is blank); a name twice is refused."""
    names = [
        "" if name is None or (isinstance(name, float) and name != name) else str(name).strip()
        for name in raw
    ]
    if len(names) > MAX_COLUMNS:
        raise TableUnreadable(
            f"has {len(names):,} columns, more than the {MAX_COLUMNS:,} allowed.",
            f"more than {MAX_COLUMNS:,} columns",
        )
    counts = Counter(name for name in names if name)
    twice = tuple(sorted(name for name, seen in counts.items() if seen > 1))
    if twice:
        raise TableUnreadable(
            f"names the column{'s' if len(twice) > 1 else ''} {', '.join(twice)} more than once.",
            "column named twice",
            twice,
        )
    return names


def _csv_options(path: Path) -> dict[str, Any]:
    """How to read the CSV file at ``path``: UTF-8, and its header line's delimiter."""
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    if not sample.strip():
        raise TableUnreadable("is empty.", "the file is empty")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise TableUnreadable(
            "is UTF-16 text; save it as UTF-8 CSV (in Excel: CSV UTF-8).", "must be UTF-8 text"
        )
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc, sample) from None
    header = text.split("\n", 1)[0]
    if "\n" not in text and len(sample) == _SAMPLE_BYTES:
        header = _long_header(path)
    counts = {d: header.count(d) for d in CSV_DELIMITERS}
    delimiter = max(CSV_DELIMITERS, key=lambda d: counts[d]) if any(counts.values()) else ","
    if counts.get(delimiter, 0) + 1 > MAX_COLUMNS:
        raise TableUnreadable(
            f"has {counts[delimiter] + 1:,} columns, more than the {MAX_COLUMNS:,} allowed.",
            f"more than {MAX_COLUMNS:,} columns",
        )
    return {
        "sep": delimiter,
        "dtype": str,
        "keep_default_na": False,
        "na_values": [""],
        "encoding": "utf-8",
    }


def _long_header(path: Path) -> str:
    """A header line longer than the first sample: read up to ``MAX_HEADER_BYTES`` of it
    (counted before pandas parses it: tens of thousands of names take minutes there)."""
    with open(path, "rb") as handle:
        head = handle.read(MAX_HEADER_BYTES + 1)
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) > MAX_HEADER_BYTES:
        raise TableUnreadable(
            f"has a header line longer than {MAX_HEADER_BYTES // 1024:,} KiB.",
            "header line too long",
        )
    return line.decode("utf-8-sig", errors="replace")


def _csv_frames(path: Path, rows: int | None) -> Iterator[pd.DataFrame]:
    options = _csv_options(path)
    # No header for pandas: the header line is read as a row, which fixes the number of
    # fields, so a longer line is an error instead of an index column.
    try:
        with pd.read_csv(path, header=None, iterator=True, **options) as reader:
            frame = reader.read() if rows is None else reader.get_chunk(rows + 1)
            names = column_names(frame.iloc[0].tolist())
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
        expected, record, saw = match.groups()
        # pandas counts a quoted value spanning lines as one line: name the file's line.
        line = _csv_record_line(path, options["sep"], int(record))
        raise TableUnreadable(
            f"could not be read as CSV: line {line} has {saw} fields where the header has "
            f"{expected} (a value with an unquoted {_DELIMITER_NAMES[options['sep']]}, or "
            "one at the end of the line).",
            f"line {line}: {saw} fields, the header {expected}",
        ) from None


class _CountedLines:
    """A text file's lines as the csv module takes them, counted, the last one kept."""

    def __init__(self, handle: Any) -> None:
        self._handle, self.count, self.last = handle, 0, ""

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        self.last = next(self._handle)
        self.count += 1
        return self.last


def _csv_records(path: Path, sep: str) -> Iterator[tuple[int, bool]]:
    """(line it starts on, blank) of every record of the CSV file, the header's included,
    split as pandas splits them: a quoted value may span lines (pandas' quoting is the
    csv module's default), and a line of nothing but spaces and tabs other than the
    delimiter is blank (pandas skips it; its line counts all the same)."""
    limit = csv.field_size_limit()
    # pandas has no limit on a value's length; the csv module's 128 KiB would stop here.
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            lines = _CountedLines(handle)
            start = 1
            for _record in csv.reader(lines, delimiter=sep):
                single = lines.count == start
                text = lines.last.rstrip("\r\n")
                yield start, single and all(c in " \t" and c != sep for c in text)
                start = lines.count + 1
    finally:
        csv.field_size_limit(limit)


def _csv_record_line(path: Path, sep: str, number: int) -> int:
    """The line record ``number`` (from 1, blank lines counted, as pandas numbers the
    "lines" of its errors) starts on."""
    for index, (line, _blank) in enumerate(_csv_records(path, sep), start=1):
        if index == number:
            return line
    return number


def csv_row_lines(path: Path) -> list[int]:
    """The line of the CSV file at ``path`` each data row starts on (the header is line 1),
    in the order ``table_pieces`` yields the rows: blank lines are skipped and counted, and
    a quoted value spanning lines moves the next rows down. ``TableUnreadable`` as
    ``table_pieces``."""
    with _reading("csv"):
        sep = _csv_options(path)["sep"]
        starts = [line for line, blank in _csv_records(path, sep) if not blank]
    return starts[1:]


def _not_utf8(exc: UnicodeDecodeError, sample: bytes | None = None) -> TableUnreadable:
    """``sample``: the file's first bytes, where ``exc`` was found (to name the line)."""
    where = ""
    if sample is not None:
        line = sample[: exc.start].count(b"\n") + 1
        where = f" on line {line}"
    byte = exc.object[exc.start : exc.start + 1].hex()
    return TableUnreadable(
        f"is not UTF-8 text (byte 0x{byte}{where}); save it as UTF-8 CSV (in Excel: CSV UTF-8).",
        "must be UTF-8 text",
    )


def _file_problem(exc: Exception) -> bool:
    """Whether ``exc`` says the file is not what it should be (pandas' and pyarrow's many
    types), rather than that this code is wrong."""
    return isinstance(exc, (ValueError, OSError, pd.errors.ParserError)) or type(
        exc
    ).__module__.startswith("pyarrow")


def _unreadable(fmt: str, exc: Exception) -> TableUnreadable:
    if isinstance(exc, UnicodeDecodeError):
        return _not_utf8(exc)
    if isinstance(exc, FileNotFoundError):
        return TableUnreadable("does not exist.", "not found")
    kind = fmt.upper() if fmt == "csv" else "Parquet"
    first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return TableUnreadable(f"could not be read as {kind}: {first}", f"not a readable {kind} file")

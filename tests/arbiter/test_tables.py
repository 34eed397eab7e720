"""Tabular files that would cost the server far more than their size: Parquet that
decompresses to gigabytes, headers of tens of thousands of columns. Each is refused with
a sentence before it is decoded; an honest file is read as before."""

from __future__ import annotations

import tracemalloc

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arbiter import tables
from arbiter.tables import TableUnreadable, table_columns, table_pieces

ROWS = 20_000


def honest(path):
    frame = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(ROWS)], "income": range(ROWS), "region": "north"}
    )
    frame.to_parquet(path)
    return frame


def bomb(path, *, dictionary: bool) -> int:
    """A small file of one long value repeated in every row of a ``junk`` column: through a
    dictionary, 20,000 rows of 200 KB (4 GB once decoded; never built here either), or
    plainly compressed, 1,000 rows of 40 KB."""
    if dictionary:
        rows, junk = (
            ROWS,
            pa.DictionaryArray.from_arrays(
                pa.array([0] * ROWS, type=pa.int32()), pa.array(["x" * 200_000])
            ),
        )
    else:
        rows, junk = 1_000, pa.array(["x" * 40_000] * 1_000)
    table = pa.table({"customer_id": [f"c{i}" for i in range(rows)], "junk": junk})
    pq.write_table(table, path, use_dictionary=dictionary, compression="zstd")
    return path.stat().st_size


def test_an_honest_file_reads_whole_or_in_pieces_and_only_the_columns_asked(tmp_path):
    path = tmp_path / "people.parquet"
    frame = honest(path)
    [whole] = table_pieces(path, "parquet")
    pd.testing.assert_frame_equal(whole, frame)
    pieces = list(table_pieces(path, "parquet", rows=7_000, columns=["customer_id", "region"]))
    assert [len(p) for p in pieces] == [7_000, 7_000, 6_000]
    assert list(pieces[0].columns) == ["customer_id", "region"]
    assert pieces[2]["region"].tolist() == ["north"] * 6_000  # text, not a categorical


@pytest.mark.parametrize("dictionary", [True, False], ids=["dictionary", "plain"])
def test_a_parquet_bomb_is_refused_before_it_is_decoded(tmp_path, dictionary):
    path = tmp_path / "bomb.parquet"
    size = bomb(path, dictionary=dictionary)
    assert size < 200_000
    tracemalloc.start()
    with pytest.raises(TableUnreadable) as refused:
        list(table_pieces(path, "parquet", rows=5_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "a column holds very long values" in refused.value.predicate or (
        "uncompressed in the columns read" in refused.value.predicate
    )
    assert peak < 300 * 2**20  # refused long before 4 GB
    # The columns a run needs are fine: the junk is never read.
    [frame] = table_pieces(path, "parquet", columns=["customer_id"])
    assert len(frame) == (ROWS if dictionary else 1_000)


def test_a_header_of_too_many_columns_is_refused_at_once(tmp_path):
    path = tmp_path / "wide.csv"
    names = [f"c{i}" for i in range(tables.MAX_COLUMNS + 1)]
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    with pytest.raises(TableUnreadable, match="more than the 10,000 allowed"):
        table_columns(path, "csv")


def test_a_name_twice_in_a_wide_header_is_named(tmp_path):
    names = [f"c{i}" for i in range(tables.MAX_COLUMNS - 1)] + ["c5"]
    with pytest.raises(TableUnreadable) as refused:
        tables.column_names(names)
    assert refused.value.columns == ("c5",)


def test_a_csv_header_naming_a_column_twice_is_refused_from_the_header(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("customer_id,age,age\nc1,40,17\n")
    with pytest.raises(TableUnreadable) as refused:
        table_columns(path, "csv")
    assert refused.value.columns == ("age",)


def test_a_header_line_longer_than_a_mebibyte_is_refused_before_pandas(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("customer_id," + "x" * (tables.MAX_HEADER_BYTES + 10) + "\nc1,1\n")
    with pytest.raises(TableUnreadable, match="header line longer than 1,024 KiB"):
        table_columns(path, "csv")


@pytest.mark.parametrize("rows", [None, 2], ids=["whole", "in-pieces"])
def test_a_long_csv_line_is_named_by_the_files_line_after_values_spanning_lines(tmp_path, rows):
    # pandas counts a quoted value with line breaks as one line: it said line 6 here.
    path = tmp_path / "people.csv"
    path.write_text(
        "customer_id,note\n"  # line 1
        'c1,"two\nlines"\n'  # lines 2-3
        "\n"  # line 4
        'c2,"three\n\nlines"\n'  # lines 5-7
        "c3,fine\n"  # line 8
        "c4,a,b\n"  # line 9
    )
    with pytest.raises(TableUnreadable) as refused:
        list(table_pieces(path, "csv", rows=rows))
    assert refused.value.predicate.startswith(
        "could not be read as CSV: line 9 has 3 fields where the header has 2"
    )
    assert refused.value.detail == "line 9: 3 fields, the header 2"


def test_csv_rows_are_numbered_by_the_line_they_start_on(tmp_path):
    path = tmp_path / "people.csv"
    content = (
        "\ufeffcustomer_id;note\r\n"  # line 1, with a byte-order mark
        'c1;"two\r\nlines"\r\n'  # lines 2-3
        "\r\n"  # line 4: blank, skipped
        " \t \r\n"  # line 5: spaces and a tab, skipped
        ";\r\n"  # line 6: two empty values, a row
        '"  ";x\r\n'  # line 7: a quoted value of spaces, a row
        "c3;fine"  # line 8, no line break at the end
    )
    path.write_bytes(content.encode("utf-8"))
    [frame] = table_pieces(path, "csv")
    assert frame["note"].tolist()[0] == "two\r\nlines" and len(frame) == 4
    assert tables.csv_row_lines(path) == [2, 6, 7, 8]

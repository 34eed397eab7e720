"""Population files as lenders' tools write them: Excel's semicolons and byte-order marks,
other encodings, trailing delimiters, names in another case. Each is read correctly or
refused with a sentence that says what to change; none is read wrongly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from decisions.models import OptimisationRun
from decisions.populations import (
    PopulationCheck,
    population_columns,
    population_columns_check,
    population_pieces,
)
from governance.exceptions import ValidationFailed
from tests.decisions.test_optimisation_runs import demo  # noqa: F401 (a fixture)

FEATURES = {
    "income": {"type": "numeric", "min": 0},
    "region": {"type": "categorical", "categories": ["north", "süd"]},
}


def read(tmp_path: Path, data: bytes, *, rows: int | None = None):
    """The file's population as a run reads it, or the ``ValidationFailed`` it raises."""
    path = tmp_path / "people.csv"
    path.write_bytes(data)
    check = PopulationCheck(FEATURES)
    pieces = [check.piece(frame) for frame in population_pieces(path, "csv", rows=rows)]
    check.finish()
    return (
        [c for p in pieces for c in p.customer_ids],
        [float(v) for p in pieces for v in p.columns["income"]],
        [v for p in pieces for v in p.columns["region"]],
    )


@pytest.mark.parametrize(
    "data",
    [
        "customer_id,income,region\nc1,100.5,süd\nc2,7,north\n".encode(),
        "\ufeffcustomer_id,income,region\r\nc1,100.5,süd\r\nc2,7,north\r\n".encode(),  # Excel
        "customer_id;income;region\nc1;100.5;süd\nc2;7;north\n".encode(),
        "customer_id\tincome\tregion\nc1\t100.5\tsüd\nc2\t7\tnorth\n".encode(),
        "customer_id|income|region\nc1|100.5|süd\nc2|7|north\n".encode(),
        'customer_id,income,region,notes\nc1,100.5,süd,"a, b"\nc2,7,north,\n'.encode(),
    ],
    ids=["comma", "excel-utf8-bom-crlf", "semicolon", "tab", "bar", "quoted-extra-column"],
)
def test_delimited_text_is_read_whatever_the_delimiter(tmp_path, data):
    assert read(tmp_path, data) == (["c1", "c2"], [100.5, 7.0], ["süd", "north"])


def test_a_line_ending_in_a_delimiter_is_refused_not_shifted(tmp_path):
    """pandas alone takes the first column for an index here, and reads customer c1's
    income as its id: every value one column to the left, silently."""
    data = b"customer_id,income,region\nc1,100,north,\nc2,7,north,\n"
    with pytest.raises(ValidationFailed) as raised:
        read(tmp_path, data)
    assert raised.value.message == (
        "The population file could not be read as CSV: line 2 has 4 fields where the header "
        "has 3 (a value with an unquoted comma, or one at the end of the line)."
    )
    later = b"customer_id;income;region\nc1;100;north\nc2;7;north;x\n"
    with pytest.raises(ValidationFailed, match=r"line 3 has 4 fields .* unquoted semicolon"):
        read(tmp_path, later)


def test_pieces_have_the_size_asked_for(tmp_path):
    lines = ["customer_id,income,region"] + [f"c{i},{i},north" for i in range(10)]
    path = tmp_path / "people.csv"
    path.write_text("\n".join(lines) + "\n")
    sizes = [len(frame) for frame in population_pieces(path, "csv", rows=4)]
    assert sizes == [4, 4, 2]
    ids, incomes, _ = read(tmp_path, path.read_bytes(), rows=4)
    assert ids == [f"c{i}" for i in range(10)] and incomes == [float(i) for i in range(10)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "customer_id,income,region\nc1,100,süd\n".encode("latin-1"),
            "The population file is not UTF-8 text (byte 0xfc on line 2); save it as UTF-8 "
            "CSV (in Excel: CSV UTF-8).",
        ),
        (
            "customer_id,income,region\nc1,100,north\n".encode("utf-16"),
            "The population file is UTF-16 text; save it as UTF-8 CSV (in Excel: CSV UTF-8).",
        ),
        (b"", "The population file is empty."),
        (b"\n\n", "The population file is empty."),
        (b"customer_id,income,region\n", "The population has no customers."),
        (
            b"customer_id,income,income,region\nc1,1,2,north\n",
            "The population file names the column income more than once.",
        ),
    ],
    ids=["latin-1", "utf-16", "empty", "blank-lines", "header-only", "column-twice"],
)
def test_files_that_cannot_be_read_say_what_to_change(tmp_path, data, message):
    with pytest.raises(ValidationFailed) as raised:
        read(tmp_path, data)
    assert raised.value.message == message


def test_numbers_with_commas_are_refused_with_the_form_to_use(tmp_path):
    """1.234,5 or 1,234.5 could each be read two ways; none is guessed."""
    data = b'customer_id;income;region\nc1;1234,5;north\nc2;"1,234.5";north\nc3;lots;north\n'
    with pytest.raises(ValidationFailed) as raised:
        read(tmp_path, data)
    assert raised.value.details == {
        "population.income": [
            "row 3: must be a number",
            "rows 1, 2: must be a number written without thousands separators or a decimal "
            "comma (1234.5)",
        ]
    }


def test_a_missing_column_names_what_the_file_has_instead():
    with pytest.raises(ValidationFailed) as raised:
        population_columns_check(
            ["Customer_ID", "INCOME", "region"], ["customer_id", "income", "region"]
        )
    assert raised.value.message == (
        "The population lacks the columns customer_id, income. Names are case-sensitive: "
        "the file has Customer_ID for customer_id, INCOME for income."
    )
    assert raised.value.details == {
        "population.columns.customer_id": ["column missing (the file has Customer_ID)"],
        "population.columns.income": ["column missing (the file has INCOME)"],
    }
    with pytest.raises(ValidationFailed, match="The file has one column, 'customer_id:income"):
        population_columns_check(["customer_id:income:region"], ["customer_id", "income"])


def test_the_header_alone_gives_the_columns(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes("\ufeffcustomer_id ; income;region\nc1;1;x\n".encode())
    assert population_columns(path, "csv") == ["customer_id", "income", "region"]
    parquet = tmp_path / "people.parquet"
    import pandas as pd

    pd.DataFrame({"customer_id": ["a"], "income": [1.0]}).to_parquet(parquet)
    assert population_columns(parquet, "parquet") == ["customer_id", "income"]


@pytest.mark.django_db
def test_an_excel_semicolon_file_runs_and_a_latin_1_one_is_refused_at_upload(
    demo,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    """Through the API, as an analyst uploads an export from a spreadsheet."""
    from decisions.populations import population_simulated

    people = population_simulated("collections", 40, seed=8)
    text = people.to_csv(index=False, sep=";", lineterminator="\r\n")
    client = APIClient()
    client.force_authenticate(demo["maker"])
    upload = io.BytesIO(b"\xef\xbb\xbf" + text.encode())
    upload.name = "export.csv"
    with django_capture_on_commit_callbacks(execute=True):  # the run, in-process
        created = client.post(
            "/api/v1/optimisation-runs/",
            {"population": upload, "deployment": "collections"},
            format="multipart",
        )
    assert created.status_code == 201, created.content
    run = OptimisationRun.objects.get(pk=created.json()["id"])
    assert run.status == "succeeded", run.error
    assert run.customers == 40

    before = OptimisationRun.objects.count()
    latin = io.BytesIO(text.replace("north", "nörth").encode("latin-1"))
    latin.name = "export.csv"
    refused = client.post(
        "/api/v1/optimisation-runs/",
        {"population": latin, "deployment": "collections"},
        format="multipart",
    )
    assert refused.status_code == 400, refused.content
    assert "not UTF-8 text" in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"] == {"population": ["must be UTF-8 text"]}
    assert OptimisationRun.objects.count() == before


def test_bytes_in_a_parquet_number_column_are_not_a_number(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "people.parquet"
    table = pa.table(
        {
            "customer_id": ["c1", "c2"],
            "income": pa.array([b"\xff", b"12"], type=pa.binary()),
            "region": ["north", "north"],
        }
    )
    pq.write_table(table, path)
    check = PopulationCheck(FEATURES)
    for frame in population_pieces(path, "parquet", rows=None):
        check.piece(frame)
    with pytest.raises(ValidationFailed) as refused:
        check.finish()
    assert refused.value.details == {"population.income": ["row 1: must be a number"]}

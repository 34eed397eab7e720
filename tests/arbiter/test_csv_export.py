"""Cells a spreadsheet would read as a formula are written as text, reversibly."""

from __future__ import annotations

import csv
import io

import pytest

from arbiter.csv_export import csv_lines, spreadsheet_safe


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'quoted", "''quoted"),
        ("-1.5", "-1.5"),  # numbers stay numbers
        ("+2", "+2"),
        ("-1e-05", "-1e-05"),
        ("C-1042", "C-1042"),
        ("", ""),
        (-3, -3),
        (None, None),
    ],
)
def test_spreadsheet_safe(cell, written):
    assert spreadsheet_safe(cell) == written


@pytest.mark.parametrize("text", ["=1+1", "'quoted", "''twice", "-x", "plain", "-1.5"])
def test_removing_one_leading_quote_gives_back_the_text(text):
    [line] = list(csv_lines([[text]]))
    [[cell]] = list(csv.reader(io.StringIO(line)))
    assert (cell[1:] if cell.startswith("'") else cell) == text

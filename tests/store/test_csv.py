"""The shared CSV cell helper: formula-looking text is neutralised, real numbers are not."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from stepsdk.store.csv_cells import safe_cell, write_rows


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+1", "-1", "@SUM(A1)", "\tx", "\rx", "-"])
def test_formula_text_gets_a_quote(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (-3, "-3"),
        (-0.5, "-0.5"),
        (Decimal("-2.25"), "-2.25"),
        (0, "0"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        ({"k": "=x"}, '{"k":"=x"}'),
        ([1, "é"], '[1,"é"]'),
    ],
)
def test_other_cells(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


def test_write_rows_streams_and_escapes() -> None:
    out = io.StringIO()
    write_rows(out, ["a", "b"], iter([["=1+1", -7], ["ok", None]]))
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["a", "b"], ["'=1+1", "-7"], ["ok", ""]]

"""CSV cells that are safe to open in a spreadsheet, shared by ``stepsdk export`` and the viewer.

A cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR is run as a formula by Excel,
LibreOffice and Google Sheets (OWASP "CSV injection"). Step data is untrusted (it holds web
page text and model output), so such text cells get a leading ``'``, which spreadsheets show
as plain text. Real numbers (``int``, ``float``, ``Decimal``) are written as they are: ``-3`` stays a number.
"""

from __future__ import annotations

import csv
import json
import numbers
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """One CSV cell: ``None`` → empty, booleans → ``true``/``false``, dicts and lists → compact
    JSON, numbers as they are, any other text with a leading ``'`` when it could be a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, numbers.Number):  # int, float, Decimal: a real number, never escaped
        return str(value)
    if isinstance(value, dict | list):
        # starts with { or [, so it can never be a formula
        return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_rows(
    out: IO[str], header: Iterable[str], rows: Iterable[Iterable[Any]], lineterminator: str = "\n"
) -> None:
    """Write the header and each row, every cell through :func:`safe_cell` (streams: rows may be
    a generator)."""
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow([safe_cell(c) for c in header])
    writer.writerows([safe_cell(c) for c in row] for row in rows)

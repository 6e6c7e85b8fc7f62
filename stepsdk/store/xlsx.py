"""Excel workbooks of tasks and steps (``stepsdk export --format xlsx`` and the viewer's button).

Two sheets: ``tasks`` (one row per task, with its step, failure, screenshot and token counts) and
``steps`` (one row per step). Cells keep their types: numbers and booleans stay numbers and
booleans, dicts and lists are compact JSON text, everything else is text.

Step text comes from agents and web pages. As the CSV export does (:mod:`stepsdk.store.csv_cells`), text that
a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) is neutralised:
here it is stored as a text cell with Excel's quote prefix (what Excel itself does when a person
types ``'=...``), so it is shown and kept as typed and never evaluated, not even after an edit.
Characters XML cannot hold are replaced with U+FFFD, line ends become LF, and text longer than Excel's 32,767-character
cell limit is cut with a visible marker. The workbook is written in openpyxl's write-only mode,
so memory stays bounded whatever the number of steps.
"""

from __future__ import annotations

import json
import numbers
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from stepsdk.store.csv_cells import FORMULA_STARTS
from stepsdk.store.export_format import STEP_COLUMNS, TASK_COLUMNS, TaskBundle

MAX_CELL_CHARS = 32_767
TASK_SHEET_COLUMNS = (
    *TASK_COLUMNS,
    "total_steps",
    "failed_steps",
    "screenshots_count",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
)
STEP_SHEET_COLUMNS = (*STEP_COLUMNS, "screenshots_count")
_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def cell_value(value: Any) -> tuple[Any, bool]:
    """(the value to store, whether it is formula-looking text to store with a quote prefix)."""
    if value is None or isinstance(value, bool):
        return value, False
    if isinstance(value, numbers.Number):
        return (value if isinstance(value, int | float) else float(value)), False  # Decimal → float
    if isinstance(value, dict | list):
        return _text(json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))), False
    raw = value if isinstance(value, str) else str(value)
    text = _text(raw)
    return text, raw.startswith(FORMULA_STARTS) or text.startswith(FORMULA_STARTS)


def _text(text: str) -> str:
    # XML readers turn a bare CR into LF anyway: say so up front, the same for every reader
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > MAX_CELL_CHARS:
        marker = f"…[truncated {len(text) - (MAX_CELL_CHARS - 40)} chars]"
        text = text[: MAX_CELL_CHARS - len(marker)] + marker
    return text


def _row(ws: WriteOnlyWorksheet, values: Iterable[Any]) -> list[Any]:
    cells = []
    for value in values:
        stored, quoted = cell_value(value)
        cell = WriteOnlyCell(ws, value=stored)
        if quoted:
            cell.data_type = "s"  # openpyxl takes "=..." for a formula: force text
            cell.quotePrefix = True
        cells.append(cell)
    return cells


def _header(ws: WriteOnlyWorksheet, columns: Iterable[str]) -> list[Any]:
    bold = Font(bold=True)
    cells = []
    for name in columns:
        cell = WriteOnlyCell(ws, value=name)
        cell.font = bold
        cells.append(cell)
    return cells


def task_sheet_row(task: dict[str, Any], steps: list[dict[str, Any]], screenshots: int) -> list[Any]:
    usage = Counter[str]()
    for step in steps:
        for key in _USAGE:
            value = (step.get("usage") or {}).get(key) if isinstance(step.get("usage"), dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                usage[key] += value
    failed = sum(1 for s in steps if s.get("success") is False)
    return [
        *(task.get(c) for c in TASK_COLUMNS),
        len(steps),
        failed,
        screenshots,
        *(usage[k] if any(isinstance(s.get("usage"), dict) for s in steps) else None for k in _USAGE),
    ]


def write_xlsx(bundles: Iterable[TaskBundle], out: IO[bytes], source: str) -> None:
    """The ``tasks`` and ``steps`` sheets of every bundle (streamed: each bundle is written as it
    comes), saved to the binary file ``out``."""
    wb = Workbook(write_only=True)
    tasks_ws = wb.create_sheet("tasks")
    steps_ws = wb.create_sheet("steps")
    tasks_ws.freeze_panes = steps_ws.freeze_panes = "A2"
    tasks_ws.append(_header(tasks_ws, TASK_SHEET_COLUMNS))
    steps_ws.append(_header(steps_ws, STEP_SHEET_COLUMNS))
    for bundle in bundles:
        shots = Counter(str(s.get("step_id")) for s in bundle.screenshots)
        tasks_ws.append(_row(tasks_ws, task_sheet_row(bundle.task, bundle.steps, len(bundle.screenshots))))
        for step in bundle.steps:
            steps_ws.append(
                _row(steps_ws, [*(step.get(c) for c in STEP_COLUMNS), shots[str(step.get("id"))]])
            )
    wb.properties.creator = "stepsdk"
    wb.properties.description = f"stepsdk export from {source}"[:250]
    wb.save(out)


def iter_rows(path_or_file: Any, sheet: str) -> Iterator[dict[str, Any]]:
    """The rows of one sheet as dicts (header → value): for tests and quick reads."""
    from openpyxl import load_workbook

    wb = load_workbook(path_or_file, read_only=True)
    try:
        rows = wb[sheet].iter_rows(values_only=True)
        header = next(rows)
        for row in rows:  # a row's trailing empty cells may be left out: pad them
            yield dict(zip(header, (*row, *(None,) * (len(header) - len(row))), strict=True))
    finally:
        wb.close()

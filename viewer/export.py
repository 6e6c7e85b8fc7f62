"""Exports shared by the pages and the JSON API: the task report, tasks CSV and steps CSV.

CSV cells that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) are prefixed
with a quote (:mod:`stepsdk.store.csv_cells`, shared with ``stepsdk export``): step text comes from agents
and web pages, not from us.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from stepsdk.recording.step_names import step_label
from stepsdk.store.csv_cells import write_rows

from .data.base import DataSource, Row

TASK_CSV_COLUMNS = (
    "task_id",
    "title",
    "agent",
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "total_steps",
    "successful_steps",
    "failed_steps",
    "success_rate",
    "total_duration_ms",
    "screenshots_count",
)
STEP_CSV_COLUMNS = (
    "step_number",
    "id",
    "step_type",
    "name",
    "success",
    "duration_ms",
    "started_at",
    "created_at",
    "error_type",
    "error_message",
    "thinking",
    "step_data",
    "action_result",
    "screenshot_path",
)


def task_report(task: Row, steps: list[Row], screenshots: list[Row], stats: Row | None) -> dict[str, Any]:
    """The shape of the JSON export and of ``GET /api/tasks/{id}/report``."""
    return {"task": task, "steps": steps, "screenshots": screenshots, "statistics": stats or {}}


def read_report(
    source: DataSource, task: Row, shot: Callable[[Row], Row] = lambda row: row
) -> dict[str, Any]:
    """:func:`task_report` of ``task`` (a ``get_task`` row) with every step, the screenshot rows
    (each passed through ``shot``) and the statistics read from ``source``."""
    task_id = task["task_id"]
    return task_report(
        task,
        source.iter_all_steps(task_id),
        [shot(r) for r in source.get_screenshots(task_id)],
        source.get_task_stats(task_id),
    )


def report_json(report: dict[str, Any]) -> bytes:
    return json.dumps(report, ensure_ascii=False, indent=1, default=str).encode("utf-8")


def rows_csv(rows: list[Row], columns: tuple[str, ...]) -> bytes:
    out = io.StringIO()
    # CRLF: RFC 4180, what spreadsheets (the main readers of these downloads) expect
    write_rows(out, columns, ([row.get(k) for k in columns] for row in rows), lineterminator="\r\n")
    return out.getvalue().encode("utf-8")


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def report_xlsx(report: dict[str, Any]) -> bytes:
    """A task report (:func:`read_report`) as an Excel workbook: a tasks sheet (this task) and a
    steps sheet, formula-looking text stored as quoted text (:mod:`stepsdk.store.xlsx`)."""
    from stepsdk.store.export_format import TaskBundle
    from stepsdk.store.xlsx import write_xlsx

    out = io.BytesIO()
    write_xlsx([TaskBundle(report["task"], report["steps"], report["screenshots"])], out, "stepsdk viewer")
    return out.getvalue()


def tasks_csv(rows: list[Row]) -> bytes:
    return rows_csv(rows, TASK_CSV_COLUMNS)


def steps_csv(steps: list[Row]) -> bytes:
    """The steps as CSV; ``name`` is the step's label (derived from its data when none was recorded)."""
    return rows_csv([{**s, "name": step_label(s)} for s in steps], STEP_CSV_COLUMNS)

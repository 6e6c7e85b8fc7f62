"""Exports: spreadsheet formulas from step text are neutralised, JSON values survive as JSON."""

from __future__ import annotations

import csv
import io
import json

from stepsdk.viewer.export import report_json, steps_csv, task_report, tasks_csv


def test_csv_neutralises_formulas_and_keeps_json() -> None:
    steps = [
        {
            "step_number": 1,
            "id": "a",
            "thinking": '=HYPERLINK("http://evil")',
            "error_message": "@SUM(A1)",
            "step_data": {"action": "tap", "x": 1},
            "success": True,
            "duration_ms": -0.0,
        }
    ]
    row = next(csv.DictReader(io.StringIO(steps_csv(steps).decode())))
    assert row["thinking"].startswith("'=") and row["error_message"] == "'@SUM(A1)"
    assert json.loads(row["step_data"]) == {"action": "tap", "x": 1}
    tasks = next(csv.DictReader(io.StringIO(tasks_csv([{"task_id": "+t", "title": "-1"}]).decode())))
    assert (tasks["task_id"], tasks["title"]) == ("'+t", "'-1")


def test_csv_escapes_hyperlink_step_data_but_not_numbers() -> None:
    steps = [
        {
            "step_number": 3,
            "id": "b",
            "step_data": '=HYPERLINK("http://x")',
            "thinking": '=HYPERLINK("http://x")',
            "duration_ms": -1.5,
            "success": False,
        }
    ]
    row = next(csv.DictReader(io.StringIO(steps_csv(steps).decode())))
    assert row["step_data"] == row["thinking"] == '\'=HYPERLINK("http://x")'
    assert (row["duration_ms"], row["step_number"], row["success"]) == ("-1.5", "3", "false")
    tasks = next(
        csv.DictReader(
            io.StringIO(tasks_csv([{"task_id": "t", "success_rate": -0.25, "total_steps": 0}]).decode())
        )
    )
    assert (tasks["success_rate"], tasks["total_steps"], tasks["title"]) == ("-0.25", "0", "")


def test_report_json_round_trips() -> None:
    report = task_report({"task_id": "t"}, [{"id": "s", "step_data": {"k": "ü"}}], [], None)
    assert json.loads(report_json(report)) == {
        "task": {"task_id": "t"},
        "steps": [{"id": "s", "step_data": {"k": "ü"}}],
        "screenshots": [],
        "statistics": {},
    }

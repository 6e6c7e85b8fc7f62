"""``stepsdk export --format xlsx``: a tasks sheet and a steps sheet, from the local stack and a
backup, with formula-looking text stored as quoted text (never a formula)."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.store.export_format import STEP_COLUMNS, TASK_COLUMNS
from stepsdk.store.xlsx import MAX_CELL_CHARS, STEP_SHEET_COLUMNS, TASK_SHEET_COLUMNS, iter_rows
from tests.cli_data import Dataset, json_out, load_into_backup, load_into_stack, local_env, stack_env

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1"]


def _dataset() -> Dataset:
    ds = Dataset()
    ds.add_task("t-ok", age=timedelta(days=1), image_seeds=[1, 2, None])
    ds.add_task("t-fail", age=timedelta(days=10), status="failed", agent="other", image_seeds=[1, 3])
    ds.add_task("t-empty", age=timedelta(days=3), status="running", image_seeds=[])
    steps = [s for s in ds.steps if s["task_id"] == "t-ok"]
    steps[0].update(
        thinking=FORMULAS[0],
        error_message=FORMULAS[2],
        duration_ms=2.5,
        usage={"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    )
    steps[1].update(
        thinking=FORMULAS[1],
        name=FORMULAS[3],
        usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    )
    steps[2].update(thinking="a\x01b\x1fc" + "x" * 40_000)
    ds.tasks[0]["title"] = FORMULAS[4]
    ds.tasks[0]["description"] = FORMULAS[5]
    return ds


def _check_workbook(path: Path, ds: Dataset) -> None:
    tasks = {r["task_id"]: r for r in iter_rows(path, "tasks")}
    steps = {r["id"]: r for r in iter_rows(path, "steps")}
    assert set(tasks) == {t["task_id"] for t in ds.tasks} and set(steps) == {s["id"] for s in ds.steps}
    for task in ds.tasks:
        row = tasks[task["task_id"]]
        assert list(row)[: len(TASK_COLUMNS)] == list(TASK_COLUMNS)
        for column in ("task_id", "title", "description", "agent", "status"):
            expected = task.get(column)
            assert row[column] == (expected.replace("\r", "\n") if isinstance(expected, str) else expected), (
                column
            )
        assert json.loads(row["metadata"]) == task["metadata"]
        own_steps, shots = ds.for_task(task["task_id"])
        assert (row["total_steps"], row["failed_steps"], row["screenshots_count"]) == (
            len(own_steps),
            sum(1 for s in own_steps if not s["success"]),
            len(shots),
        )
    for task_id, row in tasks.items():
        usages = [s["usage"] for s in ds.for_task(task_id)[0] if s.get("usage")]
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert row[key] == (sum(u.get(key, 0) for u in usages) if usages else None), (task_id, key)
    assert tasks["t-ok"]["total_tokens"] >= 130 and tasks["t-empty"]["total_tokens"] is None
    for step in ds.steps:
        row = steps[step["id"]]
        assert list(row) == list(STEP_SHEET_COLUMNS)
        assert row["step_number"] == step["step_number"] and row["success"] is step["success"]
        assert json.loads(row["step_data"]) == step["step_data"]
        if step.get("usage"):
            assert json.loads(row["usage"]) == step["usage"]
        if len(step.get("thinking") or "") < 1000:
            assert row["thinking"] == step["thinking"]  # formula-looking text kept exactly as typed
    long = next(s for s in ds.steps if (s.get("thinking") or "").startswith("a\x01"))
    text = steps[long["id"]]["thinking"]
    assert len(text) == MAX_CELL_CHARS and text.startswith("a\ufffdb\ufffdc") and "[truncated" in text
    first = next(s for s in ds.steps if s.get("thinking") == FORMULAS[0])
    assert steps[first["id"]]["duration_ms"] == 2.5  # a real number, not text
    # every formula-looking cell is a quoted text cell; the workbook holds no formula at all
    wb = load_workbook(path)
    seen = 0
    for ws in wb:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@", "\t", "\n=")):
                    assert cell.data_type == "s" and cell.quotePrefix, (ws.title, cell.coordinate)
                    seen += 1
    assert seen >= len(FORMULAS)
    with zipfile.ZipFile(path) as zf:
        assert not any(b"<f>" in zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/"))


def test_xlsx_from_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_backup(tmp_path / "backup", ds)
    local_env(monkeypatch, tmp_path / "backup")
    out = tmp_path / "runs.xlsx"
    assert main(["export", "--format", "xlsx", "-o", str(out), "--json"]) == Exit.OK
    summary = json_out(capsys.readouterr().out)
    assert (summary["format"], summary["tasks"], summary["steps"]) == ("xlsx", 3, 5)
    _check_workbook(out, ds)
    assert [r["task_id"] for r in iter_rows(out, "tasks")] == ["t-fail", "t-empty", "t-ok"]  # oldest first


def test_xlsx_from_supabase(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "backup")
    out = tmp_path / "runs.xlsx"
    assert main(["export", "--format", "xlsx", "-o", str(out)]) == Exit.OK
    _check_workbook(out, ds)
    # filters apply as for the other formats; stdout gets the bytes when no -o is given
    one = tmp_path / "one.xlsx"
    assert main(["export", "--format", "xlsx", "--status", "failed", "-o", str(one)]) == Exit.OK
    assert [r["task_id"] for r in iter_rows(one, "tasks")] == ["t-fail"]
    assert {r["task_id"] for r in iter_rows(one, "steps")} == {"t-fail"}


def test_xlsx_refuses_a_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_into_backup(tmp_path / "backup", _dataset())
    local_env(monkeypatch, tmp_path / "backup")
    out = tmp_path / "x.zip"
    assert main(["export", "--format", "xlsx", "--with-screenshots", "-o", str(out)]) == Exit.USAGE
    assert not out.exists()


def test_xlsx_columns_cover_the_schema() -> None:
    assert set(STEP_COLUMNS) <= set(STEP_SHEET_COLUMNS) and set(TASK_COLUMNS) <= set(TASK_SHEET_COLUMNS)

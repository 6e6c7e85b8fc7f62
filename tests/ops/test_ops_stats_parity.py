"""stepsdk/ops/stats.py (the local store's token usage, error categories and alert measures)
agrees with the SQL of 20261130001450_stepsdk_usage_alerts.sql on the same rows, and so do the
backup index's answers (``LocalMeasures``, ``BackupSource``) over those rows written to a backup."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from stepsdk.ops import stats as _ops_stats
from stepsdk.ops.alerts import LocalMeasures
from stepsdk.store.backup import JournalWriter
from stepsdk.viewer.data.backup_source import BackupSource
from tests.schema.test_schema_queries import CHECKOUT, _usage_fixture


@pytest.fixture
def rows(seeded):
    _usage_fixture(seeded, now=True)
    seeded.sql("update public.task_steps set error_category = 'timeout' where id = %s", (CHECKOUT + "04",))
    seeded.sql(
        "update public.tasks set finished_at = now() - interval '10 minutes' where task_id = 'seed-task-checkout'"
    )
    seeded.sql(
        "update public.tasks set finished_at = now() - interval '3 hours' where task_id = 'seed-task-login-flow'"
    )
    seeded.sql(
        "update public.task_steps set created_at = now() - interval '20 minutes',"
        " name = case when step_number % 2 = 0 then 'Tap' else null end where task_id = 'seed-task-checkout'"
    )
    tasks = seeded.sql("select * from public.tasks order by task_id")
    steps = seeded.sql("select * from public.task_steps order by task_id, step_number")
    now = seeded.sql("select now() as n")[0]["n"]
    return seeded, tasks, steps, now


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return float(value) if isinstance(value, Decimal) else value


def _backup(root: Path, tasks: list[dict], steps: list[dict]) -> Path:
    """The database's rows as a backup folder (as resync would have uploaded them)."""
    writer = JournalWriter(root)
    writer.append([{"k": "task", "v": 1, "row": {k: _json(v) for k, v in t.items()}} for t in tasks])
    writer.append([{"k": "step", "row": {k: _json(v) for k, v in s.items()}} for s in steps])
    writer.close()
    return root


def _same(sql_rows: list[dict], py_rows: list[dict]) -> None:
    def norm(v: object) -> object:
        if isinstance(v, datetime):
            return v.astimezone(UTC).isoformat()
        if isinstance(v, str) and len(v) > 18 and v[4] == "-" and "T" in v:
            return datetime.fromisoformat(v).astimezone(UTC).isoformat()
        return (
            str(v)
            if hasattr(v, "isoformat")
            else float(v)
            if hasattr(v, "as_integer_ratio") and not isinstance(v, bool | int)
            else v
        )

    assert [{k: norm(v) for k, v in r.items()} for r in sql_rows] == [
        {k: norm(v) for k, v in r.items()} for r in py_rows
    ]


def test_task_usage_and_daily_usage(rows, tmp_path: Path) -> None:
    stack, tasks, steps, _ = rows
    local = BackupSource(_backup(tmp_path / "backup", tasks, steps))
    for task in tasks:
        [sql] = stack.sql("select * from public.task_usage where task_id = %s", (task["task_id"],))
        own = [s for s in steps if s["task_id"] == task["task_id"]]
        _same([sql], [_ops_stats.task_usage(task, own)])
        _same([sql], [local.task_usage(task["task_id"])])
    top = stack.sql("select * from public.stepsdk_top_token_tasks(10)")
    by_view = stack.sql(
        "select * from public.task_usage where steps_with_usage > 0 order by total_tokens desc, task_id"
    )
    assert top == by_view and [r["task_id"] for r in top] == ["seed-task-login-flow", "seed-task-checkout"]
    _same(top, local.tasks_by_usage(10))
    _same(top[:1], local.tasks_by_usage(1))
    sql = stack.sql("select * from public.stepsdk_daily_usage(7)")
    today = sql[-1]["day"]
    py = _ops_stats.daily_usage(steps, 7, today)
    assert [str(r["day"]) for r in sql] == [r["day"] for r in py]
    _same([{**r, "day": str(r["day"])} for r in sql], py)
    _same([{**r, "day": str(r["day"])} for r in sql], local.daily_usage(7))
    assert py[-1]["total_tokens"] == 3_001_110


def test_error_categories(rows, tmp_path: Path) -> None:
    stack, tasks, steps, _ = rows
    sql = stack.sql(
        "select * from public.error_category_summary order by failed_steps desc, error_category nulls last"
    )
    _same(sql, _ops_stats.error_categories(steps))
    _same(sql, BackupSource(_backup(tmp_path / "backup", tasks, steps)).error_categories())
    assert [r["error_category"] for r in sql] == [None, "timeout"]


@pytest.mark.parametrize("window", [1800, 7200, 86400 * 30])
def test_alert_measures(rows, window: int, tmp_path: Path) -> None:
    stack, tasks, steps, now = rows
    local = LocalMeasures(_backup(tmp_path / "backup", tasks, steps), now)
    for agent in (None, "phone-agent", "nobody"):
        [sql] = stack.sql("select * from public.stepsdk_alert_failure_rate(%s, %s)", (window, agent))
        _same([sql], [_ops_stats.failure_rate(tasks, window, agent, now)])
        _same([sql], [local.failure_rate(window, agent)])
    for step_type, name in (
        (None, None),
        ("action", None),
        (None, "Tap"),
        ("action", "Tap"),
        ("thinking", "x"),
    ):
        [sql] = stack.sql(
            "select * from public.stepsdk_alert_step_p95(%s, %s, %s)", (window, step_type, name)
        )
        _same([sql], [_ops_stats.step_p95(steps, window, step_type, name, now)])
        _same([sql], [local.step_p95(window, step_type, name)])
    sql = stack.sql("select * from public.stepsdk_alert_error_counts(%s)", (window,))
    _same(sql, _ops_stats.error_counts(steps, window, now))
    _same(sql, local.error_counts(window))


def test_windows_are_checked_the_same_way(seeded) -> None:
    for bad in (0, -1, 31_622_401):
        with pytest.raises(ValueError):
            _ops_stats.failure_rate([], bad)
        with pytest.raises(Exception, match="window_seconds must be between"):
            seeded.sql("select * from public.stepsdk_alert_failure_rate(%s)", (bad,))

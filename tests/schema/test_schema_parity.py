"""The SQL statistics of Supabase and of the local store (the backup's SQLite index, read by
viewer/data/backup_source.py) give the same numbers on the same rows, so a run looks the same
whichever source the viewer reads. Compared on the seed plus generated tasks full of edge cases
(steps without a duration, all-failed tasks, ties, blank and huge error messages, unicode): the
rows are read back from PostgreSQL and written to a backup folder through the journal writer."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from stepsdk.store.backup import JournalWriter
from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import Sort, TaskFilters

NUMERIC_TASK_COLS = (
    "total_steps",
    "successful_steps",
    "failed_steps",
    "success_rate",
    "total_duration_ms",
    "avg_step_duration_ms",
    "p50_step_duration_ms",
    "p95_step_duration_ms",
    "screenshots_count",
    "duration_ms",
)
MESSAGES = [
    None,
    "",
    "   ",
    "Timeout",
    " Timeout\n",
    "Timeout\t",
    "ünïcödé ✓ error",
    "y" * 300,
    "y" * 200 + "z",
]


def _generate(stack, rnd: random.Random) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    tasks, steps, shots = [], [], []
    for i in range(40):
        started = now - timedelta(days=rnd.randint(0, 9), minutes=rnd.randint(0, 1440))
        status = rnd.choice(["running", "success", "failed", "interrupted"])
        finished = None if status == "running" else started + timedelta(milliseconds=rnd.randint(0, 10**7))
        tasks.append((f"gen-{i}", f"Generated {i}", status, started, finished))
        all_failed = i % 7 == 0
        for n in range(1, rnd.randint(0, 12) + 1):
            step_id = uuid.UUID(int=rnd.getrandbits(128), version=4)
            duration = rnd.choice([None, 0.0, 5.0, 5.0, rnd.uniform(0, 9000), float(rnd.randint(0, 3))])
            ok = not all_failed and rnd.random() > 0.3
            steps.append(
                (
                    step_id,
                    f"gen-{i}",
                    n,
                    rnd.choice(["thinking", "action", "screenshot", "error", "validation"]),
                    duration,
                    ok,
                    None if ok else rnd.choice([None, "TimeoutError", "ValueError"]),
                    None if ok else rnd.choice(MESSAGES),
                    started + timedelta(seconds=n * rnd.randint(0, 3)),
                )
            )
            if rnd.random() < 0.3:
                shots.append((f"gen-{i}", step_id, f"p/{rnd.randint(0, 5)}"))
    with psycopg.connect(stack.db_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into public.tasks (task_id, title, status, started_at, finished_at)"
            " values (%s, %s, %s, %s, %s)",
            tasks,
        )
        cur.executemany(
            "insert into public.task_steps (id, task_id, step_number, step_type, duration_ms, success,"
            " error_type, error_message, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            steps,
        )
        cur.executemany(
            "insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash)"
            " values (%s, %s, %s, 1, repeat('0', 64))",
            shots,
        )


def _json(value):
    """A PostgreSQL row value as the SDK journals it (ISO timestamps, uuid strings, floats)."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


@pytest.fixture
def rows(seeded, tmp_path):
    stack = seeded
    _generate(stack, random.Random(20261122))
    tasks = {t["task_id"]: _json(t) for t in stack.sql("select * from public.tasks")}
    steps: dict[str, list[dict]] = defaultdict(list)
    for s in stack.sql("select * from public.task_steps order by task_id, step_number"):
        steps[s["task_id"]].append(_json(s))
    shots = [_json(r) for r in stack.sql("select * from public.step_screenshots")]
    writer = JournalWriter(tmp_path / "backup")
    writer.append(
        [{"k": "task", "v": 1, "row": t} for t in tasks.values()]
        + [{"k": "step", "row": s} for group in steps.values() for s in group]
        + [{"k": "shot", "row": r} for r in shots]
    )
    writer.close()
    return stack, tasks, steps, BackupSource(tmp_path / "backup")


def _same(sql_value, py_value) -> bool:
    if sql_value is None or py_value is None:
        return sql_value is None and py_value is None
    return float(sql_value) == pytest.approx(float(py_value), rel=1e-9, abs=1e-9)


def test_task_summary_and_task_stats(rows):
    stack, tasks, _, source = rows
    summary = {r["task_id"]: r for r in stack.sql("select * from public.task_summary")}
    ours = {r["task_id"]: r for r in source.list_tasks(TaskFilters(), Sort("task_id", False), 1, 1000)[0]}
    assert set(summary) == set(ours) == set(tasks) and len(ours) >= 45
    for task_id, row in summary.items():
        for col in NUMERIC_TASK_COLS:
            assert _same(row[col], ours[task_id][col]), (task_id, col, row[col], ours[task_id][col])
        [sql_stats] = stack.sql("select * from public.stepsdk_task_stats(%s)", (task_id,))
        py_stats = source.get_task_stats(task_id)
        assert set(sql_stats) == set(py_stats)
        assert all(_same(sql_stats[k], py_stats[k]) for k in py_stats), task_id


def test_daily_stats(rows):
    stack, _, _, source = rows
    sql_days = stack.sql("select * from public.stepsdk_daily_stats(12)")
    py_days = source.get_daily_stats(12)
    assert [str(r["day"]) for r in sql_days] == [r["day"] for r in py_days]
    # every generated task started within the last 10 days (plus any seed task in the window)
    assert sum(r["tasks"] for r in sql_days) >= 40
    for s, p in zip(sql_days, py_days, strict=True):
        for col, value in p.items():
            if col != "day":
                assert _same(s[col], value), (s["day"], col, s[col], value)


def test_error_summary(rows):
    stack, _, _, source = rows
    sql_rows = stack.sql("select * from public.error_summary")
    py_rows = source.top_errors(1000)
    key = lambda r: (str(r["error_type"]), str(r["error_message"]))  # noqa: E731
    assert len(sql_rows) == len(py_rows) > 5
    for s, p in zip(sorted(sql_rows, key=key), sorted(py_rows, key=key), strict=True):
        assert (s["error_type"], s["error_message"], s["occurrences"], s["tasks_affected"]) == (
            p["error_type"],
            p["error_message"],
            p["occurrences"],
            p["tasks_affected"],
        )
        assert (s["example_task_id"], str(s["example_step_id"])) == (
            p["example_task_id"],
            str(p["example_step_id"]),
        )
    since = datetime.now(UTC) - timedelta(days=3)
    sql_period = stack.sql("select * from public.stepsdk_error_groups(%s, null, 1000)", (since,))
    assert sorted(map(key, sql_period)) == sorted(map(key, source.top_errors(1000, since=since)))


def test_step_types_and_slowest_steps(rows):
    stack, _, _, source = rows
    sql_types = stack.sql("select * from public.step_type_breakdown order by step_type")
    py_types = source.step_type_breakdown()
    assert [r["step_type"] for r in sql_types] == [r["step_type"] for r in py_types]
    for s, p in zip(sql_types, py_types, strict=True):
        assert all(_same(s[k], p[k]) for k in ("steps", "failed_steps", "avg_duration_ms", "p95_duration_ms"))
    since = datetime.now(UTC) - timedelta(days=4)
    for limit, start in [(1000, None), (7, None), (25, since)]:
        sql_slow = stack.sql("select * from public.stepsdk_slowest_steps(%s, %s)", (limit, start))
        py_slow = source.slowest_steps(limit, start)
        assert [(str(r["step_id"]), r["duration_ms"]) for r in sql_slow] == [
            (str(r["step_id"]), r["duration_ms"]) for r in py_slow
        ], (limit, start)

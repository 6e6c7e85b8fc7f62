"""The two data sources: the same answers on the same data, the SQL console's numbers, and
clear answers to bad input."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepsdk.viewer.data._stats import parse_ts, percentile_cont
from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import DataSource, Sort, SourceUnavailable, TaskFilters
from stepsdk.viewer.data.supabase_source import SupabaseSource
from tests.viewer import dataset


def norm(value: Any) -> Any:
    """Compare across sources: timestamps as instants, floats to 1e-6, dict/list recursively."""
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] in ("T", " "):
        ts = parse_ts(value)
        return ts.timestamp() if ts else value
    if isinstance(value, float) and not math.isnan(value):
        return round(value, 6)
    return value


def both(backup_source: BackupSource, supabase_source: SupabaseSource, call) -> tuple[Any, Any]:
    return norm(call(backup_source)), norm(call(supabase_source))


def test_sources_agree_on_everything(
    backup_source: BackupSource, supabase_source: SupabaseSource, data: dataset.Dataset
) -> None:
    calls = {
        "list": lambda s: s.list_tasks(TaskFilters(), Sort(), 1, 100),
        "list_by_failed": lambda s: s.list_tasks(TaskFilters(), Sort("failed_steps", True), 1, 3),
        "list_by_rate_asc": lambda s: s.list_tasks(TaskFilters(), Sort("success_rate", False), 1, 100),
        "list_page2": lambda s: s.list_tasks(TaskFilters(), Sort("title", False), 2, 4),
        "task": lambda s: s.get_task("task-fail"),
        "steps": lambda s: s.get_steps("task-long", 2, 50),
        "stats": lambda s: s.get_task_stats("task-fail"),
        "shots": lambda s: s.get_screenshots("task-ok"),
        "daily": lambda s: s.get_daily_stats(7),
        "types": lambda s: s.step_type_breakdown(),
        "types_one": lambda s: s.step_type_breakdown("task-long"),
        "errors": lambda s: s.top_errors(10),
        "slowest": lambda s: s.slowest_steps(5),
        "slowest_since": lambda s: s.slowest_steps(5, datetime.now(UTC) - timedelta(hours=2)),
        "agents": lambda s: s.agents(),
        "durations": lambda s: s.step_durations("task-long"),
    }
    for name, call in calls.items():
        a, b = both(backup_source, supabase_source, call)
        if name == "task":  # Supabase adds created_at/updated_at columns of its own
            b = {k: v for k, v in b.items() if k in a}
        assert a == b, name


def test_statistics_match_the_sql_console(
    stack, supabase_source: SupabaseSource, backup_source: BackupSource
) -> None:
    summary = stack.sql("select * from public.task_summary order by task_id")
    ours = {
        r["task_id"]: r for r in backup_source.list_tasks(TaskFilters(), Sort("task_id", False), 1, 100)[0]
    }
    assert len(summary) == len(ours) == 6
    for row in summary:
        mine = ours[row["task_id"]]
        for key in ("total_steps", "successful_steps", "failed_steps", "screenshots_count"):
            assert mine[key] == row[key], (row["task_id"], key)
        for key in (
            "success_rate",
            "total_duration_ms",
            "avg_step_duration_ms",
            "p50_step_duration_ms",
            "p95_step_duration_ms",
            "duration_ms",
        ):
            expected = None if row[key] is None else float(row[key])
            assert mine[key] == pytest.approx(expected), (row["task_id"], key)
    errors = stack.sql("select * from public.error_summary order by occurrences desc, last_seen desc")
    assert [(e["error_type"], e["error_message"], e["occurrences"]) for e in errors] == [
        (e["error_type"], e["error_message"], e["occurrences"]) for e in backup_source.top_errors(10)
    ]


def test_known_numbers(source: DataSource) -> None:
    stats = source.get_task_stats("task-fail")
    assert stats is not None
    assert (stats["total_steps"], stats["successful_steps"], stats["failed_steps"]) == (5, 2, 3)
    assert float(stats["success_rate"]) == pytest.approx(0.4)
    assert stats["total_duration_ms"] == pytest.approx(8300.0)
    assert stats["average_step_duration_ms"] == pytest.approx(
        8300.0 / 4
    )  # the step without a duration is left out
    assert stats["screenshots_count"] == 1
    errors = source.top_errors(10)
    # "  Element not found\n" and "Element not found" are one group
    assert (errors[0]["error_type"], errors[0]["error_message"], errors[0]["occurrences"]) == (
        "AssertionError",
        "screen did not change",
        3,
    )
    assert {(e["error_message"], e["occurrences"]) for e in errors if e["error_type"] == "TimeoutError"} == {
        ("Element not found", 2)
    }
    assert source.slowest_steps(1)[0]["duration_ms"] == 4000.0
    assert source.get_task_stats("task-empty")["success_rate"] is None
    days = source.get_daily_stats(7)
    assert len(days) == 7 and sum(d["tasks"] for d in days) == 6
    assert days[-1]["day"] == datetime.now(UTC).date().isoformat()


FILTER_CASES = [
    (TaskFilters(status="failed"), {"task-fail"}),
    (TaskFilters(agent="shop-agent"), {"task-fail", "task-long"}),
    (TaskFilters(search="LONG"), {"task-long"}),
    (TaskFilters(search="script>"), {"task-fail"}),  # title text, matched literally
    (TaskFilters(search="%"), set()),  # LIKE wildcards are literal characters
    (TaskFilters(search="task_"), set()),
    (TaskFilters(search='",()'), set()),  # PostgREST syntax characters are literal too
    (TaskFilters(started_from=datetime.now(UTC) - timedelta(hours=2)), {"task-ok", "task-running"}),
    (TaskFilters(started_to=datetime.now(UTC) - timedelta(days=2, hours=12)), {"task-empty"}),
]


def test_filters(source: DataSource) -> None:
    for filters, expected in FILTER_CASES:
        rows, total = source.list_tasks(filters, Sort(), 1, 100)
        assert {r["task_id"] for r in rows} == expected and total == len(expected), filters


def test_paging_past_the_end_is_empty(source: DataSource) -> None:
    assert source.list_tasks(TaskFilters(), Sort(), 50, 10) == ([], 6)
    assert source.get_steps("task-ok", 9, 50) == ([], 4)
    long_steps, total = source.get_steps("task-long", 3, 50)
    assert total == 120 and [s["step_number"] for s in long_steps] == list(range(101, 121))
    assert len(source.iter_all_steps("task-long", 50)) == 120


def test_unknown_and_hostile_ids(source: DataSource) -> None:
    for task_id in [
        "nope",
        "x" * 5000,
        "../../etc/passwd",
        "<script>alert(1)</script>",
        "\u202e\U0001f600 задача",
        "a\x00b",
        "",
    ]:
        assert source.get_task(task_id) is None
        assert source.get_task_stats(task_id) is None
        assert source.get_steps(task_id, 1, 10) == ([], 0)
        assert source.get_screenshots(task_id) == []


def test_screenshot_bytes(source: DataSource, data: dataset.Dataset) -> None:
    path, blob = next(iter(data.objects.items()))
    assert source.screenshot_bytes(path) == blob
    assert source.screenshot_bytes(f"{dataset.BROKEN_SHA[:2]}/{dataset.BROKEN_SHA}.webp") is None
    for bad in ("../../secret", "/etc/passwd", "a\\b", "", "x" * 2000, "ab/..%2f"):
        assert source.screenshot_bytes(bad) is None


def test_programming_mistakes_raise_clearly(source: DataSource) -> None:
    with pytest.raises(ValueError, match="per_page"):
        source.list_tasks(TaskFilters(), Sort(), 1, 0)
    with pytest.raises(ValueError, match="page"):
        source.get_steps("task-ok", 0, 10)
    with pytest.raises(ValueError, match="days"):
        source.get_daily_stats(0)
    with pytest.raises(ValueError, match="sort column"):
        Sort("password")
    with pytest.raises(ValueError, match="status"):
        TaskFilters(status="exploded")
    with pytest.raises(ValueError, match="timezone"):
        TaskFilters(started_from=datetime(2026, 1, 1))


def test_empty_sources(empty_source: DataSource) -> None:
    assert empty_source.list_tasks(TaskFilters(), Sort(), 1, 25) == ([], 0)
    assert empty_source.top_errors() == [] and empty_source.slowest_steps() == []
    assert all(d["tasks"] == 0 for d in empty_source.get_daily_stats(3))
    assert empty_source.agents() == []


def test_supabase_outage_is_a_clear_error_without_the_key(stack, supabase_source: SupabaseSource) -> None:
    with stack.faults.outage():
        with pytest.raises(SourceUnavailable) as info:
            supabase_source.list_tasks(TaskFilters(), Sort(), 1, 10)
        assert "unreachable" in str(info.value)
        assert stack.service_role_key not in str(info.value)
        with pytest.raises(SourceUnavailable):
            supabase_source.screenshot_bytes(next(iter(dataset.build().objects)))
    assert supabase_source.list_tasks(TaskFilters(), Sort(), 1, 10)[1] == 6  # back once it is up


def test_backup_source_sees_new_records_and_reports_corruption(tmp_path, data: dataset.Dataset) -> None:
    root = tmp_path / "b"
    dataset.write_backup(root, data)
    source = BackupSource(root)
    assert source.get_task("task-new") is None
    extra = dataset.Dataset(tasks=[{**data.tasks[0], "task_id": "task-new"}])
    dataset.write_backup(root, extra)
    assert source.get_task("task-new") is not None  # no restart needed
    journal = next((root / "journal").glob("*.log"))
    with journal.open("ab") as fh:
        fh.write(b"deadbeef {not json}\n")
    assert source.list_tasks(TaskFilters(), Sort(), 1, 100)[1] == 7
    assert any("CRC" in p or "record" in p for p in source.problems())


def test_percentile_matches_postgres(stack) -> None:
    values = [5.0, 1.0, 9.5, 3.25, 7.0, 100.0]
    for fraction in (0.0, 0.5, 0.95, 1.0):
        row = stack.sql(
            "select percentile_cont(%s) within group (order by v) as p from unnest(%s::float8[]) v",
            (fraction, values),
        )
        assert percentile_cont(values, fraction) == pytest.approx(row[0]["p"])


def test_supabase_hang_and_errors_become_clear_messages(stack, supabase_source: SupabaseSource) -> None:
    quick = SupabaseSource(stack.url, stack.service_role_key, timeout=1)
    stack.faults.hang_next(seconds=5)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="unreachable"):
        quick.get_task("task-ok")
    assert time.monotonic() - started < 4  # the viewer's timeout, not the server's hang
    stack.faults.fail_next(status=500)
    with pytest.raises(SourceUnavailable) as info:
        quick.get_steps("task-ok", 1, 10)
    assert stack.service_role_key not in str(info.value)
    assert quick.get_steps("task-ok", 1, 10)[1] == 4  # the next call works


def test_more_than_a_response_cap_of_screenshots_and_steps(
    stack, supabase_source: SupabaseSource, data: dataset.Dataset
) -> None:
    """PostgREST answers at most 1000 rows (db-max-rows): nothing past it may be dropped."""
    shot = data.screenshots[0]
    stack.sql("""insert into public.task_steps (id, task_id, step_number, step_type, duration_ms)
                 select md5('s' || n)::uuid, 'task-empty', n, 'action', n from generate_series(1, 1105) n""")
    stack.sql(
        """insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash)
                 select 'task-empty', md5('s' || n)::uuid, %s, 1, %s from generate_series(1, 1105) n""",
        (shot["screenshot_path"], shot["file_hash"]),
    )
    assert len(supabase_source.get_screenshots("task-empty")) == 1105
    assert len(supabase_source.iter_all_steps("task-empty")) == 1105
    assert [d["step_number"] for d in supabase_source.step_durations("task-empty")] == list(range(1, 1106))


def test_statistics_name_the_steps(source) -> None:
    """Issue #13: the slowest steps and the error groups carry the step's name, in both sources."""
    (slowest,) = source.slowest_steps(1)
    assert (slowest["step_number"], slowest["name"]) == (3, "Tap Buy")
    groups = {g["error_message"]: g for g in source.top_errors(10)}
    assert groups["bad coordinates"]["example_step_name"] == "Tap Pay"
    assert groups["Element not found"]["example_step_name"] is None  # its newest step has no name

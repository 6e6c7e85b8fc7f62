"""The statistics views and functions (supabase/migrations/*_stepsdk_stats.sql) on the seed.

Every expected number below is worked out by hand from supabase/seed.sql (the arithmetic is in
the comments), not copied from query output. percentile_cont(f) over n sorted values is
v[k] + (pos - k) * (v[k+1] - v[k]) with pos = f * (n - 1), k = floor(pos).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from postgrest.exceptions import APIError

CHECKOUT, LOGIN, SEARCH, EMPTY, OLD = (
    "seed-task-checkout",
    "seed-task-login-flow",
    "seed-task-search",
    "seed-task-empty",
    "seed-task-old-report",
)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# task_id -> (total, ok, failed, total_ms, avg_ms, p50, p95, screenshots, wall_ms, last_step_at)
TASK_SUMMARY = {
    # durations 1200, 800, 300, 500 -> sorted 300, 500, 800, 1200; total 2800, avg 700
    # p50 pos 1.5 -> (500 + 800) / 2 = 650; p95 pos 2.85 -> 800 + 0.85 * 400 = 1140
    LOGIN: (4, 4, 0, 2800, 700, 650, 1140, 1, 30_000, "2026-11-20 09:00:20"),
    # 1000, 2000, 400, 5000, 600, 100 -> sorted 100, 400, 600, 1000, 2000, 5000; total 9100, avg 9100/6
    # p50 pos 2.5 -> (600 + 1000) / 2 = 800; p95 pos 4.75 -> 2000 + 0.75 * 3000 = 4250
    CHECKOUT: (6, 4, 2, 9100, 9100 / 6, 800, 4250, 2, 60_000, "2026-11-20 14:00:50"),
    # 700 and a failed step without a duration: percentiles and avg over the one duration
    SEARCH: (2, 1, 1, 700, 700, 700, 700, 0, None, "2026-11-21 08:00:04"),
    # no steps at all
    EMPTY: (0, 0, 0, 0, None, None, None, 0, 5_000, None),
    # 900, 250, 350, 3000 -> sorted 250, 350, 900, 3000; total 4500, avg 1125
    # p50 pos 1.5 -> (350 + 900) / 2 = 625; p95 pos 2.85 -> 900 + 0.85 * 2100 = 2685
    OLD: (4, 3, 1, 4500, 1125, 625, 2685, 2, 300_000, "2026-10-01 10:01:00"),
}


def approx(value):
    return None if value is None else pytest.approx(value, rel=1e-9)


def test_task_summary_matches_the_seed(seeded):
    rows = {r["task_id"]: r for r in seeded.sql("select * from public.task_summary")}
    assert set(rows) == set(TASK_SUMMARY)
    for task_id, (total, ok, failed, total_ms, avg, p50, p95, shots, wall, last) in TASK_SUMMARY.items():
        r = rows[task_id]
        assert (r["total_steps"], r["successful_steps"], r["failed_steps"]) == (total, ok, failed), task_id
        rate = r["success_rate"]
        assert (None if rate is None else float(rate)) == (None if total == 0 else approx(ok / total)), (
            task_id
        )
        assert r["total_duration_ms"] == total_ms, task_id
        assert r["avg_step_duration_ms"] == approx(avg), task_id
        assert r["p50_step_duration_ms"] == approx(p50), task_id
        assert r["p95_step_duration_ms"] == approx(p95), task_id
        assert r["screenshots_count"] == shots, task_id
        assert r["duration_ms"] == wall, task_id
        assert r["last_step_at"] == (ts(last) if last else None), task_id
    assert rows[CHECKOUT]["agent"] == "phone-agent" and rows[SEARCH]["finished_at"] is None


def test_task_stats_is_the_viewer_report_block(seeded):
    [row] = seeded.sql("select * from public.stepsdk_task_stats(%s)", (CHECKOUT,))
    assert list(row) == [
        "total_steps",
        "successful_steps",
        "failed_steps",
        "success_rate",
        "total_duration_ms",
        "average_step_duration_ms",
        "screenshots_count",
    ]
    assert row["total_steps"] == 6 and row["successful_steps"] == 4 and row["failed_steps"] == 2
    assert float(row["success_rate"]) == pytest.approx(4 / 6)
    assert row["total_duration_ms"] == 9100 and row["average_step_duration_ms"] == pytest.approx(9100 / 6)
    assert row["screenshots_count"] == 2
    [empty] = seeded.sql("select * from public.stepsdk_task_stats(%s)", (EMPTY,))
    assert empty["total_steps"] == 0 and empty["success_rate"] is None
    assert empty["total_duration_ms"] == 0 and empty["average_step_duration_ms"] is None
    assert seeded.sql("select * from public.stepsdk_task_stats('no-such-task')") == []


# day -> tasks, success, failed, running, interrupted, rate, steps, failed steps, min, avg, max, p50, p95
DAILY = {
    # old-report (interrupted, 300 s): 0 of 1 finished succeeded
    date(2026, 10, 1): (1, 0, 0, 0, 1, Decimal(0), 4, 1, 300_000, 300_000, 300_000, 300_000, 300_000),
    # login-flow 30 s (success) + checkout 60 s (failed); steps 4 + 6, failed 0 + 2
    # p95 of [30000, 60000]: pos 0.95 -> 30000 + 0.95 * 30000 = 58500
    date(2026, 11, 20): (2, 1, 1, 0, 0, Decimal("0.5"), 10, 2, 30_000, 45_000, 60_000, 45_000, 58_500),
    # search (running, no duration) + empty (success, 5 s): 1 of 1 finished succeeded
    date(2026, 11, 21): (2, 1, 0, 1, 0, Decimal(1), 2, 1, 5_000, 5_000, 5_000, 5_000, 5_000),
}
DAILY_COLS = (
    "tasks",
    "successful_tasks",
    "failed_tasks",
    "running_tasks",
    "interrupted_tasks",
    "task_success_rate",
    "steps",
    "failed_steps",
    "min_task_duration_ms",
    "avg_task_duration_ms",
    "max_task_duration_ms",
    "p50_task_duration_ms",
    "p95_task_duration_ms",
)


def test_daily_summary_matches_the_seed(seeded):
    rows = {r["day"]: r for r in seeded.sql("select * from public.daily_summary")}
    assert set(rows) == set(DAILY)
    for day, expected in DAILY.items():
        got = tuple(rows[day][c] for c in DAILY_COLS)
        assert got[:8] == expected[:8], day
        assert got[8:] == tuple(pytest.approx(v) for v in expected[8:]), day


def test_daily_stats_covers_every_day_of_the_window_with_zeros(seeded):
    today = seeded.sql("select (now() at time zone 'UTC')::date as d")[0]["d"]
    days = (today - date(2026, 10, 1)).days + 1  # the window reaches the oldest seed day
    rows = seeded.sql("select * from public.stepsdk_daily_stats(%s)", (days,))
    assert [r["day"] for r in rows] == [date(2026, 10, 1) + timedelta(d) for d in range(days)]
    for r in rows:
        if r["day"] in DAILY:
            assert tuple(r[c] for c in DAILY_COLS)[:8] == DAILY[r["day"]][:8]
        else:
            assert (
                r["tasks"],
                r["steps"],
                r["failed_steps"],
                r["task_success_rate"],
                r["p95_task_duration_ms"],
            ) == (0, 0, 0, None, None)
    # one day shorter: the oldest seed day falls out
    shorter = seeded.sql("select day from public.stepsdk_daily_stats(%s)", (days - 1,))
    assert shorter[0]["day"] == date(2026, 10, 2) and len(shorter) == days - 1
    assert [r["day"] for r in seeded.sql("select day from public.stepsdk_daily_stats()")] == [
        today - timedelta(d) for d in range(6, -1, -1)
    ]


def test_error_summary_groups_normalized_messages(seeded):
    rows = seeded.sql("select * from public.error_summary order by occurrences desc")
    # '  Element not found: #pay  ', 'Element not found: #pay\n' (checkout) and
    # ' Element not found: #pay' (search) are one group after trimming
    assert [(r["error_type"], r["error_message"], r["occurrences"], r["tasks_affected"]) for r in rows] == [
        ("TimeoutError", "Element not found: #pay", 3, 2),
        ("ValueError", "bad selector: //div[", 1, 1),
    ]
    timeout = rows[0]
    assert timeout["first_seen"] == ts("2026-11-20 14:00:30") and timeout["last_seen"] == ts(
        "2026-11-21 08:00:04"
    )
    assert timeout["example_task_id"] == SEARCH  # the most recent occurrence
    assert str(timeout["example_step_id"]) == "5eed0003-0000-4000-8000-000000000002"


def test_error_summary_cuts_long_and_empty_messages(seeded):
    long_a = "x" * 200 + "first tail"
    long_b = "\t" + "x" * 200 + "second tail"
    seeded.sql(
        "insert into public.task_steps (task_id, step_number, step_type, success, error_type, error_message) values"
        " (%s, 3, 'error', false, 'Huge', %s), (%s, 4, 'error', false, 'Huge', %s),"
        " (%s, 5, 'error', false, null, '   '), (%s, 6, 'error', false, null, null)",
        (SEARCH, long_a, SEARCH, long_b, SEARCH, SEARCH),
    )
    rows = {
        (r["error_type"], r["error_message"]): r for r in seeded.sql("select * from public.error_summary")
    }
    assert rows[("Huge", "x" * 200)]["occurrences"] == 2
    # a blank message and a missing one are the same "no message" group
    assert rows[(None, None)]["occurrences"] == 2
    assert len(rows) == 4


def test_slowest_steps(seeded):
    rows = seeded.sql("select * from public.stepsdk_slowest_steps()")
    # 15 of the 16 steps have a duration; the default limit is 20
    assert [r["duration_ms"] for r in rows] == [
        5000,
        3000,
        2000,
        1200,
        1000,
        900,
        800,
        700,
        600,
        500,
        400,
        350,
        300,
        250,
        100,
    ]
    top = rows[0]
    assert (top["task_id"], top["step_number"], top["step_type"], top["success"], top["task_title"]) == (
        CHECKOUT,
        4,
        "action",
        False,
        "Buy the blue mug",
    )
    assert str(top["step_id"]) == "5eed0002-0000-4000-8000-000000000004"
    assert top["created_at"] == ts("2026-11-20 14:00:30")
    recent = seeded.sql(
        "select duration_ms from public.stepsdk_slowest_steps(3, %s)", (ts("2026-11-01 00:00:00"),)
    )
    assert [r["duration_ms"] for r in recent] == [5000, 2000, 1200]  # old-report's 3000 is before `since`


# step_type -> steps, failed, avg, p95
STEP_TYPES = {
    # 800, 2000, 5000 (failed), none (failed), 3000 (failed): avg 10800/4; p95 of 800,2000,3000,5000
    # pos 2.85 -> 3000 + 0.85 * 2000 = 4700
    "action": (5, 3, 2700, 4700),
    "error": (1, 1, 100, 100),
    # 300, 400, 600, 250, 350: avg 380; sorted 250,300,350,400,600 pos 3.8 -> 400 + 0.8 * 200 = 560
    "screenshot": (5, 0, 380, 560),
    # 1200, 1000, 700, 900: avg 950; sorted 700,900,1000,1200 pos 2.85 -> 1000 + 0.85 * 200 = 1170
    "thinking": (4, 0, 950, 1170),
    "validation": (1, 0, 500, 500),
}


def test_step_type_breakdown(seeded):
    rows = seeded.sql("select * from public.step_type_breakdown")
    got = {
        r["step_type"]: (r["steps"], r["failed_steps"], r["avg_duration_ms"], r["p95_duration_ms"])
        for r in rows
    }
    assert got == {k: (s, f, pytest.approx(a), pytest.approx(p)) for k, (s, f, a, p) in STEP_TYPES.items()}


def test_task_step_types(seeded):
    rows = seeded.sql("select * from public.stepsdk_task_step_types(%s)", (CHECKOUT,))
    # checkout: action 2000 + 5000 (failed) -> avg 3500, p95 2000 + 0.95 * 3000 = 4850;
    # screenshot 400, 600 -> avg 500, p95 590; thinking 1000; error 100 (failed)
    assert [
        (r["step_type"], r["steps"], r["failed_steps"], r["avg_duration_ms"], r["p95_duration_ms"])
        for r in rows
    ] == [
        ("action", 2, 1, 3500, pytest.approx(4850)),
        ("error", 1, 1, 100, 100),
        ("screenshot", 2, 0, 500, pytest.approx(590)),
        ("thinking", 1, 0, 1000, 1000),
    ]
    assert seeded.sql("select * from public.stepsdk_task_step_types(%s)", (EMPTY,)) == []


@pytest.mark.parametrize(
    "call, message",
    [
        ("select * from public.stepsdk_task_stats(null)", "p_task_id must not be null"),
        ("select * from public.stepsdk_task_step_types(null)", "p_task_id must not be null"),
        ("select * from public.stepsdk_daily_stats(0)", "days must be between 1 and 3660, got 0"),
        ("select * from public.stepsdk_daily_stats(3661)", "days must be between 1 and 3660, got 3661"),
        ("select * from public.stepsdk_daily_stats(null)", "got null"),
        ("select * from public.stepsdk_slowest_steps(0)", "limit_n must be between 1 and 1000, got 0"),
        ("select * from public.stepsdk_slowest_steps(1001)", "got 1001"),
        ("select * from public.stepsdk_slowest_steps(null)", "got null"),
    ],
)
def test_bad_arguments_get_a_clear_error(seeded, call, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        seeded.sql(call)


@pytest.mark.parametrize("duration", ["NaN", "Infinity", "-Infinity", "-1"])
def test_durations_that_would_poison_the_statistics_are_refused(seeded, duration):
    with pytest.raises(psycopg.errors.CheckViolation):
        seeded.sql(
            "insert into public.task_steps (task_id, step_number, step_type, duration_ms)"
            " values (%s, 1, 'action', %s::float8)",
            (EMPTY, duration),
        )
    [row] = seeded.sql("select * from public.stepsdk_task_stats(%s)", (EMPTY,))
    assert row["total_steps"] == 0 and row["total_duration_ms"] == 0


def test_hostile_task_ids_are_just_unknown(seeded):
    for task_id in ["", "x" * 5000, "'; drop table public.tasks; --", "\u202e\U0001f600", "%", "seed-task-%"]:
        assert seeded.sql("select * from public.stepsdk_task_stats(%s)", (task_id,)) == []
        assert seeded.sql("select * from public.stepsdk_task_step_types(%s)", (task_id,)) == []
    assert seeded.sql("select count(*) as n from public.tasks")[0]["n"] == 5


# ----- through PostgREST with the official client (service role) ---------------------------------


def test_views_through_the_client(seeded):
    client = seeded.client()
    page = (
        client.table("task_summary")
        .select("task_id,total_steps,success_rate", count="exact")
        .order("started_at", desc=True)
        .range(0, 1)
        .execute()
    )
    assert page.count == 5
    assert [(r["task_id"], r["total_steps"]) for r in page.data] == [(EMPTY, 0), (SEARCH, 2)]
    assert page.data[0]["success_rate"] is None and page.data[1]["success_rate"] == 0.5
    failed = client.table("task_summary").select("task_id").eq("status", "failed").execute().data
    assert failed == [{"task_id": CHECKOUT}]
    errors = client.table("error_summary").select("*").order("occurrences", desc=True).limit(1).execute().data
    assert errors[0]["occurrences"] == 3 and errors[0]["error_message"] == "Element not found: #pay"
    daily = client.table("daily_summary").select("day,tasks").order("day").execute().data
    assert daily == [
        {"day": "2026-10-01", "tasks": 1},
        {"day": "2026-11-20", "tasks": 2},
        {"day": "2026-11-21", "tasks": 2},
    ]
    types = client.table("step_type_breakdown").select("step_type,steps").eq("step_type", "action").execute()
    assert types.data == [{"step_type": "action", "steps": 5}]


def test_functions_through_the_client(seeded):
    client = seeded.client()
    [stats] = client.rpc("stepsdk_task_stats", {"p_task_id": CHECKOUT}).execute().data
    assert stats["total_steps"] == 6 and stats["success_rate"] == pytest.approx(4 / 6)
    assert stats["average_step_duration_ms"] == pytest.approx(9100 / 6)
    assert client.rpc("stepsdk_task_stats", {"p_task_id": "nope"}).execute().data == []
    week = client.rpc("stepsdk_daily_stats", {"days": 3}).execute().data
    assert len(week) == 3 and week[0]["day"] < week[-1]["day"]
    slow = (
        client.rpc("stepsdk_slowest_steps", {"limit_n": 2, "since": "2026-11-01T00:00:00+00:00"})
        .execute()
        .data
    )
    assert [(s["task_id"], s["duration_ms"]) for s in slow] == [(CHECKOUT, 5000), (CHECKOUT, 2000)]
    kinds = client.rpc("stepsdk_task_step_types", {"p_task_id": OLD}).execute().data
    assert {k["step_type"]: k["steps"] for k in kinds} == {"action": 1, "screenshot": 2, "thinking": 1}


def test_bad_rpc_arguments_are_a_clear_400(seeded):
    client = seeded.client()
    with pytest.raises(APIError) as err:
        client.rpc("stepsdk_slowest_steps", {"limit_n": 100000}).execute()
    assert err.value.code == "22023" and "limit_n must be between 1 and 1000" in err.value.message
    with pytest.raises(APIError) as err:
        client.rpc("stepsdk_daily_stats", {"days": "many"}).execute()
    assert err.value.code == "22P02"

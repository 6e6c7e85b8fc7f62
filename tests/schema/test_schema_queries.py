"""Every console query in supabase/queries/ runs as-is on the seeded database, with the
numbers worked out by hand from supabase/seed.sql."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUERIES = REPO / "supabase" / "queries"

# Seed facts the expectations are derived from: start time and screenshot paths of each task.
STARTED = {
    "seed-task-login-flow": "2026-11-20 09:00:00",
    "seed-task-checkout": "2026-11-20 14:00:00",
    "seed-task-search": "2026-11-21 08:00:00",
    "seed-task-empty": "2026-11-21 12:00:00",
    "seed-task-old-report": "2026-10-01 10:00:00",
}
A, B, C = ("aa/" + "a" * 64 + ".webp", "bb/" + "b" * 64 + ".webp", "cc/" + "c" * 64 + ".webp")
PATHS = {"seed-task-login-flow": {A}, "seed-task-checkout": {A, B}, "seed-task-old-report": {A, C}}

# The files the tests below run; a new query file must get a test (and an entry here).
COVERED = {
    "01_recent_tasks.sql",
    "02_task_timeline.sql",
    "03_failed_steps.sql",
    "04_error_summary.sql",
    "05_slowest_steps.sql",
    "06_daily_success_rate.sql",
    "07_storage_usage.sql",
    "08_retention_preview.sql",
    "09_retention_runs.sql",
}
COVERED |= {
    "10_token_usage.sql",
    "11_daily_token_usage.sql",
    "12_error_categories.sql",
    "13_alert_measures.sql",
}


def run(stack, name: str) -> list[dict]:
    assert name in COVERED
    return stack.sql((QUERIES / name).read_text())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_01_recent_tasks(seeded):
    rows = run(seeded, "01_recent_tasks.sql")
    assert [r["task_id"] for r in rows] == sorted(STARTED, key=STARTED.get, reverse=True)
    by_id = {r["task_id"]: r for r in rows}
    checkout = by_id["seed-task-checkout"]
    # 60 s wall, 6 steps / 2 failed, 4/6 = 66.7 %, avg 9100/6 = 1516.7 ms, p95 4250 ms
    assert (
        checkout["duration_s"],
        checkout["total_steps"],
        checkout["failed_steps"],
        checkout["success_pct"],
        checkout["avg_step_ms"],
        checkout["p95_step_ms"],
    ) == (Decimal("60.0"), 6, 2, Decimal("66.7"), Decimal("1516.7"), Decimal("4250.0"))
    assert by_id["seed-task-empty"]["success_pct"] is None and by_id["seed-task-search"]["duration_s"] is None


def test_02_task_timeline(seeded):
    rows = run(seeded, "02_task_timeline.sql")
    assert [r["step_number"] for r in rows] == [1, 2, 3, 4, 5, 6]
    # created 14:00:03, :10, :15, :30, :40, :50 after a 14:00:00 start
    assert [r["at_ms"] for r in rows] == [3000, 10000, 15000, 30000, 40000, 50000]
    # running sum of 1000, 2000, 400, 5000, 600, 100
    assert [r["cumulative_ms"] for r in rows] == [1000, 3000, 3400, 8400, 9000, 9100]
    assert [r["error_message"] for r in rows if not r["success"]] == ["Element not found: #pay"] * 2
    assert [r["screenshot_path"] for r in rows if r["screenshot_path"]] == [A, B]
    assert rows[0]["detail"] == "Open the cart, then pay."


def test_02_task_timeline_with_another_task_id(seeded):
    text = (QUERIES / "02_task_timeline.sql").read_text()
    assert text.count("'seed-task-checkout'") == 1  # the one place a user edits
    rows = seeded.sql(text.replace("'seed-task-checkout'", "'seed-task-old-report'"))
    assert [r["step_type"] for r in rows] == ["thinking", "screenshot", "screenshot", "action"]
    assert seeded.sql(text.replace("'seed-task-checkout'", "'no such task'")) == []


def test_03_failed_steps(seeded):
    rows = run(seeded, "03_failed_steps.sql")
    assert [(r["task_id"], r["step_number"]) for r in rows] == [
        ("seed-task-search", 2),
        ("seed-task-checkout", 6),
        ("seed-task-checkout", 4),
        ("seed-task-old-report", 4),
    ]
    assert rows[0]["task_status"] == "running" and rows[0]["duration_ms"] is None
    assert {r["error_message"] for r in rows} == {"Element not found: #pay", "bad selector: //div["}


def test_04_error_summary(seeded):
    rows = run(seeded, "04_error_summary.sql")
    assert [(r["error_type"], r["occurrences"], r["tasks_affected"], r["example_task_id"]) for r in rows] == [
        ("TimeoutError", 3, 2, "seed-task-search"),
        ("ValueError", 1, 1, "seed-task-old-report"),
    ]


def test_05_slowest_steps(seeded):
    rows = run(seeded, "05_slowest_steps.sql")
    assert len(rows) == 15  # every step with a duration (16 steps, one without)
    assert [(r["task_title"], r["duration_ms"]) for r in rows[:2]] == [
        ("Buy the blue mug", 5000),
        ("Export the monthly report", 3000),
    ]


def test_06_daily_success_rate(seeded):
    rows = run(seeded, "06_daily_success_rate.sql")
    assert [str(r["day"]) for r in rows] == ["2026-11-21", "2026-11-20", "2026-10-01"]
    # 11-21: 1 of 1 finished ok, 1 of 2 steps failed, one 5 s task
    # 11-20: 1 of 2, 2 of 10 steps failed, p50 45 s, p95 58.5 s; 10-01: 0 of 1, 1 of 4 failed
    assert [
        (r["task_success_pct"], r["failed_step_pct"], r["p50_task_s"], r["p95_task_s"]) for r in rows
    ] == [
        (Decimal("100.0"), Decimal("50.0"), Decimal("5.0"), Decimal("5.0")),
        (Decimal("50.0"), Decimal("20.0"), Decimal("45.0"), Decimal("58.5")),
        (Decimal("0.0"), Decimal("25.0"), Decimal("300.0"), Decimal("300.0")),
    ]


def test_07_storage_usage(seeded):
    [row] = run(seeded, "07_storage_usage.sql")
    # rows: A x3 (40000), B (52000), C (30000) -> 202000 B; objects A, B, C -> 122000 B
    assert (
        row["screenshot_rows"],
        row["distinct_objects"],
        row["bytes_if_not_shared"],
        row["bytes_referenced"],
        row["bytes_saved_by_sharing"],
    ) == (5, 3, 202000, 122000, 80000)
    # the seed uploads no bytes: the bucket is empty and all three rows lack their object
    assert (
        row["bucket_objects"],
        row["bucket_bytes"],
        row["orphan_bucket_objects"],
        row["rows_without_object"],
    ) == (0, 0, 0, 3)


def test_07_storage_usage_sees_bucket_objects(seeded):
    client = seeded.client()
    bucket = client.storage.from_("step-screenshots")
    bucket.upload(A, b"RIFF-shared", {"content-type": "image/webp"})
    bucket.upload("zz/orphan.webp", b"RIFF-orphan!", {"content-type": "image/webp"})
    [row] = run(seeded, "07_storage_usage.sql")
    assert (
        row["bucket_objects"],
        row["bucket_bytes"],
        row["orphan_bucket_objects"],
        row["rows_without_object"],
    ) == (2, 11 + 12, 1, 2)


def test_08_retention_preview(seeded):
    rows = run(seeded, "08_retention_preview.sql")
    now = seeded.sql("select now() as n")[0]["n"]
    cutoff = rows[0]["cutoff"]
    assert abs((now - cutoff).total_seconds() - 30 * 86400) < 60
    doomed = {t for t, s in STARTED.items() if utc(s) < cutoff}
    kept_paths = set().union(*(PATHS.get(t, set()) for t in STARTED if t not in doomed))
    freed = set().union(*(PATHS.get(t, set()) for t in doomed)) - kept_paths
    assert [(r["kind"], r["value"]) for r in rows] == (
        [("task", t) for t in sorted(doomed)] + [("unreferenced_path", p) for p in sorted(freed)]
    )
    assert "seed-task-old-report" in doomed  # started 2026-10-01: older than 30 days ever since
    assert {r["has_more"] for r in rows} == {False}
    assert seeded.sql("select count(*) as n from public.tasks")[0]["n"] == 5  # a preview deletes nothing


def test_09_retention_runs(seeded):
    seeded.sql("delete from public.stepsdk_retention_runs; delete from public.stepsdk_freed_objects")
    seeded.sql("select public.stepsdk_unschedule_retention()")
    [never] = run(seeded, "09_retention_runs.sql")
    assert (never["schedule"], never["started_at"], never["freed_objects_pending"]) == (None, None, 0)
    try:
        seeded.sql("select public.stepsdk_run_retention(interval '30 days')")
        rows = run(seeded, "09_retention_runs.sql")
        # seed-task-old-report (2026-10-01) goes; of its objects A and C, A is shared with newer tasks
        assert [(r["max_age"], r["tasks_deleted"], r["objects_freed"]) for r in rows] == [
            (timedelta(days=30), 1, 1)
        ]
        assert rows[0]["freed_objects_pending"] == 1 and rows[0]["finished_at"] >= rows[0]["started_at"]
        assert seeded.sql("select screenshot_path from public.stepsdk_freed_objects") == [
            {"screenshot_path": C}
        ]
    finally:
        seeded.sql("delete from public.stepsdk_retention_runs; delete from public.stepsdk_freed_objects")


def test_every_query_file_is_tested():
    assert {p.name for p in QUERIES.glob("*.sql")} == COVERED


# ---------------------------------------------------------------- usage, error categories, alerts
LOGIN, CHECKOUT = "5eed0001-0000-4000-8000-0000000000", "5eed0002-0000-4000-8000-0000000000"


def _set_usage(stack, step_id: str, usage: str, *, now: bool = False) -> None:
    stack.sql(
        "update public.task_steps set usage = %s::jsonb"
        + (", created_at = now()" if now else "")
        + " where id = %s",
        (usage, step_id),
    )


def _usage_fixture(stack, *, now: bool = False) -> None:
    _set_usage(
        stack,
        LOGIN + "01",
        '{"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}',
        now=now,
    )
    _set_usage(
        stack,
        LOGIN + "02",
        '{"prompt_tokens": 2000000, "completion_tokens": 1000000, "total_tokens": 3000000}',
        now=now,
    )
    _set_usage(stack, CHECKOUT + "01", '{"prompt_tokens": 10, "total_tokens": 10}', now=now)
    _set_usage(stack, CHECKOUT + "02", '{"prompt_tokens": "many"}', now=now)  # not a number: counts as absent


def test_10_token_usage(seeded):
    _usage_fixture(seeded)
    rows = run(seeded, "10_token_usage.sql")
    assert [
        (
            r["task_id"],
            r["model"],
            r["steps_with_usage"],
            r["prompt_tokens"],
            r["completion_tokens"],
            r["total_tokens"],
        )
        for r in rows
    ] == [
        ("seed-task-login-flow", "autoglm-phone-9b", 2, 2_001_000, 1_000_100, 3_001_100),
        ("seed-task-checkout", None, 2, 10, 0, 10),
    ]
    # the model's own price (0.05/0.10 per million), else the default (0.15/0.60)
    assert [r["cost"] for r in rows] == [Decimal("0.200060"), Decimal("0.000002")]


def test_11_daily_token_usage(seeded):
    _usage_fixture(seeded, now=True)
    rows = run(seeded, "11_daily_token_usage.sql")
    assert (
        len(rows) == 30
        and rows[0]["day"] == seeded.sql("select (now() at time zone 'UTC')::date as d")[0]["d"]
    )
    assert (
        rows[0]["tasks"],
        rows[0]["steps_with_usage"],
        rows[0]["prompt_tokens"],
        rows[0]["completion_tokens"],
        rows[0]["total_tokens"],
    ) == (2, 4, 2_001_010, 1_000_100, 3_001_110)
    assert all((r["tasks"], r["total_tokens"]) == (0, 0) for r in rows[1:])


def test_12_error_categories(seeded):
    seeded.sql(
        "update public.task_steps set error_category = 'timeout' where id in (%s, %s)",
        (CHECKOUT + "04", CHECKOUT + "06"),
    )
    seeded.sql(
        "update public.task_steps set error_category = 'validation' where task_id = 'seed-task-old-report'"
        " and not success"
    )
    rows = run(seeded, "12_error_categories.sql")
    assert [(r["error_category"], r["failed_steps"], r["tasks_affected"]) for r in rows] == [
        ("timeout", 2, 1),
        ("(none)", 1, 1),
        ("validation", 1, 1),
    ]


def test_13_alert_measures(seeded):
    seeded.sql(
        "update public.tasks set finished_at = now() - interval '10 minutes' where task_id = 'seed-task-checkout'"
    )
    seeded.sql(
        "update public.tasks set finished_at = now() - interval '5 minutes' where task_id = 'seed-task-login-flow'"
    )
    seeded.sql("update public.task_steps set created_at = now() where task_id = 'seed-task-checkout'")
    rows = run(seeded, "13_alert_measures.sql")
    assert [(r["measure"], r["value"], r["detail"]) for r in rows] == [
        ("failure_rate", 0.5, "1 of 2 finished tasks failed"),
        ("step_p95_ms", 4250.0, "6 steps"),  # p95 of 100, 400, 600, 1000, 2000, 5000 ms
        ("error_repeats", 2.0, "TimeoutError: Element not found: #pay"),
    ]

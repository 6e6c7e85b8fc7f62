"""Search across tasks and statistics per agent and period: the same answers from the backup
index and from Supabase, the JSON API over both, and error groups that ignore numbers and ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from nicegui.testing import User

from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import DataSource, period_start
from stepsdk.viewer.data.supabase_source import SupabaseSource
from tests.viewer import dataset
from tests.viewer.test_api import get
from tests.viewer.test_sources import both


def coords_dataset() -> dataset.Dataset:
    """Failed steps whose messages differ only in numbers and ids, recorded just now."""
    now = datetime.now(UTC)
    task = {
        "task_id": "task-coords",
        "title": "Tap the button",
        "description": None,
        "agent": "coord-agent",
        "status": "failed",
        "started_at": (now - timedelta(minutes=3)).isoformat(),
        "finished_at": (now - timedelta(minutes=1)).isoformat(),
        "result": "gave up after 3 taps",
        "error_message": None,
        "metadata": {},
        "owner_id": None,
    }
    messages = [
        "no element at (180, 132)",
        "no element at (200, 90)",
        "session 3f2a9c1e-8d7b-4c6a-9e5f-0a1b2c3d4e5f expired",
        "session 00000000-0000-4000-8000-0000000000aa expired",
        "no element at (7, 7) ",
    ]
    steps = []
    for n, message in enumerate(messages, start=1):
        steps.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"coords/{n}")),
                "task_id": "task-coords",
                "step_number": n,
                "step_type": "action",
                "step_data": {},
                "thinking": f"tap number {n}",
                "action_result": None,
                "screenshot_path": None,
                "duration_ms": 100.0 * n,
                "success": False,
                "error_type": "LookupError",
                "error_message": message,
                "stack_trace": None,
                "started_at": None,
                "metadata": {},
                "created_at": (now - timedelta(minutes=2, seconds=-n)).isoformat(),
            }
        )
    return dataset.Dataset(tasks=[task], steps=steps)


@pytest.fixture
def both_sources(
    backup_source: BackupSource,
    supabase_source: SupabaseSource,
    _supabase_clients,
) -> tuple[BackupSource, SupabaseSource]:
    extra = coords_dataset()
    dataset.write_backup(backup_source.store.path, extra)
    dataset.write_supabase(_supabase_clients[0], extra)
    return backup_source, supabase_source


def test_sources_agree_on_search_and_period_statistics(both_sources) -> None:
    backup, supabase = both_sources
    today = period_start(1)
    week = period_start(7)
    calls = {
        "search_title": lambda s: s.search("SETTINGS"),
        "search_errors": lambda s: s.search("not found"),
        "search_agent": lambda s: s.search("not found", agent="phone-agent"),
        "search_result": lambda s: s.search("gave up"),
        "search_limit": lambda s: s.search("tap number", limit=2),
        "search_literal": lambda s: s.search("50%_"),
        "search_html": lambda s: s.search("click buy"),
        "daily_agent": lambda s: s.get_daily_stats(7, "shop-agent"),
        "daily_nobody": lambda s: s.get_daily_stats(3, "nobody"),
        "errors_agent": lambda s: s.top_errors(10, agent="shop-agent"),
        "errors_today": lambda s: s.top_errors(10, since=today),
        "errors_week_coords": lambda s: s.top_errors(10, since=week, agent="coord-agent"),
        "types_today": lambda s: s.step_type_breakdown(since=today),
        "types_agent": lambda s: s.step_type_breakdown(agent="shop-agent", since=week),
        "slowest_agent": lambda s: s.slowest_steps(5, week, agent="phone-agent"),
        "errors_all": lambda s: s.top_errors(10),
    }
    for name, call in calls.items():
        a, b = both(backup, supabase, call)
        assert a == b, name


def test_search_answers(both_sources) -> None:
    for source in both_sources:
        hits = source.search("not found")
        assert [(h["task_id"], h["field"], h["step_number"]) for h in hits] == [
            ("task-fail", "error_message", None),
            ("task-fail", "error_message", 3),
            ("task-fail", "error_message", 4),
        ]
        assert hits[1]["snippet"] == "  Element not found\n"
        thinking = source.search("click buy")[0]
        assert thinking["field"] == "thinking" and thinking["snippet"].startswith("Plan: click buy <script>")
        assert source.search("not found", agent="phone-agent") == []
        assert source.search("%%%") == [] and source.search("task_") == []
        with pytest.raises(ValueError, match="3..200"):
            source.search("ab")


def test_error_groups_in_both_sources(both_sources) -> None:
    for source in both_sources:
        groups = source.top_errors(10, agent="coord-agent")
        assert [(g["error_message"], g["occurrences"]) for g in groups] == [
            ("no element at (<n>, <n>)", 3),
            ("session <id> expired", 2),
        ]
        assert groups[0]["example_task_id"] == "task-coords"


def test_period_panels_cover_only_the_period(both_sources) -> None:
    for source in both_sources:
        today = period_start(1)
        for row in source.slowest_steps(50, today):
            assert datetime.fromisoformat(row["created_at"]) >= today
        assert "task-coords" in {r["task_id"] for r in source.slowest_steps(50, today)}
        errors_today = {g["error_type"] for g in source.top_errors(10, since=today)}
        assert "AssertionError" not in errors_today  # task-long failed more than a day ago
        assert "AssertionError" in {g["error_type"] for g in source.top_errors(10, since=period_start(7))}


async def test_api_stats_agent_filters_every_panel(viewer: User, source: DataSource) -> None:
    body = await get(viewer, "/api/stats?days=7&agent=shop-agent")
    assert body["agent"] == "shop-agent"
    assert sum(d["tasks"] for d in body["days"]) == 2 and sum(d["steps"] for d in body["days"]) == 125
    assert {e["example_task_id"] for e in body["top_errors"]} <= {"task-fail", "task-long"}
    assert sum(t["steps"] for t in body["step_types"]) == 125
    assert {s["task_id"] for s in body["slowest_steps"]} <= {"task-fail", "task-long"}
    everyone = await get(viewer, "/api/stats?days=7")
    assert sum(t["steps"] for t in everyone["step_types"]) == 133
    nobody = await get(viewer, "/api/stats?days=7&agent=nobody")
    assert sum(d["tasks"] for d in nobody["days"]) == 0
    assert nobody["top_errors"] == nobody["step_types"] == nobody["slowest_steps"] == []
    # the period applies to every panel: one day holds only steps created today
    one_day = await get(viewer, "/api/stats?days=1")
    start = datetime.fromisoformat(one_day["period_start"])
    assert all(datetime.fromisoformat(s["created_at"]) >= start for s in one_day["slowest_steps"])
    assert sum(t["steps"] for t in one_day["step_types"]) <= sum(t["steps"] for t in everyone["step_types"])


async def test_api_search(viewer: User) -> None:
    body = await get(viewer, "/api/search?q=wifi")
    assert body["matches"][0]["task_id"] == "task-ok" and "wifi" in body["matches"][0]["snippet"]
    assert (await get(viewer, "/api/search?q=not%20found&agent=phone-agent"))["matches"] == []
    for bad in ("q=ab", "q=" + "x" * 201, "", "q=abc&limit=0"):
        await get(viewer, f"/api/search?{bad}", 422)


async def test_search_page_shows_matches_in_context(viewer: User) -> None:
    await viewer.open("/search?q=open%20settings")
    await viewer.should_see("Search all tasks")
    await viewer.should_see(marker="search-snippet")
    await viewer.should_see("Open settings and enable wifi")
    await viewer.open("/search?q=zzzz-nothing")
    await viewer.should_see("No task contains this text.")


async def test_stats_page_agent_filter(viewer: User) -> None:
    await viewer.open("/stats?days=7&agent=shop-agent")
    await viewer.should_see("Most frequent errors")
    await viewer.should_see(marker="agent-filter")
    total = viewer.find(marker="total-Tasks").elements.pop()
    assert total.text == "2"


def test_backup_search_uses_the_index_not_a_scan(tmp_path: Path) -> None:
    source = BackupSource(tmp_path / "b")
    dataset.write_backup(tmp_path / "b", dataset.build())
    plan = " ".join(
        str(r[-1])
        for r in source._db().execute(
            "explain query plan select rowid from docs_text where docs_text match ?", ('"wifi"',)
        )
    )
    assert "VIRTUAL TABLE INDEX" in plan


def test_backup_meta_filter(tmp_path: Path) -> None:
    from stepsdk.viewer.data.base import Sort, TaskFilters

    base = dataset.build().tasks[0]
    extra = dataset.Dataset(
        tasks=[
            {**base, "task_id": "m1", "metadata": {"model": "glm-4", "device": "pixel", "n": 3, "ok": True}},
            {**base, "task_id": "m2", "metadata": {"model": "glm-4", "device": "emulator"}},
            {**base, "task_id": "m3", "metadata": {"model": "gpt", 'we"ird': "x"}},
        ]
    )
    dataset.write_backup(tmp_path / "b", extra)
    source = BackupSource(tmp_path / "b")

    def ids(meta: dict[str, str]) -> set[str]:
        return {r["task_id"] for r in source.list_tasks(TaskFilters(meta=meta), Sort(), 1, 100)[0]}

    assert ids({"model": "glm-4"}) == {"m1", "m2"}
    assert ids({"model": "glm-4", "device": "pixel"}) == {"m1"}
    assert ids({"n": "3"}) == {"m1"} and ids({"ok": "true"}) == {"m1"}
    assert ids({"model": "gpt"}) == {"m3"} and ids({"model": "nope"}) == set()
    for bad in ({"": "x"}, {'we"ird': "x"}):  # keys are letters, digits and _ (the list's URL syntax)
        with pytest.raises(ValueError, match="meta"):
            TaskFilters(meta=bad)


def tricky_dataset() -> dataset.Dataset:
    """Durations with ties, zeros and nulls; steps exactly at, just before and just after UTC
    midnight, some written with another offset; a non-ASCII task id and agent."""
    midnight = period_start(1)
    task = {
        "task_id": "täsk-ü/1",
        "title": "Grenzfälle",
        "description": None,
        "agent": "agént",
        "status": "success",
        "started_at": (midnight - timedelta(hours=3)).isoformat(),
        "finished_at": (midnight + timedelta(seconds=30)).isoformat(),
        "result": None,
        "error_message": None,
        "metadata": {},
        "owner_id": None,
    }
    plus2 = timezone(timedelta(hours=2))
    created = [
        midnight,  # exactly at the boundary: today
        midnight - timedelta(microseconds=1),  # yesterday
        midnight + timedelta(microseconds=1),
        (midnight).astimezone(plus2),  # same instant, other offset
        (midnight - timedelta(seconds=1)).astimezone(plus2),  # reads as 01:59:59 "today" at +02
        midnight - timedelta(hours=1, minutes=30),
        midnight + timedelta(seconds=5),
    ]
    durations = [0.0, 0.0, 5.0, 5.0, 5.0, None, 0.0, 5.0, 7.5, None, 5.0, 0.0, 5.0, 5.0]
    steps = []
    for n, duration in enumerate(durations, start=1):
        steps.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tricky/{n}")),
                "task_id": task["task_id"],
                "step_number": n,
                "step_type": "action" if n % 3 else "validation",
                "step_data": {},
                "thinking": None,
                "action_result": None,
                "screenshot_path": None,
                "duration_ms": duration,
                "success": n % 4 != 0,
                "error_type": None if n % 4 else "ValueError",
                "error_message": None if n % 4 else "bad",
                "stack_trace": None,
                "started_at": None,
                "metadata": {},
                "created_at": created[n % len(created)].isoformat(),
            }
        )
    return dataset.Dataset(tasks=[task], steps=steps)


def test_sources_agree_on_tricky_statistics(
    backup_source: BackupSource, supabase_source: SupabaseSource, _supabase_clients
) -> None:
    """The index's per-day counts and bucket p95 equal the SQL functions on ties, zeros, nulls,
    steps at a UTC day boundary (written with other offsets) and periods not starting at midnight."""
    extra = tricky_dataset()
    dataset.write_backup(backup_source.store.path, extra)
    dataset.write_supabase(_supabase_clients[0], extra)
    today = period_start(1)
    calls = {
        "types_today": lambda s: s.step_type_breakdown(since=today),
        "types_two_days": lambda s: s.step_type_breakdown(since=period_start(2), agent="agént"),
        "types_odd_start": lambda s: s.step_type_breakdown(since=today - timedelta(hours=1)),
        "types_just_after": lambda s: s.step_type_breakdown(since=today + timedelta(microseconds=1)),
        "types_just_before": lambda s: s.step_type_breakdown(
            since=today - timedelta(microseconds=1), agent="agént"
        ),
        "types_task": lambda s: s.step_type_breakdown("täsk-ü/1"),
        "daily": lambda s: s.get_daily_stats(2, "agént"),
        "slowest": lambda s: s.slowest_steps(20, today, agent="agént"),
        "errors": lambda s: s.top_errors(10, since=today, agent="agént"),
        "stats": lambda s: s.get_task_stats("täsk-ü/1"),
    }
    for name, call in calls.items():
        a, b = both(backup_source, supabase_source, call)
        assert a == b, name

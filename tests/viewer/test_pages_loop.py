"""The daily debugging loop (issue 13) with NiceGUI's simulated user, both sources: step names,
filters and n/N, in-task search, metadata, stale and interrupted runs, compare, first run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nicegui import ElementFilter, ui
from nicegui.testing import User

from stepsdk.viewer.pages import _common
from tests.viewer import dataset
from tests.viewer.conftest import backup_viewer
from tests.viewer.test_pages import key_event, labels, the


@pytest.fixture
def stale_after_one_minute() -> Iterator[None]:
    _common.set_stale_minutes(1)
    yield
    _common.set_stale_minutes(10)


def timeline_titles(user: User) -> list[str]:
    with user:
        return [e.props.get("title") for e in ElementFilter(kind=ui.timeline_entry)]


async def test_step_names_in_timeline_and_detail(viewer: User) -> None:
    await viewer.open("/tasks/task-ok?step=2")
    assert timeline_titles(viewer) == ["#1 thinking", "#2 Tap", "#3 swipe", "#4 validation"]
    await viewer.should_see(marker="step-name")
    assert "Tap" in labels(viewer)


async def test_filter_failed_and_n_jumps_between_failures(viewer: User) -> None:
    await viewer.open("/tasks/task-long")
    await viewer.should_see("Step 1 of 120")
    keys = viewer.find(ui.keyboard)
    keys.trigger("key", key_event("n"))
    await viewer.should_see("Step 40 of 120")  # the first failed step (every 40th fails)
    keys.trigger("key", key_event("n"))
    await viewer.should_see("Step 80 of 120")  # on the timeline's second page
    keys.trigger("key", key_event("N"))
    await viewer.should_see("Step 40 of 120")
    viewer.find(marker="step-filter").click()
    viewer.find("failed only").click()
    await viewer.should_see("3 of 120 steps match")
    assert timeline_titles(viewer) == ["#40 tap", "#80 screenshot", "#120 thinking"]
    keys.trigger("key", key_event("j"))  # j/k walk the matches only
    await viewer.should_see("Step 80 of 120")


async def test_search_within_a_task(viewer: User) -> None:
    await viewer.open("/tasks/task-fail?q=bad%20coordinates")
    await viewer.should_see("1 of 5 steps match")
    await viewer.should_see("Step 5 of 5")  # the selection moves to the first match
    viewer.find(marker="step-search").type("x")  # "bad coordinatesx": nothing
    await viewer.should_see("0 of 5 steps match")
    await viewer.should_see("No step matches.")


async def test_task_metadata_in_header_and_list_columns(viewer: User) -> None:
    await viewer.open("/tasks/task-ok")
    await viewer.should_see(marker="task-metadata")
    assert {"model: gpt-4o", "device: pixel-7", "attempt: 2"} <= set(labels(viewer))
    await viewer.open("/?cols=model,device&meta.device=pixel-7&sort=task_id&order=asc")
    table = the(viewer, ui.table)
    assert [(r["task_id"], r["m0"], r["m1"]) for r in table.rows] == [
        ("task-fail", "claude", "pixel-7"),
        ("task-ok", "gpt-4o", "pixel-7"),
    ]
    assert [c["label"] for c in table.columns][-2:] == ["model", "device"]
    await viewer.should_see("2 tasks")


async def test_running_task_goes_stale_and_stops_polling(viewer: User, stale_after_one_minute: None) -> None:
    await viewer.open("/tasks/task-running")  # its last step is ~5 minutes old
    await viewer.should_see(marker="stale")
    # its last step was created ~2 s after a start 5 minutes before the data set was built
    idle = datetime.now(UTC) - (dataset.NOW - timedelta(minutes=5, seconds=2))
    minutes = {int(idle.total_seconds() // 60) - 1, int(idle.total_seconds() // 60)}
    texts = [b.text for b in viewer.find(marker="stale").elements]
    assert len(texts) == 1 and any(
        texts[0].startswith(f"stale · no new step for {m} min") for m in minutes
    ), texts
    with viewer:
        assert not [t for t in ElementFilter(kind=ui.timer) if t.interval == 3.0]  # no live refresh
    await viewer.open("/")
    row = next(r for r in the(viewer, ui.table).rows if r["task_id"] == "task-running")
    assert row["status_text"] == "stale" and row["duration_text"].startswith("stale for")


async def test_live_task_keeps_polling(viewer: User) -> None:
    await viewer.open("/tasks/task-running")  # 5 minutes without a step, under the default 10
    await viewer.should_see("Step 1 of 2")
    await viewer.should_not_see(marker="stale")
    with viewer:
        assert [t for t in ElementFilter(kind=ui.timer) if t.interval == 3.0]


async def test_interrupted_tasks_say_why(tmp_path: Path) -> None:
    b = dataset._Builder()
    killed = dataset._task(
        "killed",
        "Killed run",
        "interrupted",
        timedelta(hours=1),
        1000.0,
        metadata={"interrupted": {"signal": "SIGTERM"}},
    )
    gone = dataset._task(
        "gone",
        "Gone run",
        "interrupted",
        timedelta(hours=2),
        1000.0,
        metadata={"abandoned": {"pid": 4242, "host": "build-7", "detected_at": "2026-11-30T01:00:00+00:00"}},
    )
    b.ds.tasks = [killed, gone]
    b.step(killed, 1, "thinking", 10.0, thinking="working")
    async with backup_viewer(tmp_path / "b", b.ds) as user:
        await user.open("/tasks/killed")
        await user.should_see("Interrupted by SIGTERM")
        await user.open("/tasks/gone")
        await user.should_see(
            "Abandoned: the recording process (pid 4242 on build-7) stopped without finishing, "
            "detected 2026-11-30 01:00:00 UTC"
        )


async def test_compare_marks_the_first_divergence(viewer: User) -> None:
    await viewer.open("/compare?a=task-ok&b=task-fail")
    await viewer.should_see(marker="divergence")
    table = next(iter(viewer.find(marker="comparison").elements))
    first = [r for r in table.rows if r["first_divergence"]]
    # steps 1 (thinking) and 2 (a tap) agree; at step 3 A swipes, B's action fails
    assert len(first) == 1 and first[0]["key"] == 2
    assert (first[0]["a_step"], first[0]["b_step"]) == ("#3 swipe", "#3 Tap Buy ✗ TimeoutError")
    assert first[0]["a_url"] == "/tasks/task-ok?step=3" and first[0]["b_url"] == "/tasks/task-fail?step=3"
    assert first[0]["a_shot"].startswith("/media/screenshots/") and first[0]["b_shot"] == ""
    await viewer.open("/compare?a=task-ok&b=task-ok")
    await viewer.should_see(marker="no-divergence")


async def test_list_selection_opens_compare(viewer: User) -> None:
    await viewer.open("/")
    table = the(viewer, ui.table)
    button = next(iter(viewer.find(marker="compare-selected").elements))
    assert not button.enabled
    rows = [r for r in table.rows if r["task_id"] in ("task-ok", "task-fail")]
    viewer.find(ui.table).trigger(
        "selection", {"added": True, "rows": rows[:1], "keys": [rows[0]["task_id"]]}
    )
    assert not button.enabled  # one is not a comparison
    viewer.find(ui.table).trigger(
        "selection", {"added": True, "rows": rows[1:], "keys": [rows[1]["task_id"]]}
    )
    assert button.enabled
    viewer.find(marker="compare-selected").click()
    await viewer.should_see("Compare two tasks")
    await viewer.should_see(marker="divergence")


async def test_empty_store_shows_a_first_run_hint(empty_source, tmp_path: Path) -> None:
    from tests.viewer.conftest import viewer_user

    async with viewer_user(empty_source) as user:
        await user.open("/")
        await user.should_see("Nothing recorded here yet")
        await user.should_see(marker="first-run")


async def test_minimap_click_jumps_and_copy_link(viewer: User) -> None:
    await viewer.open("/tasks/task-long")
    await viewer.should_see("Step 1 of 120")
    minimap = next(iter(viewer.find(marker="minimap").elements))
    assert len(minimap.options["series"][0]["data"]) == 120
    assert minimap.options["series"][0]["data"][39] == {
        "value": 50.0,
        "itemStyle": {"color": "#ef4444"},
    }  # failed
    viewer.find(marker="minimap").trigger(
        "componentClick",
        {
            "componentType": "series",
            "seriesType": "bar",
            "seriesIndex": 0,
            "seriesName": "",
            "name": "60",
            "dataIndex": 59,
            "data": 70.0,
            "dataType": None,
            "value": 70.0,
        },
    )
    await viewer.should_see("Step 60 of 120")
    await viewer.should_see("Steps 51–100 of 120")
    viewer.find(marker="copy-link").click()
    await viewer.should_see("Link copied")


def test_steps_csv_has_the_step_name() -> None:
    import csv
    import io

    from stepsdk.viewer.export import steps_csv

    rows = [
        {
            "step_number": 1,
            "step_type": "action",
            "step_data": {
                "kind": "http",
                "method": "GET",
                "url": "https://api.x/v1/forecast",
                "response": {"status_code": 404},
            },
        },
        {"step_number": 2, "step_type": "action", "name": "Launch Settings"},
    ]
    parsed = list(csv.DictReader(io.StringIO(steps_csv(rows).decode())))
    assert [r["name"] for r in parsed] == ["GET /v1/forecast → 404", "Launch Settings"]

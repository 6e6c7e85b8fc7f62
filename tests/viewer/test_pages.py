"""Every page with NiceGUI's simulated user, against both sources (see conftest ``source``)."""

from __future__ import annotations

import asyncio
import csv
import importlib
import io
import time
from datetime import timedelta
from typing import Any

import pytest
from nicegui import ElementFilter, ui
from nicegui.testing import User

from stepsdk.store.xlsx import iter_rows
from stepsdk.viewer.data.base import DataSource
from tests.timing import WAIT, until
from tests.viewer import dataset
from tests.viewer.conftest import backup_viewer


def key_event(key: str) -> dict[str, Any]:
    return {
        "action": "keydown",
        "repeat": False,
        "altKey": False,
        "ctrlKey": False,
        "metaKey": False,
        "shiftKey": False,
        "key": key,
        "code": key,
        "location": 0,
    }


def the(user: User, kind: type) -> Any:
    elements = user.find(kind).elements
    assert len(elements) == 1, f"expected one {kind.__name__}, found {len(elements)}"
    return next(iter(elements))


def labels(user: User) -> list[str]:
    with user:
        return [e.text for e in ElementFilter(kind=ui.label)]


# -- task list ------------------------------------------------------------------------------
async def test_task_list_rows_links_and_numbers(viewer: User) -> None:
    await viewer.open("/")
    table = the(viewer, ui.table)
    assert [r["task_id"] for r in table.rows] == [
        "task-running",
        "task-ok",
        "task-long",
        "task-fail",
        "task-broken",
        "task-empty",
    ]
    fail = next(r for r in table.rows if r["task_id"] == "task-fail")
    assert (fail["status"], fail["total_steps"], fail["success_rate_text"], fail["duration_text"]) == (
        "failed",
        5,
        "40.0 %",
        "9.10 s",
    )
    assert next(r for r in table.rows if r["task_id"] == "task-running")["duration_text"] == "running…"
    assert table.pagination["rowsNumber"] == 6
    await viewer.should_see("6 tasks")
    slot = table.slots["body-cell-task_id"].template
    assert "encodeURIComponent(props.row.task_id)" in slot and "v-html" not in slot


async def test_task_list_server_side_paging_and_sorting(viewer: User) -> None:
    await viewer.open("/")
    table = the(viewer, ui.table)
    viewer.find(ui.table).trigger(
        "request", {"pagination": {"page": 2, "rowsPerPage": 2, "sortBy": "total_steps", "descending": True}}
    )
    await until(lambda: [r["task_id"] for r in table.rows] == ["task-ok", "task-broken"])
    assert [r["task_id"] for r in table.rows] == [
        "task-ok",
        "task-broken",
    ]  # 120, 5 | 4, 2 (ties by id) | 2, 0
    assert table.pagination["page"] == 2 and table.pagination["rowsNumber"] == 6
    viewer.find(ui.table).trigger(
        "request",
        {
            "pagination": {  # a made-up column falls back to started_at
                "page": 1,
                "rowsPerPage": 10,
                "sortBy": "password",
                "descending": False,
            }
        },
    )
    await until(lambda: table.rows[0]["task_id"] == "task-empty")
    assert table.rows[0]["task_id"] == "task-empty"


async def test_task_list_filters_and_search(viewer: User) -> None:
    await viewer.open("/")
    table = the(viewer, ui.table)
    viewer.find("Status").click()
    viewer.find("failed").click()
    await until(lambda: [r["task_id"] for r in table.rows] == ["task-fail"])
    assert [r["task_id"] for r in table.rows] == ["task-fail"]
    viewer.find("Status").click()
    viewer.find("any status").click()
    viewer.find(marker="search").type("LONG")
    await until(lambda: [r["task_id"] for r in table.rows] == ["task-long"])
    assert [r["task_id"] for r in table.rows] == ["task-long"]
    viewer.find(marker="search").clear().type("no such thing <b>")
    await until(lambda: table.rows == [] and table.pagination["rowsNumber"] == 0)
    assert table.rows == [] and table.pagination["rowsNumber"] == 0
    viewer.find(marker="search").clear()
    viewer.find(marker="from").type("not-a-date")
    await asyncio.sleep(0.3)
    await viewer.should_see("Check the filters")


async def test_task_list_agent_and_date_filters(viewer: User) -> None:
    await viewer.open("/")
    table = the(viewer, ui.table)
    viewer.find("Agent").click()
    viewer.find("shop-agent").click()
    await until(lambda: {r["task_id"] for r in table.rows} == {"task-fail", "task-long"})
    assert {r["task_id"] for r in table.rows} == {"task-fail", "task-long"}
    today = dataset.NOW.date().isoformat()
    viewer.find(marker="from").type(today)
    viewer.find(marker="to").type(today)
    await asyncio.sleep(0.3)
    assert table.rows == [] or {r["task_id"] for r in table.rows} <= {"task-fail", "task-long"}


async def test_task_list_csv_export(viewer: User) -> None:
    await viewer.open("/")
    viewer.find("Export CSV").click()
    response = await viewer.download.next(timeout=WAIT)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 6
    fail = next(r for r in rows if r["task_id"] == "task-fail")
    assert fail["total_steps"] == "5" and fail["title"].startswith("Checkout <script>")


# -- task page --------------------------------------------------------------------------------
async def test_task_page_header_timeline_and_detail(viewer: User) -> None:
    await viewer.open("/tasks/task-ok")
    await viewer.should_see("Open settings and enable wifi")
    await viewer.should_see("Result: wifi enabled")
    await viewer.should_see("100.0 %")
    await viewer.should_see("Step 1 of 4")
    await viewer.should_see("I should open Settings")
    assert len(viewer.find(ui.timeline_entry).elements) == 4
    with viewer:
        entries = list(ElementFilter(kind=ui.timeline_entry))
    assert [e.props["icon"] for e in entries] == ["psychology", "touch_app", "touch_app", "fact_check"]


async def test_keyboard_navigation_and_tap_overlay(viewer: User) -> None:
    await viewer.open("/tasks/task-ok")
    keyboard = viewer.find(ui.keyboard)
    keyboard.trigger("key", key_event("j"))
    await viewer.should_see("Step 2 of 4")
    image = next(e for e in viewer.find(ui.interactive_image).elements if "c" in e.content)
    # PhoneAgent's point (540, 720) on a 1080x2400 screen, stored as 270x600: drawn at (135, 180)
    assert 'cx="135.0" cy="180.0"' in image.content
    assert image.source.startswith("/media/screenshots/") and "fallback=true" in image.source
    keyboard.trigger("key", key_event("ArrowRight"))
    await viewer.should_see("Step 3 of 4")
    assert "<line" in next(iter(viewer.find(ui.interactive_image).elements)).content  # the swipe
    keyboard.trigger("key", key_event("k"))
    keyboard.trigger("key", key_event("ArrowLeft"))
    keyboard.trigger("key", key_event("ArrowLeft"))  # stays on the first step
    await viewer.should_see("Step 1 of 4")


async def test_lightbox_opens_full_size(viewer: User) -> None:
    await viewer.open("/tasks/task-ok?step=2")
    await viewer.should_see("Step 2 of 4")
    dialog = the(viewer, ui.dialog)
    assert not dialog.value
    viewer.find(marker="screenshot").trigger("click")
    await until(lambda: dialog.value)
    assert dialog.value and "maximized" in dialog.props
    await viewer.should_see(marker="lightbox")
    the_keyboard = viewer.find(ui.keyboard)
    the_keyboard.trigger("key", key_event("j"))  # stepping keeps the lightbox on the new screenshot
    await viewer.should_see("Step 3 of 4")
    assert dialog.value
    the_keyboard.trigger("key", key_event("j"))  # step 4 has no screenshot: the lightbox says so
    await viewer.should_see("No screenshot for this step")
    the_keyboard.trigger("key", key_event("k"))
    await viewer.should_see("Step 3 · action swipe")
    viewer.find(marker="close").click()
    await until(lambda: not dialog.value)
    assert not dialog.value
    thumbnails = viewer.find(marker="thumbnail").elements  # a timeline thumbnail opens its own step
    assert len(thumbnails) == 2
    viewer.find(marker="thumbnail").trigger("click.stop")
    await until(lambda: dialog.value)
    assert dialog.value


async def test_long_task_is_paged_and_keys_cross_pages(viewer: User) -> None:
    await viewer.open("/tasks/task-long")
    assert len(viewer.find(ui.timeline_entry).elements) == 50
    await viewer.should_see("Steps 1–50 of 120")
    await viewer.open("/tasks/task-long?step=50")
    await viewer.should_see("Step 50 of 120")
    viewer.find(ui.keyboard).trigger("key", key_event("j"))
    await viewer.should_see("Step 51 of 120")
    await viewer.should_see("Steps 51–100 of 120")
    the(viewer, ui.pagination).set_value(3)
    await asyncio.sleep(0.3)
    await viewer.should_see("Steps 101–120 of 120")
    assert len(viewer.find(ui.timeline_entry).elements) == 20


async def test_playback_steps_through_the_task(viewer: User) -> None:
    """task-ok has screenshots on steps 2 and 3 of 4: the slideshow shows those and stops."""
    task_module = importlib.import_module("stepsdk.viewer.pages.task")
    task_module.PLAY_SECONDS = 0.05
    try:
        await viewer.open("/tasks/task-ok")
        viewer.find(marker="play").click()
        await viewer.should_see("Step 3 of 4")
        await asyncio.sleep(0.3)
        await viewer.should_see("Play")  # stopped at the last screenshot
        await viewer.should_see("Step 3 of 4")
        await viewer.should_not_see("Step 4 of 4")
    finally:
        task_module.PLAY_SECONDS = 1.2


def _slideshow_data() -> dataset.Dataset:
    """60 steps (two timeline pages), screenshots on steps 2, 49 and 53; and a task without any."""
    b = dataset._Builder()
    shots = {2: (200, 0, 0), 49: (0, 200, 0), 53: (0, 0, 200)}
    task = dataset._task("slides", "Slides", "success", timedelta(hours=1), 1000.0)
    plain = dataset._task("plain", "No screenshots", "success", timedelta(hours=2), 1000.0)
    b.ds.tasks = [task, plain]
    for n in range(1, 61):
        image = dataset.webp(shots[n]) if n in shots else None
        b.step(task, n, "screenshot" if image else "action", 10.0, image=image)
    for n in range(1, 4):
        b.step(plain, n, "action", 10.0)
    return b.ds


async def _shown_steps(user: User, until: str) -> list[str]:
    """The step titles shown, in order, polled until playback has started, then stopped at ``until``."""
    seen: list[str] = []
    started = False
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with user:
            title = next(iter(ElementFilter(marker="step-title"))).text
            playing = any(b.text == "Pause" for b in ElementFilter(kind=ui.button, marker="play"))
        started = started or playing
        if not seen or seen[-1] != title:
            seen.append(title)
        if started and title == until and not playing:
            return seen
        await asyncio.sleep(0.01)
    raise AssertionError(f"playback did not stop at {until}: {seen}")


async def test_playback_is_a_slideshow_of_the_screenshots_across_pages(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(importlib.import_module("stepsdk.viewer.pages.task"), "PLAY_SECONDS", 0.05)
    async with backup_viewer(tmp_path / "backup", _slideshow_data()) as user:
        await user.open("/tasks/slides")
        await user.should_see("Step 1 of 60")
        user.find(marker="play").click()
        assert await _shown_steps(user, "Step 53 of 60") == [
            "Step 1 of 60",
            "Step 2 of 60",
            "Step 49 of 60",
            "Step 53 of 60",
        ]
        await user.should_see("Steps 51–60 of 60")  # the timeline followed to page 2
        user.find(ui.keyboard).trigger("key", key_event("p"))  # at the last one: replays from the first
        replay = await _shown_steps(user, "Step 53 of 60")
        assert replay[replay.index("Step 2 of 60") :] == ["Step 2 of 60", "Step 49 of 60", "Step 53 of 60"]
        user.find(ui.keyboard).trigger("key", key_event("k"))  # keys still walk every step
        await user.should_see("Step 52 of 60")
        await user.open("/tasks/plain")
        user.find(marker="play").click()
        await user.should_see("No screenshots to play in this task")
        await user.should_see("Step 1 of 3")


async def test_charts(viewer: User) -> None:
    await viewer.open("/tasks/task-fail")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with viewer:
            charts = [c.options for c in ElementFilter(kind=ui.echart)]
        if len(charts) == 3:  # the minimap, the duration chart and the step types
            break
        await asyncio.sleep(0.1)
    bar = next(o for o in charts if o["series"][0]["type"] == "bar" and "legend" in o)
    pie = next(o for o in charts if o["series"][0]["type"] == "pie")
    assert bar["animation"] is False and bar["series"][0]["data"] == [300, 1500, 4000, 2500, 0]
    assert bar["series"][1]["data"] == [[2, 4000], [3, 2500], [4, 0]]  # failed steps stand out
    assert {d["name"]: d["value"] for d in pie["series"][0]["data"]} == {
        "thinking": 1,
        "action": 3,
        "error": 1,
    }
    # clicking a failed (red) point jumps to that step (only the duration chart listens)
    viewer.find(ui.echart).trigger(
        "componentClick",
        {
            "componentType": "series",
            "seriesType": "scatter",
            "seriesIndex": 1,
            "seriesName": "failed",
            "name": "",
            "dataIndex": 1,
            "data": [3, 2500],
            "dataType": None,
            "value": [3, 2500],
        },
    )
    await viewer.should_see("Step 4 of 5")


async def test_failed_task_errors_stand_out_and_html_stays_text(viewer: User) -> None:
    await viewer.open("/tasks/task-fail?step=3")
    await viewer.should_see("Step 3 of 5")
    await viewer.should_see("FAILED")
    await viewer.should_see("Error details")
    texts = labels(viewer)
    assert any("<script>window.__xss = 1</script>" in t for t in texts)  # shown as text
    assert any(t.startswith("Traceback") for t in texts)  # the stack trace
    with viewer:
        assert not list(ElementFilter(kind=ui.html)) and not list(ElementFilter(kind=ui.markdown))
    viewer.find(ui.keyboard).trigger("key", key_event("k"))
    await viewer.should_see("Step 2 of 5")
    assert any("cut here" in t for t in labels(viewer))  # the 120 kB JSON is cut, not frozen


async def test_task_exports(viewer: User, data: dataset.Dataset) -> None:
    await viewer.open("/tasks/task-long")
    viewer.find("Export JSON").click()
    report = (await viewer.download.next(timeout=WAIT)).json()
    assert report["task"]["task_id"] == "task-long" and len(report["steps"]) == 120
    assert report["statistics"]["total_steps"] == 120 and report["statistics"]["failed_steps"] == 3
    viewer.find("Steps CSV").click()
    rows = list(csv.DictReader(io.StringIO((await viewer.download.next(timeout=WAIT)).text)))
    assert [int(r["step_number"]) for r in rows] == list(range(1, 121))
    assert len({r["id"] for r in rows}) == 120
    viewer.find("Excel").click()
    book = io.BytesIO((await viewer.download.next(timeout=WAIT)).content)
    [task] = list(iter_rows(book, "tasks"))
    assert (task["task_id"], task["total_steps"], task["failed_steps"]) == ("task-long", 120, 3)
    steps = list(iter_rows(book, "steps"))
    assert [r["step_number"] for r in steps] == list(range(1, 121))
    assert {r["id"]: r["duration_ms"] for r in steps} == {
        s["id"]: s["duration_ms"] for s in data.steps_of("task-long")
    }


async def test_task_without_steps_and_broken_screenshots(viewer: User) -> None:
    await viewer.open("/tasks/task-empty")
    await viewer.should_see("This task has no steps recorded (yet).")
    await viewer.open("/tasks/task-broken")
    await viewer.should_see("Step 1 of 2")
    image = next(iter(viewer.find(marker="screenshot").elements))
    response = await viewer.http_client.get(image.source)
    assert response.status_code == 200 and response.headers["x-stepsdk-placeholder"] == "1"
    assert b"Screenshot missing" in response.content
    viewer.find(ui.keyboard).trigger("key", key_event("j"))
    await viewer.should_see("Step 2 of 2")
    image = next(iter(viewer.find(marker="screenshot").elements))
    assert b"Not a valid image" in (await viewer.http_client.get(image.source)).content


HOSTILE_PATHS = [
    "/tasks/nope",
    "/tasks/" + "x" * 5000,
    "/tasks/..%2F..%2Fetc%2Fpasswd",
    "/tasks/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/tasks/%E2%80%AE%F0%9F%98%80%20%D0%B7%D0%B0%D0%B4%D0%B0%D1%87%D0%B0",
    "/tasks/a%00b",
]


async def test_unknown_and_hostile_task_ids(viewer: User) -> None:
    for path in HOSTILE_PATHS:
        await viewer.open(path)
        await viewer.should_see("Task not found")
        await viewer.should_see("Back to the task list")
    for step in ("abc", "-5", "1.5", "", "9" * 30):  # a bad ?step= opens the first step
        await viewer.open(f"/tasks/task-ok?step={step}")
        await viewer.should_see("Step 1 of 4")
    await viewer.open("/tasks/task-ok?step=99")  # past the end: the last step
    await viewer.should_see("Step 4 of 4")


async def test_running_task_refreshes_by_itself(
    viewer: User, source: DataSource, request: pytest.FixtureRequest, data: dataset.Dataset
) -> None:
    task_module = importlib.import_module("stepsdk.viewer.pages.task")
    task_module.REFRESH_SECONDS = 0.2
    try:
        await viewer.open("/tasks/task-running?step=2")
        await viewer.should_see("Step 2 of 2")
        new = {
            **data.steps_of("task-running")[-1],
            "id": "00000000-0000-4000-8000-000000000003",
            "step_number": 3,
            "thinking": "a brand new step",
        }
        _add_step(request, source, new)
        await viewer.should_see("Step 3 of 3")  # followed the live end
        await viewer.should_see("a brand new step")
        # a running task without any step yet shows its first step when it arrives
        _add_row(request, source, "task", {**data.tasks[2], "task_id": "task-running-empty"})
        await viewer.open("/tasks/task-running-empty")
        await viewer.should_see("This task has no steps recorded (yet).")
        _add_step(
            request,
            source,
            {
                **new,
                "id": "00000000-0000-4000-8000-000000000004",
                "task_id": "task-running-empty",
                "step_number": 1,
                "thinking": "first!",
            },
        )
        await viewer.should_see("Step 1 of 1")
        await viewer.should_see("first!")
        await viewer.should_not_see("This task has no steps recorded (yet).")
    finally:
        task_module.REFRESH_SECONDS = 3.0


def _add_row(request: pytest.FixtureRequest, source: DataSource, kind: str, row: dict[str, Any]) -> None:
    """Write one more task/step row the way each source gets it (journal record / upsert)."""
    if type(source).__name__ == "BackupSource":
        from stepsdk.store.backup import JournalWriter

        writer = JournalWriter(source.store.path)
        writer.append([{"k": kind, "v": 2, "row": row}])
        writer.close()
    else:
        table = {"task": "tasks", "step": "task_steps"}[kind]
        request.getfixturevalue("_supabase_clients")[0].table(table).upsert(row).execute()


def _add_step(request: pytest.FixtureRequest, source: DataSource, step: dict[str, Any]) -> None:
    _add_row(request, source, "step", step)


# -- statistics and compare ----------------------------------------------------------------------
async def test_stats_page(viewer: User) -> None:
    await viewer.open("/stats")
    await viewer.should_see("Most frequent errors")
    await viewer.should_see(marker="total-Tasks")
    assert "6" in next(iter(viewer.find(marker="total-Tasks").elements)).text
    tables = viewer.find(ui.table).elements
    errors = next(t for t in tables if any("occurrences" in r for r in t.rows))
    assert (errors.rows[0]["error_type"], errors.rows[0]["occurrences"]) == ("AssertionError", 3)
    assert ("TimeoutError", "Element not found", 2) in {
        (r["error_type"], r["error_message"], r["occurrences"]) for r in errors.rows
    }
    slowest = next(t for t in tables if any("duration" in r for r in t.rows))
    assert (slowest.rows[0]["task_id"], slowest.rows[0]["step_number"], slowest.rows[0]["duration"]) == (
        "task-fail",
        3,
        "4.00 s",
    )
    assert "?step=" in slowest.slots["body-cell-task_id"].template
    daily = next(
        c.options
        for c in viewer.find(ui.echart).elements
        if "legend" in c.options and "successful" in c.options["legend"]["data"]
    )
    assert daily["animation"] is False and len(daily["xAxis"]["data"]) == 14
    assert sum(daily["series"][1]["data"]) == 1  # one failed task in the period


async def test_compare_page(viewer: User) -> None:
    await viewer.open("/compare?a=task-ok&b=task-fail")
    await viewer.should_see(marker="total-delta")
    table = the(viewer, ui.table)
    assert len(table.rows) == 5
    first = table.rows[0]
    assert first["a_step"].startswith("#1 thinking") and first["delta"] == "+180 ms"
    assert table.rows[4]["a_step"] == "—" and table.rows[4]["differs"]
    await viewer.open("/compare?a=task-ok&b=task-fail&by=action")
    assert len(the(viewer, ui.table).rows) >= 5
    await viewer.open("/compare?a=task-ok&b=" + "%3Cscript%3E")
    await viewer.should_see("Task not found")
    await viewer.open("/compare")
    await viewer.should_see("Enter two task ids (or use “Compare” on a task page).")
    compare_module = importlib.import_module("stepsdk.viewer.pages.compare")
    compare_module.MAX_STEPS = 3
    try:  # a cut comparison says so
        await viewer.open("/compare?a=task-ok&b=task-fail")
        await viewer.should_see("Only the first 3 steps of each task are compared.")
        assert len(the(viewer, ui.table).rows) == 3
    finally:
        compare_module.MAX_STEPS = 5000


# -- bad backends ---------------------------------------------------------------------------------
async def test_corrupt_backup_records_are_shown_not_fatal(tmp_path, data: dataset.Dataset) -> None:
    from stepsdk.viewer.data.backup_source import BackupSource
    from tests.viewer.conftest import viewer_user

    dataset.write_backup(tmp_path / "b", data)
    journal = next((tmp_path / "b" / "journal").glob("*.log"))
    with journal.open("ab") as fh:
        fh.write(b'00000000 {"k": "step"}\n')  # a record whose CRC does not match
    async with viewer_user(BackupSource(tmp_path / "b")) as user:
        await user.open("/")
        await user.should_see(marker="problems")
        await user.should_see("1 record(s) in the data could not be read and were skipped")
        assert len(the(user, ui.table).rows) == 6


async def test_empty_database(empty_source: DataSource) -> None:
    from tests.viewer.conftest import viewer_user

    async with viewer_user(empty_source) as user:
        await user.open("/")
        assert the(user, ui.table).rows == []
        await user.should_see("0 tasks")
        await user.open("/stats")
        await user.should_see("No failed steps. 🎉")
        await user.should_see("No step has a duration yet.")
        await user.open("/tasks/anything")
        await user.should_see("Task not found")


@pytest.mark.parametrize("source", ["supabase"], indirect=True)
async def test_backend_outage_shows_clear_messages(viewer: User, stack, source: DataSource) -> None:
    task_module = importlib.import_module("stepsdk.viewer.pages.task")
    task_module.REFRESH_SECONDS = 0.2
    try:
        await viewer.open("/tasks/task-running")
        await viewer.should_see("Step 1 of 2")
        with stack.faults.outage():
            await viewer.should_see("Backend problem")  # the open page says so, keeps its content
            await viewer.should_see("Step 1 of 2")
            for path in ("/", "/tasks/task-ok", "/stats", "/compare?a=task-ok&b=task-fail"):
                await viewer.open(path)
                await viewer.should_see(marker="error-box")
                assert any("unreachable" in t for t in labels(viewer)), path
                assert not any("Traceback" in t or stack.service_role_key in t for t in labels(viewer))
        await viewer.open("/tasks/task-running")
        await viewer.should_see("Step 1 of 2")
    finally:
        task_module.REFRESH_SECONDS = 3.0


async def test_a_screenshot_that_could_not_be_stored_shows_why(tmp_path) -> None:
    """A step whose screenshot was lost (a close that ran out of time, a bad image) shows a
    placeholder with the recorder's reason, never a silent gap (issue #10)."""
    b = dataset._Builder()
    task = dataset._task("lost-shot", "Lost screenshot", "success", timedelta(hours=1), 1000.0)
    b.ds.tasks = [task]
    step = b.step(task, 1, "action", 10.0)
    step["metadata"] = {
        "screenshot_error": {
            "reason": "close_timeout",
            "message": "the tracker closed before this screenshot was encoded",
        }
    }
    async with backup_viewer(tmp_path / "backup", b.ds) as user:
        await user.open("/tasks/lost-shot")
        await user.should_see(
            "screenshot not stored (close_timeout): the tracker closed before this screenshot was encoded"
        )
        user.find(marker="screenshot-missing")


async def test_statistics_page_names_the_steps(viewer: User) -> None:
    """Issue #13: the slowest steps and the error groups show the step's name."""
    await viewer.open("/stats")
    await viewer.should_see("Most frequent errors")
    tables = viewer.find(ui.table).elements
    errors = next(t for t in tables if any("occurrences" in r for r in t.rows))
    slowest = next(t for t in tables if any("duration" in r for r in t.rows))
    assert (slowest.rows[0]["step_number"], slowest.rows[0]["name"]) == (3, "Tap Buy")
    assert {r["error_message"]: r["step"] for r in errors.rows}["bad coordinates"] == "Tap Pay"
    assert any(c["name"] == "name" for c in slowest.props["columns"])
    assert any(c["name"] == "step" for c in errors.props["columns"])

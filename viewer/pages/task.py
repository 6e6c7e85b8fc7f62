"""One task (``/tasks/{task_id}``): header, paged timeline, step detail with the screenshot,
lightbox, keyboard stepping (j/k, arrows), playback, charts, live refresh and exports."""

from __future__ import annotations

import logging
from typing import Any

from nicegui import ui

from ..data.base import DataSource, Row
from ..export import read_report, report_json, steps_csv
from . import _overlay
from ._common import (
    PAGE_TIMEOUT,
    STEP_TYPE_STYLE,
    FetchError,
    cut,
    empty_box,
    error_box,
    fetch,
    fmt_ms,
    fmt_rate,
    fmt_ts,
    frame,
    json_block,
    screenshot_url,
    status_badge,
    url_param,
)
from ._delete_button import delete_button

log = logging.getLogger("viewer.pages.task")
PER_PAGE = 50
REFRESH_SECONDS = 3.0
PLAY_SECONDS = 1.2


def action_name(step: Row) -> str:
    data = step.get("step_data")
    if isinstance(data, dict):
        action = data.get("action")
        if isinstance(action, dict):
            action = action.get("action") or action.get("type")
        if isinstance(action, str):
            return action[:60]
    return ""


class TaskView:
    def __init__(self, source: DataSource, task_id: str, start_step: int = 0) -> None:
        self.source = source
        self.start_step = start_step
        self.task_id = task_id
        self.task: Row = {}
        self.total = 0
        self.page = 1
        self.steps: list[Row] = []
        self.shots: dict[str, Row] = {}
        self.selected = 0
        self.entries: dict[int, ui.element] = {}
        self.lightbox: ui.dialog | None = None
        self.banner: ui.column | None = None
        self.play_timer: ui.timer | None = None
        self.empty_note: ui.card | None = None

    # -- page ---------------------------------------------------------------------------------
    async def build(self) -> None:
        frame("Task", self.source.description)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-3"):
            try:
                task = await fetch(self.source.get_task, self.task_id)  # None for an impossible id too
            except FetchError as exc:
                error_box(str(exc), title="Cannot load this task")
                return None
            if task is None:
                return self._not_found()
            self.task = task
            self.total = int(task.get("total_steps") or 0)
            self.banner = ui.column().classes("w-full")
            self.header_box = ui.column().classes("w-full")
            with self.header_box:
                self._header()
            self.empty_note = empty_box("This task has no steps recorded (yet).") if self.total == 0 else None
            with ui.row().classes("w-full gap-4 items-start no-wrap"):
                with ui.column().classes("w-1/2 min-w-0 gap-2"):
                    self.pager_box = ui.row().classes("w-full items-center")
                    self.timeline_box = ui.column().classes("w-full")
                with ui.column().classes("w-1/2 min-w-0 sticky top-16"):
                    self.detail_box = ui.card().classes("w-full").mark("detail")
            self.charts_box = ui.row().classes("w-full gap-4")
        self.lightbox = ui.dialog().props("maximized")
        ui.keyboard(on_key=self._on_key)
        if self.total:
            # step numbers are 1-based and dense in practice: step N sits at index N-1
            first = max(0, min(self.start_step - 1, self.total - 1)) if self.start_step > 0 else 0
            self.selected = first
            await self._load_page(first // PER_PAGE + 1)
            self._render_detail()
        # Timers last: a timer waits for the browser to connect, which makes NiceGUI send the page
        # as built so far, so everything awaited above must be done by now.
        self.play_timer = ui.timer(PLAY_SECONDS, self._play_tick, active=False)
        ui.timer(0.05, self._load_charts, once=True)  # charts after the page is usable
        if self.selected:
            ui.timer(0.05, self._scroll_to_selected, once=True)  # ?step=N: bring it into view
        if task.get("status") == "running":
            ui.timer(REFRESH_SECONDS, self._refresh_running)
        return None

    def _not_found(self) -> None:
        with ui.card().classes("w-full bg-amber-50 border border-amber-300").mark("not-found"):
            ui.label("Task not found").classes("text-xl font-bold text-amber-900")
            ui.label(f"No task has the id: {cut(self.task_id, 200)}").classes("font-mono break-all text-amber-800")
            ui.link("Back to the task list", "/")

    def _header(self) -> None:
        t = self.task
        with ui.card().classes("w-full"):
            with ui.row().classes("w-full items-center gap-3"):
                status_badge(t.get("status")).mark("status")
                ui.label(str(t.get("title") or "(untitled task)")).classes("text-2xl font-bold break-all")
                ui.space()
                ui.button("Export JSON", icon="data_object", on_click=self.export_json).props("outline dense")
                ui.button("Steps CSV", icon="table_view", on_click=self.export_csv).props("outline dense")
                ui.button("HTML report", icon="description", on_click=self.export_html).props("outline dense")
                ui.button("Animation", icon="movie", on_click=self.export_gif).props("outline dense")
                other = ui.input("Compare with task id").props("dense outlined").classes("w-56")
                ui.button("Compare", icon="compare_arrows", on_click=lambda: ui.navigate.to(
                    f"/compare?a={url_param(self.task_id)}&b={url_param(other.value or '')}")).props("outline dense")
                delete_button(self.source, self.task_id, steps=self.total)  # only when the key may delete
            ui.label(f"id: {self.task_id}").classes("font-mono text-gray-600 break-all")
            with ui.row().classes("gap-6 text-sm"):
                for label, value in (
                    ("Agent", t.get("agent") or "–"), ("Started", fmt_ts(t.get("started_at"))),
                    ("Finished", fmt_ts(t.get("finished_at"))),
                    ("Duration", fmt_ms(t.get("duration_ms")) if t.get("finished_at") else "running…"),
                    ("Steps", str(t.get("total_steps") or 0)), ("Succeeded", str(t.get("successful_steps") or 0)),
                    ("Failed", str(t.get("failed_steps") or 0)), ("Success rate", fmt_rate(t.get("success_rate"))),
                    ("Step time", fmt_ms(t.get("total_duration_ms"))), ("Screenshots", str(t.get("screenshots_count") or 0)),
                ):
                    with ui.column().classes("gap-0"):
                        ui.label(label).classes("text-xs text-gray-500")
                        ui.label(value).classes("font-medium")
            if t.get("result"):
                ui.label(f"Result: {t['result']}").classes("text-green-800 break-all")
            if t.get("error_message"):
                ui.label(f"Error: {t['error_message']}").classes("text-red-700 font-medium break-all")
            if t.get("description"):
                ui.label(str(t["description"])).classes("text-gray-700 break-all")

    # -- timeline -----------------------------------------------------------------------------
    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))

    async def _load_page(self, page: int) -> bool:
        try:
            steps, total = await fetch(self.source.get_steps, self.task_id, page, PER_PAGE)
            ids = [str(s["id"]) for s in steps if s.get("screenshot_path") and s.get("id")]
            shots = await fetch(self.source.get_screenshots, self.task_id, ids) if ids else []
        except FetchError as exc:
            self._show_banner(str(exc))
            return False
        self._clear_banner()
        self.page, self.steps, self.total = page, steps, max(total, self.total)
        self.shots = {str(s.get("step_id")): s for s in shots}
        self._render_timeline()
        return True

    def _render_timeline(self) -> None:
        self.pager_box.clear()
        with self.pager_box:
            ui.label(f"Steps {(self.page - 1) * PER_PAGE + 1}–{(self.page - 1) * PER_PAGE + len(self.steps)} "
                     f"of {self.total}").classes("text-gray-600")
            ui.space()
            if self.pages > 1:
                ui.pagination(1, self.pages, direction_links=True, value=self.page,
                              on_change=lambda e: self._goto_page(e.value)).props("max-pages=7 boundary-numbers")
            ui.label("j/k or arrows: step · p: play screenshots").classes("text-xs text-gray-400")
        self.timeline_box.clear()
        self.entries = {}
        with self.timeline_box, ui.timeline(side="right", layout="dense").classes("w-full"):
            for i, step in enumerate(self.steps):
                self._entry((self.page - 1) * PER_PAGE + i, step)
        self._highlight()

    async def _goto_page(self, page: int) -> None:
        if page != self.page and await self._load_page(page):
            self.selected = (page - 1) * PER_PAGE
            self._render_detail()

    def _entry(self, index: int, step: Row) -> None:
        icon, color = STEP_TYPE_STYLE.get(str(step.get("step_type")), ("help", "grey"))
        failed = not step.get("success", True)
        color = "negative" if failed else color
        body_classes = "w-full gap-1 rounded p-2 cursor-pointer" + (" bg-red-50 border-l-4 border-red-500" if failed else "")
        # the title sits beside the dot (an empty title would leave a gap); the body repeats
        # nothing of it but is what tests and clicks use
        title = f"#{step.get('step_number')} {step.get('step_type')}"
        with ui.timeline_entry(title=title, icon=icon, color=color) as entry, \
                ui.column().classes(body_classes) as body:
                body.on("click", lambda _=None, i=index: self.select(i))
                with ui.row().classes("items-center gap-2"):
                    name = action_name(step)
                    if name:
                        ui.badge(name, color="indigo").props("outline")
                    ui.label(fmt_ms(step.get("duration_ms"))).classes("text-xs text-gray-500")
                    ui.label(fmt_ts(step.get("started_at") or step.get("created_at"))).classes("text-xs text-gray-400")
                    if failed:
                        ui.badge("FAILED", color="negative")
                with ui.row().classes("w-full no-wrap gap-2"):
                    if step.get("screenshot_path"):
                        ui.image(screenshot_url(str(step["screenshot_path"]), fallback=True)).classes(
                            "w-12 h-20 shrink-0 rounded border cursor-zoom-in").props(
                            "fit=cover loading=lazy no-spinner").mark("thumbnail").on(
                            "click.stop", lambda _=None, i=index: self._open_at(i))
                    with ui.column().classes("gap-0 min-w-0"):
                        if step.get("thinking"):
                            ui.label(_short(step["thinking"], 280)).classes("text-sm text-gray-700 break-words")
                        if failed:
                            ui.label(f"{step.get('error_type') or 'Error'}: {_short(step.get('error_message'), 200)}"
                                     ).classes("text-sm text-red-700 font-medium break-all")
                if failed and (step.get("error_message") or step.get("stack_trace")):
                    with ui.expansion("Error details", icon="bug_report").classes("w-full text-sm"):
                        _error_details(step)
        self.entries[index] = body
        entry.props(f'id="step-{step.get("step_number")}"')

    def _highlight(self) -> None:
        for index, body in self.entries.items():
            if index == self.selected:
                body.classes(add="ring-2 ring-indigo-500")
            else:
                body.classes(remove="ring-2 ring-indigo-500")

    # -- selection ----------------------------------------------------------------------------
    async def select(self, index: int) -> None:
        if not self.total:
            return
        index = max(0, min(index, self.total - 1))
        page = index // PER_PAGE + 1
        if page != self.page and not await self._load_page(page):
            return
        self.selected = index
        self._highlight()
        self._render_detail()
        self._scroll_to_selected()
        if self.lightbox is not None and self.lightbox.value:
            self.open_lightbox()

    def _scroll_to_selected(self) -> None:
        body = self.entries.get(self.selected)
        if body is not None:
            ui.run_javascript(f'document.getElementById("c{body.id}")?.scrollIntoView({{block: "nearest"}})')

    def current(self) -> Row | None:
        offset = self.selected - (self.page - 1) * PER_PAGE
        return self.steps[offset] if 0 <= offset < len(self.steps) else None

    async def _on_key(self, e: Any) -> None:
        if not e.action.keydown:
            return
        key = str(e.key)
        if key in ("j", "ArrowDown", "ArrowRight"):
            await self.select(self.selected + 1)
        elif key in ("k", "ArrowUp", "ArrowLeft"):
            await self.select(self.selected - 1)
        elif key == "p":
            await self.toggle_play()
        elif key == "Enter" and self.current() and self.current().get("screenshot_path"):
            self.open_lightbox()

    async def toggle_play(self) -> None:
        """Play is a slideshow of the steps that have a screenshot, one every PLAY_SECONDS."""
        if self.play_timer is None:
            return
        if self.play_timer.active:
            self.play_timer.active = False
            self._render_detail()
            return
        if await self._next_shot(self.selected) is None:  # at or past the last one: replay
            first = await self._next_shot(-1)
            if first is None:
                ui.notify("No screenshots to play in this task")
                return
            self.play_timer.active = True
            await self.select(first)
            return
        self.play_timer.active = True
        self._render_detail()

    async def _play_tick(self) -> None:
        nxt = await self._next_shot(self.selected)
        if nxt is None:
            self.play_timer.active = False
            self._render_detail()
            return
        await self.select(nxt)

    async def _next_shot(self, after: int) -> int | None:
        """The index of the first step after ``after`` that has a screenshot, or None. Pages
        ahead as needed: the shown page is reused, later ones are read without being shown."""
        page = max(after + 1, 0) // PER_PAGE + 1
        while page <= self.pages:
            rows = self.steps if page == self.page else await self._page_rows(page)
            if rows is None:
                return None
            first = (page - 1) * PER_PAGE
            for offset, step in enumerate(rows):
                if first + offset > after and step.get("screenshot_path"):
                    return first + offset
            page += 1
        return None

    async def _page_rows(self, page: int) -> list[Row] | None:
        try:
            steps, _ = await fetch(self.source.get_steps, self.task_id, page, PER_PAGE)
        except FetchError as exc:
            self._show_banner(str(exc))
            return None
        return steps

    # -- detail -------------------------------------------------------------------------------
    def _render_detail(self) -> None:
        self.detail_box.clear()
        step = self.current()
        with self.detail_box:
            if step is None:
                ui.label("No step selected.").classes("text-gray-500")
                return
            failed = not step.get("success", True)
            with ui.row().classes("w-full items-center gap-2"):
                ui.button(icon="chevron_left", on_click=lambda: self.select(self.selected - 1)).props(
                    "flat dense round").tooltip("previous (k)")
                ui.label(f"Step {step.get('step_number')} of {self.total}").classes("text-lg font-bold").mark(
                    "step-title")
                ui.button(icon="chevron_right", on_click=lambda: self.select(self.selected + 1)).props(
                    "flat dense round").tooltip("next (j)")
                playing = bool(self.play_timer and self.play_timer.active)
                ui.button("Pause" if playing else "Play", icon="pause" if playing else "play_arrow",
                          on_click=self.toggle_play).props("dense outline").mark("play").tooltip(
                    "play the steps that have a screenshot (p)")
                ui.space()
                ui.label(f"{step.get('step_type')} · {fmt_ms(step.get('duration_ms'))}").classes("text-gray-600")
                ui.badge("failed" if failed else "ok", color="negative" if failed else "positive")
            if step.get("screenshot_path"):
                self._screenshot(step, max_height="60vh", clickable=True)
            if failed:
                with ui.expansion(f"{step.get('error_type') or 'Error'}: {_short(step.get('error_message'), 120)}",
                                  icon="error", value=True).classes("w-full bg-red-50 text-red-800"):
                    _error_details(step)
            if step.get("thinking"):
                ui.label("Thinking").classes("text-xs text-gray-500 uppercase")
                ui.label(str(step["thinking"])[:20_000]).classes("whitespace-pre-wrap break-words text-sm")
            ui.label("Action (step_data)").classes("text-xs text-gray-500 uppercase")
            json_block(step.get("step_data"))
            if step.get("action_result") is not None:
                ui.label("Result").classes("text-xs text-gray-500 uppercase")
                json_block(step.get("action_result"))
            if step.get("metadata"):
                with ui.expansion("Metadata").classes("w-full text-sm"):
                    json_block(step.get("metadata"))

    def _screenshot(self, step: Row, *, max_height: str, clickable: bool) -> None:
        path = str(step["screenshot_path"])
        shot = self.shots.get(str(step.get("id"))) or {}
        meta = shot.get("metadata") if isinstance(shot.get("metadata"), dict) else {}
        width, height = _pos(meta.get("width")), _pos(meta.get("height"))
        svg = ""
        # Fit inside the column and max_height without distortion: the width follows from the
        # height and the stored aspect ratio (a phone screenshot is tall, a desktop one wide).
        style = f"height: {max_height}; width: auto"
        if width and height:
            marks = _overlay.action_marks(step.get("step_data"), width, height,
                                          _pos(meta.get("original_width")), _pos(meta.get("original_height")))
            svg = _overlay.overlay_svg(marks, width, height)
            ratio = width / height
            style = f"width: min(100%, calc({max_height} * {ratio:.5f})); aspect-ratio: {width:.0f} / {height:.0f}"
        image = ui.interactive_image(screenshot_url(path, fallback=True), content=svg).classes(
            "step-shot self-center").style(style).mark("screenshot")
        if clickable:
            image.on("click", self.open_lightbox)
            image.classes("cursor-zoom-in")
            image.tooltip("Click (or Enter) for full size")

    async def _open_at(self, index: int) -> None:
        await self.select(index)
        self.open_lightbox()

    def open_lightbox(self) -> None:
        step = self.current()
        if self.lightbox is None or step is None:
            return
        if not step.get("screenshot_path") and not self.lightbox.value:
            return  # nothing to enlarge; while stepping inside the open lightbox, say so instead
        self.lightbox.clear()
        with self.lightbox, ui.card().classes("w-full h-full bg-gray-900 items-center").mark("lightbox"):
            with ui.row().classes("w-full items-center text-white"):
                ui.label(f"Step {step.get('step_number')} · {step.get('step_type')} {action_name(step)}").classes(
                    "text-lg")
                ui.space()
                ui.button(icon="chevron_left", on_click=lambda: self.select(self.selected - 1)).props("flat round color=white")
                ui.button(icon="chevron_right", on_click=lambda: self.select(self.selected + 1)).props("flat round color=white")
                ui.button(icon="close", on_click=self.lightbox.close).props("flat round color=white").mark("close")
            with ui.element("div").classes("flex-grow w-full flex justify-center items-center overflow-auto"):
                if step.get("screenshot_path"):
                    self._screenshot(step, max_height="85vh", clickable=False)
                else:
                    ui.label("No screenshot for this step").classes("text-gray-300 text-xl")
        self.lightbox.open()

    # -- charts, refresh, export ----------------------------------------------------------------
    async def _load_charts(self) -> None:
        if not self.total:
            return
        try:
            durations = await fetch(self.source.step_durations, self.task_id)
            types = await fetch(self.source.step_type_breakdown, self.task_id)
        except FetchError as exc:
            self._show_banner(f"Charts unavailable: {exc}")
            return
        self.charts_box.clear()
        with self.charts_box:
            with ui.card().classes("flex-grow min-w-[28rem]"):
                ui.label("Duration per step").classes("font-bold")
                self.duration_chart = ui.echart(duration_chart_options(durations)).classes("w-full h-64")
                self.duration_chart.on_point_click(self._chart_click)
            with ui.card().classes("w-96"):
                ui.label("Step types").classes("font-bold")
                self.types_chart = ui.echart(type_chart_options(types)).classes("w-full h-64")

    async def _chart_click(self, e: Any) -> None:
        # bars: the point's index is the step's position; red points carry [position, ms]
        position = e.data[0] if e.series_type == "scatter" and isinstance(e.data, list) else e.data_index
        if isinstance(position, int):
            await self.select(position)

    async def _refresh_running(self) -> None:
        if self.task.get("status") != "running":
            return
        try:
            task = await fetch(self.source.get_task, self.task_id)
        except FetchError as exc:
            self._show_banner(f"Live refresh paused: {exc}. Retrying…")
            return
        if task is None:
            return
        self._clear_banner()
        grew = int(task.get("total_steps") or 0) != self.total
        self.task = task
        self.header_box.clear()
        with self.header_box:
            self._header()
        if grew:
            self.total = int(task.get("total_steps") or 0)
            if self.empty_note is not None:
                self.empty_note.delete()
                self.empty_note = None
            last_page = self.pages
            follow = self.selected >= len(self.steps) + (self.page - 1) * PER_PAGE - 1
            if self.page == last_page or follow:
                await self._load_page(last_page if follow else self.page)
                if follow:
                    self.selected = self.total - 1
                self._render_detail()
            await self._load_charts()

    def _show_banner(self, message: str) -> None:
        if self.banner is None:
            ui.notify(message, type="negative")
            return
        self.banner.clear()
        with self.banner:
            error_box(message, title="Backend problem")

    def _clear_banner(self) -> None:
        if self.banner is not None:
            self.banner.clear()

    async def _report(self) -> dict[str, Any] | None:
        try:
            return await fetch(read_report, self.source, self.task)
        except FetchError as exc:
            ui.notify(f"Export failed: {exc}", type="negative")
            return None

    async def export_json(self) -> None:
        report = await self._report()
        if report is not None:
            ui.download.content(report_json(report), f"task-{_file_safe(self.task_id)}.json", "application/json")

    async def export_csv(self) -> None:
        try:
            steps = await fetch(self.source.iter_all_steps, self.task_id)
        except FetchError as exc:
            ui.notify(f"Export failed: {exc}", type="negative")
            return
        ui.download.content(steps_csv(steps), f"task-{_file_safe(self.task_id)}-steps.csv", "text/csv")


    async def export_html(self) -> None:
        """One self-contained HTML file (``stepsdk export TASK --format html``)."""
        from ..share_exports import html_report_bytes

        try:
            data = await fetch(html_report_bytes, self.source, self.task)
        except FetchError as exc:
            ui.notify(f"Export failed: {exc}", type="negative")
            return
        ui.download.content(data, f"task-{_file_safe(self.task_id)}.html", "text/html")

    async def export_gif(self) -> None:
        """The screenshots with the action overlay as an animated GIF (``--format gif``)."""
        from stepsdk.share.animation import AnimationError

        from ..share_exports import animation_bytes

        if not self.task.get("screenshots_count"):
            ui.notify("No screenshots to animate in this task")
            return
        try:
            data = await fetch(animation_bytes, self.source, self.task)
        except (FetchError, AnimationError) as exc:
            ui.notify(f"Export failed: {exc}", type="negative")
            return
        ui.download.content(data, f"task-{_file_safe(self.task_id)}.gif", "image/gif")


def duration_chart_options(durations: list[Row]) -> dict[str, Any]:
    """Bars of plain numbers (10,000 steps stay a small payload) and the failed steps as red
    points on top, so failures stand out at any zoom."""
    values = [r.get("duration_ms") if isinstance(r.get("duration_ms"), int | float) else 0 for r in durations]
    failed = [[i, values[i]] for i, r in enumerate(durations) if not r.get("success", True)]
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "data": ["duration", "failed"]},
        "grid": {"left": 60, "right": 16, "top": 30, "bottom": 40},
        "xAxis": {"type": "category", "data": [r.get("step_number") for r in durations], "name": "step"},
        "yAxis": {"type": "value", "name": "ms"},
        "dataZoom": [{"type": "inside"}] if len(durations) > 100 else [],
        "series": [
            {"name": "duration", "type": "bar", "data": values, "color": "#6366f1", "large": len(values) > 2000},
            {"name": "failed", "type": "scatter", "data": failed, "color": "#ef4444", "symbolSize": 8},
        ],
    }


def type_chart_options(types: list[Row]) -> dict[str, Any]:
    return {
        "animation": False,
        "tooltip": {"trigger": "item"},
        "series": [{"type": "pie", "radius": ["35%", "70%"],
                    "data": [{"name": str(r.get("step_type")), "value": r.get("steps") or 0} for r in types]}],
    }


def _error_details(step: Row) -> None:
    ui.label(f"Type: {step.get('error_type') or '–'}").classes("font-mono text-sm")
    ui.label(str(step.get("error_message") or "")[:20_000]).classes("whitespace-pre-wrap break-all text-sm")
    if step.get("stack_trace"):
        ui.label(str(step["stack_trace"])[:50_000]).classes(
            "font-mono text-xs whitespace-pre overflow-auto bg-gray-900 text-gray-100 p-2 rounded w-full max-h-72")


def _short(value: Any, limit: int) -> str:
    return cut(" ".join(str(value or "").split()), limit)


def _pos(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def _file_safe(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)[:80]


def register(source: DataSource) -> None:
    @ui.page("/tasks/{task_id:path}", response_timeout=PAGE_TIMEOUT)
    async def task_page(task_id: str, step: str = "") -> None:
        """``?step=N`` opens the task at step number N (links from the statistics page); a
        malformed N is ignored rather than answered with a validation error page."""
        start = int(step) if step.isdigit() and len(step) <= 9 else 0
        await TaskView(source, task_id, start_step=start).build()

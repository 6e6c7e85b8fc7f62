"""One task (``/tasks/{task_id}``): header, paged timeline, step detail with the screenshot,
lightbox, keyboard stepping (j/k, arrows), playback, charts, live refresh and exports."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from nicegui import ui

from ..data.base import STEP_TYPES, DataSource, Row
from ..export import XLSX_TYPE, read_report, report_json, report_xlsx, steps_csv
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
    fmt_span,
    fmt_ts,
    frame,
    interruption,
    json_block,
    screenshot_url,
    stale_for,
    status_badge,
    step_name,
    to_json_text,
    url_param,
)
from ._delete_button import delete_button

log = logging.getLogger("stepsdk.viewer.pages.task")
PER_PAGE = 50
REFRESH_SECONDS = 3.0
PLAY_SECONDS = 1.2
_SCROLL_JS = """(() => {
  const e = document.getElementById("c%s"); if (!e) return;
  const box = e.closest(".timeline-scroll");
  if (!box || box.scrollHeight <= box.clientHeight) { e.scrollIntoView({block: "nearest"}); return; }
  const r = e.getBoundingClientRect(), b = box.getBoundingClientRect();
  if (r.top < b.top || r.bottom > b.bottom) box.scrollTop += r.top - b.top - b.height / 3;
})()"""
_JSON_CLASSES = (
    "font-mono text-xs whitespace-pre-wrap break-words bg-gray-100 rounded p-2 w-full overflow-auto"
)


FILTER_KINDS = ("failed", *STEP_TYPES)
SEARCH_FIELDS = ("name", "thinking", "error_type", "error_message", "step_data", "action_result")


def action_name(step: Row) -> str:
    """The step's label: its ``name``, else one derived from its data (``GET /x → 404``, ``Tap``)."""
    return step_name(step)


def step_matches(step: Row, needle: str) -> bool:
    """Whether ``needle`` (casefolded) occurs in the step's name, thinking, error or data."""
    if needle in action_name(step).casefold():
        return True
    for key in SEARCH_FIELDS:
        value = step.get(key)
        if value is None:
            continue
        text = value if isinstance(value, str) else to_json_text(value, limit=200_000)
        if needle in text.casefold():
            return True
    return False


def timeline_title(step: Row) -> str:
    name = action_name(step)
    return f"#{step.get('step_number')} {name or step.get('step_type')}"


def page_query(step_number: Any, kind: str = "", query: str = "") -> str:
    """The task page's query string for this state (what Back and shared links restore)."""
    parts = [f"step={step_number}"] if step_number else []
    if kind:
        parts.append(f"filter={url_param(kind)}")
    if query:
        parts.append(f"q={url_param(query)}")
    return "?" + "&".join(parts) if parts else ""


class TaskView:
    def __init__(
        self, source: DataSource, task_id: str, start_step: int = 0, kind: str = "", query: str = ""
    ) -> None:
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
        self.refresh_timer: ui.timer | None = None
        self.empty_note: ui.card | None = None
        # the whole run in brief (step_number, step_type, duration_ms, success): n/N, filters, minimap
        self.index: list[Row] = []
        # filters: a step type or "failed", and text searched in the steps; matches are positions
        self.kind = kind if kind in FILTER_KINDS else ""
        self.query = query.strip()[:200]
        self.matches: list[int] | None = None
        self.all_rows: list[Row] | None = None  # every step, loaded once a filter needs them
        self.fpage = 1

    # -- page ---------------------------------------------------------------------------------
    async def build(self) -> None:
        frame("Task", self.source.description)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-2 md:p-4 gap-2"):
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
            with ui.element("div").classes("w-full flex flex-col md:flex-row gap-3 items-start"):
                with (
                    ui.column()
                    .classes("w-full md:w-[25rem] md:shrink-0 min-w-0 gap-1")
                    .mark("timeline-column")
                ):
                    self.tools_box = ui.row().classes("w-full items-center gap-2 no-wrap")
                    self.minimap_box = ui.element("div").classes("w-full")
                    self.pager_box = ui.row().classes("w-full items-center gap-1")
                    self.timeline_box = (
                        ui.column()
                        .classes(
                            "timeline-scroll w-full overflow-auto max-h-[45vh] md:max-h-[calc(100vh-290px)] pr-1"
                        )
                        .mark("timeline")
                    )
                self.detail_box = ui.card().classes("w-full md:flex-1 min-w-0 p-3 gap-2").mark("detail")
            self.charts_box = ui.element("div").classes("w-full flex flex-col md:flex-row gap-4")
        self.lightbox = ui.dialog().props("maximized")
        ui.keyboard(on_key=self._on_key)
        if self.total:
            # step numbers are 1-based and dense in practice: step N sits at index N-1
            first = max(0, min(self.start_step - 1, self.total - 1)) if self.start_step > 0 else 0
            self.selected = first
            try:
                self.index = await fetch(self.source.step_durations, self.task_id)
            except FetchError as exc:
                self._show_banner(f"Step overview unavailable: {exc}")
            self._tools()
            self._minimap()
            if self.kind or self.query:
                await self._apply_filter(keep_selection=True)
            else:
                await self._load_page(first // PER_PAGE + 1)
            self._render_detail()
        # Timers last: a timer waits for the browser to connect, which makes NiceGUI send the page
        # as built so far, so everything awaited above must be done by now.
        self.play_timer = ui.timer(PLAY_SECONDS, self._play_tick, active=False)
        ui.timer(0.05, self._load_charts, once=True)  # charts after the page is usable
        if self.selected:
            ui.timer(0.05, self._scroll_to_selected, once=True)  # ?step=N: bring it into view
        if task.get("status") == "running" and stale_for(task) is None:
            self.refresh_timer = ui.timer(REFRESH_SECONDS, self._refresh_running)
        return None

    def _not_found(self) -> None:
        with ui.card().classes("w-full bg-amber-50 border border-amber-300").mark("not-found"):
            ui.label("Task not found").classes("text-xl font-bold text-amber-900")
            ui.label(f"No task has the id: {cut(self.task_id, 200)}").classes(
                "font-mono break-all text-amber-800"
            )
            ui.link("Back to the task list", "/")

    def _header(self) -> None:
        t = self.task
        with ui.card().classes("w-full p-3 gap-1"):
            with ui.row().classes("w-full items-center gap-2"):
                status_badge(t.get("status")).mark("status")
                idle = stale_for(t)
                if idle is not None:
                    ui.badge(f"stale · no new step for {fmt_span(idle)}", color="orange").classes(
                        "text-sm"
                    ).mark("stale").tooltip(
                        "Still marked running, but nothing was recorded for a while: the agent may have died. "
                        "The page stopped refreshing it."
                    )
                ui.label(str(t.get("title") or "(untitled task)")).classes(
                    "text-xl font-bold break-words [overflow-wrap:anywhere] min-w-0"
                ).mark("task-title")
                ui.space()
                ui.button("Copy link", icon="link", on_click=self.copy_link).props("outline dense").mark(
                    "copy-link"
                )
                ui.button("Export JSON", icon="data_object", on_click=self.export_json).props("outline dense")
                ui.button("Steps CSV", icon="table_view", on_click=self.export_csv).props("outline dense")
                ui.button("Excel", icon="grid_on", on_click=self.export_xlsx).props("outline dense")
                ui.button("HTML report", icon="description", on_click=self.export_html).props("outline dense")
                ui.button("Animation", icon="movie", on_click=self.export_gif).props("outline dense")
                with (
                    ui.button("Compare", icon="compare_arrows").props("outline dense"),
                    ui.menu().classes("p-2"),
                    ui.row().classes("items-center no-wrap"),
                ):
                    other = ui.input("Compare with task id").props("dense outlined autofocus").classes("w-64")
                    ui.button(
                        "Go",
                        on_click=lambda: ui.navigate.to(
                            f"/compare?a={url_param(self.task_id)}&b={url_param(other.value or '')}"
                        ),
                    ).props("dense")
                delete_button(self.source, self.task_id, steps=self.total)  # only when the key may delete
            why = interruption(t)
            if why:
                ui.label(why).classes("text-orange-800 font-medium break-all").mark("interruption")
            with ui.row().classes("gap-x-4 gap-y-0 text-sm items-baseline"):
                ui.label(f"id: {self.task_id}").classes("font-mono text-gray-600 break-all")
                for label, value in (
                    ("Agent", t.get("agent") or "–"),
                    ("Started", fmt_ts(t.get("started_at"))),
                    ("Duration", fmt_ms(t.get("duration_ms")) if t.get("finished_at") else "running…"),
                    ("Steps", str(t.get("total_steps") or 0)),
                    ("Failed", str(t.get("failed_steps") or 0)),
                    ("Success", fmt_rate(t.get("success_rate"))),
                    ("Step time", fmt_ms(t.get("total_duration_ms"))),
                    ("Screenshots", str(t.get("screenshots_count") or 0)),
                ):
                    with ui.row().classes("gap-1 items-baseline no-wrap"):
                        ui.label(label).classes("text-xs text-gray-500")
                        ui.label(value).classes("font-medium")
            self._metadata_chips(t.get("metadata"))
            if t.get("result"):
                ui.label(f"Result: {cut(str(t['result']), 2000)}").classes("text-green-800 break-all")
            if t.get("error_message"):
                ui.label(f"Error: {cut(str(t['error_message']), 2000)}").classes(
                    "text-red-700 font-medium break-all"
                )
            if t.get("description"):
                ui.label(cut(str(t["description"]), 2000)).classes("text-gray-700 break-all")

    @staticmethod
    def _metadata_chips(meta: Any) -> None:
        """The task's metadata (model, device, prompt version, user fields) as key: value chips."""
        if not isinstance(meta, dict) or not meta:
            return
        with ui.row().classes("gap-1 items-center").mark("task-metadata"):
            ui.icon("sell", color="indigo").classes("text-sm")
            for key, value in list(meta.items())[:40]:
                if key in ("interrupted", "abandoned"):
                    continue  # shown above as a sentence
                text = value if isinstance(value, str) else to_json_text(value, limit=200).replace("\n", " ")
                ui.label(f"{cut(str(key), 60)}: {cut(' '.join(str(text).split()), 120)}").classes(
                    "text-xs bg-indigo-50 text-indigo-900 rounded px-2 py-0.5 break-all"
                )

    # -- tools: filter, search, minimap ------------------------------------------------------------
    def _tools(self) -> None:
        self.tools_box.clear()
        with self.tools_box:
            options = {"": "all steps", "failed": "failed only", **{t: f"{t} only" for t in STEP_TYPES}}
            ui.select(
                options, value=self.kind, on_change=lambda e: self._set_filter(e.value or "", self.query)
            ).props("dense outlined options-dense").classes("w-36").mark("step-filter")
            ui.input(
                placeholder="Search in this task",
                value=self.query,
                on_change=lambda e: self._set_filter(self.kind, e.value or ""),
            ).props("dense outlined clearable debounce=300").classes("flex-1 min-w-0").mark("step-search")

    def _minimap(self) -> None:
        """A strip of every step's duration (failures red) over the whole run: click to jump."""
        self.minimap_box.clear()
        if len(self.index) < 2:
            return
        with self.minimap_box:
            chart = ui.echart(minimap_options(self.index)).classes("w-full h-10").mark("minimap")
            chart.on_point_click(self._minimap_click)

    async def _minimap_click(self, e: Any) -> None:
        if e.series_type == "bar" and isinstance(e.data_index, int):
            await self.select(e.data_index)

    async def _set_filter(self, kind: str, query: str) -> None:
        self.kind = kind if kind in FILTER_KINDS else ""
        self.query = query.strip()[:200]
        await self._apply_filter(keep_selection=True)
        self._render_detail()
        self._push_url()

    async def _apply_filter(self, *, keep_selection: bool) -> None:
        if not self.kind and not self.query:
            self.matches = None
            await self._load_page(self.selected // PER_PAGE + 1)
            return
        if self.all_rows is None:
            try:
                self.all_rows = await fetch(self.source.iter_all_steps, self.task_id)
            except FetchError as exc:
                self._show_banner(str(exc))
                return
        needle = self.query.casefold()
        rows = self.all_rows
        self.matches = [
            i
            for i, step in enumerate(rows)
            if (
                not self.kind
                or (
                    not step.get("success", True)
                    if self.kind == "failed"
                    else step.get("step_type") == self.kind
                )
            )
            and (not needle or step_matches(step, needle))
        ]
        if self.matches and not (keep_selection and self.selected in self.matches):
            self.selected = self.matches[0]
        position = self.matches.index(self.selected) if self.selected in self.matches else 0
        self.fpage = position // PER_PAGE + 1
        await self._render_filtered()

    async def _render_filtered(self) -> None:
        assert self.matches is not None and self.all_rows is not None
        shown = [self.all_rows[i] for i in self.matches[(self.fpage - 1) * PER_PAGE : self.fpage * PER_PAGE]]
        await self._load_shots(shown)
        self.pager_box.clear()
        with self.pager_box:
            ui.label(f"{len(self.matches)} of {self.total} steps match").classes(
                "text-gray-600 text-sm"
            ).mark("match-count")
            ui.space()
            pages = max(1, -(-len(self.matches) // PER_PAGE))
            if pages > 1:
                ui.pagination(
                    1,
                    pages,
                    direction_links=True,
                    value=self.fpage,
                    on_change=lambda e: self._goto_fpage(e.value),
                ).props("max-pages=5 boundary-numbers")
        self._fill_timeline(
            list(zip(self.matches[(self.fpage - 1) * PER_PAGE : self.fpage * PER_PAGE], shown, strict=True))
        )
        if not self.matches:
            with self.timeline_box:
                ui.label("No step matches.").classes("text-gray-500 p-2")

    async def _goto_fpage(self, page: int) -> None:
        if page != self.fpage and self.matches:
            self.fpage = page
            self.selected = self.matches[min((page - 1) * PER_PAGE, len(self.matches) - 1)]
            await self._render_filtered()
            self._render_detail()
            self._push_url()

    # -- timeline -----------------------------------------------------------------------------
    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))

    async def _load_shots(self, steps: list[Row]) -> bool:
        ids = [
            str(s["id"])
            for s in steps
            if s.get("screenshot_path") and s.get("id") and str(s["id"]) not in self.shots
        ]
        if not ids:
            return True
        try:
            shots = await fetch(self.source.get_screenshots, self.task_id, ids)
        except FetchError as exc:
            self._show_banner(str(exc))
            return False
        self.shots.update({str(s.get("step_id")): s for s in shots})
        return True

    async def _load_page(self, page: int) -> bool:
        try:
            steps, total = await fetch(self.source.get_steps, self.task_id, page, PER_PAGE)
        except FetchError as exc:
            self._show_banner(str(exc))
            return False
        if not await self._load_shots(steps):
            return False
        self._clear_banner()
        self.page, self.steps, self.total = page, steps, max(total, self.total)
        self._render_timeline()
        return True

    def _render_timeline(self) -> None:
        self.pager_box.clear()
        with self.pager_box:
            ui.label(
                f"Steps {(self.page - 1) * PER_PAGE + 1}–{(self.page - 1) * PER_PAGE + len(self.steps)} "
                f"of {self.total}"
            ).classes("text-gray-600 text-sm")
            ui.space()
            if self.pages > 1:
                ui.pagination(
                    1,
                    self.pages,
                    direction_links=True,
                    value=self.page,
                    on_change=lambda e: self._goto_page(e.value),
                ).props("max-pages=5 boundary-numbers")
        first = (self.page - 1) * PER_PAGE
        self._fill_timeline([(first + i, step) for i, step in enumerate(self.steps)])
        with self.pager_box:
            ui.label("j/k: step · n/N: next/previous failure · p: play · Enter: enlarge").classes(
                "text-xs text-gray-400 w-full"
            )

    def _fill_timeline(self, items: list[tuple[int, Row]]) -> None:
        self.timeline_box.clear()
        self.entries = {}
        with self.timeline_box, ui.timeline(side="right", layout="dense").classes("w-full"):
            for index, step in items:
                self._entry(index, step)
        self._highlight()

    async def _goto_page(self, page: int) -> None:
        if page != self.page and await self._load_page(page):
            self.selected = (page - 1) * PER_PAGE
            self._render_detail()
            self._push_url()

    def _entry(self, index: int, step: Row) -> None:
        icon, color = STEP_TYPE_STYLE.get(str(step.get("step_type")), ("help", "grey"))
        failed = not step.get("success", True)
        color = "negative" if failed else color
        body_classes = "w-full gap-1 rounded p-1 cursor-pointer" + (
            " bg-red-50 border-l-4 border-red-500" if failed else ""
        )
        # the title (number and name) sits beside the dot; the body is what tests and clicks use
        with (
            ui.timeline_entry(title=timeline_title(step), icon=icon, color=color) as entry,
            ui.column().classes(body_classes) as body,
        ):
            body.on("click", lambda _=None, i=index: self.select(i))
            with ui.row().classes("items-center gap-2"):
                ui.label(str(step.get("step_type") or "")).classes("text-xs text-gray-500")
                ui.label(fmt_ms(step.get("duration_ms"))).classes("text-xs text-gray-500")
                if failed:
                    ui.badge("FAILED", color="negative")
            with ui.row().classes("w-full no-wrap gap-2"):
                if step.get("screenshot_path"):
                    ui.image(screenshot_url(str(step["screenshot_path"]), fallback=True)).classes(
                        "w-10 h-16 shrink-0 rounded border cursor-zoom-in"
                    ).props("fit=cover loading=lazy no-spinner").mark("thumbnail").on(
                        "click.stop", lambda _=None, i=index: self._open_at(i)
                    )
                with ui.column().classes("gap-0 min-w-0"):
                    if step.get("thinking"):
                        ui.label(_short(step["thinking"], 160)).classes("text-sm text-gray-700 break-words")
                    if failed:
                        ui.label(
                            f"{step.get('error_type') or 'Error'}: {_short(step.get('error_message'), 160)}"
                        ).classes("text-sm text-red-700 font-medium break-all")
            if failed and (step.get("error_message") or step.get("stack_trace")):
                with ui.expansion("Error details", icon="bug_report").classes("w-full text-sm"):
                    _error_details(step)
        self.entries[index] = body
        entry.props(f'id="step-{step.get("step_number")}"')
        entry.classes("step-entry" + (" step-failed" if failed else ""))

    def _highlight(self) -> None:
        for index, body in self.entries.items():
            if index == self.selected:
                body.classes(add="ring-2 ring-indigo-500 selected-step")
            else:
                body.classes(remove="ring-2 ring-indigo-500 selected-step")

    # -- selection ----------------------------------------------------------------------------
    async def select(self, index: int) -> None:
        if not self.total:
            return
        index = max(0, min(index, self.total - 1))
        if self.matches is not None and self.all_rows is not None:
            index = min(index, len(self.all_rows) - 1)
            if index in self.matches:
                fpage = self.matches.index(index) // PER_PAGE + 1
                if fpage != self.fpage:
                    self.fpage = fpage
                    self.selected = index
                    await self._render_filtered()
            await self._load_shots([self.all_rows[index]])
        else:
            page = index // PER_PAGE + 1
            if page != self.page and not await self._load_page(page):
                return
        self.selected = index
        self._highlight()
        self._render_detail()
        self._scroll_to_selected()
        self._push_url()
        if self.lightbox is not None and self.lightbox.value:
            self.open_lightbox()

    def _push_url(self) -> None:
        """Keep ``?step=N`` (and the filter) in the address bar: a shared link or a reload opens the
        same view. replaceState: stepping does not fill the Back history step by step."""
        step = self.current()
        query = page_query(step.get("step_number") if step else None, self.kind, self.query)
        ui.run_javascript(f"history.replaceState(history.state, '', location.pathname + {json.dumps(query)})")

    def copy_link(self) -> None:
        ui.run_javascript("navigator.clipboard.writeText(location.href).catch(() => {})")
        ui.notify("Link copied")

    def _scroll_to_selected(self) -> None:
        body = self.entries.get(self.selected)
        if body is not None:
            # scroll the timeline's own box, never the page (the detail must stay where it is)
            ui.run_javascript(_SCROLL_JS % body.id)

    def current(self) -> Row | None:
        if self.all_rows is not None and self.matches is not None:
            return self.all_rows[self.selected] if 0 <= self.selected < len(self.all_rows) else None
        offset = self.selected - (self.page - 1) * PER_PAGE
        return self.steps[offset] if 0 <= offset < len(self.steps) else None

    def _neighbour(self, step: int) -> int:
        """The next (+1) or previous (-1) step to go to: among the matches while filtering."""
        if self.matches is None:
            return self.selected + step
        candidates = [i for i in self.matches if (i > self.selected if step > 0 else i < self.selected)]
        if not candidates:
            return self.selected
        return candidates[0] if step > 0 else candidates[-1]

    async def next_failure(self, forward: bool = True) -> None:
        failed = [i for i, r in enumerate(self.index) if not r.get("success", True)]
        after = [i for i in failed if (i > self.selected if forward else i < self.selected)]
        if not after:
            ui.notify("No failed step " + ("after" if forward else "before") + " this one")
            return
        await self.select(after[0] if forward else after[-1])

    async def _on_key(self, e: Any) -> None:
        if not e.action.keydown:
            return
        key = str(e.key)
        if key in ("j", "ArrowDown", "ArrowRight"):
            await self.select(self._neighbour(+1))
        elif key in ("k", "ArrowUp", "ArrowLeft"):
            await self.select(self._neighbour(-1))
        elif key == "n":
            await self.next_failure(forward=not e.modifiers.shift)
        elif key == "N":
            await self.next_failure(forward=False)
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
        if self.all_rows is not None and self.matches is not None:
            return next(
                (i for i, s in enumerate(self.all_rows) if i > after and s.get("screenshot_path")), None
            )
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
        """Saw / thought / did at one glance: the screenshot beside the thinking, the action and
        its result (one column under 768 px)."""
        self.detail_box.clear()
        step = self.current()
        with self.detail_box:
            if step is None:
                ui.label("No step selected.").classes("text-gray-500")
                return
            failed = not step.get("success", True)
            with ui.row().classes("w-full items-center gap-2"):
                ui.button(icon="chevron_left", on_click=lambda: self.select(self._neighbour(-1))).props(
                    "flat dense round"
                ).tooltip("previous (k)")
                ui.label(f"Step {step.get('step_number')} of {self.total}").classes("text-lg font-bold").mark(
                    "step-title"
                )
                ui.button(icon="chevron_right", on_click=lambda: self.select(self._neighbour(+1))).props(
                    "flat dense round"
                ).tooltip("next (j)")
                name = action_name(step)
                if name:
                    ui.label(name).classes("text-lg font-medium text-indigo-800 break-all").mark("step-name")
                ui.space()
                ui.label(f"{step.get('step_type')} · {fmt_ms(step.get('duration_ms'))}").classes(
                    "text-gray-600"
                )
                ui.badge("failed" if failed else "ok", color="negative" if failed else "positive")
                playing = bool(self.play_timer and self.play_timer.active)
                ui.button(
                    "Pause" if playing else "Play",
                    icon="pause" if playing else "play_arrow",
                    on_click=self.toggle_play,
                ).props("dense outline").mark("play").tooltip("play the steps that have a screenshot (p)")
            with ui.element("div").classes("w-full flex flex-col md:flex-row gap-3 items-start"):
                if step.get("screenshot_path"):
                    height = "min(60vh, calc(100vh - 330px))"
                    ratio = self._ratio(step)
                    with (
                        ui.element("div")
                        .classes("shot-box flex justify-center")
                        .style(f"--shot-w: calc({height} * {ratio:.5f})" if ratio else "--shot-w: 45%")
                    ):
                        self._screenshot(step, max_height=height, clickable=True)
                elif _screenshot_problem(step):
                    # A screenshot was recorded but not stored: say why, never a silent gap.
                    with (
                        ui.column()
                        .classes(
                            "shot-box items-center justify-center gap-1 p-4 bg-gray-100 "
                            "border border-dashed border-gray-400 rounded"
                        )
                        .mark("screenshot-missing")
                    ):
                        ui.icon("hide_image", color="grey").classes("text-4xl")
                        ui.label(_screenshot_problem(step)).classes(
                            "text-sm text-gray-700 text-center break-words"
                        )
                with ui.column().classes("flex-1 min-w-0 gap-1 w-full"):
                    if failed:
                        with (
                            ui.expansion(
                                f"{step.get('error_type') or 'Error'}: {_short(step.get('error_message'), 120)}",
                                icon="error",
                                value=True,
                            )
                            .classes("w-full bg-red-50 text-red-800 detail-error")
                            .mark("detail-error")
                        ):
                            _error_details(step)
                    with ui.column().classes("w-full gap-0 detail-thinking").mark("detail-thinking"):
                        ui.label("Thinking").classes("text-xs text-gray-500 uppercase")
                        ui.label(str(step.get("thinking") or "–")[:20_000]).classes(
                            "whitespace-pre-wrap break-words text-sm max-h-40 overflow-auto w-full"
                        )
                    with ui.column().classes("w-full gap-0 detail-action").mark("detail-action"):
                        ui.label("Action (step_data)").classes("text-xs text-gray-500 uppercase")
                        json_block(step.get("step_data")).classes(replace=_JSON_CLASSES + " max-h-52")
                    with ui.column().classes("w-full gap-0 detail-result").mark("detail-result"):
                        ui.label("Result").classes("text-xs text-gray-500 uppercase")
                        if step.get("action_result") is None:
                            ui.label("–").classes("text-sm text-gray-500")
                        else:
                            json_block(step.get("action_result")).classes(replace=_JSON_CLASSES + " max-h-40")
                    if step.get("usage"):
                        ui.label(
                            "Tokens: " + to_json_text(step.get("usage"), 300).replace("\n", " ")
                        ).classes("text-xs text-gray-600")
                    if step.get("metadata"):
                        with ui.expansion("Metadata").classes("w-full text-sm"):
                            json_block(step.get("metadata"))

    def _ratio(self, step: Row) -> float | None:
        shot = self.shots.get(str(step.get("id"))) or {}
        meta = shot.get("metadata") if isinstance(shot.get("metadata"), dict) else {}
        width, height = _pos(meta.get("width")), _pos(meta.get("height"))
        return width / height if width and height else None

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
            marks = _overlay.action_marks(
                step.get("step_data"),
                width,
                height,
                _pos(meta.get("original_width")),
                _pos(meta.get("original_height")),
            )
            svg = _overlay.overlay_svg(marks, width, height)
            ratio = width / height
            style = (
                f"width: min(100%, calc({max_height} * {ratio:.5f})); max-width: 100%; "
                f"aspect-ratio: {width:.0f} / {height:.0f}"
            )
        image = (
            ui.interactive_image(screenshot_url(path, fallback=True), content=svg)
            .classes("step-shot self-center")
            .style(style)
            .mark("screenshot")
        )
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
                ui.label(
                    f"Step {step.get('step_number')} · {step.get('step_type')} {action_name(step)}".strip()
                ).classes("text-lg").mark("lightbox-title")
                ui.space()
                ui.button(icon="chevron_left", on_click=lambda: self.select(self._neighbour(-1))).props(
                    "flat round color=white"
                )
                ui.button(icon="chevron_right", on_click=lambda: self.select(self._neighbour(+1))).props(
                    "flat round color=white"
                )
                ui.button(icon="close", on_click=self.lightbox.close).props("flat round color=white").mark(
                    "close"
                )
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
            durations = self.index or await fetch(self.source.step_durations, self.task_id)
            types = await fetch(self.source.step_type_breakdown, self.task_id)
        except FetchError as exc:
            self._show_banner(f"Charts unavailable: {exc}")
            return
        self.charts_box.clear()
        with self.charts_box:
            with ui.card().classes("w-full md:flex-1 min-w-0"):
                ui.label("Duration per step").classes("font-bold")
                self.duration_chart = ui.echart(duration_chart_options(durations)).classes("w-full h-64")
                self.duration_chart.on_point_click(self._chart_click)
            with ui.card().classes("w-full md:w-96"):
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
        if (
            task.get("status") != "running" or stale_for(task) is not None
        ) and self.refresh_timer is not None:
            self.refresh_timer.active = False  # finished, or stale: nothing more will come
        if grew:
            # on failure the timeline still grows; n/N and the minimap catch up on the next refresh
            with contextlib.suppress(FetchError):
                self.index = await fetch(self.source.step_durations, self.task_id)
            self._minimap()
            if self.matches is not None:
                self.total = int(task.get("total_steps") or 0)
                self.all_rows = None
                await self._apply_filter(keep_selection=True)
                await self._load_charts()
                return
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
            ui.download.content(
                report_json(report), f"task-{_file_safe(self.task_id)}.json", "application/json"
            )

    async def export_xlsx(self) -> None:
        report = await self._report()
        if report is not None:
            ui.download.content(report_xlsx(report), f"task-{_file_safe(self.task_id)}.xlsx", XLSX_TYPE)

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
            {
                "name": "duration",
                "type": "bar",
                "data": values,
                "color": "#6366f1",
                "large": len(values) > 2000,
            },
            {"name": "failed", "type": "scatter", "data": failed, "color": "#ef4444", "symbolSize": 8},
        ],
    }


def minimap_options(index: list[Row]) -> dict[str, Any]:
    """The minimap: one bar per step (height = duration, failures red), no axes, no legend."""
    values = []
    for r in index:
        ms = r.get("duration_ms") if isinstance(r.get("duration_ms"), int | float) else 0
        values.append({"value": ms, "itemStyle": {"color": "#ef4444"}} if not r.get("success", True) else ms)
    return {
        "animation": False,
        "grid": {"left": 0, "right": 0, "top": 2, "bottom": 0},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "xAxis": {"type": "category", "show": False, "data": [r.get("step_number") for r in index]},
        "yAxis": {"type": "value", "show": False},
        "series": [
            {
                "type": "bar",
                "data": values,
                "color": "#a5b4fc",
                "barCategoryGap": "10%",
                "large": len(values) > 2000,
            }
        ],
    }


def type_chart_options(types: list[Row]) -> dict[str, Any]:
    return {
        "animation": False,
        "tooltip": {"trigger": "item"},
        "series": [
            {
                "type": "pie",
                "radius": ["35%", "70%"],
                "data": [{"name": str(r.get("step_type")), "value": r.get("steps") or 0} for r in types],
            }
        ],
    }


def _error_details(step: Row) -> None:
    ui.label(f"Type: {step.get('error_type') or '–'}").classes("font-mono text-sm")
    ui.label(str(step.get("error_message") or "")[:20_000]).classes("whitespace-pre-wrap break-all text-sm")
    if step.get("stack_trace"):
        ui.label(str(step["stack_trace"])[:50_000]).classes(
            "font-mono text-xs whitespace-pre overflow-auto bg-gray-900 text-gray-100 p-2 rounded w-full max-h-72"
        )


def _short(value: Any, limit: int) -> str:
    return cut(" ".join(str(value or "").split()), limit)


def _pos(value: Any) -> float | None:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
    )


def _file_safe(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)[:80]


def register(source: DataSource) -> None:
    @ui.page("/tasks/{task_id:path}", response_timeout=PAGE_TIMEOUT)
    async def task_page(task_id: str, step: str = "", filter: str = "", q: str = "") -> None:
        """``?step=N`` opens the task at step number N (links from the statistics page);
        ``filter=failed|<step type>`` and ``q=text`` narrow the timeline. Malformed values are
        ignored rather than answered with a validation error page."""
        start = int(step) if step.isdigit() and len(step) <= 9 else 0
        await TaskView(source, task_id, start_step=start, kind=filter, query=q[:200]).build()


def _screenshot_problem(step: Row) -> str | None:
    """Why a step's screenshot is not shown, from what the recorder wrote (None: it had none)."""
    meta = step.get("metadata") if isinstance(step.get("metadata"), dict) else {}
    error = meta.get("screenshot_error")
    if isinstance(error, dict):
        reason = str(error.get("reason") or "error")
        message = str(error.get("message") or "")
        return cut(f"screenshot not stored ({reason}): {message}".rstrip(": "), 300)
    if meta.get("screenshot_pending") is True:
        return "screenshot not stored: the recording ended while it was being encoded"
    if meta.get("screenshot_dropped"):
        return cut(f"screenshot not recorded: {meta['screenshot_dropped']}", 300)
    return None

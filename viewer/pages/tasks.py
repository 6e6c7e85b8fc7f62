"""The task list (``/``): server-side paged and sorted table, search, filters, CSV export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from ..data.base import SORT_COLUMNS, STATUSES, DataSource, Row, Sort, TaskFilters
from ..export import tasks_csv
from ._common import (
    PAGE_TIMEOUT,
    STATUS_COLORS,
    FetchError,
    error_box,
    fetch,
    fmt_ms,
    fmt_rate,
    fmt_ts,
    frame,
)

PER_PAGE = 25
EXPORT_LIMIT = 100_000
COLUMNS = [
    {"name": "status", "label": "Status", "field": "status", "sortable": True, "align": "left"},
    {"name": "task_id", "label": "Task", "field": "task_id", "sortable": True, "align": "left"},
    {"name": "title", "label": "Title", "field": "title", "sortable": True, "align": "left",
     "style": "max-width: 28rem; overflow: hidden; text-overflow: ellipsis"},
    {"name": "agent", "label": "Agent", "field": "agent", "sortable": True, "align": "left"},
    {"name": "total_steps", "label": "Steps", "field": "total_steps", "sortable": True},
    {"name": "failed_steps", "label": "Failed", "field": "failed_steps", "sortable": True},
    {"name": "success_rate", "label": "Success", "field": "success_rate_text", "sortable": True},
    {"name": "duration_ms", "label": "Duration", "field": "duration_text", "sortable": True},
    {"name": "started_at", "label": "Started", "field": "started_text", "sortable": True, "align": "left"},
]
# Cells render through Vue's {{ }} (text, never HTML); the link is built with encodeURIComponent.
_TASK_CELL = r"""
<q-td :props="props">
  <a :href="'/tasks/' + encodeURIComponent(props.row.task_id)" class="text-indigo-700 font-mono">{{ props.row.task_id }}</a>
</q-td>"""
_STATUS_CELL = f"""
<q-td :props="props">
  <q-badge :color='{json.dumps(STATUS_COLORS)}[props.value] || "grey"' :label="props.value" />
</q-td>"""  # the colours of status_badge


def parse_day(text: str | None, *, end: bool = False) -> datetime | None:
    """'YYYY-MM-DD' → UTC midnight (the day after for an end bound); '' → None; junk → ValueError."""
    if not text:
        return None
    day = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    return day + timedelta(days=1) if end else day


def display_row(row: Row) -> Row:
    return {**row, "success_rate_text": fmt_rate(row.get("success_rate")),
            "duration_text": fmt_ms(row.get("duration_ms")) if row.get("finished_at") else "running…",
            "started_text": fmt_ts(row.get("started_at"))}


class TaskList:
    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.filters = TaskFilters()
        self.sort = Sort()
        self.page = 1
        self.total = 0
        self.table: ui.table | None = None
        self.message: ui.column | None = None

    async def build(self) -> None:
        frame("Tasks", self.source.description)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-3"):
            ui.label("Tasks").classes("text-2xl font-bold")
            await self._filters_row()
            await self._problems()
            self.message = ui.column().classes("w-full")
            self.table = ui.table(columns=COLUMNS, rows=[], row_key="task_id", pagination={
                "page": 1, "rowsPerPage": PER_PAGE, "rowsNumber": 0, "sortBy": "started_at", "descending": True,
            }).classes("w-full").props("flat bordered :rows-per-page-options='[10,25,50,100]'")
            self.table.add_slot("body-cell-task_id", _TASK_CELL)
            self.table.add_slot("body-cell-status", _STATUS_CELL)
            self.table.add_slot("no-data", '<div class="w-full text-center text-gray-500 p-4">'
                                'No tasks match. Record a run, or clear the filters.</div>')
            self.table.on("request", self._on_request)
        await self.load()

    async def _problems(self) -> None:
        try:
            problems = await fetch(self.source.problems)
        except FetchError:
            return  # the table's own load will say what is wrong
        if problems:
            with ui.expansion(f"{len(problems)} record(s) in the data could not be read and were skipped",
                              icon="warning").classes("w-full bg-amber-50 text-amber-900").mark("problems"):
                for problem in problems[:100]:
                    ui.label(problem).classes("font-mono text-xs break-all")

    async def _filters_row(self) -> None:
        try:
            agents = await fetch(self.source.agents)
        except FetchError:
            agents = []
        with ui.row().classes("w-full items-end gap-3"):
            self.search = ui.input("Search id or title", on_change=self._changed).props(
                "clearable dense outlined debounce=300").classes("w-72").mark("search")
            self.status = ui.select({None: "any status", **{s: s for s in STATUSES}}, value=None,
                                    label="Status", on_change=self._changed).props("dense outlined").classes("w-40")
            self.agent = ui.select({None: "any agent", **{a: a for a in agents}}, value=None, label="Agent",
                                   on_change=self._changed).props("dense outlined").classes("w-48")
            self.date_from = ui.input("Started from", on_change=self._changed).props(
                "type=date dense outlined stack-label").classes("w-44").mark("from")
            self.date_to = ui.input("Started until", on_change=self._changed).props(
                "type=date dense outlined stack-label").classes("w-44").mark("to")
            ui.space()
            self.count_label = ui.label("").classes("text-gray-600")
            ui.button("Export CSV", icon="download", on_click=self.export).props("outline")

    def _read_filters(self) -> TaskFilters | str:
        try:
            return TaskFilters(search=(self.search.value or "").strip()[:500], status=self.status.value,
                               agent=self.agent.value, started_from=parse_day(self.date_from.value),
                               started_to=parse_day(self.date_to.value, end=True))
        except ValueError as exc:
            return f"Invalid filter: {exc}"

    async def _changed(self) -> None:
        self.page = 1
        await self.load()

    async def _on_request(self, e: Any) -> None:
        pagination = (e.args or {}).get("pagination", {}) if isinstance(e.args, dict) else {}
        sort_by = pagination.get("sortBy") or "started_at"
        self.sort = Sort(sort_by if sort_by in SORT_COLUMNS else "started_at", bool(pagination.get("descending")))
        rows_per_page = pagination.get("rowsPerPage")
        if isinstance(rows_per_page, int) and 1 <= rows_per_page <= 100:
            self.table.pagination["rowsPerPage"] = rows_per_page
        page = pagination.get("page")
        self.page = page if isinstance(page, int) and page >= 1 else 1
        await self.load()

    async def load(self) -> None:
        assert self.table is not None and self.message is not None
        self.message.clear()
        filters = self._read_filters()
        if isinstance(filters, str):
            with self.message:
                error_box(filters, title="Check the filters")
            return
        self.filters = filters
        per_page = self.table.pagination.get("rowsPerPage") or PER_PAGE
        try:
            rows, self.total = await fetch(self.source.list_tasks, filters, self.sort, self.page, per_page)
        except FetchError as exc:
            with self.message:
                error_box(str(exc), title="Cannot load the tasks")
            return
        self.table.rows = [display_row(r) for r in rows]
        self.table.pagination = {**self.table.pagination, "page": self.page, "rowsNumber": self.total,
                                 "sortBy": self.sort.column, "descending": self.sort.descending}
        self.table.update()
        self.count_label.text = f"{self.total:,} task{'s' if self.total != 1 else ''}"

    async def export(self) -> None:
        rows: list[Row] = []
        try:
            page = 1
            while len(rows) < EXPORT_LIMIT:
                batch, total = await fetch(self.source.list_tasks, self.filters, self.sort, page, 1000)
                rows.extend(batch)
                if not batch or len(rows) >= total:
                    break
                page += 1
        except FetchError as exc:
            ui.notify(f"Export failed: {exc}", type="negative")
            return
        if len(rows) >= EXPORT_LIMIT:
            ui.notify(f"The export holds the first {EXPORT_LIMIT:,} tasks: narrow the filters for the rest.",
                      type="warning")
        ui.download.content(tasks_csv(rows[:EXPORT_LIMIT]), "tasks.csv", "text/csv")


def register(source: DataSource) -> None:
    @ui.page("/", response_timeout=PAGE_TIMEOUT)
    async def tasks_page() -> None:
        await TaskList(source).build()

"""The task list (``/``): server-side paged and sorted table, search, filters, CSV export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
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
    fmt_span,
    fmt_ts,
    frame,
    stale_for,
    url_param,
)

PER_PAGE = 25
EXPORT_LIMIT = 100_000
COLUMNS = [
    {"name": "status", "label": "Status", "field": "status_text", "sortable": True, "align": "left"},
    {"name": "task_id", "label": "Task", "field": "task_id", "sortable": True, "align": "left"},
    {
        "name": "title",
        "label": "Title",
        "field": "title",
        "sortable": True,
        "align": "left",
        "style": "max-width: 28rem; overflow: hidden; text-overflow: ellipsis",
    },
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
  <q-badge :color='{json.dumps({**STATUS_COLORS, "stale": "orange"})}[props.value] || "grey"' :label="props.value"
           :title="props.row.stale_title" />
</q-td>"""  # the colours of status_badge
MAX_META_COLUMNS = 8
FIRST_RUN = """from stepsdk import StepTracker, StepType

with StepTracker(title="Open Wi-Fi settings", agent="phone-agent") as tracker:
    tracker.record_step(StepType.ACTION, {"action": "tap", "x": 540, "y": 720}, name="Tap", duration_ms=120)"""


def parse_meta(text: str) -> dict[str, str]:
    """``model=gpt-4o, device=pixel`` → ``{"model": "gpt-4o", "device": "pixel"}``; junk → ValueError."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"metadata filters are key=value, got {part.strip()!r}")
        out[key.strip()] = value.strip()
    return out


def meta_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)[:200]


def parse_day(text: str | None, *, end: bool = False) -> datetime | None:
    """'YYYY-MM-DD' → UTC midnight (the day after for an end bound); '' → None; junk → ValueError."""
    if not text:
        return None
    day = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    return day + timedelta(days=1) if end else day


def display_row(row: Row, meta_columns: Sequence[str] = ()) -> Row:
    idle = stale_for(row)
    meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    return {
        **row,
        "success_rate_text": fmt_rate(row.get("success_rate")),
        "duration_text": fmt_ms(row.get("duration_ms"))
        if row.get("finished_at")
        else (f"stale for {fmt_span(idle)}" if idle else "running…"),
        "started_text": fmt_ts(row.get("started_at")),
        "status_text": "stale" if idle else row.get("status"),
        "stale_title": f"running, but no new step for {fmt_span(idle)}" if idle else "",
        **{f"m{i}": meta_text(meta.get(key)) for i, key in enumerate(meta_columns)},
    }


class TaskList:
    """The list; its filters, sort, page and metadata columns live in the URL (shareable, and
    Back restores them)."""

    def __init__(self, source: DataSource, params: dict[str, str] | None = None) -> None:
        self.source = source
        self.params = params or {}
        self.filters = TaskFilters()
        self.sort = Sort()
        self.page = 1
        self.total = 0
        self.table: ui.table | None = None
        self.message: ui.column | None = None
        self.meta_columns: list[str] = []
        sort = self.params.get("sort", "")
        if sort in SORT_COLUMNS:
            self.sort = Sort(sort, self.params.get("order", "desc") != "asc")
        page = self.params.get("page", "")
        self.page = int(page) if page.isdigit() and 0 < len(page) <= 7 and int(page) >= 1 else 1
        per_page = self.params.get("per_page", "")
        self.per_page = int(per_page) if per_page.isdigit() and 1 <= int(per_page) <= 100 else PER_PAGE

    async def build(self) -> None:
        frame("Tasks", self.source.description)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-2 md:p-4 gap-3"):
            ui.label("Tasks").classes("text-2xl font-bold")
            await self._filters_row()
            await self._problems()
            self.message = ui.column().classes("w-full")
            self.table = (
                ui.table(
                    columns=self._columns(),
                    rows=[],
                    row_key="task_id",
                    selection="multiple",
                    on_select=self._selected,
                    pagination={
                        "page": self.page,
                        "rowsPerPage": self.per_page,
                        "rowsNumber": 0,
                        "sortBy": self.sort.column,
                        "descending": self.sort.descending,
                    },
                )
                .classes("w-full")
                .props("flat bordered :rows-per-page-options='[10,25,50,100]'")
                .mark("task-table")
            )
            self.table.add_slot("body-cell-task_id", _TASK_CELL)
            self.table.add_slot("body-cell-status", _STATUS_CELL)
            self.table.add_slot(
                "no-data",
                '<div class="w-full text-center text-gray-500 p-4">'
                "No tasks match. Record a run, or clear the filters.</div>",
            )
            self.table.on("request", self._on_request)
            self.first_run = ui.column().classes("w-full")
        await self.load(push=False)

    async def _problems(self) -> None:
        try:
            problems = await fetch(self.source.problems)
        except FetchError:
            return  # the table's own load will say what is wrong
        if problems:
            with (
                ui.expansion(
                    f"{len(problems)} record(s) in the data could not be read and were skipped",
                    icon="warning",
                )
                .classes("w-full bg-amber-50 text-amber-900")
                .mark("problems")
            ):
                for problem in problems[:100]:
                    ui.label(problem).classes("font-mono text-xs break-all")

    async def _filters_row(self) -> None:
        try:
            agents = await fetch(self.source.agents)
        except FetchError:
            agents = []
        p = self.params
        status = p.get("status") if p.get("status") in STATUSES else None
        agent = p.get("agent") or None
        if agent and agent not in agents:
            agents = [*agents, agent]
        meta = ", ".join(f"{k[5:]}={v}" for k, v in p.items() if k.startswith("meta.") and len(k) > 5)
        self.meta_columns = [c.strip() for c in p.get("cols", "").split(",") if c.strip()][:MAX_META_COLUMNS]
        with ui.row().classes("w-full items-end gap-3"):
            self.search = (
                ui.input("Search id or title", value=p.get("search", "")[:500], on_change=self._changed)
                .props("clearable dense outlined debounce=300")
                .classes("w-72")
                .mark("search")
            )
            self.status = (
                ui.select(
                    {None: "any status", **{s: s for s in STATUSES}},
                    value=status,
                    label="Status",
                    on_change=self._changed,
                )
                .props("dense outlined")
                .classes("w-40")
                .mark("status-filter")
            )
            self.agent = (
                ui.select(
                    {None: "any agent", **{a: a for a in agents}},
                    value=agent,
                    label="Agent",
                    on_change=self._changed,
                )
                .props("dense outlined")
                .classes("w-48")
            )
            self.date_from = (
                ui.input("Started from", value=p.get("from", "")[:10], on_change=self._changed)
                .props("type=date dense outlined stack-label")
                .classes("w-44")
                .mark("from")
            )
            self.date_to = (
                ui.input("Started until", value=p.get("to", "")[:10], on_change=self._changed)
                .props("type=date dense outlined stack-label")
                .classes("w-44")
                .mark("to")
            )
            self.meta = (
                ui.input(
                    "Metadata filter",
                    value=meta[:500],
                    placeholder="model=gpt-4o, device=pixel",
                    on_change=self._changed,
                )
                .props("clearable dense outlined debounce=500")
                .classes("w-64")
                .mark("meta-filter")
            )
            self.cols = (
                ui.input(
                    "Metadata columns",
                    value=", ".join(self.meta_columns),
                    placeholder="model, device",
                    on_change=self._columns_changed,
                )
                .props("clearable dense outlined debounce=500")
                .classes("w-56")
                .mark("meta-columns")
            )
            ui.space()
            self.count_label = ui.label("").classes("text-gray-600")
            self.compare_button = (
                ui.button("Compare selected", icon="compare_arrows", on_click=self.compare)
                .props("outline")
                .mark("compare-selected")
            )
            self.compare_button.disable()
            ui.button("Export CSV", icon="download", on_click=self.export).props("outline")

    def _columns(self) -> list[Row]:
        return COLUMNS + [
            {
                "name": f"m{i}",
                "label": key,
                "field": f"m{i}",
                "align": "left",
                "style": "max-width: 16rem; overflow: hidden; text-overflow: ellipsis",
            }
            for i, key in enumerate(self.meta_columns)
        ]

    def _read_filters(self) -> TaskFilters | str:
        try:
            return TaskFilters(
                search=(self.search.value or "").strip()[:500],
                status=self.status.value,
                agent=self.agent.value,
                started_from=parse_day(self.date_from.value),
                started_to=parse_day(self.date_to.value, end=True),
                meta=parse_meta(self.meta.value or ""),
            )
        except ValueError as exc:
            return f"Invalid filter: {exc}"

    async def _changed(self) -> None:
        self.page = 1
        await self.load()

    async def _columns_changed(self) -> None:
        self.meta_columns = [c.strip() for c in (self.cols.value or "").split(",") if c.strip()][
            :MAX_META_COLUMNS
        ]
        assert self.table is not None
        self.table.columns = self._columns()
        await self.load()

    def _selected(self) -> None:
        assert self.table is not None
        if len(self.table.selected) == 2:
            self.compare_button.enable()
        else:
            self.compare_button.disable()

    def compare(self) -> None:
        assert self.table is not None
        chosen = [r["task_id"] for r in self.table.selected]
        if len(chosen) != 2:
            ui.notify("Select exactly two tasks to compare")
            return
        ui.navigate.to(f"/compare?a={url_param(chosen[0])}&b={url_param(chosen[1])}")

    async def _on_request(self, e: Any) -> None:
        pagination = (e.args or {}).get("pagination", {}) if isinstance(e.args, dict) else {}
        sort_by = pagination.get("sortBy") or "started_at"
        self.sort = Sort(
            sort_by if sort_by in SORT_COLUMNS else "started_at", bool(pagination.get("descending"))
        )
        rows_per_page = pagination.get("rowsPerPage")
        if isinstance(rows_per_page, int) and 1 <= rows_per_page <= 100:
            self.table.pagination["rowsPerPage"] = rows_per_page
        page = pagination.get("page")
        self.page = page if isinstance(page, int) and page >= 1 else 1
        await self.load()

    def query(self) -> str:
        """The URL query string of the current state (defaults left out)."""
        assert self.table is not None
        params: dict[str, Any] = {}
        if (self.search.value or "").strip():
            params["search"] = self.search.value.strip()
        for key, value in (
            ("status", self.status.value),
            ("agent", self.agent.value),
            ("from", self.date_from.value),
            ("to", self.date_to.value),
        ):
            if value:
                params[key] = value
        if self.meta_columns:
            params["cols"] = ",".join(self.meta_columns)
        for key, value in self.filters.meta.items():
            params[f"meta.{key}"] = value
        if (self.sort.column, self.sort.descending) != ("started_at", True):
            params["sort"], params["order"] = self.sort.column, "desc" if self.sort.descending else "asc"
        if self.page != 1:
            params["page"] = self.page
        per_page = self.table.pagination.get("rowsPerPage") or PER_PAGE
        if per_page != PER_PAGE:
            params["per_page"] = per_page
        return "?" + urlencode(params) if params else ""

    async def load(self, *, push: bool = True) -> None:
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
        self.table.rows = [display_row(r, self.meta_columns) for r in rows]
        self.table.pagination = {
            **self.table.pagination,
            "page": self.page,
            "rowsNumber": self.total,
            "sortBy": self.sort.column,
            "descending": self.sort.descending,
        }
        self.table.update()
        self.count_label.text = f"{self.total:,} task{'s' if self.total != 1 else ''}"
        self._first_run_hint(filters)
        if push:
            ui.run_javascript(
                f"history.replaceState(history.state, '', location.pathname + {json.dumps(self.query())})"
            )

    def _first_run_hint(self, filters: TaskFilters) -> None:
        self.first_run.clear()
        if self.total or filters != TaskFilters():
            return
        with self.first_run, ui.card().classes("w-full bg-indigo-50").mark("first-run"):
            ui.label("Nothing recorded here yet").classes("text-lg font-bold text-indigo-900")
            ui.label(
                f"This viewer reads {self.source.description}. Record a run with a few lines of Python, "
                "or try `stepsdk demo`:"
            ).classes("text-indigo-900")
            ui.label(FIRST_RUN).classes(
                "font-mono text-xs whitespace-pre bg-white rounded p-3 w-full overflow-auto"
            )

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
            ui.notify(
                f"The export holds the first {EXPORT_LIMIT:,} tasks: narrow the filters for the rest.",
                type="warning",
            )
        ui.download.content(tasks_csv(rows[:EXPORT_LIMIT]), "tasks.csv", "text/csv")


def register(source: DataSource) -> None:
    @ui.page("/", response_timeout=PAGE_TIMEOUT)
    async def tasks_page(request: Request) -> None:
        await TaskList(source, {k: v[:500] for k, v in list(request.query_params.items())[:50]}).build()

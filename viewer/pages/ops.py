"""Operations pages: token usage and cost (``/usage``), failed steps by error category
(``/errors?category=``), and the active-alerts banner shown in every page's frame."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import ui

from stepsdk.ops import alerts as _alerts
from stepsdk.ops.prices import PriceTable

from ..api_ops import usage_totals, with_cost
from ..data.base import ERROR_CATEGORIES, DataSource, Row
from ._common import PAGE_TIMEOUT, FetchError, empty_box, error_box, fetch, fmt_ms, fmt_ts, frame, url_param

DAY_CHOICES = {7: "7 days", 14: "14 days", 30: "30 days", 90: "90 days"}
CATEGORY_LABELS = {
    "timeout": "timeout",
    "connection": "connection",
    "auth": "permission / auth",
    "rate_limit": "rate limit",
    "validation": "validation",
    "model_output": "model output",
    "device": "device",
    "other": "other",
    "none": "(no category)",
}


def fmt_tokens(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def fmt_cost(value: Any, currency: str | None) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value:,.4f} {currency or ''}".strip()


def alerts_banner() -> None:
    """The alerts active after the last ``stepsdk alerts check`` (read from its state file)."""
    try:
        checked_at, active = _alerts.active_alerts(_alerts.viewer_state_file())
    except OSError:
        return
    if not active:
        return
    with (
        ui.card()
        .classes("w-full bg-amber-50 border border-amber-400 rounded-none py-2 px-4 gap-1")
        .mark("alerts")
    ):
        with ui.row().classes("items-center gap-2"):
            ui.icon("notifications_active", color="warning")
            ui.label(f"{len(active)} active alert(s)").classes("font-bold text-amber-900")
            ui.label(f"last check {fmt_ts(checked_at)}").classes("text-xs text-amber-800")
        for alert in active[:5]:
            ui.label(
                f"{alert.get('rule')}: {alert.get('summary')} (since {fmt_ts(alert.get('since'))})"
            ).classes("text-sm text-amber-900 break-all")
        if len(active) > 5:
            ui.label(f"… and {len(active) - 5} more (stepsdk alerts show)").classes("text-xs text-amber-800")


def usage_chart_options(days: list[Row]) -> dict[str, Any]:
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "data": ["prompt", "completion"]},
        "grid": {"left": 80, "right": 20, "top": 40, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(r.get("day")) for r in days]},
        "yAxis": {"type": "value", "name": "tokens"},
        "series": [
            {
                "name": "prompt",
                "type": "bar",
                "stack": "t",
                "color": "#6366f1",
                "data": [int(r.get("prompt_tokens") or 0) for r in days],
            },
            {
                "name": "completion",
                "type": "bar",
                "stack": "t",
                "color": "#f59e0b",
                "data": [int(r.get("completion_tokens") or 0) for r in days],
            },
        ],
    }


class UsageView:
    def __init__(self, source: DataSource, prices: PriceTable | None) -> None:
        self.source, self.prices, self.days = source, prices, 14

    async def build(self) -> None:
        frame("Usage", self.source.description)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-4"):
            with ui.row().classes("items-center gap-4"):
                ui.label("Token usage").classes("text-2xl font-bold")
                ui.select(
                    DAY_CHOICES, value=self.days, label="Period", on_change=lambda e: self._set_days(e.value)
                ).props("dense outlined").classes("w-32")
                if self.prices is None:
                    ui.label("no price table (STEPSDK_PRICES): tokens only").classes("text-xs text-gray-500")
            self.body = ui.column().classes("w-full gap-4")
        await self.render()

    async def _set_days(self, days: int) -> None:
        self.days = days
        await self.render()

    async def render(self) -> None:
        self.body.clear()
        try:
            daily, tasks = await asyncio.gather(
                fetch(self.source.daily_usage, self.days), fetch(self.source.tasks_by_usage, 50)
            )
        except FetchError as exc:
            with self.body:
                error_box(str(exc), title="Cannot load the token usage")
            return
        currency = self.prices.currency if self.prices else None
        totals = usage_totals(daily, self.prices)
        with self.body:
            with ui.row().classes("gap-4"):
                for label, value in (
                    ("Prompt tokens", fmt_tokens(totals["prompt_tokens"])),
                    ("Completion tokens", fmt_tokens(totals["completion_tokens"])),
                    ("Total tokens", fmt_tokens(totals["total_tokens"])),
                    ("Cost", fmt_cost(totals["cost"], currency)),
                ):
                    with ui.card().classes("min-w-40"):
                        ui.label(label).classes("text-xs text-gray-500")
                        ui.label(value).classes("text-2xl font-bold").mark(f"usage-{label}")
            with ui.card().classes("w-full"):
                ui.label("Tokens per day (UTC, by step time)").classes("font-bold")
                ui.echart(usage_chart_options(daily)).classes("w-full h-64")
            with ui.card().classes("w-full"):
                ui.label("Tasks that used the most tokens (all time)").classes("font-bold")
                self._tasks([with_cost(r, self.prices) for r in tasks], currency)

    def _tasks(self, tasks: list[Row], currency: str | None) -> None:
        if not tasks:
            empty_box("No step has token usage yet.")
            return
        rows = [
            {
                "key": t.get("task_id"),
                "task_id": t.get("task_id"),
                "title": t.get("title") or "",
                "model": t.get("model") or "–",
                "steps": t.get("steps_with_usage"),
                "prompt": fmt_tokens(t.get("prompt_tokens")),
                "completion": fmt_tokens(t.get("completion_tokens")),
                "total": fmt_tokens(t.get("total_tokens")),
                "cost": fmt_cost(t.get("cost"), currency),
            }
            for t in tasks
        ]
        table = (
            ui.table(
                columns=[
                    {"name": "task_id", "label": "Task", "field": "task_id", "align": "left"},
                    {"name": "title", "label": "Title", "field": "title", "align": "left"},
                    {"name": "model", "label": "Model", "field": "model", "align": "left"},
                    {"name": "steps", "label": "Steps", "field": "steps"},
                    {"name": "prompt", "label": "Prompt", "field": "prompt"},
                    {"name": "completion", "label": "Completion", "field": "completion"},
                    {"name": "total", "label": "Total", "field": "total"},
                    {"name": "cost", "label": "Cost", "field": "cost"},
                ],
                rows=rows,
                row_key="key",
            )
            .classes("w-full")
            .props("flat dense")
            .mark("usage-tasks")
        )
        table.add_slot(
            "body-cell-task_id",
            r"""
<q-td :props="props"><a :href="'/tasks/' + encodeURIComponent(props.value)" class="text-indigo-700 font-mono">{{ props.value }}</a></q-td>""",
        )


class ErrorsView:
    """Failed steps, filterable by error category (``?category=timeout``)."""

    def __init__(self, source: DataSource, category: str | None) -> None:
        self.source = source
        self.category = category if category in (*ERROR_CATEGORIES, "none") else None

    async def build(self) -> None:
        frame("Errors", self.source.description)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-4"):
            with ui.row().classes("items-center gap-4"):
                ui.label("Failed steps by error category").classes("text-2xl font-bold")
                ui.select(
                    {None: "any category", **CATEGORY_LABELS},
                    value=self.category,
                    label="Category",
                    on_change=lambda e: self._set_category(e.value),
                ).props("dense outlined").classes("w-56").mark("category")
            self.body = ui.column().classes("w-full gap-4")
        await self.render()

    async def _set_category(self, category: str | None) -> None:
        self.category = category
        await self.render()

    async def render(self) -> None:
        self.body.clear()
        try:
            categories, steps = await asyncio.gather(
                fetch(self.source.error_categories), fetch(self.source.failed_steps, self.category, 200)
            )
        except FetchError as exc:
            with self.body:
                error_box(str(exc), title="Cannot load the errors")
            return
        with self.body:
            with ui.row().classes("gap-3"):
                for row in categories:
                    key = row.get("error_category") or "none"
                    with (
                        ui.link(target=f"/errors?category={url_param(key)}").classes("no-underline"),
                        ui.card().classes("min-w-36 py-2"),
                    ):
                        ui.label(CATEGORY_LABELS.get(key, key)).classes("text-xs text-gray-500")
                        ui.label(f"{row.get('failed_steps'):,}").classes(
                            "text-2xl font-bold text-red-700"
                        ).mark(f"category-{key}")
                        ui.label(f"{row.get('tasks_affected')} task(s)").classes("text-xs text-gray-500")
            with ui.card().classes("w-full"):
                what = CATEGORY_LABELS.get(self.category or "", "every category")
                ui.label(f"Latest failed steps: {what}").classes("font-bold")
                self._steps(steps)

    def _steps(self, steps: list[Row]) -> None:
        if not steps:
            empty_box("No failed step in this category.")
            return
        rows = [
            {
                "key": s.get("id"),
                "task_id": s.get("task_id"),
                "step_number": s.get("step_number"),
                "task_title": s.get("task_title") or "",
                "category": CATEGORY_LABELS.get(
                    s.get("error_category") or "none", str(s.get("error_category"))
                ),
                "error": f"{s.get('error_type') or 'error'}: {s.get('error_message') or ''}"[:300],
                "duration": fmt_ms(s.get("duration_ms")),
                "at": fmt_ts(s.get("created_at")),
            }
            for s in steps
        ]
        table = (
            ui.table(
                columns=[
                    {"name": "at", "label": "When", "field": "at", "align": "left"},
                    {"name": "category", "label": "Category", "field": "category", "align": "left"},
                    {
                        "name": "error",
                        "label": "Error",
                        "field": "error",
                        "align": "left",
                        "style": "white-space: normal; max-width: 36rem",
                    },
                    {"name": "task_id", "label": "Task", "field": "task_id", "align": "left"},
                    {"name": "task_title", "label": "Title", "field": "task_title", "align": "left"},
                    {"name": "duration", "label": "Duration", "field": "duration"},
                ],
                rows=rows,
                row_key="key",
                pagination=25,
            )
            .classes("w-full")
            .props("flat dense")
            .mark("failed-steps")
        )
        table.add_slot(
            "body-cell-task_id",
            r"""
<q-td :props="props"><a :href="'/tasks/' + encodeURIComponent(props.value) + '?step=' + props.row.step_number" class="text-indigo-700 font-mono">{{ props.value }}</a></q-td>""",
        )


def register(source: DataSource, prices: PriceTable | None = None) -> None:
    @ui.page("/usage", response_timeout=PAGE_TIMEOUT)
    async def usage_page() -> None:
        await UsageView(source, prices).build()

    @ui.page("/errors", response_timeout=PAGE_TIMEOUT)
    async def errors_page(category: str | None = None) -> None:
        await ErrorsView(source, category).build()

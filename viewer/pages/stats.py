"""Statistics (``/stats``): tasks and success rate per day, task duration percentiles,
step types, the most frequent errors (grouped, numbers and ids normalized) and the slowest
steps. Every panel covers the chosen period and, optionally, one agent (``?days=&agent=``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from ..api import stats_payload
from ..data.base import DataSource, Row
from ._common import PAGE_TIMEOUT, FetchError, empty_box, error_box, fetch, fmt_ms, fmt_rate, fmt_ts, frame

DAY_CHOICES = {7: "7 days", 14: "14 days", 30: "30 days", 90: "90 days"}


def daily_chart_options(days: list[Row]) -> dict[str, Any]:
    rates = [
        None if r.get("task_success_rate") is None else round(float(r["task_success_rate"]) * 100, 1)
        for r in days
    ]
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "data": ["successful", "failed", "other", "success rate %"]},
        "grid": {"left": 50, "right": 50, "top": 50, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(r.get("day")) for r in days]},
        "yAxis": [
            {"type": "value", "name": "tasks", "minInterval": 1},
            {"type": "value", "name": "%", "min": 0, "max": 100},
        ],
        "series": [
            {
                "name": "successful",
                "type": "bar",
                "stack": "t",
                "color": "#22c55e",
                "data": [r.get("successful_tasks") or 0 for r in days],
            },
            {
                "name": "failed",
                "type": "bar",
                "stack": "t",
                "color": "#ef4444",
                "data": [r.get("failed_tasks") or 0 for r in days],
            },
            {
                "name": "other",
                "type": "bar",
                "stack": "t",
                "color": "#94a3b8",
                "data": [(r.get("running_tasks") or 0) + (r.get("interrupted_tasks") or 0) for r in days],
            },
            {
                "name": "success rate %",
                "type": "line",
                "yAxisIndex": 1,
                "color": "#4f46e5",
                "connectNulls": True,
                "data": rates,
            },
        ],
    }


def duration_chart_options(days: list[Row]) -> dict[str, Any]:
    def series(key: str) -> list[Any]:
        return [r.get(key) for r in days]

    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "data": ["p50", "p95", "max"]},
        "grid": {"left": 70, "right": 20, "top": 50, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(r.get("day")) for r in days]},
        "yAxis": {"type": "value", "name": "task ms"},
        "series": [
            {"name": n, "type": "line", "connectNulls": True, "data": series(k)}
            for n, k in (
                ("p50", "p50_task_duration_ms"),
                ("p95", "p95_task_duration_ms"),
                ("max", "max_task_duration_ms"),
            )
        ],
    }


def types_chart_options(types: list[Row]) -> dict[str, Any]:
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "data": ["steps", "failed"]},
        "grid": {"left": 60, "right": 20, "top": 50, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(r.get("step_type")) for r in types]},
        "yAxis": {"type": "value"},
        "series": [
            {"name": "steps", "type": "bar", "color": "#6366f1", "data": [r.get("steps") for r in types]},
            {
                "name": "failed",
                "type": "bar",
                "color": "#ef4444",
                "data": [r.get("failed_steps") for r in types],
            },
        ],
    }


ALL_AGENTS = ""


class StatsView:
    def __init__(self, source: DataSource, days: int = 14, agent: str | None = None) -> None:
        self.source = source
        self.days = days if days in DAY_CHOICES else 14
        self.agent = agent or None

    async def build(self) -> None:
        frame("Statistics", self.source.description)
        try:
            agents = await fetch(self.source.agents)
        except FetchError:
            agents = []
        if self.agent and self.agent not in agents:
            agents.append(self.agent)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-4"):
            with ui.row().classes("items-center gap-4"):
                ui.label("Statistics").classes("text-2xl font-bold")
                ui.select(
                    DAY_CHOICES, value=self.days, label="Period", on_change=lambda e: self._set(days=e.value)
                ).props("dense outlined").classes("w-32")
                ui.select(
                    {ALL_AGENTS: "all agents", **{a: a for a in agents}},
                    value=self.agent or ALL_AGENTS,
                    label="Agent",
                    on_change=lambda e: self._set(agent=e.value or None),
                ).props("dense outlined").classes("w-48").mark("agent-filter")
            self.body = ui.column().classes("w-full gap-4")
        await self.render()

    async def _set(self, **changes: Any) -> None:
        self.days = changes.get("days", self.days)
        self.agent = changes.get("agent", self.agent)
        query = urlencode({k: v for k, v in (("days", self.days), ("agent", self.agent)) if v})
        ui.run_javascript(f"history.replaceState(null, '', '/stats?{query}')")
        await self.render()

    async def render(self) -> None:
        self.body.clear()
        try:
            # the same payload as /api/stats: every panel over the same period and agent
            data = await fetch(stats_payload, self.source, self.days, 10, self.agent)
            daily, types, errors, slowest = (
                data["days"],
                data["step_types"],
                data["top_errors"],
                data["slowest_steps"],
            )
        except FetchError as exc:
            with self.body:
                error_box(str(exc), title="Cannot load the statistics")
            return
        with self.body:
            self._totals(daily)
            with ui.row().classes("w-full gap-4"):
                with ui.card().classes("flex-grow min-w-[30rem]"):
                    ui.label("Tasks and success rate per day (UTC)").classes("font-bold")
                    self.daily_chart = ui.echart(daily_chart_options(daily)).classes("w-full h-72")
                with ui.card().classes("flex-grow min-w-[30rem]"):
                    ui.label("Task duration per day").classes("font-bold")
                    self.duration_chart = ui.echart(duration_chart_options(daily)).classes("w-full h-72")
            with ui.row().classes("w-full gap-4 items-start"):
                with ui.card().classes("flex-grow min-w-[30rem]"):
                    ui.label(
                        f"Most frequent errors ({DAY_CHOICES[self.days]}; numbers and ids grouped)"
                    ).classes("font-bold")
                    self._errors(errors)
                with ui.card().classes("w-[32rem]"):
                    ui.label(f"Step types ({DAY_CHOICES[self.days]})").classes("font-bold")
                    self.types_chart = ui.echart(types_chart_options(types)).classes("w-full h-64")
            with ui.card().classes("w-full"):
                ui.label(f"Slowest steps ({DAY_CHOICES[self.days]})").classes("font-bold")
                self._slowest(slowest)

    def _totals(self, daily: list[Row]) -> None:
        tasks = sum(r.get("tasks") or 0 for r in daily)
        ok = sum(r.get("successful_tasks") or 0 for r in daily)
        finished = sum((r.get("tasks") or 0) - (r.get("running_tasks") or 0) for r in daily)
        steps = sum(int(r.get("steps") or 0) for r in daily)
        failed_steps = sum(int(r.get("failed_steps") or 0) for r in daily)
        with ui.row().classes("gap-4"):
            for label, value in (
                ("Tasks", f"{tasks:,}"),
                ("Task success rate", fmt_rate(ok / finished if finished else None)),
                ("Steps", f"{steps:,}"),
                ("Failed steps", f"{failed_steps:,}"),
            ):
                with ui.card().classes("min-w-40"):
                    ui.label(label).classes("text-xs text-gray-500")
                    ui.label(value).classes("text-2xl font-bold").mark(f"total-{label}")

    def _errors(self, errors: list[Row]) -> None:
        if not errors:
            empty_box("No failed steps. 🎉")
            return
        rows = [
            {
                "key": i,
                "error_type": e.get("error_type") or "–",
                "error_message": e.get("error_message") or "–",
                "occurrences": e.get("occurrences"),
                "tasks_affected": e.get("tasks_affected"),
                "last_seen": fmt_ts(e.get("last_seen")),
                "example_task_id": e.get("example_task_id"),
                "step": e.get("example_step_name") or "–",
            }
            for i, e in enumerate(errors)
        ]
        table = (
            ui.table(
                columns=[
                    {"name": "occurrences", "label": "Count", "field": "occurrences"},
                    {"name": "error_type", "label": "Type", "field": "error_type", "align": "left"},
                    {"name": "step", "label": "Step", "field": "step", "align": "left"},
                    {
                        "name": "error_message",
                        "label": "Message",
                        "field": "error_message",
                        "align": "left",
                        "style": "white-space: normal; max-width: 32rem",
                    },
                    {"name": "tasks_affected", "label": "Tasks", "field": "tasks_affected"},
                    {"name": "last_seen", "label": "Last seen", "field": "last_seen", "align": "left"},
                    {
                        "name": "example_task_id",
                        "label": "Example",
                        "field": "example_task_id",
                        "align": "left",
                    },
                ],
                rows=rows,
                row_key="key",
            )
            .classes("w-full")
            .props("flat dense")
        )
        table.add_slot(
            "body-cell-example_task_id",
            r"""
<q-td :props="props"><a :href="'/tasks/' + encodeURIComponent(props.value)" class="text-indigo-700 font-mono">{{ props.value }}</a></q-td>""",
        )

    def _slowest(self, slowest: list[Row]) -> None:
        if not slowest:
            empty_box("No step has a duration yet.")
            return
        rows = [
            {
                "key": s.get("step_id"),
                "duration": fmt_ms(s.get("duration_ms")),
                "task_id": s.get("task_id"),
                "task_title": s.get("task_title") or "",
                "step_number": s.get("step_number"),
                "step_type": s.get("step_type"),
                "name": s.get("name") or "–",
                "success": "ok" if s.get("success") else "failed",
            }
            for s in slowest
        ]
        table = (
            ui.table(
                columns=[
                    {"name": "duration", "label": "Duration", "field": "duration", "align": "left"},
                    {"name": "task_id", "label": "Task", "field": "task_id", "align": "left"},
                    {"name": "task_title", "label": "Title", "field": "task_title", "align": "left"},
                    {"name": "step_number", "label": "Step", "field": "step_number"},
                    {"name": "step_type", "label": "Type", "field": "step_type", "align": "left"},
                    {"name": "name", "label": "Step", "field": "name", "align": "left"},
                    {"name": "success", "label": "Result", "field": "success", "align": "left"},
                ],
                rows=rows,
                row_key="key",
            )
            .classes("w-full")
            .props("flat dense")
        )
        table.add_slot(
            "body-cell-task_id",
            r"""
<q-td :props="props"><a :href="'/tasks/' + encodeURIComponent(props.value) + '?step=' + props.row.step_number" class="text-indigo-700 font-mono">{{ props.value }}</a></q-td>""",
        )


def register(source: DataSource) -> None:
    @ui.page("/stats", response_timeout=PAGE_TIMEOUT)
    async def stats_page(days: int = 14, agent: str = "") -> None:
        await StatsView(source, days, agent[:200] or None).build()

"""Compare two tasks (``/compare?a=ID&b=ID``): steps side by side, aligned by step number or by
the sequence of actions (difflib), with duration differences."""

from __future__ import annotations

import difflib

from nicegui import ui

from ..data.base import DataSource, Row
from ._common import (
    PAGE_TIMEOUT,
    FetchError,
    cut,
    error_box,
    fetch,
    fmt_ms,
    fmt_rate,
    frame,
    screenshot_url,
    status_badge,
    task_url,
    url_param,
)
from .task import action_name

MAX_STEPS = 5000  # per side; beyond this the comparison would not be readable anyway


def step_key(step: Row) -> str:
    return f"{step.get('step_type')}:{action_name(step).casefold()}"


def align(a: list[Row], b: list[Row], by: str = "number") -> list[tuple[Row | None, Row | None]]:
    """Pairs of steps. ``number``: same step_number; ``action``: difflib over step type + action."""
    if by == "number":
        left = {s.get("step_number"): s for s in a}
        right = {s.get("step_number"): s for s in b}
        return [
            (left.get(n), right.get(n)) for n in sorted(set(left) | set(right), key=lambda n: (n is None, n))
        ]
    pairs: list[tuple[Row | None, Row | None]] = []
    matcher = difflib.SequenceMatcher(
        None, [step_key(s) for s in a], [step_key(s) for s in b], autojunk=False
    )
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("equal", "replace"):
            for k in range(max(i2 - i1, j2 - j1)):
                pairs.append((a[i1 + k] if i1 + k < i2 else None, b[j1 + k] if j1 + k < j2 else None))
        elif op == "delete":
            pairs.extend((s, None) for s in a[i1:i2])
        else:
            pairs.extend((None, s) for s in b[j1:j2])
    return pairs


def comparison_rows(pairs: list[tuple[Row | None, Row | None]], a_id: str = "", b_id: str = "") -> list[Row]:
    """One row per aligned pair: labels, screenshots, durations, links, and whether they differ
    (one side missing, a different action, or one failed); ``first_divergence`` marks the first."""
    rows = []
    first = True
    for i, (sa, sb) in enumerate(pairs):
        da, db = _dur(sa), _dur(sb)
        delta = db - da if da is not None and db is not None else None
        rows.append(
            {
                "key": i,
                "a_step": _side(sa),
                "b_step": _side(sb),
                "a_duration": fmt_ms(da) if sa else "",
                "b_duration": fmt_ms(db) if sb else "",
                "delta_ms": delta,
                "delta": ("+" if delta and delta > 0 else "") + fmt_ms(delta) if delta is not None else "",
                "differs": (
                    sa is None
                    or sb is None
                    or step_key(sa) != step_key(sb)
                    or bool(sa.get("success", True)) != bool(sb.get("success", True))
                ),
                "a_url": _step_url(a_id, sa),
                "b_url": _step_url(b_id, sb),
                "a_shot": _shot(sa),
                "b_shot": _shot(sb),
            }
        )
        rows[-1]["first_divergence"] = first and rows[-1]["differs"]
        first = first and not rows[-1]["differs"]
    return rows


def _step_url(task_id: str, step: Row | None) -> str:
    if not task_id or step is None:
        return ""
    return f"{task_url(task_id)}?step={step.get('step_number')}"


def _shot(step: Row | None) -> str:
    path = (step or {}).get("screenshot_path")
    return screenshot_url(path, fallback=True) if isinstance(path, str) and path else ""


def _dur(step: Row | None) -> float | None:
    value = (step or {}).get("duration_ms")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _side(step: Row | None) -> str:
    if step is None:
        return "—"
    status = "" if step.get("success", True) else " ✗ " + str(step.get("error_type") or "failed")
    name = action_name(step)
    return f"#{step.get('step_number')} {name or step.get('step_type')}{status}"


class CompareView:
    def __init__(self, source: DataSource, a: str, b: str, by: str) -> None:
        self.source, self.a, self.b = source, a.strip(), b.strip()
        self.by = by if by in ("number", "action") else "number"

    async def build(self) -> None:
        frame("Compare", self.source.description)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-3"):
            ui.label("Compare two tasks").classes("text-2xl font-bold")
            with ui.row().classes("items-end gap-3"):
                ia = ui.input("Task A", value=self.a).props("dense outlined").classes("w-72")
                ib = ui.input("Task B", value=self.b).props("dense outlined").classes("w-72")
                by = (
                    ui.select(
                        {"number": "align by step number", "action": "align by action"},
                        value=self.by,
                        label="Alignment",
                    )
                    .props("dense outlined")
                    .classes("w-56")
                )
                ui.button(
                    "Compare",
                    on_click=lambda: ui.navigate.to(
                        f"/compare?a={url_param(ia.value or '')}&b={url_param(ib.value or '')}&by={by.value}"
                    ),
                )
            if not self.a or not self.b:
                ui.label("Enter two task ids (or use “Compare” on a task page).").classes("text-gray-600")
                return
            await self._compare()

    async def _compare(self) -> None:
        tasks: list[Row] = []
        for label, task_id in (("A", self.a), ("B", self.b)):
            try:
                task = await fetch(self.source.get_task, task_id)  # None for an impossible id too
            except FetchError as exc:
                error_box(str(exc), title="Cannot load the tasks")
                return
            if task is None:
                error_box(f"Task {label} not found: {cut(task_id, 200)}", title="Task not found")
                return
            tasks.append(task)
        try:
            steps_a = await fetch(self.source.iter_all_steps, self.a)
            steps_b = await fetch(self.source.iter_all_steps, self.b)
        except FetchError as exc:
            error_box(str(exc), title="Cannot load the steps")
            return
        if max(len(steps_a), len(steps_b)) > MAX_STEPS:
            ui.label(f"Only the first {MAX_STEPS:,} steps of each task are compared.").classes(
                "text-amber-800"
            ).mark("truncated")
            steps_a, steps_b = steps_a[:MAX_STEPS], steps_b[:MAX_STEPS]
        with ui.row().classes("w-full gap-4"):
            for label, task in zip(("A", "B"), tasks, strict=True):
                with ui.card().classes("flex-1"):
                    with ui.row().classes("items-center gap-2"):
                        ui.label(label).classes("text-xl font-bold")
                        status_badge(task.get("status"))
                        ui.link(str(task.get("title") or task["task_id"]), task_url(task["task_id"]))
                    ui.label(
                        f"{task.get('total_steps') or 0} steps · success {fmt_rate(task.get('success_rate'))} · "
                        f"step time {fmt_ms(task.get('total_duration_ms'))} · wall {fmt_ms(task.get('duration_ms'))}"
                    )
        ta, tb = (t.get("total_duration_ms") for t in tasks)
        if isinstance(ta, int | float) and isinstance(tb, int | float):
            ui.label(f"B − A step time: {'+' if tb >= ta else '−'}{fmt_ms(abs(tb - ta))}").classes(
                "font-bold"
            ).mark("total-delta")
        rows = comparison_rows(align(steps_a, steps_b, self.by), self.a, self.b)
        first = next((r for r in rows if r["first_divergence"]), None)
        if first is None:
            ui.label("The runs do not diverge: same actions, same outcomes.").classes(
                "text-green-800 font-medium"
            ).mark("no-divergence")
        else:
            ui.label(
                f"First divergence (row {first['key'] + 1}): A {first['a_step']}  ·  B {first['b_step']}"
            ).classes("text-amber-900 font-bold bg-amber-100 rounded px-2 py-1").mark("divergence")
        per_page = 50
        page = first["key"] // per_page + 1 if first else 1
        table = (
            ui.table(
                columns=[
                    {"name": "a_step", "label": "A step", "field": "a_step", "align": "left"},
                    {"name": "b_step", "label": "B step", "field": "b_step", "align": "left"},
                    {"name": "a_duration", "label": "A time", "field": "a_duration"},
                    {"name": "b_duration", "label": "B time", "field": "b_duration"},
                    {"name": "delta", "label": "Δ (B−A)", "field": "delta"},
                ],
                rows=rows,
                row_key="key",
                pagination={"rowsPerPage": per_page, "page": page},
            )
            .classes("w-full")
            .props("flat dense bordered")
            .mark("comparison")
        )
        # text through {{ }} only; hrefs and image sources are built by us (task_url, screenshot_url)
        table.add_slot(
            "body",
            r"""
<q-tr :props="props" :class="props.row.first_divergence ? 'diverge bg-amber-300' : (props.row.differs ? 'bg-amber-50' : '')">
  <q-td v-for="col in props.cols" :key="col.name" :props="props"
        :class="col.name === 'delta' && props.row.delta_ms > 0 ? 'text-red-700' : (col.name === 'delta' && props.row.delta_ms < 0 ? 'text-green-700' : '')">
    <a v-if="col.name === 'a_step' && props.row.a_url" :href="props.row.a_url" class="flex items-center gap-2 text-inherit no-underline">
      <img v-if="props.row.a_shot" :src="props.row.a_shot" loading="lazy" class="h-32 rounded border" />
      <span>{{ col.value }}</span>
    </a>
    <a v-else-if="col.name === 'b_step' && props.row.b_url" :href="props.row.b_url" class="flex items-center gap-2 text-inherit no-underline">
      <img v-if="props.row.b_shot" :src="props.row.b_shot" loading="lazy" class="h-32 rounded border" />
      <span>{{ col.value }}</span>
    </a>
    <span v-else>{{ col.value }}</span>
  </q-td>
</q-tr>""",
        )
        if first is not None:
            ui.timer(
                0.3,
                lambda: ui.run_javascript(
                    "document.querySelector('.diverge')?.scrollIntoView({block: 'center'})"
                ),
                once=True,
            )


def register(source: DataSource) -> None:
    @ui.page("/compare", response_timeout=PAGE_TIMEOUT)
    async def compare_page(a: str = "", b: str = "", by: str = "number") -> None:
        await CompareView(source, a[:1000], b[:1000], by).build()

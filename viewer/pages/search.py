"""Search across tasks (``/search?q=``): task titles, results and errors and the thinking and
errors of every step, with each match shown in context and linked to its task and step."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from nicegui import ui

from ..data.base import MAX_SEARCH, MIN_SEARCH, DataSource, Row
from ._common import PAGE_TIMEOUT, FetchError, empty_box, error_box, fetch, fmt_ts, frame

FIELD_LABELS = {"title": "title", "result": "result", "error_message": "error", "thinking": "thinking"}


def match_link(match: Row) -> str:
    url = "/tasks/" + quote(str(match.get("task_id")), safe="")
    return f"{url}?step={match['step_number']}" if match.get("step_number") is not None else url


class SearchView:
    def __init__(self, source: DataSource, query: str = "") -> None:
        self.source = source
        self.query = query.strip()[:MAX_SEARCH]

    async def build(self) -> None:
        frame("Search", self.source.description)
        with ui.column().classes("w-full max-w-screen-xl mx-auto p-4 gap-4"):
            ui.label("Search all tasks").classes("text-2xl font-bold")
            with ui.row().classes("w-full items-center gap-2"):
                self.input = (
                    ui.input("Text in titles, results, thinking, errors", value=self.query)
                    .props("dense outlined clearable autofocus")
                    .classes("flex-grow")
                    .mark("search-input")
                )
                self.input.on("keydown.enter", self._submit)
                ui.button("Search", on_click=self._submit).mark("search-button")
            self.body = ui.column().classes("w-full gap-2")
        await self.render()

    async def _submit(self) -> None:
        self.query = (self.input.value or "").strip()[:MAX_SEARCH]
        ui.run_javascript(f"history.replaceState(null, '', '/search?{urlencode({'q': self.query})}')")
        await self.render()

    async def render(self) -> None:
        self.body.clear()
        if not self.query:
            return
        with self.body:
            if len(self.query) < MIN_SEARCH:
                empty_box(f"Type at least {MIN_SEARCH} characters.")
                return
            try:
                matches = await fetch(self.source.search, self.query, 100)
            except FetchError as exc:
                error_box(str(exc), title="Cannot search")
                return
            if not matches:
                empty_box("No task contains this text.")
                return
            ui.label(
                f"{len(matches)}{'+' if len(matches) == 100 else ''} matches, newest task first"
            ).classes("text-sm text-gray-600").mark("search-count")
            for m in matches:
                self._match(m)

    @staticmethod
    def _match(m: Row) -> None:
        with ui.card().classes("w-full py-2").mark("search-match"):
            with ui.row().classes("items-baseline gap-3 w-full"):
                ui.link(str(m.get("task_id")), match_link(m)).classes("font-mono text-indigo-700")
                ui.label(str(m.get("title") or "")).classes("font-bold")
                where = FIELD_LABELS.get(str(m.get("field")), str(m.get("field")))
                if m.get("step_number") is not None:
                    where = f"step {m['step_number']} {where}"
                ui.badge(where).props("outline")
                ui.space()
                ui.label(f"{m.get('agent') or ''} · {fmt_ts(m.get('started_at'))}").classes(
                    "text-xs text-gray-500"
                )
            # the snippet is user text: a label renders it as text, never HTML
            ui.label(str(m.get("snippet") or "")).classes(
                "font-mono text-sm whitespace-pre-wrap break-all"
            ).mark("search-snippet")


def register(source: DataSource) -> None:
    @ui.page("/search", response_timeout=PAGE_TIMEOUT)
    async def search_page(q: str = "") -> None:
        await SearchView(source, q).build()

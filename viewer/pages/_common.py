"""Shared page pieces: the frame (header + nav), formatting, and safe data fetching.

User data is only ever shown through text-rendering elements (labels, table cells, Vue
``{{ }}`` interpolation), never ui.html/ui.markdown, so HTML in step text stays text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from nicegui import ui

from stepsdk.recording.step_names import step_label

from ..data._stats import parse_ts
from ..data.base import Row, SourceUnavailable
from ._format import fmt_ms

log = logging.getLogger("stepsdk.viewer.pages")
T = TypeVar("T")

STATUS_COLORS = {"running": "blue", "success": "positive", "failed": "negative", "interrupted": "orange"}
STEP_TYPE_STYLE = {  # icon, colour
    "thinking": ("psychology", "purple"),
    "action": ("touch_app", "primary"),
    "screenshot": ("photo_camera", "teal"),
    "error": ("error", "negative"),
    "validation": ("fact_check", "green"),
}
# NiceGUI cancels a page whose build takes longer than response_timeout (3 s by default); a busy
# backend must give the data-source timeout (10 s) time to answer with a clear error instead.
PAGE_TIMEOUT = 30.0
MAX_JSON_CHARS = 20_000  # beyond this a block is cut (exports have the whole value)


_stale_after = timedelta(minutes=float(os.environ.get("STEPSDK_STALE_MINUTES") or 10))


def set_stale_minutes(minutes: float) -> None:
    """A running task with no new step for ``minutes`` shows as stale (``--stale-minutes``)."""
    global _stale_after
    if not minutes > 0:
        raise ValueError(f"stale minutes must be > 0, got {minutes!r}")
    _stale_after = timedelta(minutes=minutes)


def stale_for(task: Row, now: datetime | None = None) -> timedelta | None:
    """How long a *running* task has had no new step (or, without steps, since it started),
    when that exceeds the stale limit; None for a task that is live or not running."""
    if task.get("status") != "running":
        return None
    last = parse_ts(task.get("last_step_at")) or parse_ts(task.get("started_at"))
    if last is None:
        return None
    idle = (now or datetime.now(UTC)) - last
    return idle if idle >= _stale_after else None


def fmt_span(span: timedelta) -> str:
    return fmt_ms(span.total_seconds() * 1000)


def interruption(task: Row) -> str:
    """Why the recorder marked a task interrupted (``metadata.interrupted`` / ``.abandoned``)."""
    meta = task.get("metadata")
    if not isinstance(meta, dict):
        return ""
    stopped = meta.get("interrupted")
    if isinstance(stopped, dict) and stopped.get("signal"):
        return f"Interrupted by {stopped['signal']}"
    if stopped:
        return "Interrupted"
    gone = meta.get("abandoned")
    if isinstance(gone, dict):
        where = " ".join(
            p
            for p in (
                f"pid {gone['pid']}" if gone.get("pid") else "",
                f"on {gone['host']}" if gone.get("host") else "",
            )
            if p
        )
        when = f", detected {fmt_ts(gone.get('detected_at'))}" if gone.get("detected_at") else ""
        return f"Abandoned: the recording process{' (' + where + ')' if where else ''} stopped without finishing{when}"
    return "Abandoned" if gone else ""


def step_name(step: Row) -> str:
    """The step's label (its ``name``, or one derived from its data)."""
    return step_label(step)


class FetchError(Exception):
    """A fetch failed; ``message`` is safe to show."""


async def fetch(fn: Callable[..., T], *args: Any) -> T:
    """Run a data-source call off the event loop; backend trouble becomes FetchError.

    ``asyncio.to_thread`` rather than ``run.io_bound``: the latter returns None instead of the
    result while the app shuts down, which would read as "task not found".
    """
    try:
        return await asyncio.to_thread(fn, *args)
    except SourceUnavailable as exc:
        raise FetchError(str(exc)) from None
    except Exception as exc:  # a bug or an unexpected answer: log it, show a short message
        log.warning("viewer: %s failed: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc_info=True)
        raise FetchError(f"Could not load the data ({type(exc).__name__}).") from None


_CSS = """
/* CJK-capable stacks: Latin first, then the common Chinese/Japanese/Korean system fonts */
body, .q-field, .q-btn, .q-table {
  font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC",
    "Source Han Sans SC", "WenQuanYi Micro Hei", "Noto Sans", sans-serif;
}
.shot-box { width: 100%; }
@media (min-width: 768px) { .shot-box { width: min(45%, var(--shot-w)); flex-shrink: 0; } }
.font-mono, code, pre {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "Noto Sans Mono CJK SC",
    "Sarasa Mono SC", monospace;
}
.q-timeline__title { font-size: 0.95rem; font-weight: 600; margin: 0; line-height: 1.6rem; }
.q-timeline__subtitle { display: none; }
.q-timeline--dense--right .q-timeline__entry { padding-left: 36px; }
.q-timeline__content { padding-bottom: 6px; gap: 0; }
"""


def frame(title: str, source_description: str) -> None:
    """Header with navigation, shared by every page."""
    ui.page_title(f"{title} · stepsdk viewer")
    ui.colors(primary="#4f46e5")
    ui.add_css(_CSS)
    with ui.header().classes("items-center gap-x-4 gap-y-0 bg-indigo-700 py-2 px-4"):
        ui.link("stepsdk viewer", "/").classes("text-white text-lg font-bold no-underline")
        ui.link("Tasks", "/").classes("text-white no-underline")
        ui.link("Statistics", "/stats").classes("text-white no-underline")
        ui.link("Compare", "/compare").classes("text-white no-underline")
        ui.link("Search", "/search").classes("text-white no-underline")
        ui.link("Usage", "/usage").classes("text-white no-underline")
        ui.link("Errors", "/errors").classes("text-white no-underline")
        ui.space()
        ui.label(source_description).classes("text-indigo-200 text-xs hidden md:block")
    from .ops import alerts_banner  # the active alerts of the last `stepsdk alerts check`

    alerts_banner()


def error_box(message: str, *, title: str = "Something went wrong") -> ui.card:
    with ui.card().classes("w-full bg-red-50 border border-red-300").mark("error-box") as card:
        with ui.row().classes("items-center gap-2"):
            ui.icon("error_outline", color="negative")
            ui.label(title).classes("text-red-800 font-bold")
        ui.label(message).classes("text-red-700")
    return card


def empty_box(message: str) -> ui.card:
    with ui.card().classes("w-full bg-gray-50") as card, ui.row().classes("items-center gap-2"):
        ui.icon("inbox", color="grey")
        ui.label(message).classes("text-gray-600")
    return card


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def url_param(value: str) -> str:
    """``value`` encoded for a query string or one path segment."""
    return quote(value, safe="")


def task_url(task_id: str) -> str:
    return "/tasks/" + url_param(task_id)


def screenshot_url(screenshot_path: str, *, fallback: bool = False) -> str:
    url = "/media/screenshots/" + quote(screenshot_path, safe="/")
    return url + "?fallback=true" if fallback else url


def fmt_rate(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return "–"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value * 100:.1f} %"


def fmt_ts(value: Any) -> str:
    ts = parse_ts(value)
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "–"


def to_json_text(value: Any, limit: int = MAX_JSON_CHARS) -> str:
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = (
            text[:limit]
            + f"\n… cut here: {len(text) - limit:,} more characters (export the task for all of it)"
        )
    return text


def json_block(value: Any) -> ui.label:
    """Readable JSON as plain text (never markdown/HTML)."""
    return ui.label(to_json_text(value)).classes(
        "font-mono text-xs whitespace-pre-wrap break-words [overflow-wrap:anywhere] bg-gray-100 rounded p-2 w-full max-h-96 overflow-auto"
    )


def status_badge(status: Any) -> ui.badge:
    text = str(status or "unknown")
    return ui.badge(text, color=STATUS_COLORS.get(text, "grey")).classes("text-sm")

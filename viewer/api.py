"""The JSON API (FastAPI routes on NiceGUI's app, listed in ``/openapi.json``) and the
screenshot proxy. Handlers are plain ``def``: FastAPI runs them in its thread pool, so the
synchronous data sources never block the event loop.

Errors are JSON ``{"detail": ...}``: 404 for unknown tasks/objects, 422 for bad parameters,
503 when the backend cannot be reached (a :class:`stepsdk.errors.StepSDKError` reaching a route is
mapped by :func:`install_error_handler`, the one place for it).

Task ids are one URL-encoded path segment (``a/steps`` → ``/api/tasks/a%2Fsteps``): routing
normally sees the decoded path, where that id would read as task ``a``'s steps route, so
:class:`EncodedTaskIdPath` keeps the id segment encoded until the handler decodes it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse, Response
from nicegui import app
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from stepsdk.errors import BackendUnavailableError, ExportFormatError, StepSDKError
from stepsdk.recording.sensitive import is_encrypted as _is_encrypted

from .api_models import ReportResponse, ScreenshotsResponse, StepsResponse
from .data.base import (
    MAX_PER_PAGE,
    MAX_SEARCH,
    MIN_SEARCH,
    SORT_COLUMNS,
    STATUSES,
    DataSource,
    Row,
    Sort,
    SourceUnavailable,
    TaskFilters,
    period_start,
)
from .export import read_report
from .pages._common import screenshot_url

log = logging.getLogger("stepsdk.viewer.api")
SortColumn = Literal[SORT_COLUMNS]  # type: ignore[valid-type]
Status = Literal[STATUSES]  # type: ignore[valid-type]
# no NUL: PostgreSQL text cannot hold one, and Supabase's refusal would read as an outage (503)
Agent = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]
TASKS_PREFIX = "/api/tasks/"


def _task_id(
    task_id: Annotated[str, Path(description="the task id, URL-encoded as one segment (a/b → a%2Fb)")],
) -> str:
    return unquote(task_id)  # the segment arrives still encoded: see EncodedTaskIdPath


TaskId = Annotated[str, Depends(_task_id)]


def routing_path(raw_path: bytes, prefix: str) -> str:
    """The path to route on for ``/api/tasks/<id>[/...]``: every segment decoded except the id,
    which stays percent-encoded (so an encoded ``/`` cannot split it) until :func:`_task_id`."""
    raw = raw_path.decode("utf-8", "replace")[len(prefix) :]  # some clients send UTF-8 unencoded
    segment, slash, rest = raw.partition("/")
    return prefix + unquote(segment).replace("%", "%25").replace("/", "%2F") + slash + unquote(rest)


class EncodedTaskIdPath:
    """ASGI middleware: routes ``/api/tasks/...`` on :func:`routing_path` of the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            prefix = scope.get("root_path", "") + TASKS_PREFIX
            raw = scope.get("raw_path") or b""
            if scope["path"].startswith(prefix) and raw.startswith(prefix.encode()):
                scope = {**scope, "path": routing_path(raw, prefix)}
        await self.app(scope, receive, send)


def pagination(page: int, per_page: int, total: int) -> dict[str, int]:
    return {
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": -(-total // per_page) if total else 0,
    }


def _unavailable(exc: SourceUnavailable) -> HTTPException:
    return HTTPException(503, detail=str(exc))


# The HTTP status of each kind of stepsdk error a route lets through, the first that matches
# (a data source that cannot reach its backend raises SourceUnavailable, a BackendUnavailableError).
HTTP_STATUS: tuple[tuple[type[StepSDKError], int], ...] = (
    (BackendUnavailableError, 503),
    (ExportFormatError, 422),
    (StepSDKError, 500),
)


async def _stepsdk_error(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for kind, code in HTTP_STATUS if isinstance(exc, kind))
    if status == 500:
        log.error("viewer: %s on %s: %s", type(exc).__name__, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install_error_handler() -> None:
    """Answer a StepSDKError raised by any route with ``{"detail": message}`` and its status."""
    app.add_exception_handler(StepSDKError, _stepsdk_error)


def _with_url(row: Row) -> Row:
    path = row.get("screenshot_path")
    return {**row, "url": screenshot_url(path) if isinstance(path, str) else None}


def duration_overview(days: list[Row]) -> dict[str, float | None]:
    """Min/avg/max task wall time over the period, exact from the per-day rows (every task
    that is not running has a duration, so a day's weight is tasks - running_tasks)."""
    mins = [r["min_task_duration_ms"] for r in days if r.get("min_task_duration_ms") is not None]
    maxs = [r["max_task_duration_ms"] for r in days if r.get("max_task_duration_ms") is not None]
    weighted = [
        (float(r["avg_task_duration_ms"]), (r.get("tasks") or 0) - (r.get("running_tasks") or 0))
        for r in days
        if r.get("avg_task_duration_ms") is not None
    ]
    weight = sum(w for _, w in weighted)
    return {
        "min_task_duration_ms": min(mins) if mins else None,
        "avg_task_duration_ms": sum(a * w for a, w in weighted) / weight if weight else None,
        "max_task_duration_ms": max(maxs) if maxs else None,
    }


def stats_payload(source: DataSource, days: int, top: int, agent: str | None) -> dict[str, Any]:
    """The statistics page's data: every panel over the same period and agent."""
    since = period_start(days)
    daily = source.get_daily_stats(days, agent)
    return {
        "days": daily,
        "durations": duration_overview(daily),
        "period_start": since.isoformat(),
        "agent": agent,
        "top_errors": source.top_errors(top, since=since, agent=agent),
        "step_types": source.step_type_breakdown(since=since, agent=agent),
        "slowest_steps": source.slowest_steps(top, since, agent=agent),
    }


def image_type(data: bytes) -> str | None:
    """The image type by magic bytes (never trust the key's extension)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return None


_PLACEHOLDER = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="270" height="600" viewBox="0 0 270 600">'
    '<rect width="270" height="600" fill="#f3f4f6" stroke="#9ca3af" stroke-width="4" stroke-dasharray="12 8"/>'
    '<text x="135" y="300" font-family="sans-serif" font-size="18" fill="#6b7280" text-anchor="middle">{text}</text>'
    "</svg>"
)


def _placeholder(text: str, status: int) -> Response:
    # ``text`` is one of our fixed strings, never user data
    return Response(
        _PLACEHOLDER.format(text=text),
        status_code=status,
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "X-Stepsdk-Placeholder": "1"},
    )


_LOCKED = {
    "no_key": "Locked: sensitive screen",
    "wrong_key": "Locked: wrong screenshot key",
    "bad_key": "Locked: bad screenshot key",
    "corrupt": "Encrypted screenshot damaged",
}


def unlock_screenshot(source: DataSource, screenshot_path: str, data: bytes) -> Any:
    """Stored bytes as the viewer may show them (``stepsdk.recording.sensitive.Viewable``): plain images as
    they are; encrypted sensitive screens decrypted with the configured key (STEPSDK_SCREENSHOT_KEY
    or _KEY_FILE; each decryption is written to the audit log) or locked with a clear message."""
    from stepsdk.ops import audit as _audit
    from stepsdk.recording import sensitive as _sensitive

    view = _sensitive.viewable(data)
    if view.locked:
        log.warning("screenshot %s stays locked: %s", screenshot_path, view.message)
    elif view.decrypted:
        store = getattr(source, "store", None)  # BackupSource: the backup's audit.log; else the table
        _audit.record(
            "decrypt",
            screenshot_path,
            1,
            {"viewer": source.description},
            backup_dir=getattr(store, "path", None),
            client=None if store else getattr(source, "_client", None),
        )
    return view


def image_response(source: DataSource, screenshot_path: str, fallback: bool) -> Response:
    """The stored image at ``screenshot_path`` (typed by its bytes; an encrypted sensitive screen
    decrypted when the viewer has the key, else locked), a 403/404/503, or with ``fallback`` a
    visible placeholder."""
    try:
        data = source.screenshot_bytes(screenshot_path)
    except SourceUnavailable as exc:
        if fallback:
            return _placeholder("Screenshot unavailable (backend down)", 503)
        raise _unavailable(exc) from None
    private = data is not None and _is_encrypted(data)
    if data is not None and private:
        view = unlock_screenshot(source, screenshot_path, data)
        if view.locked:
            if fallback:
                return _placeholder(_LOCKED.get(view.reason, "Locked"), 200)
            raise HTTPException(403, detail=view.message)
        data = view.data
    media_type = image_type(data) if data is not None else None
    if data is None or media_type is None:
        if fallback:
            return _placeholder("Screenshot missing" if data is None else "Not a valid image", 200)
        raise HTTPException(
            404, detail="screenshot not found" if data is None else "stored object is not an image"
        )
    # content-addressed keys never change content: let the browser keep them (not a decrypted one)
    return Response(
        data,
        media_type=media_type,
        headers={
            "Cache-Control": "no-store" if private else "private, max-age=86400, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )


def register(source: DataSource) -> None:
    app.add_middleware(EncodedTaskIdPath)
    install_error_handler()

    def task_or_404(task_id: str) -> Row:
        task = source.get_task(task_id)
        if task is None:
            raise HTTPException(404, detail="task not found")
        return task

    @app.get("/api/tasks", tags=["stepsdk"], summary="List tasks (filters, sorting, pagination)")
    def list_tasks(
        search: Annotated[str, Query(max_length=500)] = "",
        status: Status | None = None,
        agent: Agent = None,
        started_from: datetime | None = None,
        started_to: datetime | None = None,
        sort: SortColumn = "started_at",
        order: Literal["asc", "desc"] = "desc",
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20,
        meta: Annotated[
            list[str] | None,
            Query(
                max_length=10, description="task metadata equality, key=value (repeatable): meta=model=gpt-4o"
            ),
        ] = None,
    ) -> dict[str, Any]:
        try:
            wanted = dict(m.split("=", 1) if "=" in m else (m, None) for m in meta or [])
            if any(v is None for v in wanted.values()):
                raise ValueError("meta filters are key=value")
            filters = TaskFilters(
                search=search,
                status=status,
                agent=agent,
                started_from=started_from,
                started_to=started_to,
                meta=wanted,
            )
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        rows, total = source.list_tasks(filters, Sort(sort, order == "desc"), page, per_page)
        return {"tasks": rows, "pagination": pagination(page, per_page, total)}

    @app.get(
        "/api/stats",
        tags=["stepsdk"],
        summary="Per-day figures, durations, top errors, step types, slowest steps (one period, one agent)",
    )
    def stats(
        days: Annotated[int, Query(ge=1, le=3660)] = 7,
        top: Annotated[int, Query(ge=1, le=100)] = 10,
        agent: Agent = None,
    ) -> dict[str, Any]:
        """Every panel covers the same period (the last ``days`` UTC days, today included) and,
        with ``agent``, only that agent's tasks."""
        agent = agent or None
        return {**stats_payload(source, days, top, agent), "error_categories": source.error_categories()}

    @app.get(
        "/api/search",
        tags=["stepsdk"],
        summary="Search task titles, results, errors and step thinking/errors across tasks",
    )
    def search(
        q: Annotated[str, Query(min_length=MIN_SEARCH, max_length=MAX_SEARCH)],
        agent: Agent = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        try:
            return {"query": q, "matches": source.search(q, limit, agent or None)}
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from None

    @app.get(
        "/api/tasks/{task_id}/steps",
        tags=["stepsdk"],
        summary="A page of a task's steps",
        response_model=StepsResponse,
    )
    def steps(
        task_id: TaskId,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20,
        limit: Annotated[
            int | None,
            Query(
                ge=1,
                le=MAX_PER_PAGE,
                description=(
                    "at most this many steps in the answer (the first ones of the page); "
                    "the pagination still describes page/per_page"
                ),
            ),
        ] = None,
    ) -> dict[str, Any]:
        task_or_404(task_id)
        rows, total = source.get_steps(task_id, page, per_page)
        if limit is not None:
            rows = rows[:limit]
        return {"data": {"steps": rows, "pagination": pagination(page, per_page, total)}}

    @app.get(
        "/api/tasks/{task_id}/report",
        tags=["stepsdk"],
        summary="Task, all steps, screenshots, statistics",
        response_model=ReportResponse,
    )
    def report(task_id: TaskId) -> dict[str, Any]:
        task = task_or_404(task_id)
        return {"data": read_report(source, task, _with_url)}

    @app.get(
        "/api/tasks/{task_id}/screenshots",
        tags=["stepsdk"],
        summary="A task's screenshots",
        response_model=ScreenshotsResponse,
    )
    def screenshots(task_id: TaskId) -> dict[str, Any]:
        task_or_404(task_id)
        return {"data": {"screenshots": [_with_url(r) for r in source.get_screenshots(task_id)]}}

    @app.get(
        "/api/steps/{step_id}/screenshot",
        tags=["stepsdk"],
        summary="A step's screenshot (the image)",
        response_class=Response,
        responses={200: {"content": {"image/webp": {}}}, 404: {}},
    )
    def step_screenshot(step_id: str, fallback: bool = False) -> Response:
        """The image of the step's screenshot (its ``screenshot_path``, else its ``step_screenshots``
        row); 404 when the step is unknown or has none."""
        try:
            path = source.step_screenshot_path(step_id)
        except SourceUnavailable as exc:
            if fallback:
                return _placeholder("Screenshot unavailable (backend down)", 503)
            raise _unavailable(exc) from None
        if path is None:
            if fallback:
                return _placeholder("No screenshot", 200)
            raise HTTPException(404, detail="step not found or without a screenshot")
        return image_response(source, path, fallback)

    @app.get("/api/tasks/{task_id}", tags=["stepsdk"], summary="One task with its summary")
    def task(task_id: TaskId) -> Row:
        return task_or_404(task_id)

    @app.get(
        "/media/screenshots/{screenshot_path:path}",
        tags=["stepsdk"],
        summary="A screenshot (proxied)",
        response_class=Response,
    )
    def screenshot(screenshot_path: str, fallback: bool = False) -> Response:
        """``fallback=true`` (used by the pages) answers a missing, unreadable or non-image object
        with a visible placeholder instead of a 404, so a page never shows a broken image."""
        return image_response(source, screenshot_path, fallback)

    @app.get("/api/{rest:path}", include_in_schema=False)
    def api_not_found(rest: str) -> None:
        if rest.startswith("tasks/"):  # most likely an id with an unencoded "/"
            raise HTTPException(
                404, detail="no such API route (a task id is one path segment: URL-encode it, a/b → a%2Fb)"
            )
        raise HTTPException(404, detail="no such API route")

"""DataSource over Supabase, through the official ``supabase`` client.

Statistics come from the SQL views/functions of ``*_stepsdk_stats.sql`` so the viewer shows
exactly what the SQL console shows. The client is synchronous: pages call us through
``run.io_bound``. Screenshots are downloaded here (service key or user token) and served by
the viewer's own route, so no key or signed URL reaches the browser.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from postgrest import APIError
from storage3.exceptions import StorageApiError
from storage3.utils import StorageException

from stepsdk.backend.client import make_client
from stepsdk.schema import BUCKET
from supabase import Client

from ..secret_key import is_secret_key
from .base import (
    FAILED_STEP_COLUMNS,
    DataSource,
    Row,
    Sort,
    SourceUnavailable,
    TaskFilters,
    check_category,
    check_days,
    check_limit,
    check_paging,
    check_search,
    is_plausible_task_id,
    is_safe_screenshot_path,
    is_uuid,
)

log = logging.getLogger("stepsdk.viewer.supabase")
T = TypeVar("T")


class SupabaseSource(DataSource):
    def __init__(self, url: str, key: str, *, access_token: str | None = None, timeout: float = 10.0) -> None:
        """``key``: the service role key, or the anon key together with a user's ``access_token``
        (then row-level security shows that user's tasks only)."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL of a Supabase project")
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
        # No client-side retries: a viewer should say "unreachable" now, not after 7 s of backoff.
        self._client: Client = make_client(url, key, timeout=timeout, headers=headers)
        self._secrets = tuple(s for s in (key, access_token) if s)
        # stepsdk.viewer.operations (delete, clean-up): only a secret key without a user's token deletes
        self.client: Client = self._client
        self.can_delete = access_token is None and is_secret_key(key)
        parts = urlsplit(url)  # shown in the page header: never any user:password@ part
        self.description = (
            f"supabase: {parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except httpx.HTTPError as exc:
            raise SourceUnavailable(
                self._safe(f"Supabase is unreachable while reading {what} ({type(exc).__name__})")
            ) from None
        except APIError as exc:
            raise SourceUnavailable(
                self._safe(f"Supabase refused to read {what}: {exc.code or ''} {exc.message or ''}".strip())
            ) from None

    def _safe(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "[redacted]")
        return message[:500]

    def _table(self, name: str) -> Any:
        return self._client.table(name)

    def _all_rows(self, what: str, query: Callable[[], Any]) -> list[Row]:
        """Every row of an ordered ``query()``: PostgREST answers at most 1000 rows, so page
        until a short page."""
        out: list[Row] = []
        while True:
            batch = self._call(
                what, lambda: list(query().range(len(out), len(out) + 999).execute().data or [])
            )
            out.extend(_public(r) for r in batch)
            if len(batch) < 1000:
                return out

    # -- tasks ------------------------------------------------------------------------------
    def list_tasks(self, filters: TaskFilters, sort: Sort, page: int, per_page: int) -> tuple[list[Row], int]:
        check_paging(page, per_page, max_per_page=1000)
        start = (page - 1) * per_page

        def query() -> tuple[list[Row], int]:
            # issue 13: task_list = task_summary + metadata (migration 20261130001300)
            q = _apply_filters(self._table("task_list").select("*", count="exact"), filters)
            q = q.order(sort.column, desc=sort.descending, nullsfirst=sort.descending)
            if sort.column != "task_id":
                q = q.order("task_id")
            return _page_and_count(
                q,
                start,
                per_page,
                lambda: _apply_filters(
                    self._table("tasks").select("task_id", count="exact", head=True), filters
                ),
            )

        return self._call("the task list", query)

    def get_task(self, task_id: str) -> Row | None:
        if not is_plausible_task_id(task_id):
            return None

        def query() -> Row | None:
            task = self._table("tasks").select("*").eq("task_id", task_id).limit(1).execute().data
            if not task:
                return None
            summary = self._table("task_summary").select("*").eq("task_id", task_id).limit(1).execute().data
            return _public({**task[0], **(summary[0] if summary else {})})

        return self._call("the task", query)

    def get_steps(self, task_id: str, page: int, per_page: int) -> tuple[list[Row], int]:
        check_paging(page, per_page, max_per_page=1000)  # PostgREST caps a response at 1000 rows
        if not is_plausible_task_id(task_id):
            return [], 0
        start = (page - 1) * per_page

        def query() -> tuple[list[Row], int]:
            q = (
                self._table("task_steps")
                .select("*", count="exact")
                .eq("task_id", task_id)
                .order("step_number")
                .order("id")
            )
            return _page_and_count(
                q,
                start,
                per_page,
                lambda: (
                    self._table("task_steps").select("id", count="exact", head=True).eq("task_id", task_id)
                ),
            )

        return self._call("the steps", query)

    def iter_all_steps(self, task_id: str, chunk: int = 1000) -> list[Row]:
        return super().iter_all_steps(task_id, chunk)

    def get_task_stats(self, task_id: str) -> Row | None:
        if not is_plausible_task_id(task_id):
            return None
        rows = self._call(
            "the task statistics",
            lambda: self._client.rpc("stepsdk_task_stats", {"p_task_id": task_id}).execute().data,
        )
        return _num(rows[0]) if rows else None

    def get_screenshots(self, task_id: str, step_ids: list[str] | None = None) -> list[Row]:
        if not is_plausible_task_id(task_id):
            return []

        if step_ids is not None and not step_ids:
            return []

        def query() -> Any:
            q = self._table("step_screenshots").select("*").eq("task_id", task_id)
            if step_ids is not None:
                q = q.in_("step_id", step_ids)
            return q.order("created_at").order("id")

        return self._all_rows("the screenshots", query)

    def step_screenshot_path(self, step_id: str) -> str | None:
        if not is_uuid(step_id):
            return None

        def query() -> str | None:
            rows = (
                self._table("task_steps").select("screenshot_path").eq("id", step_id).limit(1).execute().data
            )
            if not rows:
                return None
            if rows[0].get("screenshot_path"):
                return str(rows[0]["screenshot_path"])
            shots = (
                self._table("step_screenshots")
                .select("screenshot_path")
                .eq("step_id", step_id)
                .order("created_at", desc=True)
                .limit(1)
                .execute()
                .data
            )
            return str(shots[0]["screenshot_path"]) if shots else None

        return self._call("the step's screenshot", query)

    def step_durations(self, task_id: str) -> list[Row]:
        if not is_plausible_task_id(task_id):
            return []
        return self._all_rows(
            "the step durations",
            lambda: (
                self._table("task_steps")
                .select("step_number,step_type,duration_ms,success")
                .eq("task_id", task_id)
                .order("step_number")
            ),
        )

    def agents(self) -> list[str]:
        # PostgREST has no DISTINCT: the agents of the most recent 1000 tasks are what people filter by.
        rows = self._call(
            "the agents",
            lambda: (
                self._table("tasks")
                .select("agent")
                .not_.is_("agent", "null")
                .order("started_at", desc=True)
                .limit(1000)
                .execute()
                .data
                or []
            ),
        )
        return sorted({r["agent"] for r in rows if r.get("agent")})

    # -- statistics -------------------------------------------------------------------------
    def get_daily_stats(self, days: int, agent: str | None = None) -> list[Row]:
        check_days(days)
        if agent:
            name, params = "stepsdk_daily_stats_for", {"days": days, "p_agent": agent}
        else:
            name, params = "stepsdk_daily_stats", {"days": days}

        def call() -> Any:
            return self._client.rpc(name, params).execute().data or []

        return [_num(r) for r in self._call("the daily statistics", call)]

    def step_type_breakdown(
        self, task_id: str | None = None, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        if task_id is not None and not is_plausible_task_id(task_id):
            return []
        params = {"p_since": _iso(since), "p_agent": agent or None, "p_task_id": task_id}
        return [
            _num(r)
            for r in self._call(
                "the step types", lambda: self._client.rpc("stepsdk_step_types", params).execute().data
            )
            or []
        ]

    def top_errors(
        self, limit: int = 10, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        params = {"p_since": _iso(since), "p_agent": agent or None, "limit_n": limit}
        return self._call(
            "the errors", lambda: list(self._client.rpc("stepsdk_error_groups", params).execute().data or [])
        )

    def slowest_steps(
        self, limit: int = 20, since: datetime | None = None, *, agent: str | None = None
    ) -> list[Row]:
        check_limit(limit)
        params: dict[str, Any] = {"limit_n": limit, "since": _iso(since), "p_agent": agent or None}
        return self._call(
            "the slowest steps",
            lambda: list(self._client.rpc("stepsdk_slowest_steps_for", params).execute().data or []),
        )

    def search(self, query: str, limit: int = 20, agent: str | None = None) -> list[Row]:
        text = check_search(query, limit)
        params = {"p_query": text, "p_agent": agent or None, "limit_n": limit}
        return self._call(
            "the search", lambda: list(self._client.rpc("stepsdk_search", params).execute().data or [])
        )

    # -- usage and error categories ---------------------------------------------------------
    def task_usage(self, task_id: str) -> Row | None:
        if not is_plausible_task_id(task_id):
            return None
        rows = self._call(
            "the task's token usage",
            lambda: (
                self._table("task_usage").select("*").eq("task_id", task_id).limit(1).execute().data or []
            ),
        )
        return rows[0] if rows else None

    def tasks_by_usage(self, limit: int = 20) -> list[Row]:
        check_limit(limit)
        return self._call(
            "the token usage",
            lambda: list(
                self._client.rpc("stepsdk_top_token_tasks", {"limit_n": limit}).execute().data or []
            ),
        )

    def daily_usage(self, days: int) -> list[Row]:
        check_days(days)
        return self._call(
            "the daily token usage",
            lambda: list(self._client.rpc("stepsdk_daily_usage", {"days": days}).execute().data or []),
        )

    def error_categories(self) -> list[Row]:
        return self._call(
            "the error categories",
            lambda: list(
                self._table("error_category_summary")
                .select("*")
                .order("failed_steps", desc=True)
                .order("error_category", nullsfirst=False)
                .execute()
                .data
                or []
            ),
        )

    def failed_steps(self, category: str | None = None, limit: int = 100) -> list[Row]:
        check_category(category)
        check_limit(limit)

        def query() -> list[Row]:
            q = (
                self._table("task_steps")
                .select(",".join(FAILED_STEP_COLUMNS) + ",tasks(title)")
                .eq("success", False)
            )
            if category == "none":
                q = q.is_("error_category", "null")
            elif category is not None:
                q = q.eq("error_category", category)
            rows = q.order("created_at", desc=True).order("id").limit(limit).execute().data or []
            return [
                {
                    **{k: v for k, v in r.items() if k != "tasks"},
                    "task_title": (r.get("tasks") or {}).get("title"),
                }
                for r in rows
            ]

        return self._call("the failed steps", query)

    def screenshot_bytes(self, screenshot_path: str) -> bytes | None:
        if not is_safe_screenshot_path(screenshot_path):
            return None

        def download() -> bytes | None:
            try:
                return self._client.storage.from_(BUCKET).download(screenshot_path)
            except StorageApiError as exc:
                if str(exc.status) in {"400", "404"}:
                    return None
                raise SourceUnavailable(f"Storage refused the screenshot ({exc.status})") from None
            except StorageException:
                return None

        return self._call("a screenshot", download)


def _page_and_count(q: Any, start: int, per_page: int, head: Callable[[], Any]) -> tuple[list[Row], int]:
    """One page of ``q`` (selected with count="exact") and the total. An offset past the end is
    an empty page, not an error: PostgREST refuses it (PGRST103), so ``head()`` counts instead."""
    try:
        res = q.range(start, start + per_page - 1).execute()
    except APIError as exc:
        if exc.code != "PGRST103":
            raise
        return [], int(head().execute().count or 0)
    return [_public(r) for r in res.data or []], int(res.count or 0)


def _public(row: Row) -> Row:
    """A row without the database's own bookkeeping (`row_version`, see the row-versions migration)."""
    row.pop("row_version", None)
    return row


def _apply_filters(q: Any, f: TaskFilters) -> Any:
    if f.status:
        q = q.eq("status", f.status)
    if f.agent:
        q = q.eq("agent", f.agent)
    if f.started_from:
        q = q.gte("started_at", f.started_from.isoformat())
    if f.started_to:
        q = q.lt("started_at", f.started_to.isoformat())
    if f.search:
        pattern = _quote(f"*{_escape_like(f.search)}*")
        q = q.or_(f"task_id.ilike.{pattern},title.ilike.{pattern}")
    # issue 13: metadata equality (keys are [A-Za-z0-9_], checked by TaskFilters; task_list and
    # tasks have the metadata column)
    for key, value in f.meta.items():
        q = q.eq(f"metadata->>{key}", value)
    return q


def _escape_like(text: str) -> str:
    # ILIKE's escape character is the backslash; PostgREST turns * into %.
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _quote(value: str) -> str:
    """A PostgREST logic-tree value in double quotes (so , . ( ) : are literal)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _num(row: Row) -> Row:
    """Rates are SQL numeric: PostgREST may send them as strings; the viewer wants floats."""
    out: Row = dict(row)
    for key, value in row.items():
        if key.endswith("_rate") and isinstance(value, str):
            with contextlib.suppress(ValueError):
                out[key] = float(value)
    return out

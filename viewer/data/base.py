"""The one interface the pages and the JSON API talk to, whatever stores the runs.

Every method is synchronous (the Supabase client is); callers on NiceGUI's event loop wrap
them in ``run.io_bound``. Rows use the schema's column names. A backend that cannot be
reached raises :class:`SourceUnavailable` with a message fit to show (never a key).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stepsdk.errors import BackendUnavailableError
from stepsdk.schema import ERROR_CATEGORIES, MAX_TASK_ID, STEP_TYPES, TASK_STATUSES  # noqa: F401  (re-exported)

Row = dict[str, Any]

STATUSES = TASK_STATUSES
# task_steps.error_category values (ERROR_CATEGORIES); "none" filters steps without one
FAILED_STEP_COLUMNS = (
    "id",
    "task_id",
    "step_number",
    "step_type",
    "name",
    "error_type",
    "error_message",
    "error_category",
    "duration_ms",
    "created_at",
)
# Columns of the task list a user may sort by (all are task_summary columns).
SORT_COLUMNS = (
    "started_at",
    "finished_at",
    "task_id",
    "title",
    "agent",
    "status",
    "total_steps",
    "failed_steps",
    "success_rate",
    "duration_ms",
)
MAX_PER_PAGE = 100
# Content-addressed keys the SDK writes (<sha[0:2]>/<sha>.webp) and other plain object keys;
# anything with "..", a leading slash, a backslash or odd characters is refused.
_META_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SAFE_KEY = re.compile(r"^(?!/)(?!.*\.\.)[A-Za-z0-9_\-./]{1,1024}$")


class SourceUnavailable(BackendUnavailableError, RuntimeError):
    """The backend could not answer (down, timed out, refused). The message is safe to show."""


@dataclass(frozen=True)
class TaskFilters:
    """What the task list is narrowed to. Empty fields do not filter."""

    search: str = ""  # substring of task_id or title, case-insensitive
    status: str | None = None
    agent: str | None = None
    started_from: datetime | None = None  # inclusive
    started_to: datetime | None = None  # exclusive
    meta: dict[str, str] = field(default_factory=dict)  # task metadata key -> value, equality (as text)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.meta, dict)
            or len(self.meta) > 10
            or not all(
                isinstance(k, str) and _META_KEY.match(k) and isinstance(v, str) and len(v) <= 500
                for k, v in self.meta.items()
            )
        ):
            raise ValueError("meta must map at most 10 metadata keys (letters, digits, _) to text values")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        for name in ("started_from", "started_to"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ValueError(f"{name} must be a timezone-aware datetime")
        if len(self.search) > 500:
            raise ValueError("search must be at most 500 characters")
        if "\x00" in self.search or "\x00" in (self.agent or ""):  # PostgreSQL text holds no NUL
            raise ValueError("search and agent must not contain NUL")
        if not isinstance(self.meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 200 and len(v) <= 500
            for k, v in self.meta.items()
        ):
            raise ValueError("meta must map metadata keys (1..200 characters) to string values")


@dataclass(frozen=True)
class Sort:
    column: str = "started_at"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.column not in SORT_COLUMNS:
            raise ValueError(f"sort column must be one of {SORT_COLUMNS}, got {self.column!r}")


def is_plausible_task_id(task_id: object) -> bool:
    """False for ids no stored task can have (so we answer 'not found' without a query)."""
    return isinstance(task_id, str) and 1 <= len(task_id) <= MAX_TASK_ID and "\x00" not in task_id


def is_uuid(value: object) -> bool:
    """Step ids are UUIDs: anything else is unknown without a query."""
    return isinstance(value, str) and bool(_UUID.match(value))


def is_safe_screenshot_path(path: object) -> bool:
    return isinstance(path, str) and bool(_SAFE_KEY.match(path))


def check_paging(page: int, per_page: int, max_per_page: int = MAX_PER_PAGE) -> None:
    if not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be an integer >= 1, got {page!r}")
    if not isinstance(per_page, int) or not 1 <= per_page <= max_per_page:
        raise ValueError(f"per_page must be an integer in 1..{max_per_page}, got {per_page!r}")


def check_days(days: int) -> None:
    if not isinstance(days, int) or not 1 <= days <= 3660:
        raise ValueError(f"days must be an integer in 1..3660, got {days!r}")


def check_category(category: str | None) -> None:
    if category is not None and category not in (*ERROR_CATEGORIES, "none"):
        raise ValueError(f"category must be one of {ERROR_CATEGORIES} or 'none', got {category!r}")


MIN_SEARCH, MAX_SEARCH = 3, 200


def check_search(query: str, limit: int) -> str:
    """The query of a cross-task search, stripped (a substring match needs 3+ characters)."""
    text = query.strip() if isinstance(query, str) else ""
    if not MIN_SEARCH <= len(text) <= MAX_SEARCH:
        raise ValueError(f"search text must be {MIN_SEARCH}..{MAX_SEARCH} characters, got {len(text)}")
    if "\x00" in text:
        raise ValueError("search text must not contain NUL")
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ValueError(f"limit must be in 1..100, got {limit!r}")
    return text


def period_start(days: int, today: date | None = None) -> datetime:
    """The first instant of a ``days``-day period ending today (UTC days, as the daily statistics)."""
    check_days(days)
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be in 1..1000, got {limit}")


class DataSource(ABC):
    """Read-only access to tasks, steps, screenshots and statistics.

    Statistics follow the SQL definitions of ``supabase/migrations/*_stepsdk_stats.sql``
    (rates 0..1, durations in ms, percentiles by linear interpolation) so the viewer and the
    SQL console show the same numbers.
    """

    #: shown in the page header ("backup: ./backup", "supabase: https://…")
    description: str = ""
    #: threads that run the JSON API's handlers (None: the server's default, 40). A source
    #: whose answers are CPU work gains nothing from more threads than cores but GIL contention.
    worker_threads: int | None = None

    @abstractmethod
    def list_tasks(self, filters: TaskFilters, sort: Sort, page: int, per_page: int) -> tuple[list[Row], int]:
        """One page of task_summary rows (+ the total matching the filters)."""

    @abstractmethod
    def get_task(self, task_id: str) -> Row | None:
        """The task row merged with its task_summary columns, or None when unknown."""

    @abstractmethod
    def get_steps(self, task_id: str, page: int, per_page: int) -> tuple[list[Row], int]:
        """One page of the task's steps in step_number order (+ the task's step count)."""

    @abstractmethod
    def get_task_stats(self, task_id: str) -> Row | None:
        """stepsdk_task_stats: total/successful/failed steps, success_rate, total and average
        step duration, screenshots_count. None when the task is unknown."""

    @abstractmethod
    def get_screenshots(self, task_id: str, step_ids: list[str] | None = None) -> list[Row]:
        """The task's step_screenshots rows (only those of ``step_ids`` when given)."""

    @abstractmethod
    def get_daily_stats(self, days: int, agent: str | None = None) -> list[Row]:
        """stepsdk_daily_stats(days): one row per UTC day, oldest first, empty days included
        (only ``agent``'s tasks when given)."""

    @abstractmethod
    def step_type_breakdown(
        self, task_id: str | None = None, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        """Per step_type: steps, failed_steps, avg and p95 duration (all tasks, or one; steps
        created at or after ``since``; tasks of ``agent``)."""

    @abstractmethod
    def top_errors(
        self, limit: int = 10, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        """error_summary rows (errors grouped by type and normalized message), most frequent first."""

    @abstractmethod
    def slowest_steps(
        self, limit: int = 20, since: datetime | None = None, *, agent: str | None = None
    ) -> list[Row]:
        """stepsdk_slowest_steps rows."""

    @abstractmethod
    def search(self, query: str, limit: int = 20, agent: str | None = None) -> list[Row]:
        """Tasks whose title, result or error, or one of whose steps' thinking or error, contains
        ``query`` (case-insensitive): one row per match (task_id, title, agent, status,
        started_at, field, step_id, step_number, snippet), newest task first."""

    @abstractmethod
    def agents(self) -> list[str]:
        """Distinct agent names (for the filter)."""

    @abstractmethod
    def screenshot_bytes(self, screenshot_path: str) -> bytes | None:
        """The stored image, or None when it is missing or unreadable."""

    def step_screenshot_path(self, step_id: str) -> str | None:
        """The storage path of a step's screenshot (its ``screenshot_path``, else its newest
        ``step_screenshots`` row), or None when the step is unknown or has none."""
        raise NotImplementedError

    # -- usage and error categories (20261130001450_stepsdk_usage_alerts.sql) ------------------
    def task_usage(self, task_id: str) -> Row | None:
        """The task's task_usage row (tokens summed over its steps), None when unknown."""
        raise NotImplementedError

    def tasks_by_usage(self, limit: int = 20) -> list[Row]:
        """task_usage rows of the tasks with usage, most total tokens first."""
        raise NotImplementedError

    def daily_usage(self, days: int) -> list[Row]:
        """stepsdk_daily_usage(days): tokens per UTC day of the step, oldest first, empty days included."""
        raise NotImplementedError

    def error_categories(self) -> list[Row]:
        """error_category_summary rows, most failed steps first."""
        raise NotImplementedError

    def failed_steps(self, category: str | None = None, limit: int = 100) -> list[Row]:
        """The most recent failed steps (of one error category when given), with their task's title."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        """Records the source had to skip (a torn or corrupt backup line...), to show, never fatal."""
        return []

    def step_durations(self, task_id: str) -> list[Row]:
        """step_number, step_type, duration_ms, success of every step (for the duration chart)."""
        keys = ("step_number", "step_type", "duration_ms", "success")
        return [{k: s.get(k) for k in keys} for s in self.iter_all_steps(task_id)]

    def iter_all_steps(self, task_id: str, chunk: int = MAX_PER_PAGE) -> list[Row]:
        """Every step of a task (exports, comparisons), fetched page by page."""
        out: list[Row] = []
        page = 1
        while True:
            rows, total = self.get_steps(task_id, page, chunk)
            out.extend(rows)
            if not rows or len(out) >= total:
                return out
            page += 1

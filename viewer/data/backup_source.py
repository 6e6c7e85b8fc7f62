"""DataSource over a local backup folder (``stepsdk._backup.BackupStore``).

The whole folder is merged by ``BackupStore.read()``; we keep the merged snapshot and its
per-task summaries until a journal file changes (size or mtime), so paging through a list or
stepping through a task does not re-read the folder, and a running task still shows new
steps on the next refresh.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stepsdk import _ops_stats
from stepsdk._backup import BackupSnapshot, BackupStore

from . import _stats
from .base import (
    FAILED_STEP_COLUMNS,
    DataSource,
    Row,
    Sort,
    TaskFilters,
    check_category,
    check_days,
    check_limit,
    check_paging,
    is_plausible_task_id,
    is_safe_storage_path,
    is_uuid,
)

log = logging.getLogger("viewer.backup")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class _Cache:
    signature: tuple = ()
    snap: BackupSnapshot = field(default_factory=BackupSnapshot)
    summaries: dict[str, Row] = field(default_factory=dict)


class BackupSource(DataSource):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.store = BackupStore(path)
        self.description = f"backup: {Path(path)}"
        self._cache = _Cache(signature=("never read",))
        self._lock = threading.Lock()

    # -- snapshot ---------------------------------------------------------------------------
    def _signature(self) -> tuple:
        sig = []
        for path, archived in self.store.journal_files():
            try:
                st = path.stat()
            except OSError:
                continue
            sig.append((path.name, archived, st.st_size, st.st_mtime_ns))
        return tuple(sig)

    def _current(self) -> _Cache:
        signature = self._signature()
        with self._lock:
            if signature != self._cache.signature:
                snap = self.store.read()
                for problem in snap.problems:
                    log.warning("backup: %s", problem)
                summaries = {
                    tid: _stats.task_summary(task, snap.steps.get(tid, []), len(snap.screenshots.get(tid, [])))
                    for tid, task in snap.tasks.items()
                }
                self._cache = _Cache(signature, snap, summaries)
            return self._cache

    def problems(self) -> list[str]:
        return list(self._current().snap.problems)

    # -- tasks ------------------------------------------------------------------------------
    def list_tasks(self, filters: TaskFilters, sort: Sort, page: int, per_page: int) -> tuple[list[Row], int]:
        check_paging(page, per_page, max_per_page=1000)
        cache = self._current()
        rows = [r for r in cache.summaries.values() if _matches(r, filters)]
        # -- issue 13: metadata filter (TaskFilters.meta) and the metadata column -----------------
        tasks = cache.snap.tasks
        rows = [{**r, "metadata": (tasks.get(r["task_id"]) or {}).get("metadata")} for r in rows]
        if filters.meta:
            rows = [r for r in rows if meta_matches(r.get("metadata"), filters.meta)]
        # ------------------------------------------------------------------------------------------
        present = [r for r in rows if r.get(sort.column) is not None]
        missing = [r for r in rows if r.get(sort.column) is None]
        # ties go by task_id ascending, as the SQL's "order by <col>, task_id" (sorts are stable)
        present.sort(key=lambda r: r["task_id"])
        present.sort(key=lambda r: _sort_key(r.get(sort.column)), reverse=sort.descending)
        missing.sort(key=lambda r: r["task_id"])
        # PostgreSQL puts nulls first when descending, last when ascending
        ordered = missing + present if sort.descending else present + missing
        start = (page - 1) * per_page
        return ordered[start:start + per_page], len(rows)

    def get_task(self, task_id: str) -> Row | None:
        if not is_plausible_task_id(task_id):
            return None
        cache = self._current()
        task = cache.snap.tasks.get(task_id)
        if task is None:
            return None
        return {**task, **cache.summaries[task_id]}

    def get_steps(self, task_id: str, page: int, per_page: int) -> tuple[list[Row], int]:
        check_paging(page, per_page, max_per_page=10_000)
        steps = self._current().snap.steps.get(task_id, []) if is_plausible_task_id(task_id) else []
        start = (page - 1) * per_page
        return steps[start:start + per_page], len(steps)

    def iter_all_steps(self, task_id: str, chunk: int = 100) -> list[Row]:
        return list(self._current().snap.steps.get(task_id, [])) if is_plausible_task_id(task_id) else []

    def get_task_stats(self, task_id: str) -> Row | None:
        summary = self._current().summaries.get(task_id) if is_plausible_task_id(task_id) else None
        return _stats.task_stats(summary) if summary else None

    def get_screenshots(self, task_id: str, step_ids: list[str] | None = None) -> list[Row]:
        if not is_plausible_task_id(task_id):
            return []
        rows = self._current().snap.screenshots.get(task_id, [])
        if step_ids is not None:
            wanted = set(step_ids)
            rows = [r for r in rows if r.get("step_id") in wanted]
        return sorted(rows, key=lambda r: (str(r.get("created_at") or ""), str(r.get("id"))))

    def step_screenshot_path(self, step_id: str) -> str | None:
        if not is_uuid(step_id):
            return None
        snap = self._current().snap
        for task_id, steps in snap.steps.items():
            for step in steps:
                if step.get("id") == step_id:
                    if step.get("screenshot_path"):
                        return str(step["screenshot_path"])
                    shots = [r for r in snap.screenshots.get(task_id, []) if r.get("step_id") == step_id]
                    return str(shots[-1]["storage_path"]) if shots else None
        return None

    def agents(self) -> list[str]:
        return sorted({t["agent"] for t in self._current().snap.tasks.values() if t.get("agent")})

    # -- statistics -------------------------------------------------------------------------
    def get_daily_stats(self, days: int) -> list[Row]:
        check_days(days)
        snap = self._current().snap
        return _stats.daily_stats(snap.tasks.values(), snap.steps, days)

    def step_type_breakdown(self, task_id: str | None = None) -> list[Row]:
        snap = self._current().snap
        steps = snap.steps.get(task_id, []) if task_id is not None else _all_steps(snap)
        return _stats.step_type_breakdown(steps)

    def top_errors(self, limit: int = 10) -> list[Row]:
        return _stats.error_summary(_all_steps(self._current().snap))[:limit]

    def slowest_steps(self, limit: int = 20, since: datetime | None = None) -> list[Row]:
        check_limit(limit)
        snap = self._current().snap
        titles = {tid: t.get("title") for tid, t in snap.tasks.items()}
        steps = [s for s in _all_steps(snap) if s.get("task_id") in snap.tasks]
        return _stats.slowest_steps(steps, titles, limit, since)

    # -- usage and error categories (stepsdk._ops_stats, the SQL's definitions) --------------
    def task_usage(self, task_id: str) -> Row | None:
        snap = self._current().snap
        task = snap.tasks.get(task_id) if is_plausible_task_id(task_id) else None
        return _ops_stats.task_usage(task, snap.steps.get(task_id, [])) if task is not None else None

    def tasks_by_usage(self, limit: int = 20) -> list[Row]:
        check_limit(limit)
        snap = self._current().snap
        rows = [_ops_stats.task_usage(t, snap.steps.get(tid, [])) for tid, t in snap.tasks.items()]
        rows = [r for r in rows if r["steps_with_usage"] > 0]
        rows.sort(key=lambda r: (-r["total_tokens"], str(r["task_id"])))
        return rows[:limit]

    def daily_usage(self, days: int) -> list[Row]:
        check_days(days)
        return _ops_stats.daily_usage(_all_steps(self._current().snap), days)

    def error_categories(self) -> list[Row]:
        return _ops_stats.error_categories(_all_steps(self._current().snap))

    def failed_steps(self, category: str | None = None, limit: int = 100) -> list[Row]:
        check_category(category)
        check_limit(limit)
        snap = self._current().snap
        wanted = None if category == "none" else category
        rows = [s for s in _all_steps(snap) if s.get("success") is False
                and (category is None or s.get("error_category") == wanted)]
        rows.sort(key=lambda s: str(s.get("id")))
        rows.sort(key=lambda s: (_stats.parse_ts(s.get("created_at")) or _EPOCH), reverse=True)
        return [{**{k: s.get(k) for k in FAILED_STEP_COLUMNS}, "task_title": snap.tasks[s["task_id"]].get("title")}
                for s in rows[:limit]]

    def screenshot_bytes(self, storage_path: str) -> bytes | None:
        if not is_safe_storage_path(storage_path):
            return None
        path = self.store.screenshot_file(storage_path)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            log.warning("backup: cannot read screenshot %s: %s", storage_path, exc.strerror)
            return None


def _all_steps(snap: BackupSnapshot) -> list[Row]:
    return [s for tid, rows in snap.steps.items() if tid in snap.tasks for s in rows]


def _sort_key(value: object) -> object:
    ts = _stats.parse_ts(value) if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" else None
    if ts is not None:
        return ts.timestamp()
    return value.casefold() if isinstance(value, str) else value


def meta_matches(metadata: object, wanted: dict[str, str]) -> bool:
    """Issue 13: every ``wanted`` key equals the task's metadata value as text (as ``->>`` in SQL)."""
    if not isinstance(metadata, dict):
        return False
    for key, value in wanted.items():
        have = metadata.get(key)
        if have is None:
            return False
        text = have if isinstance(have, str) else json.dumps(have, ensure_ascii=False)
        if text != value:
            return False
    return True


def _matches(row: Row, f: TaskFilters) -> bool:
    if f.status and row.get("status") != f.status:
        return False
    if f.agent and row.get("agent") != f.agent:
        return False
    if f.search:
        needle = f.search.casefold()
        if needle not in str(row.get("task_id") or "").casefold() and needle not in str(row.get("title") or "").casefold():
            return False
    if f.started_from or f.started_to:
        started = _stats.parse_ts(row.get("started_at"))
        if started is None:
            return False
        if f.started_from and started < f.started_from:
            return False
        if f.started_to and started >= f.started_to:
            return False
    return True

"""DataSource over a local backup folder, answered by its SQLite index (``stepsdk.store.index``).

Every call first brings the index up to date with the journals (a ``stat`` of each journal when
nothing changed; only new records are applied otherwise), then answers with index queries:
paging, filters, sorting by aggregate columns, statistics and search never loop over the whole
folder in Python. The statistics are the SQL definitions of ``*_stepsdk_stats.sql`` (percentiles
by the same linear interpolation, registered as a SQLite aggregate).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import sqlite3
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from stepsdk.ops import stats as _ops_stats
from stepsdk.store.backup import BackupStore
from stepsdk.store.index import BackupIndex, iso, iter_rows, load_row, percentile_cont, snippet
from stepsdk.store.upload_state import UploadState

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
    check_search,
    is_plausible_task_id,
    is_safe_screenshot_path,
    is_uuid,
)

log = logging.getLogger("stepsdk.viewer.backup")

CACHE_ENTRIES = 256
T = TypeVar("T")
SUMMARY_COLUMNS = (
    "task_id",
    "title",
    "agent",
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "total_steps",
    "successful_steps",
    "failed_steps",
    "success_rate",
    "total_duration_ms",
    "avg_step_duration_ms",
    "p50_step_duration_ms",
    "p95_step_duration_ms",
    "screenshots_count",
    "last_step_at",
)
# What a sort column orders by in the index (text columns case-insensitively, times as instants).
_SORT_EXPR = {
    "started_at": "started_epoch",
    "finished_at": "finished_epoch",
    "task_id": "task_id",
    "title": "title_fold",
    "agent": "agent_fold",
    "status": "status",
    "total_steps": "total_steps",
    "failed_steps": "failed_steps",
    "success_rate": "success_rate",
    "duration_ms": "duration_ms",
}


class BackupSource(DataSource):
    # SQLite and Python answer in ~1 ms: 40 threads only fight over the GIL, and the page
    # builds on the event loop wait behind them (benchmarks/README.md, load test third round)
    worker_threads = 4

    def __init__(
        self, path: str | os.PathLike[str], index_path: str | os.PathLike[str] | None = None
    ) -> None:
        self.store = BackupStore(path)
        self.index = BackupIndex(path, index_path)
        self.description = f"backup: {Path(path)}"
        self._reported: set[str] = set()
        self._cache: OrderedDict[tuple, tuple[tuple, Any]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if not self.store.path.is_dir():
            return _EMPTY.connection()
        try:
            return self.index.refresh()
        except (sqlite3.OperationalError, PermissionError, IsADirectoryError) as exc:
            if self.index.path.parent != self.store.path:
                raise
            # a read-only backup folder (or media): keep the index in the temp folder instead
            fallback = Path(tempfile.gettempdir()) / f"stepsdk-index-{_folder_key(self.store.path)}.sqlite3"
            log.warning("backup: cannot write the index in %s (%s): using %s", self.store.path, exc, fallback)
            self.index = BackupIndex(self.store.path, fallback)
            return self.index.refresh()

    def storage_figures(self) -> Row:
        """The operations page's figures (``BackupIndex.storage_figures``)."""
        self._db()
        return self.index.storage_figures()

    def upload_state(self) -> UploadState:
        """What is not uploaded yet, refused, or unreadable (``BackupIndex.upload_state``)."""
        self._db()
        return self.index.upload_state()

    def _cached(self, key: tuple, compute: Callable[[], T]) -> T:
        """Statistics and search answers are cached until the journals change (a dashboard asks
        the same questions again and again; any new record makes them stale)."""
        self._db()  # refresh: the version moves if anything changed
        version = (self.index.version, self.index.path.exists(), datetime.now(UTC).date())
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                self._cache.move_to_end(key)
                return copy.deepcopy(hit[1])
        value = compute()
        with self._cache_lock:
            self._cache[key] = (version, copy.deepcopy(value))
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value

    def problems(self) -> list[str]:
        if not self.store.path.is_dir():
            return [f"{self.store.path} is not a folder"] if self.store.path.exists() else []
        problems = self.index.problems()
        for problem in problems:
            if problem not in self._reported:
                self._reported.add(problem)
                log.warning("backup: %s", problem)
        return problems

    # -- tasks ------------------------------------------------------------------------------
    def list_tasks(self, filters: TaskFilters, sort: Sort, page: int, per_page: int) -> tuple[list[Row], int]:
        check_paging(page, per_page, max_per_page=1000)
        where, params = _where(filters)
        db = self._db()
        total = int(db.execute(f"select count(*) from summary {where}", params).fetchone()[0])
        expr = _SORT_EXPR[sort.column]
        # PostgreSQL puts nulls first when descending, last when ascending; ties by task_id
        order = f"{expr} desc nulls first" if sort.descending else f"{expr} asc nulls last"
        rows = list(
            iter_rows(
                db,
                f"select {', '.join(SUMMARY_COLUMNS)} from summary {where} "
                f"order by {order}, task_id limit ? offset ?",
                [*params, per_page, (page - 1) * per_page],
            )
        )
        if rows:  # the task list shows chosen metadata keys as columns (issue #13)
            marks = ",".join("?" * len(rows))
            meta = {
                tid: json.loads(m) if m else {}
                for tid, m in db.execute(
                    f"select task_id, json_extract(rec, '$.row.metadata') from tasks where task_id in ({marks})",
                    [r["task_id"] for r in rows],
                )
            }
            for r in rows:
                r["metadata"] = meta.get(r["task_id"]) or {}
        return rows, total

    def get_task(self, task_id: str) -> Row | None:
        if not is_plausible_task_id(task_id):
            return None
        db = self._db()
        task = db.execute("select rec from tasks where task_id = ?", (task_id,)).fetchone()
        if task is None:
            return None
        summary = next(
            iter_rows(db, f"select {', '.join(SUMMARY_COLUMNS)} from summary where task_id = ?", (task_id,)),
            {},
        )
        return {**load_row(task[0]), **summary}

    def get_steps(self, task_id: str, page: int, per_page: int) -> tuple[list[Row], int]:
        check_paging(page, per_page, max_per_page=10_000)
        if not is_plausible_task_id(task_id):
            return [], 0
        db = self._db()
        total = int(db.execute("select count(*) from steps where task_id = ?", (task_id,)).fetchone()[0])
        rows = [
            load_row(r[0])
            for r in db.execute(
                "select rec from steps where task_id = ? order by step_number, id limit ? offset ?",
                (task_id, per_page, (page - 1) * per_page),
            )
        ]
        return rows, total

    def iter_all_steps(self, task_id: str, chunk: int = 100) -> list[Row]:
        if not is_plausible_task_id(task_id):
            return []
        return [
            load_row(r[0])
            for r in self._db().execute(
                "select rec from steps where task_id = ? order by step_number, id", (task_id,)
            )
        ]

    def step_durations(self, task_id: str) -> list[Row]:
        if not is_plausible_task_id(task_id):
            return []
        rows = iter_rows(
            self._db(),
            "select step_number, step_type, duration_ms, success from steps "
            "where task_id = ? order by step_number, id",
            (task_id,),
        )
        return [{**r, "success": bool(r["success"])} for r in rows]

    def get_task_stats(self, task_id: str) -> Row | None:
        if not is_plausible_task_id(task_id):
            return None
        return next(
            iter_rows(
                self._db(),
                """
            select total_steps, successful_steps, failed_steps, success_rate, total_duration_ms,
                   avg_step_duration_ms as average_step_duration_ms, screenshots_count
            from summary where task_id = ?""",
                (task_id,),
            ),
            None,
        )

    def get_screenshots(self, task_id: str, step_ids: list[str] | None = None) -> list[Row]:
        if not is_plausible_task_id(task_id):
            return []
        rows = [
            load_row(r[0]) for r in self._db().execute("select rec from shots where task_id = ?", (task_id,))
        ]
        if step_ids is not None:
            wanted = set(step_ids)
            rows = [r for r in rows if r.get("step_id") in wanted]
        return sorted(rows, key=lambda r: (_instant(r.get("created_at")), str(r.get("id"))))

    def agents(self) -> list[str]:
        return [
            r[0]
            for r in self._db().execute(
                "select distinct agent from tasks where agent is not null and agent <> '' order by agent"
            )
        ]

    # -- statistics -------------------------------------------------------------------------
    def get_daily_stats(self, days: int, agent: str | None = None) -> list[Row]:
        return self._cached(("daily", days, agent), lambda: self._get_daily_stats(days, agent))

    def _get_daily_stats(self, days: int, agent: str | None = None) -> list[Row]:
        check_days(days)
        today = datetime.now(UTC).date()
        first = today - timedelta(days=days - 1)
        agent_sql = " and agent = ?" if agent else ""
        found = {
            r["day"]: r
            for r in iter_rows(
                self._db(),
                f"""
            select day, count(*) as tasks,
                   sum(status = 'success') as successful_tasks, sum(status = 'failed') as failed_tasks,
                   sum(status = 'running') as running_tasks, sum(status = 'interrupted') as interrupted_tasks,
                   sum(status = 'success') * 1.0 / nullif(sum(status <> 'running'), 0) as task_success_rate,
                   sum(total_steps) as steps, sum(failed_steps) as failed_steps,
                   min(duration_ms) as min_task_duration_ms, avg(duration_ms) as avg_task_duration_ms,
                   max(duration_ms) as max_task_duration_ms, group_concat(duration_ms) as durations
            from summary indexed by summary_day where day between ? and ?{agent_sql}
            group by day""",
                [first.isoformat(), today.isoformat(), *([agent] if agent else [])],
            )
        }
        out = []
        for i in range(days):
            day = (first + timedelta(days=i)).isoformat()
            row = found.get(day)
            if row:
                durations = _floats(row.pop("durations"))
                row["p50_task_duration_ms"] = percentile_cont(durations, 0.5)
                row["p95_task_duration_ms"] = percentile_cont(durations, 0.95)
            out.append(
                row
                if row
                else {
                    "day": day,
                    "tasks": 0,
                    "successful_tasks": 0,
                    "failed_tasks": 0,
                    "running_tasks": 0,
                    "interrupted_tasks": 0,
                    "task_success_rate": None,
                    "steps": 0,
                    "failed_steps": 0,
                    "min_task_duration_ms": None,
                    "avg_task_duration_ms": None,
                    "max_task_duration_ms": None,
                    "p50_task_duration_ms": None,
                    "p95_task_duration_ms": None,
                }
            )
        return out

    def step_type_breakdown(
        self, task_id: str | None = None, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        return self._cached(
            ("types", task_id, since, agent),
            lambda: self._step_type_breakdown(task_id, since=since, agent=agent),
        )

    def _step_type_breakdown(
        self, task_id: str | None = None, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        if task_id is not None and not is_plausible_task_id(task_id):
            return []
        where, params = _step_where(task_id, since, agent)
        db = self._db()
        if task_id is not None:  # one task's steps, through (task_id, step_number)
            rows = list(
                iter_rows(
                    db,
                    f"""
                select step_type, count(*) as steps, sum(1 - success) as failed_steps,
                       avg(duration_ms) as avg_duration_ms, group_concat(duration_ms) as durations
                from steps s indexed by steps_task {where} group by step_type order by step_type""",
                    params,
                )
            )
            for row in rows:
                row["p95_duration_ms"] = percentile_cont(_floats(row.pop("durations")), 0.95)
            return rows
        if since is None or since.timestamp() % 86400 == 0:  # whole UTC days: the per-day counts
            return _period_type_breakdown(db, since, agent)
        rows = []
        # one index range per step type (step_type, created_epoch, ...): no sort of the period's steps
        for (step_type,) in db.execute("select step_type from step_types order by step_type").fetchall():
            row = next(
                iter_rows(
                    db,
                    f"""
                select ? as step_type, count(*) as steps, sum(1 - success) as failed_steps,
                       avg(duration_ms) as avg_duration_ms, group_concat(duration_ms) as durations
                from steps s {where} and s.step_type = ?""",
                    [step_type, *params, step_type],
                )
            )
            if row["steps"]:
                # percentile_cont of the group's durations (group_concat: one call, not one per row)
                row["p95_duration_ms"] = percentile_cont(_floats(row.pop("durations")), 0.95)
                rows.append(row)
        return rows

    def top_errors(
        self, limit: int = 10, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        return self._cached(
            ("errors", limit, since, agent), lambda: self._top_errors(limit, since=since, agent=agent)
        )

    def _top_errors(
        self, limit: int = 10, *, since: datetime | None = None, agent: str | None = None
    ) -> list[Row]:
        where, params = _step_where(None, since, agent)
        db = self._db()
        groups = list(
            iter_rows(
                db,
                f"""
            select error_type, err_group as error_message, count(*) as occurrences,
                   count(distinct task_id) as tasks_affected,
                   min(created_epoch) as first_seen, max(created_epoch) as last_seen
            from steps s {where} and success = 0
            group by error_type, err_group
            order by occurrences desc, last_seen desc nulls last limit ?""",
                [*params, limit],
            )
        )
        for g in groups:
            example = db.execute(
                f"""
                select task_id, id, json_extract(rec, '$.row.name') from steps s {where} and success = 0
                and error_type is ? and err_group is ?
                order by created_epoch desc nulls last, id limit 1""",
                [*params, g["error_type"], g["error_message"]],
            ).fetchone()
            g["first_seen"], g["last_seen"] = iso(g["first_seen"]), iso(g["last_seen"])
            g["example_task_id"], g["example_step_id"], g["example_step_name"] = example
        return groups

    def slowest_steps(
        self, limit: int = 20, since: datetime | None = None, *, agent: str | None = None
    ) -> list[Row]:
        return self._cached(
            ("slowest", limit, since, agent), lambda: self._slowest_steps(limit, since, agent=agent)
        )

    def _slowest_steps(
        self, limit: int = 20, since: datetime | None = None, *, agent: str | None = None
    ) -> list[Row]:
        check_limit(limit)
        where, params = _step_where(None, since, agent)
        rows = iter_rows(
            self._db(),
            f"""
            select s.id as step_id, s.task_id, s.step_number, s.step_type,
                   json_extract(s.rec, '$.row.name') as name, s.duration_ms, s.success,
                   s.created_at, (select t.title from tasks t where t.task_id = s.task_id) as task_title
            from steps s indexed by steps_slow {where} and s.duration_ms is not null
            order by s.duration_ms desc, s.id limit ?""",
            [*params, limit],
        )
        return [{**r, "success": bool(r["success"])} for r in rows]

    def search(self, query: str, limit: int = 20, agent: str | None = None) -> list[Row]:
        return self._cached(("search", query, limit, agent), lambda: self._search(query, limit, agent))

    def _search(self, query: str, limit: int = 20, agent: str | None = None) -> list[Row]:
        text = check_search(query, limit)
        phrase = '"' + text.replace('"', '""') + '"'
        agent_sql = " and t.agent = ?" if agent else ""
        # search rows are numbered by their task's start second (high bits): walking them in
        # descending order meets the newest tasks first, so we stop once `limit` matches and every
        # match of the last second are in, then order those exactly
        cur = self._db().execute(
            f"""
            select x.rowid >> 32 as sec, t.started_epoch, t.task_id, t.title, t.agent, t.status, t.started_at,
                   d.field, d.step_id, d.step_number, x.text
            from docs_text x join docs d on d.docid = x.rowid join tasks t on t.task_id = d.task_id
            where docs_text match ?{agent_sql} order by x.rowid desc""",
            [phrase, *([agent] if agent else [])],
        )
        found: list[tuple] = []
        for row in cur:
            if len(found) >= limit and row[0] != found[-1][0]:
                break
            found.append(tuple(row))
        found.sort(key=lambda r: (r[1] is None, -(r[1] or 0.0), r[2], r[9] is not None, r[9] or 0, r[7]))
        keys = ("task_id", "title", "agent", "status", "started_at", "field", "step_id", "step_number")
        return [
            {**dict(zip(keys, r[2:10], strict=True)), "snippet": snippet(r[10], text)} for r in found[:limit]
        ]

    # -- usage, error categories, a step's screenshot (issue #14): index queries with the
    # definitions of stepsdk.ops.stats (the SQL views' and functions' in Python)
    def step_screenshot_path(self, step_id: str) -> str | None:
        if not is_uuid(step_id):
            return None
        db = self._db()
        found = db.execute("select task_id, rec from steps where id = ?", (step_id,)).fetchone()
        if found is None:
            return None
        step = load_row(found[1])
        if step.get("screenshot_path"):
            return str(step["screenshot_path"])
        shots = [  # the step's screenshot rows; the newest wins, as the Supabase source orders them
            load_row(r[0])
            for r in db.execute(
                "select rec from shots where task_id = ? and step_id = ? order by rowid", (found[0], step_id)
            )
        ]
        shots.sort(key=lambda r: _instant(r.get("created_at")))
        return str(shots[-1]["screenshot_path"]) if shots else None

    def task_usage(self, task_id: str) -> Row | None:
        if not is_plausible_task_id(task_id):
            return None
        found = (
            self._db()
            .execute(
                "select t.rec, u.steps, u.prompt_tokens, u.completion_tokens, u.total_tokens "
                "from tasks t left join usage_tasks u on u.task_id = t.task_id where t.task_id = ?",
                (task_id,),
            )
            .fetchall()
        )
        return _usage_rows(found)[0] if found else None

    def tasks_by_usage(self, limit: int = 20) -> list[Row]:
        check_limit(limit)
        found = (
            self._db()
            .execute(
                "select t.rec, u.steps, u.prompt_tokens, u.completion_tokens, u.total_tokens "
                "from usage_tasks u indexed by usage_tasks_total cross join tasks t on t.task_id = u.task_id "
                "where u.steps > 0 order by u.total_tokens desc, u.task_id limit ?",
                (limit,),
            )
            .fetchall()
        )
        return _usage_rows(found)

    def daily_usage(self, days: int) -> list[Row]:
        check_days(days)
        today = datetime.now(UTC).date()
        first = today - timedelta(days=days - 1)
        found = {
            r["day"]: r
            for r in iter_rows(
                self._db(),
                """
            select u.day, count(*) as tasks, sum(u.steps) as steps_with_usage,
                   sum(u.prompt_tokens) as prompt_tokens, sum(u.completion_tokens) as completion_tokens,
                   sum(u.total_tokens) as total_tokens
            from usage_days u where u.day between ? and ? and u.steps > 0
            and exists (select 1 from tasks t where t.task_id = u.task_id)
            group by u.day""",
                (first.isoformat(), today.isoformat()),
            )
        }
        zero = {
            "tasks": 0,
            "steps_with_usage": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
        }
        out = []
        for i in range(days):
            day = (first + timedelta(days=i)).isoformat()
            out.append(found.get(day) or {"day": day, **zero})
        return out

    def error_categories(self) -> list[Row]:
        return self._cached(("categories",), self._error_categories)

    def _error_categories(self) -> list[Row]:
        """``_ops_stats.error_categories`` (``error_category_summary``) as an index query: the
        statistics page asks for it, and merging the whole backup in memory does not scale."""
        rows = list(
            iter_rows(
                self._db(),
                """
            select category as error_category, count(*) as failed_steps,
                   count(distinct task_id) as tasks_affected, min(created_epoch) as first_seen,
                   max(created_epoch) as last_seen
            from steps indexed by steps_categories where success = 0 and strict_fail = 1 and task_known = 1
            group by category""",
            )
        )
        for r in rows:
            r["first_seen"], r["last_seen"] = iso(r["first_seen"]), iso(r["last_seen"])
        rows.sort(key=lambda r: (-r["failed_steps"], r["error_category"] is None, r["error_category"] or ""))
        return rows

    def failed_steps(self, category: str | None = None, limit: int = 100) -> list[Row]:
        check_category(category)
        check_limit(limit)
        # steps whose success is false itself, of known tasks; newest first (no time: last), then id
        if category is None:
            where, params = "", []
            index = "steps_failed_recent"
        else:
            where, params = " and s.category is ?", [None if category == "none" else category]
            index = "steps_failed_category"
        found = self._db().execute(
            f"""
            select s.rec, (select t.title from tasks t where t.task_id = s.task_id)
            from steps s indexed by {index} where s.strict_fail = 1 and s.task_known = 1{where}
            order by s.created_epoch desc, s.id limit ?""",
            [*params, limit],
        )
        out = []
        for rec, title in found:
            step = load_row(rec)
            out.append({**{k: step.get(k) for k in FAILED_STEP_COLUMNS}, "task_title": title})
        return out

    def screenshot_bytes(self, screenshot_path: str) -> bytes | None:
        if not is_safe_screenshot_path(screenshot_path):
            return None
        path = self.store.screenshot_file(screenshot_path)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            log.warning("backup: cannot read screenshot %s: %s", screenshot_path, exc.strerror)
            return None


class _EmptyIndex:
    """An in-memory index with the schema and no rows, for a backup folder that does not exist
    (the viewer never creates the folder it was pointed at)."""

    def __init__(self) -> None:
        self._index = BackupIndex(Path("/nonexistent"), ":memory:")

    def connection(self) -> sqlite3.Connection:
        return self._index.connection()


_EMPTY = _EmptyIndex()


def _folder_key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _instant(value: object) -> float:
    from stepsdk.store.index import parse_ts

    ts = parse_ts(value)
    return ts.timestamp() if ts else float("-inf")


def _usage_rows(found: list[sqlite3.Row]) -> list[Row]:
    """``task_usage`` rows: the task's own fields from its row, the sums from ``usage_tasks``."""
    out = []
    for rec, steps, prompt, completion, total in found:
        row = _ops_stats.task_usage(load_row(rec), [])
        row.update(
            steps_with_usage=steps or 0,
            prompt_tokens=prompt or 0,
            completion_tokens=completion or 0,
            total_tokens=total or 0,
        )
        out.append(row)
    return out


def _floats(joined: str | None) -> list[float]:
    return [float(v) for v in joined.split(",")] if joined else []


def _period_type_breakdown(db: sqlite3.Connection, since: datetime | None, agent: str | None) -> list[Row]:
    """``step_type_breakdown`` over whole UTC days from the counts kept per step type, day and
    agent (``type_days``, ``type_hist``: maintained by triggers as steps change), without reading
    the period's steps: the p95 is exact, read from the one duration bucket it falls in."""
    clauses, params = [], []
    if since is not None:
        clauses.append("day >= ?")
        params.append(since.astimezone(UTC).date().isoformat())
    if agent:
        clauses.append("agent = ?")
        params.append(agent)
    where = " and ".join(clauses) or "1"
    rows = []
    for step_type, steps, failed, dur_n, dur_sum in db.execute(
        f"""
            select step_type, sum(steps), sum(failed), sum(dur_n), sum(dur_sum) from type_days
            where {where} group by step_type having sum(steps) > 0 order by step_type""",
        params,
    ).fetchall():
        rows.append(
            {
                "step_type": step_type,
                "steps": steps,
                "failed_steps": failed,
                "avg_duration_ms": dur_sum / dur_n if dur_n else None,
                "p95_duration_ms": _bucket_percentile(db, step_type, where, params, dur_n, 0.95),
            }
        )
    return rows


def _bucket_percentile(
    db: sqlite3.Connection, step_type: str, where: str, params: list[object], count: int, fraction: float
) -> float | None:
    """PostgreSQL's percentile_cont of the durations of one step type's steps matching ``where``
    (on day and agent): the bucket counts locate the ranks, the ``steps_dur`` index walks only that
    bucket's steps in duration order (buckets are monotonic in the duration)."""
    if not count:
        return None
    pos = fraction * (count - 1)
    low, high = math.floor(pos), math.ceil(pos)
    buckets = db.execute(
        f"select bucket, sum(n) from type_hist where step_type = ? and {where} "
        "group by bucket having sum(n) > 0 order by bucket",
        [step_type, *params],
    ).fetchall()
    values: dict[int, float] = {}
    seen = 0
    for bucket, n in buckets:
        wanted = [r for r in (low, high) if seen <= r < seen + n and r not in values]
        if wanted:
            found = [
                r[0]
                for r in db.execute(
                    f"select duration_ms from steps indexed by steps_dur where step_type = ? and dbucket = ? "
                    f"and duration_ms is not null and task_known = 1 and {where} order by duration_ms "
                    "limit ? offset ?",
                    [step_type, bucket, *params, max(wanted) - min(wanted) + 1, min(wanted) - seen],
                )
            ]
            for r in wanted:
                values[r] = float(found[r - min(wanted)])
        seen += n
        if high in values:
            break
    return values[low] + (values[high] - values[low]) * (pos - low)


def _step_where(task_id: str | None, since: datetime | None, agent: str | None) -> tuple[str, list[object]]:
    """Steps of known tasks (as the SQL's join on tasks), of one task / since a time / of one agent."""
    clauses: list[str] = ["s.task_known = 1"]
    params: list[object] = []
    if task_id is not None:
        clauses.append("s.task_id = ?")
        params.append(task_id)
    if since is not None:
        clauses.append("s.created_epoch >= ?")
        params.append(since.timestamp())
    if agent:
        clauses.append("s.agent = ?")
        params.append(agent)
    return "where " + " and ".join(clauses), params


def _where(f: TaskFilters) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if f.status:
        clauses.append("status = ?")
        params.append(f.status)
    if f.agent:
        clauses.append("agent = ?")
        params.append(f.agent)
    if f.search:
        needle = f.search.casefold()
        clauses.append("(instr(task_id_fold, ?) > 0 or instr(coalesce(title_fold, ''), ?) > 0)")
        params += [needle, needle]
    if f.started_from:
        clauses.append("started_epoch >= ?")
        params.append(f.started_from.timestamp())
    if f.started_to:
        clauses.append("started_epoch < ?")
        params.append(f.started_to.timestamp())
    for key, value in sorted(f.meta.items()):
        # json_each, not a JSON path: any key works (quotes, dots...); values compare as text
        clauses.append(
            "task_id in (select t.task_id from tasks t, json_each(t.rec, '$.row.metadata') j "
            "where j.key = ? and case j.type when 'text' then j.value when 'true' then 'true' "
            "when 'false' then 'false' when 'integer' then cast(j.value as text) "
            "when 'real' then cast(j.value as text) end = ?)"
        )
        params += [key, value]
    return ("where " + " and ".join(clauses)) if clauses else "", params

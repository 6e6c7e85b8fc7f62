"""The statistics of ``*_stepsdk_stats.sql`` computed in Python, for sources without SQL.

Each function mirrors one view/function; the definitions (not just the names) must match:
rates are 0..1 and None without a denominator, durations are ms over non-null values,
percentiles are ``percentile_cont`` (linear interpolation), days are UTC days of task start.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

Row = dict[str, Any]
_WS = " \t\r\n"


def parse_ts(value: Any) -> datetime | None:
    """ISO-8601 string/datetime → aware datetime (naive ones are taken as UTC); junk → None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont over already-filtered values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = fraction * (len(ordered) - 1)
    low = math.floor(pos)
    high = math.ceil(pos)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


def _durations(steps: Iterable[Row]) -> list[float]:
    return [float(s["duration_ms"]) for s in steps if isinstance(s.get("duration_ms"), int | float)]


def _avg(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def task_duration_ms(task: Row) -> float | None:
    start, end = parse_ts(task.get("started_at")), parse_ts(task.get("finished_at"))
    if start is None or end is None:
        return None
    return (end - start).total_seconds() * 1000.0


def task_summary(task: Row, steps: Sequence[Row], screenshots_count: int) -> Row:
    """One task_summary row."""
    durations = _durations(steps)
    ok = sum(1 for s in steps if s.get("success", True))
    total = len(steps)
    created = [t for t in (parse_ts(s.get("created_at")) for s in steps) if t is not None]
    return {
        "task_id": task.get("task_id"),
        "title": task.get("title"),
        "agent": task.get("agent"),
        "status": task.get("status"),
        "started_at": task.get("started_at"),
        "finished_at": task.get("finished_at"),
        "duration_ms": task_duration_ms(task),
        "total_steps": total,
        "successful_steps": ok,
        "failed_steps": total - ok,
        "success_rate": ok / total if total else None,
        "total_duration_ms": float(sum(durations)),
        "avg_step_duration_ms": _avg(durations),
        "p50_step_duration_ms": percentile_cont(durations, 0.5),
        "p95_step_duration_ms": percentile_cont(durations, 0.95),
        "screenshots_count": screenshots_count,
        "last_step_at": max(created).isoformat() if created else None,
    }


def task_stats(summary: Row) -> Row:
    """stepsdk_task_stats from a task_summary row."""
    return {
        "total_steps": summary["total_steps"],
        "successful_steps": summary["successful_steps"],
        "failed_steps": summary["failed_steps"],
        "success_rate": summary["success_rate"],
        "total_duration_ms": summary["total_duration_ms"],
        "average_step_duration_ms": summary["avg_step_duration_ms"],
        "screenshots_count": summary["screenshots_count"],
    }


def daily_stats(tasks: Iterable[Row], steps_by_task: dict[str, list[Row]], days: int,
                today: date | None = None) -> list[Row]:
    """stepsdk_daily_stats(days): the last ``days`` UTC days, oldest first, empty days as zeros."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    by_day: dict[date, list[Row]] = defaultdict(list)
    for task in tasks:
        start = parse_ts(task.get("started_at"))
        if start is not None and first <= start.astimezone(UTC).date() <= today:
            by_day[start.astimezone(UTC).date()].append(task)
    return [_day_row(first + timedelta(days=i), by_day.get(first + timedelta(days=i), []), steps_by_task)
            for i in range(days)]


def _day_row(day: date, tasks: list[Row], steps_by_task: dict[str, list[Row]]) -> Row:
    statuses = [t.get("status") for t in tasks]
    finished = sum(1 for s in statuses if s != "running")
    successes = statuses.count("success")
    durations = [d for d in (task_duration_ms(t) for t in tasks) if d is not None]
    steps = [s for t in tasks for s in steps_by_task.get(t.get("task_id"), [])]
    return {
        "day": day.isoformat(),
        "tasks": len(tasks),
        "successful_tasks": successes,
        "failed_tasks": statuses.count("failed"),
        "running_tasks": statuses.count("running"),
        "interrupted_tasks": statuses.count("interrupted"),
        "task_success_rate": successes / finished if finished else None,
        "steps": len(steps),
        "failed_steps": sum(1 for s in steps if not s.get("success", True)),
        "min_task_duration_ms": min(durations) if durations else None,
        "avg_task_duration_ms": _avg(durations),
        "max_task_duration_ms": max(durations) if durations else None,
        "p50_task_duration_ms": percentile_cont(durations, 0.5),
        "p95_task_duration_ms": percentile_cont(durations, 0.95),
    }


def normalize_error_message(message: Any) -> str | None:
    if not isinstance(message, str):
        return None
    stripped = message.strip(_WS)
    return stripped[:200] if stripped else None


def error_summary(steps: Iterable[Row]) -> list[Row]:
    """error_summary, most frequent first (then most recent)."""
    groups: dict[tuple[Any, Any], list[Row]] = defaultdict(list)
    for step in steps:
        if not step.get("success", True):
            groups[(step.get("error_type"), normalize_error_message(step.get("error_message")))].append(step)
    out = []
    for (error_type, message), rows in groups.items():
        created = [(parse_ts(r.get("created_at")) or datetime.min.replace(tzinfo=UTC), r) for r in rows]
        # the SQL picks the most recent, ties broken by the smallest id
        newest = min(created, key=lambda cr: (-cr[0].timestamp(), str(cr[1].get("id"))))[1]
        stamps = [c for c, _ in created]
        out.append({
            "_last": max(stamps),
            "error_type": error_type,
            "error_message": message,
            "occurrences": len(rows),
            "tasks_affected": len({r.get("task_id") for r in rows}),
            "first_seen": min(stamps).isoformat(),
            "last_seen": max(stamps).isoformat(),
            "example_task_id": newest.get("task_id"),
            "example_step_id": newest.get("id"),
        })
    out.sort(key=lambda r: (r["occurrences"], r["_last"]), reverse=True)
    for row in out:
        del row["_last"]
    return out


def step_type_breakdown(steps: Iterable[Row]) -> list[Row]:
    by_type: dict[str, list[Row]] = defaultdict(list)
    for step in steps:
        by_type[str(step.get("step_type"))].append(step)
    rows = []
    for step_type in sorted(by_type):
        group = by_type[step_type]
        durations = _durations(group)
        rows.append({
            "step_type": step_type,
            "steps": len(group),
            "failed_steps": sum(1 for s in group if not s.get("success", True)),
            "avg_duration_ms": _avg(durations),
            "p95_duration_ms": percentile_cont(durations, 0.95),
        })
    return rows


def slowest_steps(steps: Iterable[Row], titles: dict[str, Any], limit: int,
                  since: datetime | None = None) -> list[Row]:
    def keep(step: Row) -> bool:
        if not isinstance(step.get("duration_ms"), int | float):
            return False
        created = parse_ts(step.get("created_at"))
        return since is None or (created is not None and created >= since)

    chosen = sorted((s for s in steps if keep(s)), key=lambda s: (-float(s["duration_ms"]), str(s.get("id"))))
    return [{
        "step_id": s.get("id"),
        "task_id": s.get("task_id"),
        "step_number": s.get("step_number"),
        "step_type": s.get("step_type"),
        "duration_ms": float(s["duration_ms"]),
        "success": bool(s.get("success", True)),
        "created_at": s.get("created_at"),
        "task_title": titles.get(s.get("task_id")),
    } for s in chosen[:limit]]

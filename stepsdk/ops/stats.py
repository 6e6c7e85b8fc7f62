"""Token usage, error categories and the alert measures over rows in memory (the local store),
with the definitions of ``supabase/migrations/20261130001450_stepsdk_usage_alerts.sql``.

Each function mirrors one SQL view/function and is tested to agree with it: token counters that
are missing or not integers count as absent, days are UTC days (of the step for usage), percentiles
are ``percentile_cont`` (linear interpolation), error messages are normalized as ``error_summary``
does (trimmed, first 200 characters, empty → None).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stepsdk.schema import parse_timestamp as parse_ts
from stepsdk.store.index import percentile_cont  # PostgreSQL's, as the index computes it

Row = dict[str, Any]
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
MAX_WINDOW_SECONDS = 31_622_400  # 366 days, as the SQL functions check
_WS = " \t\r\n"


def tokens(usage: Any, key: str) -> int:
    """One counter of a step's usage (0 when absent or not an integer)."""
    value = usage.get(key) if isinstance(usage, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sum_usage(steps: Iterable[Row]) -> Row:
    with_usage = [s for s in steps if s.get("usage") is not None]
    out: Row = {"steps_with_usage": len(with_usage)}
    for key in USAGE_KEYS:
        out[key] = sum(tokens(s.get("usage"), key) for s in with_usage)
    return out


def task_usage(task: Row, steps: Iterable[Row]) -> Row:
    """One ``task_usage`` row."""
    meta = task.get("metadata")
    model = meta.get("model") if isinstance(meta, Mapping) else None
    return {
        "task_id": task.get("task_id"),
        "title": task.get("title"),
        "agent": task.get("agent"),
        "model": model if isinstance(model, str) else None if model is None else str(model),
        "started_at": task.get("started_at"),
        **_sum_usage(steps),
    }


def daily_usage(steps: Iterable[Row], days: int, today: date | None = None) -> list[Row]:
    """``stepsdk_daily_usage(days)``: tokens per UTC day of the step, oldest first, empty days as zeros."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    by_day: dict[date, list[Row]] = defaultdict(list)
    for step in steps:
        created = parse_ts(step.get("created_at"))
        if step.get("usage") is not None and created is not None:
            day = created.astimezone(UTC).date()
            if first <= day <= today:
                by_day[day].append(step)
    rows = []
    for i in range(days):
        day = first + timedelta(days=i)
        group = by_day.get(day, [])
        summed = _sum_usage(group)
        rows.append(
            {
                "day": day.isoformat(),
                "tasks": len({s.get("task_id") for s in group}),
                "steps_with_usage": summed["steps_with_usage"],
                **{k: summed[k] for k in USAGE_KEYS},
            }
        )
    return rows


def error_categories(steps: Iterable[Row]) -> list[Row]:
    """``error_category_summary``, most failed steps first (then category name, null last)."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for step in steps:
        if step.get("success") is False:
            groups[step.get("error_category")].append(step)
    rows = []
    for category, group in groups.items():
        stamps = [t for t in (parse_ts(s.get("created_at")) for s in group) if t is not None]
        rows.append(
            {
                "error_category": category,
                "failed_steps": len(group),
                "tasks_affected": len({s.get("task_id") for s in group}),
                "first_seen": min(stamps).isoformat() if stamps else None,
                "last_seen": max(stamps).isoformat() if stamps else None,
            }
        )
    rows.sort(key=lambda r: (-r["failed_steps"], r["error_category"] is None, r["error_category"] or ""))
    return rows


def normalize_error_message(message: Any) -> str | None:
    if not isinstance(message, str):
        return None
    stripped = message.strip(_WS)
    return stripped[:200] if stripped else None


def check_window(window_seconds: int) -> None:
    if (
        isinstance(window_seconds, bool)
        or not isinstance(window_seconds, int)
        or not 1 <= window_seconds <= MAX_WINDOW_SECONDS
    ):
        raise ValueError(
            f"window_seconds must be an integer in 1..{MAX_WINDOW_SECONDS}, got {window_seconds!r}"
        )


def _since(window_seconds: int, now: datetime | None) -> datetime:
    check_window(window_seconds)
    return (now or datetime.now(UTC)) - timedelta(seconds=window_seconds)


def failure_rate(
    tasks: Iterable[Row], window_seconds: int, agent: str | None = None, now: datetime | None = None
) -> Row:
    """``stepsdk_alert_failure_rate``: tasks finished in the window, failed ones, failed/finished."""
    since = _since(window_seconds, now)
    finished = [
        t
        for t in tasks
        if t.get("status") != "running"
        and (agent is None or t.get("agent") == agent)
        and (parse_ts(t.get("finished_at")) or datetime.min.replace(tzinfo=UTC)) >= since
    ]
    failed = sum(1 for t in finished if t.get("status") == "failed")
    return {
        "finished_tasks": len(finished),
        "failed_tasks": failed,
        "failure_rate": failed / len(finished) if finished else None,
    }


def _in_window(step: Row, since: datetime) -> bool:
    created = parse_ts(step.get("created_at"))
    return created is not None and created >= since


def step_p95(
    steps: Iterable[Row],
    window_seconds: int,
    step_type: str | None = None,
    name: str | None = None,
    now: datetime | None = None,
) -> Row:
    """``stepsdk_alert_step_p95``: p95 duration of the window's steps (optionally one type / name)."""
    since = _since(window_seconds, now)
    durations = [
        float(s["duration_ms"])
        for s in steps
        if isinstance(s.get("duration_ms"), int | float)
        and not isinstance(s.get("duration_ms"), bool)
        and _in_window(s, since)
        and (step_type is None or s.get("step_type") == step_type)
        and (name is None or s.get("name") == name)
    ]
    return {"steps": len(durations), "p95_duration_ms": percentile_cont(durations, 0.95)}


def error_counts(steps: Iterable[Row], window_seconds: int, now: datetime | None = None) -> list[Row]:
    """``stepsdk_alert_error_counts``: the window's failed steps per error type and normalized
    message, most frequent first (then most recent)."""
    since = _since(window_seconds, now)
    groups: dict[tuple[Any, Any], list[Row]] = defaultdict(list)
    for step in steps:
        if step.get("success") is False and _in_window(step, since):
            groups[(step.get("error_type"), normalize_error_message(step.get("error_message")))].append(step)
    rows = []
    for (error_type, message), group in groups.items():
        newest = max(group, key=lambda s: (parse_ts(s.get("created_at")), _neg_id(s)))
        rows.append(
            {
                "error_type": error_type,
                "error_message": message,
                "occurrences": len(group),
                "last_seen": parse_ts(newest.get("created_at")).isoformat(),  # type: ignore[union-attr]
                "example_task_id": newest.get("task_id"),
            }
        )
    rows.sort(key=lambda r: (-r["occurrences"], -(parse_ts(r["last_seen"]) or since).timestamp()))
    return rows


def _neg_id(step: Row) -> tuple[int, ...]:
    # ties on created_at go to the smallest id (the SQL orders by created_at desc, id)
    return tuple(-ord(c) for c in str(step.get("id")))

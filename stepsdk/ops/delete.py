"""Delete chosen tasks (by id, or one agent's whole history, optionally only before a date) with
their steps, screenshot rows and the screenshot objects no other task references.

The deleting itself is retention's (``stepsdk.ops.retention``): in Supabase the SQL function
``stepsdk_delete_tasks`` (sharing ``stepsdk_unreferenced_paths`` with the age-based retention),
then the Storage removal with its "referenced again?" check; in the local backup the same
journal rewrite as ``stepsdk cleanup``. This module only says *which* tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stepsdk.ops.retention import (
    Advance,
    BackupRetention,
    CleanupReport,
    SupabaseRetention,
    TaskChoice,
    _no_progress,
)
from stepsdk.schema import BUCKET, parse_timestamp

PAGE = 1000  # task ids per select when choosing by agent


@dataclass(frozen=True)
class Selection:
    """Explicit task ids, or an agent's tasks (those started before ``before`` when given)."""

    task_ids: tuple[str, ...] = ()
    agent: str | None = None
    before: datetime | None = None

    def __post_init__(self) -> None:
        if bool(self.task_ids) == (self.agent is not None):
            raise ValueError("give task ids or an agent, not both and not neither")
        if self.before is not None and self.agent is None:
            raise ValueError("--before applies to --agent only")
        if self.before is not None and self.before.tzinfo is None:
            raise ValueError("before must carry a time zone")


@dataclass
class DeleteResult:
    report: CleanupReport
    missing: list[str] = field(default_factory=list)  # ids asked for that match no task

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), "ok": self.ok, "missing": self.missing}


def parse_before(text: str) -> datetime:
    """``2026-01-31`` (midnight UTC) or an ISO date-time (UTC when it has no offset)."""
    text = text.strip()
    moment = parse_timestamp(text)  # a bare date is midnight UTC: naive means UTC
    if moment is None:
        raise ValueError(
            f"invalid date {text!r}: use YYYY-MM-DD or an ISO date-time (2026-01-31T12:00:00+00:00)"
        )
    return moment


# --------------------------------------------------------------------------- Supabase


def supabase_task_ids(client: Any, selection: Selection) -> list[str]:
    """The ids of the tasks an agent selection takes, oldest first (every page)."""
    ids: list[str] = []
    while True:
        query = client.table("tasks").select("task_id").eq("agent", selection.agent)
        if selection.before is not None:
            query = query.lt("started_at", selection.before.isoformat())
        rows = (
            query.order("started_at").order("task_id").range(len(ids), len(ids) + PAGE - 1).execute().data
            or []
        )
        ids += [r["task_id"] for r in rows]
        if len(rows) < PAGE:
            return ids


def delete_supabase(
    client: Any, selection: Selection, *, dry_run: bool, bucket: str = BUCKET, advance: Advance = _no_progress
) -> DeleteResult:
    wanted = (
        list(dict.fromkeys(selection.task_ids))
        if selection.task_ids
        else supabase_task_ids(client, selection)
    )
    report = SupabaseRetention(client, bucket).delete_ids(wanted, dry_run=dry_run, advance=advance)
    found = set(report.task_ids)
    return DeleteResult(report, [t for t in _unique(selection.task_ids) if t not in found])


# --------------------------------------------------------------------------- local backup


def delete_backup(
    root: Path,
    selection: Selection,
    *,
    dry_run: bool,
    keep_pending: bool = False,
    advance: Advance = _no_progress,
) -> DeleteResult:
    choose = (
        TaskChoice(task_ids=tuple(selection.task_ids))
        if selection.task_ids
        else TaskChoice(started_before=selection.before, agent=selection.agent)
    )
    report = BackupRetention(root).run_selected(
        choose, dry_run=dry_run, keep_pending=keep_pending, advance=advance
    )
    handled = set(report.task_ids) | set(report.kept)
    return DeleteResult(report, [t for t in _unique(selection.task_ids) if t not in handled])


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))

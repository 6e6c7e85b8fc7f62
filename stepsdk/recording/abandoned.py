"""Tasks whose recording process died without finishing them (SIGKILL, OOM, power loss).

Found from the backup alone: the newest version of the task row is `running`, it was written
by a journal that has no closing record, that journal's writer (pid on this host) no longer
exists, and no journal holding the task changed after it was read (else the next run decides).
Such a task is marked `interrupted`, `finished_at` at its last recorded activity, with
`metadata.abandoned = {pid, host, writer, detected_at}`, as a new version of the task row.

Run by `stepsdk resync` (which then uploads it), `stepsdk status`, and every tracker's start on
that backup folder (in the background; a remote tracker uploads the marks).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from stepsdk.schema import parse_timestamp as parse_iso_or_none
from stepsdk.store.backup import T_TASKS, BackupSnapshot, now_iso

log = logging.getLogger("stepsdk")


def abandoned_tasks(
    snap: BackupSnapshot, exclude: set[str] | frozenset[str] = frozenset()
) -> list[tuple[dict[str, Any], int]]:
    """(new task row, its version) for every task whose recorder died (see module docstring).
    A task is alive while any writer holding its rows is (a forked worker that exits leaves the
    parent's task alone); `exclude`: tasks of trackers alive in this process."""
    holders: dict[str, list[Any]] = {}
    for info in snap.journals:
        for table, key in info.data_keys:
            if table == T_TASKS:
                holders.setdefault(key, []).append(info)
    marks: list[tuple[dict[str, Any], int]] = []
    for task_id, row in snap.tasks.items():
        if row.get("status") != "running" or task_id in exclude:
            continue
        info = snap.task_journals.get(task_id)
        if info is None or info.closed or info.archived or info.pid is None:
            continue
        writers = holders.get(task_id, [])
        if any(h.writer_alive for h in writers):
            continue
        # the writers are gone now, but they may have written after the folder was read (a
        # tracker finishing beside a resync): only a journal unchanged since its read is final
        if any(j.changed_since_read for j in (info, *writers)):
            continue
        last = _last_activity(row, snap.steps.get(task_id, ()))
        metadata = dict(row.get("metadata") or {})
        metadata["abandoned"] = {
            "pid": info.pid,
            "host": info.host,
            "writer": info.path.stem,
            "detected_at": now_iso(),
        }
        new = {
            **row,
            "status": "interrupted",
            "finished_at": last,
            "error_message": row.get("error_message")
            or f"the recording process (pid {info.pid} on {info.host}) ended without finishing the task",
            "metadata": metadata,
        }
        version = max(time.time_ns(), snap.task_versions.get(task_id, 0) + 1)
        marks.append((new, version))
    return marks


def _last_activity(task: dict[str, Any], steps: Any) -> str | None:
    """The latest timestamp the run left (a step's creation), never before the task's start."""
    best = task.get("started_at")
    best_dt = parse_iso_or_none(best)
    for step in steps:
        for col in ("created_at", "started_at"):
            value = step.get(col)
            parsed = parse_iso_or_none(value)
            if parsed is not None and (best_dt is None or parsed > best_dt):
                best, best_dt = value, parsed
    return best

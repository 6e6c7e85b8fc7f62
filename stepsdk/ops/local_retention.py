"""Local retention that runs by itself, and the record of the last run.

- ``apply_on_start(config)``: with ``retention_days`` set (``STEPSDK_RETENTION_DAYS``), delete the
  backup's tasks older than that when a tracker starts. The tracker calls it once, on its
  background thread; it never raises and never touches the caller's thread.
- ``record_run`` / ``last_run``: ``<backup>/retention.json`` keeps the last run (by a tracker or
  by ``stepsdk cleanup --local``) so ``stepsdk status`` can show it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stepsdk.config import Config
from stepsdk.ops.retention import BackupRetention, CleanupReport
from stepsdk.store.export_format import write_atomically

log = logging.getLogger(__name__)

STATE_FILE = "retention.json"


def apply_on_start(config: Config) -> CleanupReport | None:
    """Delete backup tasks older than ``config.retention_days`` (None: not configured, or no
    backup folder yet). Tasks not uploaded yet are kept when Supabase is configured."""
    days = config.retention_days
    root = Path(config.backup_dir)
    if not days or not root.is_dir():
        return None
    try:
        report = BackupRetention(root).run(timedelta(days=days), dry_run=False, keep_pending=config.remote)
        record_run(root, f"{days}d", report, trigger="tracker")
    except Exception:  # the agent comes first: a failed clean-up is only logged
        log.warning("stepsdk: local retention (%s days) failed", days, exc_info=True)
        return None
    if report.task_ids:
        log.info("stepsdk: local retention deleted %d task(s) older than %d days", len(report.task_ids), days)
    return report


def record_run(root: Path, older_than: str, report: CleanupReport, *, trigger: str) -> None:
    """Write ``<root>/retention.json`` (atomically) describing this run."""
    state = {
        "at": datetime.now(UTC).isoformat(),
        "trigger": trigger,
        "older_than": older_than,
        "cutoff": report.cutoff,
        "tasks_deleted": len(report.task_ids),
        "objects_deleted": len(report.objects_deleted),
        "tasks_kept": len(report.kept),
        "ok": report.ok,
    }
    write_atomically(Path(root) / STATE_FILE, lambda fh: fh.write(json.dumps(state).encode("utf-8")))


def age_text(age: timedelta) -> str:
    """A duration as ``stepsdk cleanup --older-than`` writes it: 30d, 2w, 12h, 90m."""
    seconds = int(age.total_seconds())
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def last_run(root: Path) -> dict[str, Any] | None:
    """The last recorded run, or None (never ran, or the file is unreadable)."""
    try:
        data = json.loads((Path(root) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None

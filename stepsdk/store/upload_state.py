"""What a backup folder still has to upload, what Supabase refused, and when it last took
something: the figures of ``stepsdk status`` and the viewer's operations page.

Two equal sources: :meth:`stepsdk.store.index.BackupIndex.upload_state` (index queries: the
normal way) and :meth:`UploadState.from_snapshot` (a merged ``BackupStore.read()``: a folder
whose index cannot be written, and the reference the index is tested against).
:func:`read_upload_state` picks."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepsdk.store.backup import T_OBJECTS, T_SHOTS, T_STEPS, T_TASKS, BackupSnapshot, BackupStore

log = logging.getLogger("stepsdk")


@dataclass
class UploadState:
    """Counts are of rows not uploaded in their newest version (objects: screenshot files that a
    pending row needs and that were not uploaded at that version)."""

    pending: dict[str, int]  # T_TASKS, T_STEPS, T_SHOTS, T_OBJECTS -> count
    pending_objects: list[str]  # their screenshot paths, sorted
    rejected: list[dict[str, Any]]  # {"table", "id", "error", "at"}, by (table, id)
    last_upload_at: str | None
    tasks: int  # tasks in the backup
    problems: list[str] = field(default_factory=list)

    def pending_bytes(self, root: str | Path) -> int:
        """Bytes of the pending objects' local files."""
        store = BackupStore(root)
        total = 0
        for screenshot_path in self.pending_objects:
            path = store.screenshot_file(screenshot_path)
            if path is not None:
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    @classmethod
    def from_snapshot(cls, snap: BackupSnapshot) -> UploadState:
        objects = snap.pending_objects()
        return cls(
            pending={
                T_TASKS: len(snap.pending_tasks()),
                T_OBJECTS: len(objects),
                T_STEPS: len(snap.pending_steps()),
                T_SHOTS: len(snap.pending_screenshots()),
            },
            pending_objects=objects,
            rejected=[{"table": t, "id": k, **v} for (t, k), v in sorted(snap.rejected.items())],
            last_upload_at=snap.last_upload_at,
            tasks=len(snap.tasks),
            problems=list(snap.problems),
        )


def read_upload_state(root: str | Path) -> UploadState:
    """From the folder's index; from its journals when the index cannot be opened or written
    (read-only media, a full disk)."""
    from stepsdk.store.index import BackupIndex

    index = BackupIndex(root)
    try:
        return index.upload_state()
    except (sqlite3.Error, OSError) as exc:
        log.warning("cannot use the backup index of %s (%s): reading the journals", root, exc)
        return UploadState.from_snapshot(BackupStore(root).read())
    finally:
        with contextlib.suppress(sqlite3.Error):
            index.close()

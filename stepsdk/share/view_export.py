"""``stepsdk view run.zip``: browse an export file without importing it into a backup.

The export (zip, JSON or JSONL written by ``stepsdk export``) is validated like an import, then
written into a temporary backup folder that the viewer's local source reads; the folder is
deleted when the viewer stops. The real backup folder and Supabase are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from stepsdk.ops.import_ import LoadedExport

log = logging.getLogger("stepsdk.share")


@contextlib.contextmanager
def export_as_backup(path: Path | LoadedExport) -> Iterator[tuple[Path, int]]:
    """A temporary backup folder holding the export's tasks (a path is read and validated
    first: :class:`ExportFormatError` or ``OSError``); yields (folder, tasks)."""
    from stepsdk.ops.import_ import import_into_backup, load_export

    loaded = path if isinstance(path, LoadedExport) else load_export(Path(path))
    root = Path(tempfile.mkdtemp(prefix="stepsdk-view-"))
    try:
        report = import_into_backup(loaded, root / "backup")
        yield root / "backup", report.tasks
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""The stepsdk export format (version :data:`EXPORT_VERSION`), shared by export and import.

- JSON: ``{"stepsdk_export": 1, "exported_at": ..., "source": ..., "tasks": [BUNDLE, ...]}``
  where ``BUNDLE = {"task": {...}, "steps": [...], "screenshots": [...]}`` (rows as stored);
- JSONL: one ``{"stepsdk_export": 1, **BUNDLE}`` per line (streams well, greps well);
- CSV: one row per step (a task without steps still gets one row), JSON columns serialized,
  text that a spreadsheet would run as a formula prefixed with ``'`` (:mod:`stepsdk.store.csv_cells`);
- zip (``--with-screenshots``): ``manifest.json`` (version, data file name, sha256 and size of
  each image, the screenshots that could not be fetched), the data file, and
  ``screenshots/<screenshot_path>`` for every image.

Writers live in :mod:`stepsdk.ops.export`, the strict reader in :mod:`stepsdk.ops.import_`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from stepsdk.schema import STEP_TYPES, TASK_STATUSES, parse_timestamp  # noqa: F401  (re-exported)

EXPORT_VERSION = 1
FORMATS = ("json", "jsonl", "csv")
DATA_FILES = {"json": "export.json", "jsonl": "export.jsonl", "csv": "export.csv"}
MANIFEST = "manifest.json"
SCREENSHOT_DIR = "screenshots/"

TASK_COLUMNS = (
    "task_id",
    "title",
    "description",
    "agent",
    "status",
    "started_at",
    "finished_at",
    "result",
    "error_message",
    "metadata",
    "owner_id",
    "created_at",
    "updated_at",
)
STEP_COLUMNS = (
    "id",
    "task_id",
    "step_number",
    "step_type",
    "step_data",
    "thinking",
    "action_result",
    "screenshot_path",
    "duration_ms",
    "success",
    "error_type",
    "error_message",
    "stack_trace",
    "started_at",
    "metadata",
    "created_at",
    "name",
    "usage",
    "error_category",
)
SCREENSHOT_COLUMNS = (
    "id",
    "task_id",
    "step_id",
    "screenshot_path",
    "file_size",
    "file_hash",
    "compressed",
    "metadata",
    "created_at",
)
# stepsdk 0.1 named step_screenshots' object key column storage_path (renamed by migration
# 20261130001410). Its backup journals (never rewritten) and exports keep that key: readers take
# either name through upgrade_screenshot_row, writers write only screenshot_path.
LEGACY_SCREENSHOT_PATH = "storage_path"


def upgrade_screenshot_row(row: dict[str, Any]) -> dict[str, Any]:
    """A screenshot row with the object key under its current name, ``screenshot_path``: a row
    written by stepsdk 0.1 (key ``storage_path``) comes back renamed (a new dict, same order);
    any other row is returned as it is. A row with both keys keeps ``screenshot_path``."""
    if LEGACY_SCREENSHOT_PATH not in row:
        return row
    if "screenshot_path" in row:
        return {k: v for k, v in row.items() if k != LEGACY_SCREENSHOT_PATH}
    return {("screenshot_path" if k == LEGACY_SCREENSHOT_PATH else k): v for k, v in row.items()}


@dataclass
class TaskBundle:
    """One task with its steps and screenshot rows, as stored."""

    task: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    screenshots: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return str(self.task["task_id"])

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "steps": self.steps, "screenshots": self.screenshots}

    def normalized(self) -> TaskBundle:
        """Deterministic order: steps by number, screenshots by their step's number then id."""
        steps = sorted(self.steps, key=lambda s: (_int_or(s.get("step_number")), str(s.get("id"))))
        order = {str(s.get("id")): _int_or(s.get("step_number")) for s in steps}
        shots = sorted(
            self.screenshots, key=lambda r: (order.get(str(r.get("step_id")), 0), str(r.get("id")))
        )
        return TaskBundle(self.task, steps, shots)


def _int_or(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def screenshot_paths(bundles: Iterable[TaskBundle]) -> list[str]:
    """Every distinct screenshot object referenced (screenshot rows and steps), in order."""
    seen: dict[str, None] = {}
    for bundle in bundles:
        for shot in bundle.screenshots:
            if isinstance(shot.get("screenshot_path"), str):
                seen.setdefault(shot["screenshot_path"], None)
        for step in bundle.steps:
            if isinstance(step.get("screenshot_path"), str) and step["screenshot_path"]:
                seen.setdefault(step["screenshot_path"], None)
    return list(seen)


def write_atomically(target: Path, build: Callable[[IO[bytes]], None]) -> None:
    """Write to a temp file beside ``target`` and rename: no half-written export on failure.
    A target that exists and is not a regular file (``/dev/null``, a FIFO) is written in place:
    renaming over it would replace the device or pipe with a file."""
    target = Path(target)
    if target.exists() and not target.is_file():
        with target.open("wb") as special:
            build(special)
        return
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as tmp:
            build(tmp)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def is_safe_screenshot_path(path: Any) -> bool:
    """A relative object key: no empty, ``.`` or ``..`` segments, no backslash, no control chars."""
    if not isinstance(path, str) or not 1 <= len(path) <= 1024:
        return False
    if path.startswith("/") or "\\" in path or CONTROL_CHARS.search(path) or re.match(r"^[A-Za-z]:", path):
        return False
    return all(seg not in ("", ".", "..") for seg in path.split("/"))

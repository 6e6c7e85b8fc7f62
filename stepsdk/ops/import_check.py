"""Strict validation of the rows of an export (columns, types, ids, references): every problem
is collected with its location (``tasks[2].steps[0].id``) so a bad file is refused as a whole.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from stepsdk.errors import ExportFormatError  # noqa: F401  (re-exported: its old home)
from stepsdk.recording.error_category import CATEGORIES as ERROR_CATEGORIES
from stepsdk.schema import MAX_AGENT, MAX_STEP_NAME, MAX_TASK_ID, MAX_TITLE, has_offset
from stepsdk.store.export_format import (
    CONTROL_CHARS,
    LEGACY_SCREENSHOT_PATH,
    SCREENSHOT_COLUMNS,
    STEP_COLUMNS,
    STEP_TYPES,
    TASK_COLUMNS,
    TASK_STATUSES,
    TaskBundle,
    is_safe_screenshot_path,
    parse_timestamp,
    upgrade_screenshot_row,
)

# Columns the schema declares NOT NULL, per table: an explicit null would be refused at upload.
NOT_NULL: dict[tuple[str, ...], frozenset[str]] = {
    TASK_COLUMNS: frozenset({"task_id", "status", "started_at", "metadata", "created_at", "updated_at"}),
    STEP_COLUMNS: frozenset(
        {"id", "task_id", "step_number", "step_type", "step_data", "success", "metadata", "created_at"}
    ),
    SCREENSHOT_COLUMNS: frozenset(SCREENSHOT_COLUMNS),  # every column of step_screenshots
}


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_INT4_MAX = 2**31 - 1


class _Checker:
    """Collects every problem of one bundle with its location (``tasks[2].steps[0].id``)."""

    def __init__(self, errors: list[str], nul_possible: bool = True) -> None:
        self.errors = errors
        # Values parsed by _strict_json cannot hold NaN/Infinity; they can hold a NUL only if the
        # text has a \u0000 escape. Walking every JSON value is the costliest check: skip it then.
        self.nul_possible = nul_possible

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def row(self, row: Any, where: str, columns: tuple[str, ...]) -> bool:
        if not isinstance(row, dict):
            self.fail(where, f"must be an object, got {kind_of(row)}")
            return False
        unknown = sorted(set(row) - set(columns))
        if unknown:
            self.fail(where, f"unknown column(s) {', '.join(map(repr, unknown))}")
        for key in sorted(NOT_NULL[columns] & set(row)):
            if row[key] is None:
                self.fail(f"{where}.{key}", "must not be null")
        return True

    def text(
        self,
        row: dict[str, Any],
        key: str,
        where: str,
        *,
        required: bool = False,
        max_len: int | None = None,
        min_len: int = 0,
    ) -> None:
        value = row.get(key)
        if value is None:
            if required:
                self.fail(f"{where}.{key}", "is required")
            return
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", f"must be a string, got {kind_of(value)}")
        elif "\x00" in value:
            self.fail(f"{where}.{key}", "contains a NUL character")
        elif len(value) < min_len or (max_len is not None and len(value) > max_len):
            self.fail(f"{where}.{key}", f"length must be {min_len}..{max_len}, got {len(value)}")

    def uuid(self, row: dict[str, Any], key: str, where: str, *, required: bool = True) -> None:
        value = row.get(key)
        if value is None and not required:
            return
        try:
            if not isinstance(value, str):
                raise ValueError
            uuid.UUID(value)
        except ValueError:
            self.fail(f"{where}.{key}", f"must be a UUID string, got {preview(value)}")

    def timestamp(self, row: dict[str, Any], key: str, where: str, *, required: bool = False) -> None:
        value = row.get(key)
        if value is None:
            if required:
                self.fail(f"{where}.{key}", "is required")
        elif not has_offset(value):
            self.fail(f"{where}.{key}", f"must be an ISO-8601 timestamp with an offset, got {preview(value)}")

    def json_object(self, row: dict[str, Any], key: str, where: str) -> None:
        value = row.get(key)
        if value is not None and not isinstance(value, dict):
            self.fail(f"{where}.{key}", f"must be an object, got {kind_of(value)}")
        self.json_value(row, key, where)

    def json_value(self, row: dict[str, Any], key: str, where: str) -> None:
        if self.nul_possible and _has_nul(row.get(key)):
            self.fail(f"{where}.{key}", "contains a NUL character")

    def boolean(self, row: dict[str, Any], key: str, where: str) -> None:
        value = row.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(f"{where}.{key}", f"must be true or false, got {preview(value)}")

    def integer(
        self, row: dict[str, Any], key: str, where: str, low: int, high: int, *, required: bool = False
    ) -> None:
        value = row.get(key)
        if value is None and not required:
            return
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(f"{where}.{key}", f"must be an integer in {low}..{high}, got {preview(value)}")

    def choice(self, row: dict[str, Any], key: str, where: str, choices: tuple[str, ...]) -> None:
        if row.get(key) not in choices:
            self.fail(f"{where}.{key}", f"must be one of {', '.join(choices)}, got {preview(row.get(key))}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def kind_of(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def preview(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_nul(value: Any) -> bool:
    """Whether any string (key or value) inside holds a NUL, which PostgreSQL text/jsonb refuse."""
    todo = [value]
    while todo:  # iterative: nesting depth is bounded by the JSON parser, not by this
        item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def _check_task(c: _Checker, task: Any, where: str) -> None:
    if not c.row(task, where, TASK_COLUMNS):
        return
    c.text(task, "task_id", where, required=True, min_len=1, max_len=MAX_TASK_ID)
    if isinstance(task.get("task_id"), str) and CONTROL_CHARS.search(task["task_id"]):
        c.fail(f"{where}.task_id", "contains control characters")
    if isinstance(task.get("task_id"), str) and not _encodable(task["task_id"]):
        c.fail(f"{where}.task_id", "is not valid Unicode text (it holds a lone surrogate)")
    c.text(task, "title", where, max_len=MAX_TITLE)
    c.text(task, "agent", where, max_len=MAX_AGENT)
    for key in ("description", "result", "error_message"):
        c.text(task, key, where)
    c.choice(task, "status", where, TASK_STATUSES)
    c.timestamp(task, "started_at", where, required=True)
    for key in ("finished_at", "created_at", "updated_at"):
        c.timestamp(task, key, where)
    c.json_object(task, "metadata", where)
    c.uuid(task, "owner_id", where, required=False)
    started, finished = parse_timestamp(task.get("started_at")), parse_timestamp(task.get("finished_at"))
    if task.get("status") in ("success", "failed", "interrupted") and task.get("finished_at") is None:
        c.fail(f"{where}.finished_at", f"is required when status is {task['status']}")
    if started and finished and finished < started:
        c.fail(f"{where}.finished_at", "is before started_at")


def _check_step(c: _Checker, step: Any, where: str, task_id: Any) -> None:
    if not c.row(step, where, STEP_COLUMNS):
        return
    c.uuid(step, "id", where)
    if step.get("task_id") != task_id:
        c.fail(
            f"{where}.task_id",
            f"must be the task's id {preview(task_id)}, got {preview(step.get('task_id'))}",
        )
    c.integer(step, "step_number", where, 1, _INT4_MAX, required=True)
    c.choice(step, "step_type", where, STEP_TYPES)
    c.json_object(step, "step_data", where)
    c.json_value(step, "action_result", where)
    c.json_object(step, "metadata", where)
    for key in ("thinking", "error_type", "error_message", "stack_trace"):
        c.text(step, key, where)
    path = step.get("screenshot_path")
    if path is not None and not is_safe_screenshot_path(path):
        c.fail(f"{where}.screenshot_path", f"is not a safe relative object key: {preview(path)}")
    duration = step.get("duration_ms")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration < 0
    ):
        c.fail(f"{where}.duration_ms", f"must be a number >= 0, got {preview(duration)}")
    c.boolean(step, "success", where)
    c.text(step, "name", where, min_len=1, max_len=MAX_STEP_NAME)
    c.json_object(step, "usage", where)
    if step.get("error_category") is not None:
        c.choice(step, "error_category", where, ERROR_CATEGORIES)
    c.timestamp(step, "started_at", where)
    c.timestamp(step, "created_at", where)


def _check_screenshot(c: _Checker, shot: Any, where: str, task_id: Any, step_ids: set[str]) -> None:
    if not c.row(shot, where, SCREENSHOT_COLUMNS):
        return
    c.uuid(shot, "id", where)
    c.uuid(shot, "step_id", where)
    if shot.get("task_id") != task_id:
        c.fail(
            f"{where}.task_id",
            f"must be the task's id {preview(task_id)}, got {preview(shot.get('task_id'))}",
        )
    if isinstance(shot.get("step_id"), str) and shot["step_id"] not in step_ids:
        c.fail(f"{where}.step_id", f"refers to no step of this task: {shot['step_id']}")
    if not is_safe_screenshot_path(shot.get("screenshot_path")):
        c.fail(
            f"{where}.screenshot_path",
            f"is not a safe relative object key: {preview(shot.get('screenshot_path'))}",
        )
    c.integer(shot, "file_size", where, 0, 2**63 - 1, required=True)
    if not isinstance(shot.get("file_hash"), str) or not _HEX64.match(shot["file_hash"]):
        c.fail(f"{where}.file_hash", f"must be 64 lowercase hex digits, got {preview(shot.get('file_hash'))}")
    c.boolean(shot, "compressed", where)
    c.json_object(shot, "metadata", where)
    c.timestamp(shot, "created_at", where)


def validate_bundle(raw: Any, where: str, errors: list[str], nul_possible: bool = True) -> TaskBundle | None:
    """Check one ``{"task", "steps", "screenshots"}`` object; problems go to ``errors``."""
    c = _Checker(errors, nul_possible)
    before = len(errors)
    if not isinstance(raw, dict):
        c.fail(where, f"must be an object, got {kind_of(raw)}")
        return None
    unknown = sorted(set(raw) - {"task", "steps", "screenshots", "stepsdk_export"})
    if unknown:
        c.fail(where, f"unknown key(s) {', '.join(map(repr, unknown))}")
    task, steps, shots = raw.get("task"), raw.get("steps", []), raw.get("screenshots", [])
    _check_task(c, task, f"{where}.task")
    task_id = task.get("task_id") if isinstance(task, dict) else None
    if not isinstance(steps, list):
        c.fail(f"{where}.steps", f"must be an array, got {kind_of(steps)}")
        steps = []
    if not isinstance(shots, list):
        c.fail(f"{where}.screenshots", f"must be an array, got {kind_of(shots)}")
        shots = []
    for i, step in enumerate(steps):
        _check_step(c, step, f"{where}.steps[{i}]", task_id)
    _check_unique(c, steps, "id", f"{where}.steps")
    _check_unique(c, steps, "step_number", f"{where}.steps")
    step_ids = {s["id"] for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)}
    # an export made by stepsdk 0.1 names the screenshot rows' key storage_path: read either name
    for i, shot in enumerate(shots):
        if isinstance(shot, dict) and LEGACY_SCREENSHOT_PATH in shot and "screenshot_path" in shot:
            c.fail(
                f"{where}.screenshots[{i}]",
                f"has both 'screenshot_path' and {LEGACY_SCREENSHOT_PATH!r} (its stepsdk 0.1 name)",
            )
    shots = [upgrade_screenshot_row(shot) if isinstance(shot, dict) else shot for shot in shots]
    for i, shot in enumerate(shots):
        _check_screenshot(c, shot, f"{where}.screenshots[{i}]", task_id, step_ids)
    _check_unique(c, shots, "id", f"{where}.screenshots")
    if len(errors) > before:
        return None
    return TaskBundle(task, steps, shots)


def _check_unique(c: _Checker, rows: list[Any], key: str, where: str) -> None:
    seen: set[Any] = set()
    for row in rows:
        value = row.get(key) if isinstance(row, dict) else None
        if value is None or isinstance(value, dict | list):
            continue
        if value in seen:
            c.fail(where, f"duplicate {key} {preview(value)}")
        seen.add(value)

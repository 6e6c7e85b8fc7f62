"""Steps and tasks as rows: sanitized, with the columns of `supabase/migrations/*.sql`.

Runs on the journal stage (never on the agent's thread). A step whose values cannot be turned
into a row (a sanitizer bug on odd input, a timestamp out of range) becomes a placeholder row
with `metadata.record_error`: the step keeps its place and number, its neighbours are untouched.
"""

from __future__ import annotations

import logging
from typing import Any

from stepsdk.config import Config
from stepsdk.model import Step, Task, iso
from stepsdk.recording.error_category import categorize
from stepsdk.recording.sanitize import Sanitizer

log = logging.getLogger("stepsdk")


class RowMaker:
    """Turns `Task`/`Step` objects into rows (the sanitizer has a lock of its own)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sanitizer = Sanitizer(config.limits, config.secrets)

    def task_row(self, task: Task) -> dict[str, Any]:
        row = task.to_row()
        clean = self.sanitizer
        for col in ("title", "description", "agent", "result", "error_message"):
            row[col] = clean.text(row[col], self.config.limits.max_text)
        row["metadata"] = clean.object_field(row["metadata"])
        return row

    def step_row(self, step: Step) -> tuple[dict[str, Any], str | None]:
        """Version 0 of a step row, and the reason it is a placeholder (None when it is not).
        A screenshot is only marked pending here (it is encoded by the screenshot stage)."""
        try:
            return self._step_row(step), None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {Sanitizer._repr(exc)[:300]}"
            log.warning(
                "stepsdk: step %d could not be recorded as given (%s); kept as a placeholder row",
                step.step_number,
                reason,
            )
            return self._placeholder(step, reason), reason

    def _step_row(self, step: Step) -> dict[str, Any]:
        s, lim = self.sanitizer, self.config.limits
        metadata = s.object_field(step.metadata)
        if step.screenshot is not None:
            if lim.screenshots:
                metadata["screenshot_pending"] = True
            else:
                metadata["screenshot_dropped"] = f"level {self.config.level.value} records no screenshots"
        return {
            "id": step.id,
            "task_id": step.task_id,
            "step_number": step.step_number,
            "step_type": step.step_type.value,
            "step_data": s.object_field(step.step_data),
            "thinking": s.text(step.thinking, lim.max_text),
            "action_result": s.field(step.action_result) if step.action_result is not None else None,
            "screenshot_path": None,
            "duration_ms": step.duration_ms,
            "success": step.success,
            "error_type": s.text(step.error_type, 200),
            "error_message": s.text(step.error_message, lim.max_text),
            "stack_trace": s.text(step.stack_trace, lim.max_stack) if lim.max_stack else None,
            "started_at": iso(step.started_at),
            "metadata": metadata,
            "created_at": iso(step.created_at),
            "name": s.text(step.name, 200),
            "usage": step.usage,
            "error_category": step.error_category
            or (
                categorize(step.error_type, step.error_message, _http_status(step.step_data))
                if not step.success or step.error_type or step.error_message
                else None
            ),
        }

    @staticmethod
    def _placeholder(step: Step, reason: str) -> dict[str, Any]:
        return {
            "id": step.id,
            "task_id": step.task_id,
            "step_number": step.step_number,
            "step_type": step.step_type.value,
            "step_data": {"_error": "step data could not be recorded"},
            "thinking": None,
            "action_result": None,
            "screenshot_path": None,
            "duration_ms": None,
            "success": bool(step.success),
            "error_type": None,
            "error_message": None,
            "stack_trace": None,
            "started_at": _safe_iso(step.started_at),
            "metadata": {"record_error": reason},
            "created_at": _safe_iso(step.created_at),
            "name": None,
            "usage": None,
            "error_category": None,
        }


def _safe_iso(ts: float) -> str | None:
    try:
        return iso(ts)
    except (OverflowError, OSError, ValueError):
        return None


def _http_status(step_data: Any) -> int | None:
    """The HTTP status of a step that recorded an HTTP call (httpx integration)."""
    response = step_data.get("response") if isinstance(step_data, dict) else None
    status = response.get("status_code") if isinstance(response, dict) else None
    return status if isinstance(status, int) and not isinstance(status, bool) else None

"""The data model: step types, task statuses, recording levels, and the Step/Task records.

`Step` and `Task` are what the caller sees; `to_row()` turns them into the database rows
(column names of `supabase/migrations/*_stepsdk_core.sql`). Values inside a Step are raw
(the caller's objects); the worker sanitizes them before they become rows.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import weakref
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class StepType(StrEnum):
    """What kind of step was recorded (the `task_steps.step_type` check constraint)."""

    THINKING = "thinking"
    ACTION = "action"
    SCREENSHOT = "screenshot"
    ERROR = "error"
    VALIDATION = "validation"


class TaskStatus(StrEnum):
    """Status of a task (the `tasks.status` check constraint)."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Level(StrEnum):
    """How much is recorded (`STEPSDK_LEVEL`); the numbers live in `stepsdk.config.LEVEL_LIMITS`.

    | level | strings in data | field (JSON) | depth | items | thinking / error text | stack trace | screenshots |
    |---|---|---|---|---|---|---|---|
    | BASIC | 1,000 chars | 16 KB | 8 | 100 | 2,000 chars | dropped | dropped (metadata.screenshot_dropped) |
    | DETAILED (default) | 10,000 chars | 256 KB | 20 | 1,000 | 20,000 chars | 20,000 chars | kept |
    | FULL | 1,000,000 chars | 4 MB | 64 | 100,000 | 1,000,000 chars | 200,000 chars | kept |

    Whatever is cut carries a visible marker ("…[truncated N chars]", "…[N more items]", ...).
    STEPSDK_MAX_STRING / STEPSDK_MAX_FIELD_BYTES override the first two columns.
    """

    BASIC = "BASIC"
    DETAILED = "DETAILED"
    FULL = "FULL"


STEP_TYPES: dict[Any, StepType] = {**{t: t for t in StepType}, **{t.value: t for t in StepType}}
TASK_STATUSES: dict[Any, TaskStatus] = {**{s: s for s in TaskStatus}, **{s.value: s for s in TaskStatus}}


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO-8601 with offset (what PostgREST expects for timestamptz)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


_id_sources: weakref.WeakSet[IdSource] = weakref.WeakSet()


def _reseed_after_fork() -> None:
    # A forked child must not hand out its parent's next ids (same prefix, same counter).
    for source in list(_id_sources):
        source._reseed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)


class IdSource:
    """Cheap unique UUID strings for steps: a random per-source prefix + a counter.

    `uuid.uuid4()` costs ~3 µs, most of the caller-thread budget of `record_step`. The ids made
    here are valid version-4 UUIDs (version nibble 4, variant 10xx) with 74 random bits per
    source and a 48-bit counter starting at a random offset, so they are unique across trackers
    and processes without a syscall per step.
    """

    __slots__ = ("__weakref__", "_prefix", "next")

    def __init__(self) -> None:
        self._reseed()
        _id_sources.add(self)

    def _reseed(self) -> None:
        raw = os.urandom(16).hex()
        variant = "89ab"[int(raw[16], 16) & 3]
        self._prefix = f"{raw[0:8]}-{raw[8:12]}-4{raw[13:16]}-{variant}{raw[17:20]}-"
        start = int.from_bytes(os.urandom(5), "big")  # < 2**40: room for 2**48 - 2**40 steps
        # `next()` -> the next id; built from C-level iterators only (~0.1 µs, no Python frame).
        self.next = map((self._prefix.replace("%", "%%") + "%012x").__mod__, itertools.count(start)).__next__


@dataclasses.dataclass(slots=True, eq=False)
class Step:
    """One recorded step. `id` and `step_number` are assigned at the call and never change.

    Fields hold what the caller passed (references, not copies of nested data): the worker
    sanitizes them (JSON coercion, truncation, redaction) when it writes the row.
    """

    id: str
    task_id: str
    step_number: int
    step_type: StepType
    step_data: dict[str, Any]
    thinking: str | None = None
    action_result: Any = None
    screenshot: Any = None
    duration_ms: float | None = None
    success: bool = True
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    metadata: dict[str, Any] | None = None
    started_at: float = 0.0  # epoch seconds
    created_at: float = 0.0  # epoch seconds
    name: str | None = None  # short human label ("GET /v1/forecast -> 404", "Tap")
    usage: dict[str, int] | None = None  # {prompt_tokens, completion_tokens, total_tokens}
    error_category: str | None = None  # stepsdk.recording.error_category.CATEGORIES


@dataclasses.dataclass(slots=True)
class Task:
    """The task (one agent run) a tracker records into. `version` orders task row updates."""

    task_id: str
    title: str | None = None
    description: str | None = None
    agent: str | None = None
    status: TaskStatus = TaskStatus.RUNNING
    started_at: float = 0.0
    finished_at: float | None = None
    result: str | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    owner_id: str | None = None
    version: int = 0

    def to_row(self) -> dict[str, Any]:
        """The `tasks` row (owner_id only when set, so an upsert never clears an owner)."""
        row: dict[str, Any] = {
            "task_id": self.task_id,
            "title": self.title,
            "description": self.description,
            "agent": self.agent,
            "status": self.status.value,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "result": self.result,
            "error_message": self.error_message,
            "metadata": self.metadata,
        }
        if self.owner_id is not None:
            row["owner_id"] = self.owner_id
        return row

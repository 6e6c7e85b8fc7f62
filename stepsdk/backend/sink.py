"""The sink seam (like httpx's transport): what the recorder and `stepsdk resync` write to.

`SupabaseSink` (stepsdk/backend/supabase_sink.py) is the real one; `stepsdk.testing.MemorySink` keeps
rows and objects in memory for tests of agents that record steps. A sink may raise anything:
the retry policy classifies it (stepsdk/backend/retry.py). A sink of your own raises `BackendUnavailable`
for "try again later", `RowRejected` for "this data is refused" and `BackendMisconfigured` for
"nothing will work until the configuration is fixed".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from stepsdk.errors import BackendUnavailableError, StepSDKError

TABLES = ("tasks", "task_steps", "step_screenshots")
KEY_COLUMN = {"tasks": "task_id", "task_steps": "id", "step_screenshots": "id"}


@runtime_checkable
class Sink(Protocol):
    """Idempotent writes of stepsdk rows and screenshot objects.

    - `upsert(table, rows)`: insert or update by the table's key (`KEY_COLUMN`); each row carries
      `row_version`, and a stored row with a higher `row_version` must be kept.
    - `upload_object(path, data)`: store a screenshot object (idempotent: same path, same bytes).
    - `existing(table, ids)`: which of these keys are stored.
    - `probe()`: a cheap request that raises when the backend cannot be used.
    - `close()`: release connections (called once, from the upload thread or resync).
    """

    def upsert(self, table: str, rows: list[dict[str, Any]]) -> None: ...

    def upload_object(self, screenshot_path: str, data: bytes) -> None: ...

    def existing(self, table: str, ids: Iterable[str]) -> set[str]: ...

    def probe(self) -> None: ...

    def close(self) -> None: ...


SinkFactory = Callable[[], Sink]


class SinkError(StepSDKError):
    """Base of the errors a sink may raise to say how a failure should be treated."""


class BackendUnavailable(SinkError, BackendUnavailableError):
    """Transient: retried with backoff, then the circuit breaker keeps the rows in the backup."""


class RowRejected(SinkError):
    """This data is refused for good (a constraint, a bad value): the row is set aside with
    `code` and `message`, its neighbours go on."""

    def __init__(self, message: str, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BackendMisconfigured(SinkError):
    """Fatal for every row (bad key, missing table): nothing is rejected, everything waits."""

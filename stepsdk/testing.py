"""Test helpers for code that records steps: `MemorySink`, a sink that keeps everything in memory.

Like httpx's `MockTransport`: pass it to a tracker and assert on what your agent recorded,
without a database::

    from stepsdk import StepTracker
    from stepsdk.testing import MemorySink

    sink = MemorySink()
    with StepTracker(title="t", backup_dir=tmp_path, sink=sink) as tracker:
        tracker.record_step("action", {"tap": [1, 2]})
    assert [r["step_number"] for r in sink.steps(tracker.task_id)] == [1]

It behaves like the real tables where it matters to the recorder: upserts by key, the newest
`row_version` wins, foreign keys are checked (a step before its task, a screenshot row before its
step, a step pointing at an object not uploaded yet: each is noted in `violations`), and
`(task_id, step_number)` is unique (a duplicate is refused like Postgres' 23505). An older
version that arrives after a newer one is kept out and noted in `stale`.
`fail_next(n, error)` makes the next n requests fail (default: `BackendUnavailable`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from stepsdk.backend.sink import KEY_COLUMN, BackendUnavailable, RowRejected


class MemorySink:
    """An in-memory `stepsdk.backend.sink.Sink`; thread-safe; usable as a sink or a factory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in KEY_COLUMN}
        self.objects: dict[str, bytes] = {}
        self.violations: list[str] = []
        self.stale: list[str] = []  # older versions that arrived after newer ones (kept out)
        self._numbers: dict[tuple[str, int], str] = {}  # (task_id, step_number) -> step id
        self.requests: list[tuple[str, str, int]] = []  # (method, table or path, rows)
        self.closed = False
        self._failures: list[BaseException] = []

    def __call__(self) -> MemorySink:  # a factory that always answers this sink
        return self

    # ------------------------------------------------------------------ control
    def fail_next(self, n: int = 1, error: BaseException | None = None) -> None:
        """The next `n` requests raise `error` (default: BackendUnavailable, retried)."""
        with self._lock:
            self._failures.extend([error or BackendUnavailable("injected failure")] * n)

    def _maybe_fail(self) -> None:
        if self._failures:
            raise self._failures.pop(0)

    # ------------------------------------------------------------------ queries
    def tasks(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self.rows["tasks"].items()}

    def steps(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """Step rows (of one task), ordered by step number."""
        with self._lock:
            rows = [
                dict(r)
                for r in self.rows["task_steps"].values()
                if task_id is None or r["task_id"] == task_id
            ]
        return sorted(rows, key=lambda r: (r["task_id"], r["step_number"]))

    def screenshots(self, task_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r)
                for r in self.rows["step_screenshots"].values()
                if task_id is None or r["task_id"] == task_id
            ]

    # ------------------------------------------------------------------ the Sink protocol
    def upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self.requests.append(("upsert", table, len(rows)))
            self._maybe_fail()
            if table not in KEY_COLUMN:
                raise RowRejected(f"unknown table {table}", "42P01")
            key = KEY_COLUMN[table]
            for row in rows:  # validate all first: a refused request stores nothing (one transaction)
                self._check(table, row)
            for row in rows:
                stored = self.rows[table].get(row[key])
                if stored is not None and stored.get("row_version", 0) > row.get("row_version", 0):
                    self.stale.append(
                        f"{table} {row[key]}: version {row.get('row_version', 0)} after "
                        f"{stored.get('row_version', 0)}"
                    )
                    continue  # an older version arrived late: keep the newer one (as the trigger does)
                merged = {**(stored or {}), **row}
                if table == "tasks" and stored is not None:
                    merged["started_at"] = min(stored["started_at"], row["started_at"])
                self.rows[table][row[key]] = merged

    def _check(self, table: str, row: dict[str, Any]) -> None:
        if table == "task_steps":
            if row["task_id"] not in self.rows["tasks"]:
                self.violations.append(f"step {row['id']} before its task {row['task_id']}")
                raise RowRejected(f"task {row['task_id']} does not exist", "23503")
            owner = self._numbers.setdefault((row["task_id"], row["step_number"]), row["id"])
            if owner != row["id"]:
                raise RowRejected(f"duplicate step number {row['step_number']} of {row['task_id']}", "23505")
            path = row.get("screenshot_path")
            if path is not None and path not in self.objects:
                self.violations.append(f"step {row['id']} points at {path} before it was uploaded")
        elif table == "step_screenshots" and row["step_id"] not in self.rows["task_steps"]:
            self.violations.append(f"screenshot row {row['id']} before its step {row['step_id']}")
            raise RowRejected(f"step {row['step_id']} does not exist", "23503")

    def upload_object(self, screenshot_path: str, data: bytes) -> None:
        with self._lock:
            self.requests.append(("upload", screenshot_path, 1))
            self._maybe_fail()
            self.objects[screenshot_path] = bytes(data)

    def existing(self, table: str, ids: Iterable[str]) -> set[str]:
        with self._lock:
            self.requests.append(("existing", table, 0))
            self._maybe_fail()
            return {i for i in ids if i in self.rows[table]}

    def probe(self) -> None:
        with self._lock:
            self.requests.append(("probe", "tasks", 0))
            self._maybe_fail()

    def close(self) -> None:
        self.closed = True


__all__ = ["MemorySink"]

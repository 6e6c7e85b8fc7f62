"""The one shared state of a tracker's pipeline: counters, the records waiting for upload, and
flush state, all under one condition variable.

Locking rule (the whole of it): every field below is read and written only with `cond` held,
through the methods of `Progress`; stages never share anything else, except the queues they
hand work over with (`queue.SimpleQueue` caller -> journal, bounded `queue.Queue` journal ->
screenshots). The lock is re-entrant so that a SIGTERM handler running on the main thread in
the middle of `record_step` can still finish the task.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable

from stepsdk.backend.uploader import T_STEPS, T_TASKS, Record


@dataclasses.dataclass(slots=True)
class FlushResult:
    """What `flush()` (or `finish()`, `close()`) saw when it returned; counts of steps over the
    tracker's life.

    uploaded: confirmed by Supabase. backed_up: safe in the local backup, not uploaded (backend
    down, local mode, or still in flight). pending: recorded but not yet written anywhere (only
    non-zero when it timed out). rejected: refused by the server (kept in the backup with the
    error). dropped: lost, nowhere kept (e.g. disk full in local mode). screenshots_lost:
    screenshots not stored (their steps carry `metadata.screenshot_error`). lost_reasons: why,
    with counts. timed_out: the wait hit its timeout.
    """

    uploaded: int
    backed_up: int
    pending: int
    rejected: int
    timed_out: bool
    dropped: int = 0
    screenshots_lost: int = 0
    lost_reasons: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Everything recorded so far is uploaded or safe in the backup, nothing lost."""
        return (
            not self.timed_out
            and self.pending == 0
            and self.rejected == 0
            and self.dropped == 0
            and self.screenshots_lost == 0
            and not self.lost_reasons
        )


class Progress:
    """Counters, pending upload records and flush state of one pipeline (see module docstring)."""

    def __init__(self, remote: bool, max_in_memory: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.remote = remote
        self.max_in_memory = max_in_memory
        self.clock = clock
        # steps (counted once each, at version 0) and task versions. `_submitted` is the one
        # counter the caller's thread advances without the lock: `next()` of an itertools.count
        # is atomic in CPython and costs ~30 ns, a lock ~300 ns (record_step's budget is ~1.5 µs).
        self._submitted = itertools.count(1)
        self.task_version_submitted = 0
        self.processed = 0  # handled by the journal stage (written or not)
        self.journaled = 0  # ... of which written to the backup
        self.task_version_processed = 0
        self.uploaded = 0  # final version confirmed by the backend
        self.rejected = 0
        self.retried = 0
        self.spilled = 0
        self.backup_errors = 0
        self.dropped = 0
        self.degraded = 0  # kept as a placeholder row (values could not be recorded)
        self.shots_queued = 0  # screenshot steps waiting for their final version
        self.shots_done = 0
        self.screenshots_lost = 0
        self.lost_reasons: collections.Counter[str] = collections.Counter()
        self.last_error: str | None = None
        # upload state
        self.pending: collections.deque[Record] = collections.deque()
        self.backlog_offset: int | None = None  # records from here on are on disk only
        self.latest_task: Record | None = None  # sent ahead of steps until a task row is uploaded
        self.task_version_uploaded = 0
        self.flush_waiters = 0
        self.request_since: float | None = None  # an upload request in flight since
        self.last_request_seconds = 0.0  # how long the last finished request took
        self.struggling = False  # the current batch needed a retry: flush does not wait on it
        self.backend_down = False
        self.upload_alive = remote
        self.stopping = False
        self.abort_retries = False
        self.own_task: str | None = None  # the tracker's task (others: abandoned tasks it marks)
        self.uploaded_unjournaled = 0  # steps the backup refused but the backend took
        self.disk_only = 0  # steps whose only copy is the journal (backlog not yet re-read)

    # ------------------------------------------------------------------ caller side
    @property
    def submitted(self) -> int:
        """Steps submitted so far (reads the counter without advancing it)."""
        return int(repr(self._submitted)[6:-1]) - 1  # "count(N)": N is the next value

    def submitted_task(self, version: int) -> None:
        with self.cond:
            self.task_version_submitted = max(self.task_version_submitted, version)

    # ------------------------------------------------------------------ journal / screenshot stages
    def hand_over(self, records: list[Record], journaled: bool, degraded: int = 0) -> None:
        """Records just journaled (or not: the backup failed) become pending for upload."""
        now = self.clock()
        with self.cond:
            self.degraded += degraded
            for r in records:
                first = r.table == T_STEPS and r.version == 0  # a step is counted once, at version 0
                if first:
                    self.processed += 1
                    self.journaled += journaled
                    self.shots_queued += not r.final
                if r.table == T_TASKS and r.key == self.own_task:
                    if self.latest_task is None or r.version >= self.latest_task.version:
                        self.latest_task = r
                    self.task_version_processed = max(self.task_version_processed, r.version)
                if not self.remote:
                    if not journaled and first:
                        self._lose("backup unwritable (local mode: nowhere else to keep it)")
                    continue
                r.since = now
                if self.backlog_offset is None and len(self.pending) < self.max_in_memory:
                    self.pending.append(r)
                elif r.offset is not None:  # on disk only: the upload stage re-reads it later
                    if self.backlog_offset is None or r.offset < self.backlog_offset:
                        self.backlog_offset = r.offset
                    self.disk_only += first
                elif first:
                    self._lose("backup unwritable and the memory buffer full")
            self.cond.notify_all()

    def set_task(self, task_id: str) -> None:
        with self.cond:
            self.own_task = task_id

    def shot_finished(self, lost_reason: str | None = None) -> None:
        with self.cond:
            self.shots_done += 1
            if lost_reason is not None:
                self.screenshots_lost += 1
                self.lost_reasons[f"screenshot: {lost_reason}"] += 1
            self.cond.notify_all()

    def _lose(self, reason: str) -> None:
        self.dropped += 1
        self.lost_reasons[reason] += 1
        self.last_error = f"step lost: {reason}"

    def count(self, name: str, n: int = 1) -> None:
        with self.cond:
            setattr(self, name, getattr(self, name) + n)

    def note_error(self, message: str) -> None:
        with self.cond:
            self.last_error = message

    # ------------------------------------------------------------------ upload stage
    def confirmed(self, table: str, records: list[Record]) -> None:
        with self.cond:
            if table == T_STEPS:
                self.uploaded += sum(r.final for r in records)
                self.uploaded_unjournaled += sum(r.final and r.offset is None for r in records)
            elif table == T_TASKS:
                for r in records:
                    if r.key == self.own_task:
                        self.task_version_uploaded = max(self.task_version_uploaded, r.version)
            self.cond.notify_all()

    def rejected_record(self, counts: bool) -> None:
        with self.cond:
            self.rejected += counts
            self.cond.notify_all()

    def batch_done(self, batch: list[Record]) -> None:
        with self.cond:
            ids = {id(r) for r in batch}
            # Also drops records sent with another batch (the task row sent ahead of steps).
            self.pending = collections.deque(r for r in self.pending if id(r) not in ids and not r.done)
            self.struggling = False
            self.backend_down = False
            self.cond.notify_all()

    def upload_failed(self, message: str) -> None:
        with self.cond:
            self.backend_down = True
            self.last_error = message
            self.cond.notify_all()

    def request_started(self) -> None:
        with self.cond:
            self.request_since = self.clock()

    def request_ended(self) -> None:
        with self.cond:
            if self.request_since is not None:
                self.last_request_seconds = self.clock() - self.request_since
            self.request_since = None

    def hanging(self, slow_after: float) -> bool:
        """Caller holds `cond`. A request in flight for longer than `slow_after`, and than four
        times the last request took: a backend that accepts and never answers, not a slow one."""
        if self.request_since is None:
            return False
        return self.clock() - self.request_since >= max(slow_after, 4 * self.last_request_seconds)

    def retrying(self, message: str) -> None:
        with self.cond:
            self.retried += 1
            self.last_error = message
            self.struggling = True
            self.cond.notify_all()

    # ------------------------------------------------------------------ flush
    def flushed(self, target: int, task_target: int, slow_after: float) -> bool:
        """Caller holds `cond`. Every step up to `target` (and the task row up to `task_target`)
        is journaled with its final version, and uploaded unless the backend is failing or
        slow (then the backup holds it: it is safe)."""
        journaled = (
            self.processed >= target
            and self.task_version_processed >= task_target
            and self.shots_done >= self.shots_queued
        )
        if not self.remote or not journaled:
            return journaled
        if self.backend_down or self.struggling or not self.upload_alive:
            return True
        if self.hanging(slow_after):
            return True  # a request hangs (a backend that accepts and never answers)
        return self.uploaded + self.rejected >= target and self.task_version_uploaded >= task_target

    def result(self, target: int, timed_out: bool) -> FlushResult:
        """Caller holds `cond`."""
        kept = self.journaled + self.uploaded_unjournaled + self.dropped
        return FlushResult(
            uploaded=self.uploaded,
            rejected=self.rejected,
            backed_up=max(0, self.journaled - self.uploaded - self.rejected),
            pending=max(0, target - kept),
            timed_out=timed_out,
            dropped=self.dropped,
            screenshots_lost=self.screenshots_lost,
            lost_reasons=dict(self.lost_reasons),
        )

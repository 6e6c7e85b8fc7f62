"""The background side of a tracker: journal thread + upload thread (in the spirit of
OpenTelemetry's BatchSpanProcessor, with `force_flush(timeout)` and `shutdown(timeout)`).

    caller --SimpleQueue--> journal thread: sanitize, append to the journal
                                  |  (write-ahead: a step is durable once this line is written)
                                  |--bounded Queue--> screenshot thread: decode, WebP, write the
                                  |                   object, journal the screenshot row and a
                                  |                   newer version of the step row (its path)
                                  v
                            pending deque (at most `max_in_memory` items; more stay on disk only
                                  |         and are re-read from the journal: the backlog)
                                  v
                            upload thread: batch -> task rows, objects, step rows, screenshot
                                  rows (retries, split on rejected rows, circuit breaker) -> ack

Separate threads so that neither a slow or dead backend nor screenshot encoding (~150-350 ms
for a 1080x2400 photo-like screen) delays the journal: the crash bound is the journal thread's
latency, not the network's or the encoder's.

Screenshot steps are journaled twice: version 0 at once, with `screenshot_path` null and
`metadata.screenshot_pending` true (durable within milliseconds), then version 1 carrying the
path (or `metadata.screenshot_error`) once the object is on disk. Readers keep the highest
version of a step (backup/README.md). When the screenshot queue is full (`max_shot_queue`
screenshots waiting to be encoded), the journal thread, having journaled its current batch,
waits for room: memory stays bounded and the agent is only slowed once `max_queue` fills.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import queue
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Any

from stepsdk._backup import (
    KIND_ACK,
    KIND_REJECT,
    KIND_SHOT,
    KIND_STEP,
    KIND_TASK,
    SCREENSHOT_DIR,
    T_OBJECTS,
    T_SHOTS,
    T_STEPS,
    T_TASKS,
    JournalWriter,
    archive_target,
    encode_record,
    iter_journal,
    now_iso,
    pending_steps_of_gone_writers,
    write_screenshot,
)
from stepsdk._config import Config
from stepsdk._error_category import categorize
from stepsdk._model import IdSource, Step, Task, iso
from stepsdk._retry import CircuitBreaker, ErrorClass, RetryPolicy, classify, describe, one_line
from stepsdk._sanitize import Sanitizer

log = logging.getLogger("stepsdk")

_live_workers: weakref.WeakSet[Worker] = weakref.WeakSet()
_backlog_hint = threading.Lock()  # held forever once one worker has looked (once per process)


@dataclasses.dataclass(slots=True)
class FlushResult:
    """What `flush()` saw when it returned (counts of steps over the tracker's life).

    uploaded: confirmed by Supabase. backed_up: safe in the local backup, not uploaded (backend
    down, local mode, or still in flight). pending: recorded but not yet written anywhere (only
    non-zero when it timed out). rejected: refused by the server (kept in the backup with the
    error). timed_out: the wait hit its timeout.
    """

    uploaded: int
    backed_up: int
    pending: int
    rejected: int
    timed_out: bool

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.pending == 0 and self.rejected == 0


@dataclasses.dataclass(slots=True)
class _Item:
    kind: str  # task | step | shot
    key: str  # task_id | step id | screenshot row id
    row: dict[str, Any]
    version: int = 0  # task rows; step rows: 0, or 1 for the version carrying the screenshot
    final: bool = True  # steps: False for version 0 of a screenshot step (version 1 will follow)
    riders: list[_Item] | None = None  # older versions of the same step sent along with this one
    offset: int | None = None  # where its record starts in the journal (None: write failed)
    data: bytes | None = None  # object bytes, only when the backup copy could not be written
    since: float = 0.0
    done: bool = False  # uploaded or rejected (a retried batch skips it)


@dataclasses.dataclass(slots=True)
class _ShotJob:
    step: Step
    row: dict[str, Any]  # version 0 of the step row (not mutated: version 1 is a copy)


class _Unavailable(Exception):
    """The backend cannot take this batch now (transient errors exhausted, or fatal config)."""


class Worker:
    """Owns the journal, the pending items and the two threads of one tracker."""

    def __init__(self, config: Config, buffer_size: int, flush_interval: float,
                 max_queue: int = 1_000, max_in_memory: int = 5_000, max_shot_queue: int = 32) -> None:
        self.config = config
        self.max_shot_queue = max_shot_queue
        self.buffer_size = buffer_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_in_memory = max(max_in_memory, buffer_size)
        self._start()
        _live_workers.add(self)

    def _start(self) -> None:
        """Fresh journal, queue, locks, counters, sink and threads (at creation and after fork)."""
        self.sanitizer = Sanitizer(self.config.limits, self.config.secrets)  # has a lock of its own
        self.journal = JournalWriter(self.config.backup_dir)
        self._ids = IdSource()
        self._q: queue.SimpleQueue[Step | Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # counters written by the caller
        self._cond = threading.Condition()  # progress: pending, counters
        self._shots: queue.Queue[_ShotJob | None] = queue.Queue(self.max_shot_queue)
        self._shots_abandoned = False  # shutdown gave up waiting: leave version 0 as it is
        self.shots_queued = 0  # screenshot steps journaled as version 0
        self.shots_done = 0  # ... whose version 1 was handed over (or failed)
        self._pending: collections.deque[_Item] = collections.deque()
        self._latest_task: _Item | None = None  # sent ahead of steps until a task row is uploaded
        self._backlog_offset: int | None = None
        self._flush_requested = 0
        self._stopping = False
        self._abort_retries = False
        # counters (steps)
        self.submitted = 0
        self.journaled = 0
        self.uploaded = 0
        self.rejected = 0
        self.retried = 0
        self.spilled = 0
        self.backup_errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.task_version_submitted = 0
        self.task_version_journaled = 0
        self.processed = 0  # steps the journal thread handled (written or not)
        self.task_version_processed = 0
        self._struggling = False  # the current batch needed a retry: do not make flush wait on it
        self.task_version_uploaded = 0
        self._uploaded_objects: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.remote = self.config.remote
        self.sink: Any = None  # created on the upload thread (importing supabase costs ~0.5-1 s)
        self.breaker = CircuitBreaker(self.config.probe_min, self.config.probe_max, name="Supabase")
        self._journal_thread = threading.Thread(target=self._journal_loop, name="stepsdk-journal", daemon=True)
        self._shot_thread = threading.Thread(target=self._shot_loop, name="stepsdk-screenshots", daemon=True)
        self._upload_thread: threading.Thread | None = None
        if self.remote:
            self._upload_thread = threading.Thread(target=self._upload_loop, name="stepsdk-upload", daemon=True)
        self._journal_thread.start()
        self._shot_thread.start()
        if self._upload_thread is not None:
            self._upload_thread.start()

    def _after_fork(self) -> None:
        """In a forked child: the parent's threads, locks and connections are not ours to use.
        Start over with a journal of our own; what the parent had queued stays the parent's."""
        self._start()

    # ------------------------------------------------------------------ caller side
    def submit(self, item: Step | Task) -> None:
        """Caller thread: O(1), no I/O unless the queue is full (then the step spills to disk)."""
        with self._lock:
            if isinstance(item, Step):
                self.submitted += 1
            else:
                self.task_version_submitted = item.version
        if self._q.qsize() < self.max_queue and not self._stopping:
            self._q.put(item)
        else:
            self._spill(item)

    def _spill(self, item: Step | Task) -> None:
        """Queue full (or worker stopped): write on the caller's thread so nothing is dropped."""
        try:
            with self._cond:
                self.spilled += isinstance(item, Step)
            self._write([item])
        except Exception as exc:  # never into the agent
            self._note_error(f"spill failed: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ journal thread
    def _journal_loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                self._shots.put(None)
                return
            batch: list[Step | Task] = [first]
            stop = False
            with contextlib.suppress(queue.Empty):
                while len(batch) < 256:
                    nxt = self._q.get_nowait()
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
            try:
                self._write(batch, block=True)
            except Exception as exc:  # a bug here must not kill the thread
                self._note_error(f"journal thread: {type(exc).__name__}: {exc}")
                log.debug("journal thread error\n%s", traceback.format_exc())
            if stop:
                self._shots.put(None)  # after every job of ours: the screenshot thread ends too
                return

    def _write(self, batch: list[Step | Task], block: bool = False) -> None:
        """Turn steps/tasks into rows, append them to the journal, hand them to the uploader, then
        pass screenshots on (`block`: wait for room in the screenshot queue; else encode inline
        when it is full, as on the caller's thread when spilling)."""
        items: list[_Item] = []
        jobs: list[_ShotJob] = []
        for obj in batch:
            items.extend(self._to_items(obj, jobs))
        self._journal_items(items)
        for job in jobs:
            self._dispatch_shot(job, block)

    def _journal_items(self, items: list[_Item]) -> None:
        lines = [self._encode(it) for it in items]
        start: int | None
        try:
            start = self.journal.append_encoded(b"".join(lines)) if lines else 0
        except (OSError, ValueError) as exc:
            start = None
            self._count_backup_error()
            self._note_error(f"backup write failed: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}")
        if start is not None:
            off = start
            for it, line in zip(items, lines, strict=True):
                it.offset = off
                off += len(line)
        self._hand_over(items, journaled=start is not None)

    def _dispatch_shot(self, job: _ShotJob, block: bool) -> None:
        while self._shot_thread.is_alive() and not self._shots_abandoned:
            try:
                self._shots.put(job, block=block, timeout=1.0 if block else None)
                return
            except queue.Full:
                if not block:
                    break
        self._run_shot(job)  # no screenshot thread (stopped, or full for a spilling caller)

    # ------------------------------------------------------------------ screenshot thread
    def _shot_loop(self) -> None:
        # Importing the image stack (Pillow, ~30 ms) here, not at `import stepsdk`, and early: by
        # the agent's first screenshot `capture()` on the caller's thread finds it imported.
        from stepsdk import _screenshots  # noqa: F401

        while True:
            job = self._shots.get()
            if job is None:
                return
            if not self._shots_abandoned:
                self._run_shot(job)

    def _run_shot(self, job: _ShotJob) -> None:
        try:
            self._finish_shot(job)
        except Exception as exc:  # a bug here must not kill the thread; version 0 stays
            self._note_error(f"screenshot thread: {type(exc).__name__}: {exc}")
            log.debug("screenshot thread error\n%s", traceback.format_exc())
        finally:
            with self._cond:
                self.shots_done += 1
                self._cond.notify_all()

    def _finish_shot(self, job: _ShotJob) -> None:
        """Prepare the screenshot, write its object, then journal its row and step version 1.

        The screenshot row goes before the step row in the journal and in the upload queue, so
        the object is uploaded no later than the step row that points at it (a batch uploads
        objects before step rows, step rows before screenshot rows)."""
        metadata = dict(job.row["metadata"])
        metadata.pop("screenshot_pending", None)
        path, shot, data = self._screenshot(job.step, metadata)
        row = {**job.row, "screenshot_path": path, "metadata": metadata}
        items = [_Item(KIND_SHOT, shot["id"], shot, data=data)] if shot is not None else []
        items.append(_Item(KIND_STEP, row["id"], row, version=1))
        self._journal_items(items)

    def _encode(self, it: _Item) -> bytes:
        try:
            return encode_record(_record_of(it))
        except (TypeError, ValueError) as exc:  # a value the sanitizer let through: keep the record
            self._note_error(f"could not encode {it.kind} {it.key}: {exc}")
            it.row = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else None)
                      for k, v in it.row.items()}
            for col in ("step_data", "metadata"):
                if col in it.row:
                    it.row[col] = {"_error": "could not be encoded"}
            return encode_record(_record_of(it))

    def _hand_over(self, items: list[_Item], journaled: bool) -> None:
        now = time.monotonic()
        with self._cond:
            for it in items:
                first = it.kind == KIND_STEP and it.version == 0  # count a step once, at version 0
                if first:
                    self.processed += 1
                    self.journaled += journaled
                    self.shots_queued += not it.final
                if it.kind == KIND_TASK:
                    if self._latest_task is None or it.version >= self._latest_task.version:
                        self._latest_task = it
                    self.task_version_processed = max(self.task_version_processed, it.version)
                    if journaled:
                        self.task_version_journaled = max(self.task_version_journaled, it.version)
                if not self.remote:
                    if not journaled and first:
                        self.dropped += 1  # local mode and the disk refused it: nowhere to keep it
                    continue
                it.since = now
                if self._backlog_offset is None and len(self._pending) < self.max_in_memory:
                    self._pending.append(it)
                elif it.offset is not None:
                    # On disk only: the upload thread re-reads it from the journal later.
                    if self._backlog_offset is None or it.offset < self._backlog_offset:
                        self._backlog_offset = it.offset
                else:
                    self.dropped += first
                    self.last_error = "step dropped: backup unwritable and memory buffer full"
            self._cond.notify_all()

    def _to_items(self, obj: Step | Task, jobs: list[_ShotJob]) -> list[_Item]:
        if isinstance(obj, Task):
            row = obj.to_row()
            clean = self.sanitizer
            for col in ("title", "description", "agent", "result", "error_message"):
                row[col] = clean.text(row[col], self.config.limits.max_text)
            row["metadata"] = clean.object_field(row["metadata"])
            return [_Item(KIND_TASK, obj.task_id, row, version=obj.version)]
        try:
            row = self._step_row(obj)
        except Exception as exc:  # sanitizer bug on odd input: keep the step, say what happened
            row = self._fallback_row(obj, exc)
        pending = row["metadata"].get("screenshot_pending") is True and obj.screenshot is not None
        if pending:
            jobs.append(_ShotJob(obj, row))
        return [_Item(KIND_STEP, row["id"], row, final=not pending)]

    def _step_row(self, step: Step) -> dict[str, Any]:
        """Version 0 of a step row. A screenshot is only marked pending here (encoded later)."""
        s, lim = self.sanitizer, self.config.limits
        metadata = s.object_field(step.metadata)
        if step.screenshot is not None:
            if self.config.limits.screenshots:
                metadata["screenshot_pending"] = True
            else:
                metadata["screenshot_dropped"] = f"level {self.config.level.value} records no screenshots"
        row = {
            "id": step.id, "task_id": step.task_id, "step_number": step.step_number,
            "step_type": step.step_type.value, "step_data": s.object_field(step.step_data),
            "thinking": s.text(step.thinking, lim.max_text),
            "action_result": s.field(step.action_result) if step.action_result is not None else None,
            "screenshot_path": None, "duration_ms": step.duration_ms, "success": step.success,
            "error_type": s.text(step.error_type, 200), "error_message": s.text(step.error_message, lim.max_text),
            "stack_trace": s.text(step.stack_trace, lim.max_stack) if lim.max_stack else None,
            "started_at": iso(step.started_at), "metadata": metadata, "created_at": iso(step.created_at),
            "name": s.text(step.name, 200), "usage": step.usage,
            "error_category": step.error_category or (
                categorize(step.error_type, step.error_message, _http_status(step.step_data))
                if not step.success or step.error_type or step.error_message else None),
        }
        return row

    def _fallback_row(self, step: Step, exc: Exception) -> dict[str, Any]:
        self._note_error(f"could not sanitize step {step.step_number}: {type(exc).__name__}")
        return {
            "id": step.id, "task_id": step.task_id, "step_number": step.step_number,
            "step_type": step.step_type.value, "step_data": {"_error": "step data could not be recorded"},
            "thinking": None, "action_result": None, "screenshot_path": None,
            "duration_ms": step.duration_ms, "success": step.success, "error_type": None,
            "error_message": None, "stack_trace": None, "started_at": iso(step.started_at),
            "metadata": {"sanitize_error": f"{type(exc).__name__}: {Sanitizer._repr(exc)[:300]}"},
            "created_at": iso(step.created_at), "name": None, "usage": None, "error_category": None,
        }

    def _screenshot(self, step: Step, metadata: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None, bytes | None]:
        from stepsdk import _screenshots, _sensitive

        try:
            prepared = _sensitive.prepare(step.screenshot, self.config)  # policy, regions, encryption
        except _screenshots.ScreenshotError as exc:
            metadata["screenshot_error"] = exc.to_dict()
            return None, None, None
        except Exception as exc:  # a decoder bug must not lose the step
            metadata["screenshot_error"] = {"reason": "internal", "message": f"{type(exc).__name__}: {exc}"[:300]}
            return None, None, None
        data: bytes | None = None
        try:
            write_screenshot(self.config.backup_dir, prepared.storage_path, prepared.data)
        except OSError as exc:
            self._count_backup_error()
            self._note_error(f"screenshot backup failed: {exc.strerror or exc}")
            data = prepared.data if self.remote else None
            if data is None:
                metadata["screenshot_error"] = {"reason": "backup_failed", "message": str(exc.strerror or exc)}
                return None, None, None
        shot = {
            "id": self._ids.next(), "task_id": step.task_id, "step_id": step.id,
            "storage_path": prepared.storage_path, "file_size": prepared.file_size,
            "file_hash": prepared.sha256, "compressed": True, "metadata": self.sanitizer.object_field(prepared.metadata),
        }
        return prepared.storage_path, shot, data

    # ------------------------------------------------------------------ upload thread
    def _make_sink(self) -> bool:
        """Create the Supabase client here, on the upload thread, never on the caller's. A
        failure (bad URL or key format) is treated like an unreachable backend: retried later."""
        if self.sink is not None:
            return True
        try:
            from stepsdk._supabase_sink import SupabaseSink

            self.sink = SupabaseSink(self.config)
            return True
        except Exception as exc:
            self.breaker.failure(f"cannot create the Supabase client: {type(exc).__name__}: {exc}",
                                 f" ({self.config.backup_dir})")
            self.last_error = f"cannot create the Supabase client: {type(exc).__name__}"
            return False

    def _upload_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch or not self._make_sink():
                continue
            try:
                self._send(batch)
                self._hint_earlier_backlog()
            except _Unavailable as exc:
                self.breaker.failure(str(exc), f" ({self.config.backup_dir})")
                self.last_error = str(exc)
            except Exception as exc:  # a bug: keep the batch, note it, do not spin
                self._note_error(f"upload thread: {type(exc).__name__}: {exc}")
                log.debug("upload error\n%s", traceback.format_exc())
                self.breaker.failure(f"{type(exc).__name__}")
            with self._cond:
                self._cond.notify_all()

    def _hint_earlier_backlog(self) -> None:
        """Once per process, when the backend has just taken a batch: say if earlier runs left
        steps in the backup that only `stepsdk resync` uploads (read here, never on the caller's
        thread; ids only)."""
        if not _backlog_hint.acquire(blocking=False):
            return
        try:
            steps, journals = pending_steps_of_gone_writers(self.config.backup_dir, self.journal.path)
        except Exception as exc:  # only a hint: never let it disturb uploads
            log.debug("backlog hint failed: %s", exc)
            return
        if steps:
            log.warning("stepsdk: %d steps pending in %s from earlier runs (%d journals); run "
                        "'stepsdk resync' to upload them", steps, self.config.backup_dir, journals)

    def _next_batch(self) -> list[_Item] | None:
        """Block until a batch is due; None when stopped and nothing more can be done."""
        with self._cond:
            while True:
                if self._stopping and (self._abort_retries or (not self._pending and self._backlog_offset is None)):
                    return None
                wait = self.breaker.seconds_to_probe()
                if wait > 0:
                    self._cond.wait(min(wait, 0.5))
                    continue
                if not self._pending and self._backlog_offset is not None:
                    break  # reload from the journal, below (outside the lock)
                # Steps spilled on the caller's thread can reach `pending` before the journal
                # thread has handled the task row: never send them before it exists (foreign key).
                due = self._pending and self._latest_task is not None and (
                    len(self._pending) >= self.buffer_size or self._flush_requested or self._stopping
                    or time.monotonic() - self._pending[0].since >= self.flush_interval)
                if due:
                    return list(itertools.islice(self._pending, self.buffer_size))
                timeout = self.flush_interval - (time.monotonic() - self._pending[0].since) if self._pending else 0.5
                self._cond.wait(max(0.01, min(timeout, 0.5)))
        self._reload_backlog()
        return []

    def _reload_backlog(self) -> None:
        """Read items that are only on disk back into memory (oldest first, bounded)."""
        with self._cond:
            start = self._backlog_offset
            room = self.max_in_memory - len(self._pending)
        if start is None or room <= 0:
            return
        end = self.journal.position
        items: list[_Item] = []
        next_off = end
        for offset, record, _problem, _raw in iter_journal(self.journal.path, start, end):
            if record is None or record["k"] not in (KIND_TASK, KIND_STEP, KIND_SHOT):
                continue
            if len(items) >= room:
                next_off = offset
                break
            items.append(_item_from_record(record, offset))
        now = time.monotonic()
        with self._cond:
            for it in items:
                it.since = now - self.flush_interval  # due at once
            self._pending.extend(items)
            if next_off >= end and self.journal.position == end:
                self._backlog_offset = None
            else:
                self._backlog_offset = next_off
            self._cond.notify_all()

    def _policy(self) -> RetryPolicy:
        # When the breaker is open, a batch is a probe: one attempt, no retries.
        max_time = 0.0 if self.breaker.open else self.config.retry_max_time
        return RetryPolicy(max_time, should_stop=lambda: self._abort_retries)

    def _call(self, fn: Any) -> None:
        def on_retry(exc: BaseException) -> None:
            self.retried += 1
            self.last_error = one_line(exc)
            with self._cond:
                self._struggling = True
                self._cond.notify_all()

        try:
            self._policy().call(fn, on_retry)
        except Exception as exc:
            kind = classify(exc)
            self.last_error = one_line(exc)
            if kind is ErrorClass.REJECTED:
                raise
            raise _Unavailable(f"{kind.value} error: {one_line(exc)}") from exc

    def _send(self, batch: list[_Item]) -> None:
        """Upload one batch in FK order (task rows, objects, step rows, screenshot rows).

        Each stage is acknowledged (journal + counters) as soon as it succeeds and its items are
        marked done, so when a later stage fails and the batch is retried, nothing is uploaded,
        rejected or counted twice. The batch leaves `pending` when every stage is through.
        """
        todo = [it for it in batch if not it.done]
        first = self._latest_task
        if (self.task_version_uploaded == 0 and first is not None and not first.done
                and all(it is not first for it in todo)):
            todo.insert(0, first)  # the task row goes first, even if it sits later in `pending`
        tasks: dict[str, _Item] = {}
        for it in todo:
            if it.kind == KIND_TASK and it.version >= tasks.get(it.key, it).version:
                tasks[it.key] = it
        if tasks:
            ok = self._upsert_split("tasks", list(tasks.values()))
            self._ack([{"k": KIND_ACK, "t": T_TASKS, "v": {it.key: it.version for it in ok}, "at": now_iso()}])
            with self._cond:
                for it in ok:
                    self.task_version_uploaded = max(self.task_version_uploaded, it.version)
            for it in todo:
                if it.kind == KIND_TASK:
                    it.done = True
        shots = [it for it in todo if it.kind == KIND_SHOT]
        objects = self._upload_objects(shots)
        if objects:
            self._ack([{"k": KIND_ACK, "t": T_OBJECTS, "ids": objects, "at": now_iso()}])
        self._upsert_split("task_steps", _newest_versions([it for it in todo if it.kind == KIND_STEP]), T_STEPS)
        self._upsert_split("step_screenshots", shots, T_SHOTS)
        with self._cond:
            ids = {id(it) for it in batch}
            # Also drops items already sent with another batch (the task row sent ahead of steps).
            self._pending = collections.deque(it for it in self._pending if id(it) not in ids and not it.done)
            if self._flush_requested and not self._pending and self._backlog_offset is None:
                self._flush_requested = 0
            self._cond.notify_all()
        self._struggling = False
        self.breaker.success(len(self._pending))

    def _upload_objects(self, shots: list[_Item]) -> list[str]:
        done: list[str] = []
        for it in shots:
            path = it.row["storage_path"]
            if path in self._uploaded_objects:
                continue
            data = it.data
            if data is None:
                try:
                    data = (Path(self.config.backup_dir) / SCREENSHOT_DIR / path).read_bytes()
                except OSError as exc:
                    self._note_error(f"screenshot file missing from backup: {exc.strerror or exc}")
                    continue  # its row will fail or point at nothing; resync reports it
            try:
                self._call(lambda p=path, d=data: self.sink.upload_object(p, d))
            except _Unavailable:
                raise
            except Exception as exc:  # rejected object (e.g. too large): keep the rows going
                self._reject(T_OBJECTS, path, exc)
                continue
            self._uploaded_objects[path] = None
            if len(self._uploaded_objects) > 10_000:
                self._uploaded_objects.popitem(last=False)
            done.append(path)
        return done

    def _upsert_split(self, table: str, items: list[_Item], ack_table: str | None = None) -> list[_Item]:
        """Upsert; on a rejected batch split it so one bad row never holds back the others.

        With `ack_table`, each confirmed part is acknowledged, counted and marked done at once
        (a later failure of another part then never re-sends or re-counts it).
        """
        items = [it for it in items if not it.done]
        if not items:
            return []
        try:
            self._call(lambda: self.sink.upsert(table, [it.row for it in items]))
        except _Unavailable:
            raise
        except Exception as exc:
            if len(items) == 1:
                _mark_done(items)
                self._reject(table, items[0].key, exc, counts=items[0].final and ack_table == T_STEPS)
                return []
            mid = len(items) // 2
            return self._upsert_split(table, items[:mid], ack_table) + self._upsert_split(table, items[mid:], ack_table)
        if ack_table is not None:
            ack: dict[str, Any] = {"k": KIND_ACK, "t": ack_table, "ids": [it.key for it in items], "at": now_iso()}
            versions = {it.key: it.version for it in items if it.version}
            if ack_table == T_STEPS and versions:
                ack["v"] = versions  # versions above 0 (an ack without one is for version 0)
            self._ack([ack])
            with self._cond:
                if ack_table == T_STEPS:
                    self.uploaded += sum(it.final for it in items)
                _mark_done(items)
                self._cond.notify_all()
        return items

    def _reject(self, table: str, key: str, exc: BaseException, counts: bool = False) -> None:
        info = describe(exc)
        log.error("stepsdk: Supabase refused %s %s: %s (kept in the backup; see `stepsdk status`)",
                  table, key, one_line(exc))
        with self._cond:
            self.rejected += counts
        self.last_error = one_line(exc)
        self._ack([{"k": KIND_REJECT, "t": table, "id": key, "error": info, "at": now_iso()}])

    def _ack(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        try:
            self.journal.append(records)
        except (OSError, ValueError) as exc:
            # The upload happened; without the ack a later resync re-sends it (idempotent).
            self._count_backup_error()
            self._note_error(f"could not write upload acks: {getattr(exc, 'strerror', None) or exc}")

    # ------------------------------------------------------------------ flush / shutdown
    def force_flush(self, timeout: float) -> FlushResult:
        """Wait until every step submitted so far is uploaded, rejected, or safe in the backup
        while the backend is unreachable; at most `timeout` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            target, task_target = self.submitted, self.task_version_submitted
        with self._cond:
            self._flush_requested += 1
            self._cond.notify_all()
            while not self._flushed(target, task_target):
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._result(target, timed_out=True)
                self._cond.wait(min(left, 0.05))
            return self._result(target, timed_out=False)

    def _flushed(self, target: int, task_target: int) -> bool:
        journaled = (self.processed >= target and self.task_version_processed >= task_target
                     and self.shots_done >= self.shots_queued)
        if not self.remote or not journaled:
            return journaled
        # Backend failing (breaker open, or this batch is being retried): the backup holds it all.
        if self.breaker.open or self._struggling or self._upload_thread is None or not self._upload_thread.is_alive():
            return True
        return (self.uploaded + self.rejected >= target and self.task_version_uploaded >= task_target)

    def _result(self, target: int, timed_out: bool) -> FlushResult:
        return FlushResult(
            uploaded=self.uploaded, rejected=self.rejected,
            backed_up=max(0, self.journaled - self.uploaded - self.rejected),
            pending=max(0, target - self.journaled - self.dropped), timed_out=timed_out)

    def shutdown(self, timeout: float) -> FlushResult:
        """Flush (bounded by `timeout`), stop both threads, fsync and close the journal."""
        start = time.monotonic()
        result = self.force_flush(timeout)
        with self._cond:
            self._stopping = True
            self._abort_retries = True
            self._cond.notify_all()
        self._q.put(None)
        left = lambda: max(0.05, timeout - (time.monotonic() - start))  # noqa: E731
        self._journal_thread.join(left())
        with contextlib.suppress(queue.Full):
            self._shots.put_nowait(None)  # in case the journal thread could not say so
        self._shot_thread.join(left())
        if self._shot_thread.is_alive():  # out of time: those steps keep version 0 (screenshot_pending)
            self._shots_abandoned = True
        if self._upload_thread is not None:
            self._upload_thread.join(min(left(), 1.0))
        # Anything still queued (journal thread stuck): write it here so it is not lost.
        leftovers: list[Step | Task] = []
        with contextlib.suppress(queue.Empty):
            while True:
                obj = self._q.get_nowait()
                if obj is not None:
                    leftovers.append(obj)
        if leftovers:
            self._write(leftovers)
        self.close_journal()
        if self.remote and (self._upload_thread is None or not self._upload_thread.is_alive()):
            if self.sink is not None:
                self.sink.close()
            self._archive_if_all_uploaded()
        _live_workers.discard(self)
        return dataclasses.replace(result, pending=max(0, self.submitted - self.journaled - self.dropped))

    def _archive_if_all_uploaded(self) -> None:
        """Move a fully uploaded journal to archive/ (what `stepsdk resync` would do later), so
        journal/ only holds what still needs attention. Rejected records keep it in journal/."""
        everything = (self.uploaded == self.submitted == self.journaled and not self.rejected
                      and not self.dropped and not self.backup_errors and all(it.done for it in self._pending)
                      and self._backlog_offset is None
                      and self.task_version_uploaded >= self.task_version_submitted)
        if not everything or not self.journal.path.exists():
            return
        try:
            os.replace(self.journal.path, archive_target(self.config.backup_dir, self.journal.path.name))
        except OSError as exc:  # it stays in journal/; resync archives it later
            log.debug("could not archive %s: %s", self.journal.path.name, exc)

    def close_journal(self) -> None:
        try:
            self.journal.close()
        except OSError as exc:
            self._note_error(f"closing the backup journal failed: {exc.strerror or exc}")

    def reopen_for_late_steps(self) -> None:
        self.journal.reopen()

    def stop_async(self) -> None:
        """Used when a tracker is garbage collected: finish in the background, never block."""
        with self._cond:
            self._flush_requested += 1
            self._stopping = True
            self._cond.notify_all()
        self._q.put(None)

    def _count_backup_error(self) -> None:
        with self._cond:  # written from the journal, screenshot, upload and caller threads
            self.backup_errors += 1

    def _note_error(self, message: str) -> None:
        self.last_error = message
        log.warning("stepsdk: %s", message)

    @property
    def queue_depth(self) -> int:
        return self._q.qsize()

    @property
    def memory_items(self) -> int:
        return len(self._pending)


def _http_status(step_data: Any) -> int | None:
    """The HTTP status of a step that recorded an HTTP call (httpx integration: step_data.response.status_code)."""
    response = step_data.get("response") if isinstance(step_data, dict) else None
    status = response.get("status_code") if isinstance(response, dict) else None
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def _newest_versions(steps: list[_Item]) -> list[_Item]:
    """One item per step id (the newest version; older ones ride along and are acked with it):
    one upsert cannot touch a row twice, and an older version must never overwrite a newer."""
    newest: dict[str, _Item] = {}
    for it in steps:
        it.riders = None  # a retried batch groups again from scratch
    for it in steps:
        cur = newest.get(it.key)
        if cur is None:
            newest[it.key] = it
            continue
        old, new = (cur, it) if it.version >= cur.version else (it, cur)
        new.riders = [*(new.riders or ()), old, *(old.riders or ())]
        old.riders = None
        newest[it.key] = new
    return list(newest.values())


def _mark_done(items: list[_Item]) -> None:
    for it in items:
        it.done = True
        for rider in it.riders or ():
            rider.done = True


def _record_of(it: _Item) -> dict[str, Any]:
    if it.kind == KIND_TASK:
        return {"k": KIND_TASK, "v": it.version, "row": it.row}
    if it.kind == KIND_STEP and it.version:
        return {"k": KIND_STEP, "v": it.version, "row": it.row}
    return {"k": it.kind, "row": it.row}


def _item_from_record(record: dict[str, Any], offset: int) -> _Item:
    row = record["row"]
    kind = record["k"]
    if kind == KIND_TASK:
        return _Item(KIND_TASK, row["task_id"], row, version=record["v"], offset=offset)
    if kind == KIND_STEP:
        version = record.get("v", 0)
        meta = row.get("metadata")
        pending = version == 0 and isinstance(meta, dict) and meta.get("screenshot_pending") is True
        return _Item(kind, row["id"], row, version=version, final=not pending, offset=offset)
    return _Item(kind, row["id"], row, offset=offset)


def _reinit_after_fork() -> None:
    for worker in list(_live_workers):
        if not worker._stopping:
            worker._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def shutdown_all(timeout: float) -> None:
    """atexit: give every live worker a share of `timeout` to flush and close."""
    deadline = time.monotonic() + timeout
    for worker in list(_live_workers):
        left = deadline - time.monotonic()
        try:
            worker.shutdown(max(0.2, left))
        except Exception:  # at exit, log and go on with the others
            log.exception("stepsdk: flushing at exit failed")


__all__ = ["FlushResult", "Worker", "shutdown_all"]

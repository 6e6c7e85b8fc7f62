"""Upload stage: one thread that takes due batches from `Progress.pending` and uploads them with
the shared algorithm (`stepsdk.backend.uploader.Uploader`), behind a circuit breaker.

A batch is due when `buffer_size` records wait, when the oldest waited `flush_interval`, while
anybody waits in `flush()`, or when stopping. Records that did not fit in memory (more than
`max_in_memory` while the backend was down) wait in the journal on disk and are re-read here.
The sink (the Supabase client, ~0.5-1 s to import) is made here, never on the agent's thread.
"""

from __future__ import annotations

import itertools
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from stepsdk.backend.retry import CircuitBreaker, RetryPolicy, one_line
from stepsdk.backend.sink import Sink
from stepsdk.backend.uploader import T_SHOTS, T_STEPS, T_TASKS, Record, Unavailable, Uploader
from stepsdk.config import Config
from stepsdk.recording.journal_stage import Journal
from stepsdk.recording.progress import Progress
from stepsdk.recording.stage import Stage
from stepsdk.store.backup import KIND_SHOT, KIND_STEP, KIND_TASK, SCREENSHOT_DIR, iter_journal

log = logging.getLogger("stepsdk")

SinkSource = Sink | Callable[[], Sink] | None
_TABLE = {KIND_TASK: T_TASKS, KIND_STEP: T_STEPS, KIND_SHOT: T_SHOTS}


class UploadStage(Stage):
    """One thread: Progress.pending -> Uploader -> acks (see module docstring)."""

    thread_name = "stepsdk-upload"

    def __init__(
        self,
        config: Config,
        journal: Journal,
        progress: Progress,
        *,
        sink: SinkSource,
        buffer_size: int,
        flush_interval: float,
        clock: Callable[[], float] = time.monotonic,
        on_first_success: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.progress = progress
        self.buffer_size = buffer_size
        self.flush_interval = flush_interval
        self.clock = clock
        self.breaker = CircuitBreaker(config.probe_min, config.probe_max, name="Supabase", clock=clock)
        self._sink_source = sink
        self.sink: Sink | None = None
        self.uploader: Uploader | None = None
        self._on_first_success = on_first_success
        super().__init__()

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        try:
            self._ensure_sink()  # at once: a flush at exit must not wait for the client's import
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                if batch and self._ensure_sink():
                    self._send(batch)
        finally:
            with self.progress.cond:
                self.progress.upload_alive = False
                self.progress.cond.notify_all()
            if self.sink is not None:
                try:
                    self.sink.close()
                except Exception as exc:  # closing must not raise out of the thread
                    log.debug("closing the sink failed: %s", exc)

    def _send(self, batch: list[Record]) -> None:
        assert self.uploader is not None
        p = self.progress
        with p.cond:
            first = p.latest_task
            if (
                p.task_version_uploaded == 0
                and first is not None
                and not first.done
                and all(r is not first for r in batch)
            ):
                batch = [first, *batch]  # the task row goes first, even if it sits later in pending
        with p.cond:
            stored = {p.own_task} if p.task_version_uploaded and p.own_task else set()
        try:
            self.uploader.upload(batch, existing_tasks=stored)
        except Unavailable as exc:
            self.breaker.failure(str(exc), f" ({self.config.backup_dir})")
            p.upload_failed(str(exc))
            return
        except Exception as exc:  # a bug: keep the batch, note it, do not spin
            log.warning("stepsdk: upload stage error\n%s", traceback.format_exc())
            self.breaker.failure(type(exc).__name__)
            p.upload_failed(f"upload stage: {type(exc).__name__}: {exc}")
            return
        p.batch_done(batch)
        self.breaker.success(len(p.pending))
        if self._on_first_success is not None:
            hook, self._on_first_success = self._on_first_success, None
            try:
                hook()
            except Exception as exc:  # only a hint or housekeeping: never disturb uploads
                log.debug("after-first-upload hook failed: %s", exc)

    def _ensure_sink(self) -> bool:
        """Make the sink here, on the upload thread. A failure (bad URL or key format) is treated
        like an unreachable backend: retried later."""
        if self.uploader is not None:
            return True
        try:
            source = self._sink_source
            if source is None:
                from stepsdk.backend.supabase_sink import SupabaseSink

                sink: Any = SupabaseSink(self.config)
            elif isinstance(source, type) or (callable(source) and not hasattr(source, "upsert")):
                sink = source()  # a factory (or a sink class: made here, on the upload thread)
            else:
                sink = source
        except Exception as exc:
            self.breaker.failure(
                f"cannot create the Supabase client: {type(exc).__name__}: {exc}",
                f" ({self.config.backup_dir})",
            )
            self.progress.upload_failed(f"cannot create the Supabase client: {type(exc).__name__}")
            return False
        self.sink = sink
        self.uploader = Uploader(
            sink,
            self.journal,
            policy=self._policy,
            read_object=self._read_object,
            on_confirmed=self.progress.confirmed,
            on_rejected=self._rejected,
            on_retry=self._retry,
        )
        return True

    def _policy(self) -> RetryPolicy:
        # When the breaker is open a batch is a probe: one attempt, no retries.
        max_time = 0.0 if self.breaker.open else self.config.retry_max_time
        return _TimedPolicy(
            self.progress, max_time, should_stop=lambda: self.progress.abort_retries, clock=self.clock
        )

    def _retry(self, exc: BaseException) -> None:
        self.progress.retrying(one_line(exc))

    def _rejected(self, table: str, key: str, record: Record | None, error: dict[str, Any]) -> None:
        self.progress.rejected_record(counts=record is not None and record.final and table == T_STEPS)
        self.progress.note_error(f"{error.get('code')}: {error.get('message')}")

    def _read_object(self, path: str) -> bytes | None:
        try:
            return (self.config.backup_dir / SCREENSHOT_DIR / path).read_bytes()
        except OSError as exc:
            self.progress.note_error(f"screenshot file missing from backup: {exc.strerror or exc}")
            log.warning("stepsdk: screenshot file missing from backup: %s", exc.strerror or exc)
            return None

    def _next_batch(self) -> list[Record] | None:
        """Block until a batch is due; None when stopped and nothing more can be done."""
        p = self.progress
        with p.cond:
            while True:
                if p.stopping and (p.abort_retries or (not p.pending and p.backlog_offset is None)):
                    return None
                wait = self.breaker.seconds_to_probe()
                if wait > 0 and not p.stopping:
                    p.cond.wait(min(wait, 0.5))
                    continue
                if not p.pending and p.backlog_offset is not None:
                    break  # reload from the journal, below (outside the lock)
                # Steps spilled on the caller's thread can reach `pending` before the journal
                # stage has handled the task row: never send them before it exists (foreign key).
                due = (
                    p.pending
                    and p.latest_task is not None
                    and (
                        len(p.pending) >= self.buffer_size
                        or p.flush_waiters
                        or p.stopping
                        or self.clock() - p.pending[0].since >= self.flush_interval
                    )
                )
                if due:
                    return list(itertools.islice(p.pending, self.buffer_size))
                timeout = self.flush_interval - (self.clock() - p.pending[0].since) if p.pending else 0.5
                p.cond.wait(max(0.01, min(timeout, 0.5)))
        self._reload_backlog()
        return []

    def _reload_backlog(self) -> None:
        """Read records that are only on disk back into memory (oldest first, bounded)."""
        p = self.progress
        writer = self.journal.writer
        with p.cond:
            start = p.backlog_offset
            room = p.max_in_memory - len(p.pending)
        if start is None or room <= 0:
            return
        end = writer.position
        records: list[Record] = []
        next_off = end
        try:  # lazily, stopping at `room`: memory stays bounded by max_in_memory
            for offset, record, _problem, _raw in iter_journal(writer.path, start, end):
                if record is None or record["k"] not in _TABLE:
                    continue
                if len(records) >= room:
                    next_off = offset
                    break
                records.append(_record_from(record, offset))
        except OSError as exc:  # the journal vanished: those records are gone with it
            with p.cond:
                p.backlog_offset = None
                p.lost_reasons["records on disk only, journal unreadable"] += 1
                p.last_error = f"backlog unreadable: {exc.strerror or exc}"
            return
        now = self.clock()
        with p.cond:
            for r in records:
                r.since = now - self.flush_interval  # due at once
            p.pending.extend(records)
            p.disk_only = max(0, p.disk_only - sum(r.table == T_STEPS and r.version == 0 for r in records))
            p.backlog_offset = None if next_off >= end and writer.position == end else next_off
            p.cond.notify_all()


class _TimedPolicy(RetryPolicy):
    """A RetryPolicy that tells `Progress` when a request is in flight (so that `flush()` need
    not wait on a backend that accepts connections and never answers)."""

    def __init__(self, progress: Progress, max_time: float, **kwargs: Any) -> None:
        super().__init__(max_time, **kwargs)
        self.progress = progress

    def call(self, fn: Callable[[], Any], on_retry: Callable[[BaseException], None] | None = None) -> Any:
        def timed() -> Any:
            self.progress.request_started()
            try:
                return fn()
            finally:
                self.progress.request_ended()

        return super().call(timed, on_retry)


def _record_from(record: dict[str, Any], offset: int) -> Record:
    row = record["row"]
    table = _TABLE[record["k"]]
    if table == T_TASKS:
        return Record(T_TASKS, row["task_id"], row, version=record["v"], offset=offset)
    version = record.get("v", 0)
    meta = row.get("metadata")
    pending = (
        table == T_STEPS
        and version == 0
        and isinstance(meta, dict)
        and meta.get("screenshot_pending") is True
    )
    return Record(table, row["id"], row, version=version, final=not pending, offset=offset)

"""The background side of one tracker: three stages, one `Progress` (in the spirit of
OpenTelemetry's BatchSpanProcessor: one condition, explicit `force_flush(timeout)` and
`shutdown(timeout)`).

    caller -> JournalStage (thread 1: rows -> journal) -> ScreenshotStage (thread 2: WebP -> object)
                    \\______________________________________/
                                     v
                            Progress.pending -> UploadStage (thread 3, remote mode only)

Local mode runs two threads (no upload stage). Who owns what: each stage owns its thread and its
input queue; `Progress` owns every counter, the pending records and flush state, under its one
condition; the `JournalWriter` has a lock of its own (appends from the three stages and, when
the queue is full, the caller).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

from stepsdk.backend.uploader import T_TASKS, Record
from stepsdk.config import Config
from stepsdk.model import Step, Task
from stepsdk.recording.abandoned import abandoned_tasks
from stepsdk.recording.journal_stage import Journal, JournalStage, ShotJob
from stepsdk.recording.progress import FlushResult, Progress
from stepsdk.recording.rows import RowMaker
from stepsdk.recording.screenshot_stage import ScreenshotStage
from stepsdk.recording.upload_stage import SinkSource, UploadStage
from stepsdk.store.backup import (
    BackupStore,
    JournalWriter,
    archive_target,
    dead_writer_journals,
    pending_steps_of_gone_writers,
)

log = logging.getLogger("stepsdk")

SLOW_REQUEST = 0.75  # seconds: a request in flight this long no longer holds `flush()` back
_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_backlog_hint = threading.Lock()  # held for ever once one pipeline has looked (once per process)
_housekept: set[str] = set()  # backup folders this process looked at for abandoned tasks
_housekeeping_lock = threading.Lock()


class Pipeline:
    """Owns the journal, the `Progress` and the stages of one tracker."""

    def __init__(
        self,
        config: Config,
        task_id: str,
        *,
        buffer_size: int = 50,
        flush_interval: float = 5.0,
        max_queue: int = 1_000,
        max_in_memory: int = 5_000,
        max_shot_queue: int = 32,
        sink: SinkSource = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.task_id = task_id
        self.buffer_size = buffer_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_in_memory = max(max_in_memory, buffer_size)
        self.max_shot_queue = max_shot_queue
        self.clock = clock
        self._sink = sink
        self.on_fork: Callable[[], None] | None = None  # the tracker resubmits its task row there
        _live.add(self)  # before the stages start: housekeeping must see this run as alive
        self._start()

    def _start(self) -> None:
        """Fresh journal, progress and stages (at creation and in a forked child)."""
        config = self.config
        self.remote = config.remote or self._sink is not None
        self.progress = Progress(self.remote, self.max_in_memory, self.clock)
        self.progress.set_task(self.task_id)
        self.writer = JournalWriter(config.backup_dir)
        self.journal = Journal(self.writer, self.progress)
        self.rows = RowMaker(config)
        self.shots = ScreenshotStage(
            config, self.journal, self.progress, self.rows.sanitizer, self.max_shot_queue
        )
        self.journal_stage = JournalStage(self.rows, self.journal, self.progress, self._dispatch)
        self.upload: UploadStage | None = None
        if self.remote:
            self.upload = UploadStage(
                config,
                self.journal,
                self.progress,
                sink=self._sink,
                buffer_size=self.buffer_size,
                flush_interval=self.flush_interval,
                clock=self.clock,
                on_first_success=self._hint_earlier_backlog,
            )
        self._count_step = self.progress._submitted.__next__  # the lock-free step counter (see Progress)
        self._inbox_size = self.journal_stage.inbox.qsize
        self._inbox_put = self.journal_stage.inbox.put
        self.journal_stage.start()
        self.shots.start()
        if self.upload is not None:
            self.upload.start()
        folder = str(config.backup_dir)
        with _housekeeping_lock:
            first = folder not in _housekept
            _housekept.add(folder)
        if first:
            threading.Thread(target=self._housekeeping, name="stepsdk-housekeeping", daemon=True).start()

    def _housekeeping(self) -> None:
        """Once per process and backup folder, in the background: local retention
        (`STEPSDK_RETENTION_DAYS`), then tasks left running by a recorder that died."""
        from stepsdk.ops.local_retention import apply_on_start

        apply_on_start(self.config)  # never raises
        self._mark_abandoned()

    def _mark_abandoned(self) -> None:
        """Tasks left running by a recorder that died (SIGKILL...) are marked interrupted
        through this pipeline (so a remote tracker uploads the marks). Cheap unless a dead
        writer's journal exists."""
        try:
            if not dead_writer_journals(self.config.backup_dir):
                return
            alive = {pipeline.task_id for pipeline in list(_live)}  # never this process's own runs
            for row, version in abandoned_tasks(BackupStore(self.config.backup_dir).read(), exclude=alive):
                log.warning(
                    "stepsdk: task %r was left running by a process that is gone; marked interrupted",
                    row["task_id"],
                )
                self.submit(Record(T_TASKS, row["task_id"], row, version=version))
        except Exception as exc:  # housekeeping must never disturb recording
            log.debug("stepsdk: looking for abandoned tasks failed: %s", exc)

    def _dispatch(self, job: ShotJob, block: bool) -> None:
        self.shots.dispatch(job, block)

    def after_fork(self) -> None:
        """In a forked child: the parent's threads, locks and connections are not ours to use.
        Start over with a journal of our own; what the parent had queued stays the parent's."""
        self._start()
        if self.on_fork is not None:
            self.on_fork()

    # ------------------------------------------------------------------ caller side
    def submit_step(self, step: Step) -> None:
        """`submit` for a step: the agent's hot path (~0.3 µs), bound methods looked up once."""
        self._count_step()
        if self._inbox_size() < self.max_queue and not self.progress.stopping:
            self._inbox_put(step)
        else:
            self._spill(step)

    def submit(self, item: Step | Task | Record) -> None:
        """Caller's thread: O(1), no I/O unless the queue is full (then it is written here)."""
        p = self.progress
        if isinstance(item, Step):
            next(p._submitted)  # the lock-free step counter (see Progress)
        elif isinstance(item, Task):
            p.submitted_task(item.version)
        if self.journal_stage.inbox.qsize() < self.max_queue and not p.stopping:
            self.journal_stage.inbox.put(item)
        else:
            self._spill(item)

    def _spill(self, item: Step | Task | Record) -> None:
        """Queue full (or stopped): write on the caller's thread so nothing is dropped."""
        try:
            if isinstance(item, Step):
                self.progress.count("spilled")
            self.journal_stage.write([item])
        except Exception as exc:  # never into the agent
            self.progress.note_error(f"spill failed: {type(exc).__name__}: {exc}")
            log.warning("stepsdk: writing a step on the caller's thread failed: %s", exc)

    # ------------------------------------------------------------------ flush / shutdown
    def force_flush(self, timeout: float) -> FlushResult:
        """Wait until every step submitted so far is journaled in its final version (screenshots
        included) and uploaded, rejected, or safe in the backup while the backend is failing or
        slow; at most `timeout` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        p = self.progress
        with p.cond:
            target, task_target = p.submitted, p.task_version_submitted
            p.flush_waiters += 1
            p.cond.notify_all()
            try:
                while not p.flushed(target, task_target, SLOW_REQUEST):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return p.result(target, timed_out=True)
                    p.cond.wait(min(left, 0.05))
                return p.result(target, timed_out=False)
            finally:
                p.flush_waiters -= 1

    def shutdown(self, timeout: float) -> FlushResult:
        """Flush (bounded by `timeout`), stop the stages, fsync and close the journal. A
        screenshot still waiting when time is up gets its `screenshot_error`; an upload request
        still hanging is left to time out in its daemon thread (its rows are in the backup)."""
        start = time.monotonic()
        left = lambda: max(0.05, timeout - (time.monotonic() - start))  # noqa: E731
        flushed = self.force_flush(timeout)
        p = self.progress
        with p.cond:
            p.stopping = True
            p.cond.notify_all()
        self.journal_stage.stop()
        if not self.journal_stage.join(left()):
            # Out of time, typically behind a full screenshot queue: screenshots not encoded yet
            # get their error version now, which frees the journal stage at once.
            self.shots.abandon()
            self.journal_stage.join(min(left(), 1.0))
        leftovers = self.journal_stage.drain()  # the journal stage could not finish in time
        if leftovers:
            self.journal_stage.write(leftovers)
        self.shots.stop()
        if not self.shots.join(left()):
            self.shots.abandon()
        out_of_time = flushed.timed_out or self.shots.abandoned
        with p.cond:
            p.abort_retries = True
            p.cond.notify_all()
        if self.upload is not None:
            with p.cond:
                hanging = p.hanging(SLOW_REQUEST)
            # A request that hangs will not answer in time: do not wait for it (its rows are in
            # the backup); otherwise give a request in flight a moment to be acknowledged.
            self.upload.join(0.05 if hanging else min(left(), 0.5))
        with p.cond:
            result = p.result(p.submitted, timed_out=out_of_time)
        self.close_journal()
        if self.remote and (self.upload is None or not self.upload.alive):
            self._archive_if_all_uploaded()
        _live.discard(self)
        return result

    def _archive_if_all_uploaded(self) -> None:
        """Move a fully uploaded journal to archive/ (what `stepsdk resync` would do later), so
        journal/ only holds what still needs attention."""
        p = self.progress
        with p.cond:
            everything = (
                p.uploaded == p.submitted == p.journaled
                and not p.rejected
                and not p.dropped
                and not p.backup_errors
                and not p.lost_reasons
                and all(r.done for r in p.pending)
                and p.backlog_offset is None
                and p.task_version_uploaded >= p.task_version_submitted
            )
        if not everything or not self.writer.path.exists():
            return
        try:
            os.replace(self.writer.path, archive_target(self.config.backup_dir, self.writer.path.name))
        except OSError as exc:  # it stays in journal/; resync archives it later
            log.debug("could not archive %s: %s", self.writer.path.name, exc)

    def close_journal(self) -> None:
        try:
            self.writer.close()
        except OSError as exc:
            self.progress.note_error(f"closing the backup journal failed: {exc.strerror or exc}")

    def reopen_for_late_steps(self) -> None:
        """Steps recorded after close() go to the same journal, written on the caller's thread."""
        self.writer.reopen()

    def stop_async(self) -> None:
        """Used when a tracker is garbage collected: shut down in the background, never block."""
        threading.Thread(target=self.shutdown, args=(5.0,), name="stepsdk-close", daemon=True).start()

    # ------------------------------------------------------------------ housekeeping
    def _hint_earlier_backlog(self) -> None:
        """Once per process, when the backend has just taken a batch: say if earlier runs left
        steps in the backup that only `stepsdk resync` uploads (ids only are read)."""
        if not _backlog_hint.acquire(blocking=False):
            return
        steps, journals = pending_steps_of_gone_writers(self.config.backup_dir, self.writer.path)
        if steps:
            log.warning(
                "stepsdk: %d steps pending in %s from earlier runs (%d journals); run "
                "'stepsdk resync' to upload them",
                steps,
                self.config.backup_dir,
                journals,
            )

    @property
    def queue_depth(self) -> int:
        return self.journal_stage.inbox.qsize()

    def stats(self) -> dict[str, object]:
        p = self.progress
        with p.cond:
            return {
                "recorded": p.submitted,
                "backed_up": p.journaled,
                "uploaded": p.uploaded,
                "rejected": p.rejected,
                "retried": p.retried,
                "spilled": p.spilled,
                "dropped": p.dropped,
                "backup_errors": p.backup_errors,
                "screenshots_lost": p.screenshots_lost,
                "degraded": p.degraded,
                "lost_reasons": dict(p.lost_reasons),
                "in_memory": len(p.pending),
                "last_error": p.last_error,
                "backend": "local"
                if not self.remote
                else ("down" if (self.upload is not None and self.upload.breaker.open) else "up"),
            }


def _reinit_after_fork() -> None:
    for pipeline in list(_live):
        if not pipeline.progress.stopping:
            pipeline.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def shutdown_all(timeout: float) -> None:
    """atexit: give every live pipeline a share of `timeout` to flush and close."""
    deadline = time.monotonic() + timeout
    for pipeline in list(_live):
        left = deadline - time.monotonic()
        try:
            pipeline.shutdown(max(0.2, left))
        except Exception:  # at exit, log and go on with the others
            log.exception("stepsdk: flushing at exit failed")

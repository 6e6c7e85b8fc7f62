"""Screenshot stage: one thread that encodes screenshots (Pillow -> WebP, ~150-350 ms for a
1080x2400 photo-like screen), writes each object to the backup, then journals the screenshot row
and version 1 of its step (with `screenshot_path`, or with `metadata.screenshot_error`).

Nothing is lost silently: a screenshot that cannot be stored (a bad image, the backup refusing
the object, or a close that ran out of time before it was encoded) leaves its step with
`metadata.screenshot_error = {reason, message}`, counted in `Progress.screenshots_lost` and shown
in `FlushResult`, `stats()` and the viewer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import traceback
from typing import Any

from stepsdk.backend.uploader import T_SHOTS, T_STEPS, Record
from stepsdk.config import Config
from stepsdk.model import IdSource
from stepsdk.recording.journal_stage import Journal, ShotJob
from stepsdk.recording.progress import Progress
from stepsdk.recording.sanitize import Sanitizer
from stepsdk.recording.stage import Stage
from stepsdk.store.backup import write_screenshot

log = logging.getLogger("stepsdk")
_importing = threading.Lock()  # held while a screenshot thread imports the image stack
_held_for_fork = False


def _before_fork() -> None:
    global _held_for_fork
    _held_for_fork = _importing.acquire(timeout=5.0)


def _after_fork() -> None:
    global _held_for_fork
    if _held_for_fork:
        _held_for_fork = False
        _importing.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


class ScreenshotStage(Stage):
    """One thread over a bounded queue of `ShotJob`s (see module docstring)."""

    thread_name = "stepsdk-screenshots"

    def __init__(
        self, config: Config, journal: Journal, progress: Progress, sanitizer: Sanitizer, max_queue: int = 32
    ) -> None:
        self.config = config
        self.journal = journal
        self.progress = progress
        self.sanitizer = sanitizer
        self.max_queue = max_queue
        self.queue: queue.Queue[ShotJob | None] = queue.Queue(max_queue)
        self._ids = IdSource()
        self._lock = threading.RLock()  # job states, `_jobs`, `_abandoned` (re-entrant: SIGTERM)
        self._jobs: list[ShotJob] = []  # handed over and not finished (for abandon())
        self._abandoned = False
        self._stopping = False
        super().__init__()

    def stop(self) -> None:
        """After the journal stage has stopped: no more jobs will come; the thread ends once the
        queue is empty."""
        self._stopping = True
        with contextlib.suppress(queue.Full):  # wakes a thread waiting on an empty queue
            self.queue.put_nowait(None)

    # ------------------------------------------------------------------ hand-over
    def dispatch(self, job: ShotJob, block: bool) -> None:
        """Queue a job (journal stage: `block` waits for room, keeping memory bounded); when the
        thread is gone, or the queue is full for a caller spilling a step, encode it here."""
        with self._lock:
            if self._abandoned:
                self._finish_lost(
                    job, "close_timeout", "the tracker closed before this screenshot was encoded"
                )
                return
            self._jobs.append(job)
        while self.alive:
            try:
                self.queue.put(job, block=block, timeout=1.0 if block else None)
                return
            except queue.Full:
                if not block or self._abandoned:
                    break
        self._run(job)

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        # Importing the image stack (Pillow, ~30 ms) here, not at `import stepsdk`, and early: by
        # the agent's first screenshot `capture()` on the caller's thread finds it imported. A
        # fork waits for it (see _before_fork): a child must not inherit half-held import locks.
        with _importing:
            from stepsdk.recording import screenshots as _screenshots  # noqa: F401

        while True:
            job = self.queue.get()
            if job is None:
                return
            self._run(job)
            if (self._stopping or self._abandoned) and self.queue.empty():
                return

    def _run(self, job: ShotJob) -> None:
        with self._lock:
            if job.state != "queued":
                return  # abandoned at close, already recorded as lost
            job.state = "encoding"
        try:
            metadata = dict(job.row["metadata"])
            metadata.pop("screenshot_pending", None)
            path, shot, data, lost = self._prepare(job, metadata)
        except Exception as exc:  # a bug here must not kill the thread nor lose the step
            log.warning("stepsdk: screenshot stage error\n%s", traceback.format_exc())
            metadata = {k: v for k, v in job.row["metadata"].items() if k != "screenshot_pending"}
            metadata["screenshot_error"] = {
                "reason": "internal",
                "message": f"{type(exc).__name__}: {exc}"[:300],
            }
            path, shot, data, lost = None, None, None, "internal"
        records = [Record(T_SHOTS, shot["id"], shot, data=data)] if shot is not None else []
        records.append(
            Record(
                T_STEPS, job.row["id"], {**job.row, "screenshot_path": path, "metadata": metadata}, version=1
            )
        )
        with self._lock:  # held while journaling: abandon() (then close) waits for this write
            if job.state != "encoding":  # abandoned while encoding: its error version is written
                return
            job.state = "done"
            self._jobs.remove(job)
            self._journal(records)
        self.progress.shot_finished(lost)

    def _journal(self, records: list[Record]) -> None:
        ok = self.journal.append(records)
        self.progress.hand_over(records, journaled=ok)

    def _prepare(
        self, job: ShotJob, metadata: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any] | None, bytes | None, str | None]:
        """Encode and store; returns (path, screenshot row, bytes kept in memory, lost reason)."""
        from stepsdk.recording import screenshots as _screenshots
        from stepsdk.recording import sensitive as _sensitive

        step = job.step
        try:
            prepared = _sensitive.prepare(step.screenshot, self.config)  # policy, regions, encryption
        except _screenshots.ScreenshotError as exc:
            metadata["screenshot_error"] = exc.to_dict()
            return None, None, None, exc.to_dict().get("reason", "invalid")
        data: bytes | None = None
        try:
            write_screenshot(self.config.backup_dir, prepared.screenshot_path, prepared.data)
        except OSError as exc:
            self.progress.count("backup_errors")
            self.progress.note_error(f"screenshot backup failed: {exc.strerror or exc}")
            log.warning("stepsdk: screenshot backup failed: %s", exc.strerror or exc)
            if not self.config.remote:
                metadata["screenshot_error"] = {
                    "reason": "backup_failed",
                    "message": str(exc.strerror or exc),
                }
                return None, None, None, "backup_failed"
            data = prepared.data  # uploaded from memory
        shot = {
            "id": self._ids.next(),
            "task_id": step.task_id,
            "step_id": step.id,
            "screenshot_path": prepared.screenshot_path,
            "file_size": prepared.file_size,
            "file_hash": prepared.sha256,
            "compressed": True,
            "metadata": self.sanitizer.object_field(prepared.metadata),
        }
        return prepared.screenshot_path, shot, data, None

    # ------------------------------------------------------------------ close out of time
    def abandon(self) -> int:
        """Out of time at close: every screenshot not yet stored gets its step's final version
        with `screenshot_error` (reason `close_timeout`) now, so no step is left pending and
        nothing is lost silently. Returns how many."""
        with self._lock:
            self._abandoned = True
            jobs = [j for j in self._jobs if j.state in ("queued", "encoding")]
            for j in jobs:
                j.state = "abandoned"
            self._jobs.clear()
        for job in jobs:
            self._finish_lost(job, "close_timeout", "the tracker closed before this screenshot was encoded")
        return len(jobs)

    @property
    def abandoned(self) -> bool:
        """A close ran out of time before every screenshot was encoded."""
        return self._abandoned

    def _finish_lost(self, job: ShotJob, reason: str, message: str) -> None:
        metadata = {k: v for k, v in job.row["metadata"].items() if k != "screenshot_pending"}
        metadata["screenshot_error"] = {"reason": reason, "message": message}
        self._journal([Record(T_STEPS, job.row["id"], {**job.row, "metadata": metadata}, version=1)])
        self.progress.shot_finished(reason)

"""`StepTracker`: the caller's side. Validates, stamps and enqueues; never does I/O on the
agent's thread (except when the bounded queue is full: then the step spills to disk there)."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from stepsdk.config import Config
from stepsdk.model import STEP_TYPES, TASK_STATUSES, IdSource, Level, Step, StepType, Task, TaskStatus
from stepsdk.recording import sensitive as _sensitive
from stepsdk.recording import signals
from stepsdk.recording.numbering import StepNumbers
from stepsdk.recording.pipeline import Pipeline, shutdown_all
from stepsdk.recording.progress import FlushResult
from stepsdk.recording.upload_stage import SinkSource
from stepsdk.schema import MAX_AGENT, MAX_STEP_NAME, MAX_TASK_ID, MAX_TITLE

log = logging.getLogger("stepsdk")

EXIT_TIMEOUT = 1.8  # seconds all trackers together get at interpreter exit
CLOSE_TIMEOUT = 5.0  # seconds `with StepTracker(...)` spends finishing and closing, at most
_now = time.time
MAX_DURATION_MS = 30 * 24 * 3600 * 1000.0  # 30 days: more is a unit mistake (µs or ns passed as ms)
_atexit_registered = False


@dataclasses.dataclass(frozen=True, slots=True)
class TrackerStats:
    """Counters of one tracker (steps). No URLs, keys or step content in here.

    recorded: record_step calls accepted. backed_up: written to the local backup journal.
    uploaded: confirmed by Supabase. rejected: refused by Supabase (kept in the backup with the
    error). retried: request retries. spilled: written on the caller's thread because the queue
    was full. dropped: lost because the backup was unwritable and there was no other place (see
    last_error). queue_depth: waiting for the journal stage. in_memory: waiting for upload in
    memory. backend: "local", "up" or "down". screenshots_lost: screenshots not stored (their
    steps carry metadata.screenshot_error). degraded: steps kept as placeholder rows because
    their values could not be recorded (metadata.record_error). lost_reasons: why, counted.
    """

    recorded: int
    backed_up: int
    uploaded: int
    rejected: int
    retried: int
    spilled: int
    dropped: int
    backup_errors: int
    queue_depth: int
    in_memory: int
    backend: str
    last_error: str | None
    screenshots_lost: int = 0
    degraded: int = 0
    lost_reasons: dict[str, int] = dataclasses.field(default_factory=dict)


_live_trackers: weakref.WeakSet[StepTracker] = weakref.WeakSet()


def _ensure_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(shutdown_all, EXIT_TIMEOUT)
        atexit.register(_finish_unfinished)  # runs first (atexit is last in, first out)
        _atexit_registered = True


def _finish_unfinished() -> None:
    """At interpreter exit: a task nobody finished (no `with`, no finish(): the program ended,
    maybe of an uncaught exception) is marked `failed` with that exception, or `interrupted`,
    instead of staying `running` for ever. shutdown_all() then flushes it."""
    error = getattr(sys, "last_value", None)
    for tracker in list(_live_trackers):
        if tracker._finished or tracker._closed:
            continue
        try:
            if isinstance(error, BaseException) and not isinstance(error, (KeyboardInterrupt, SystemExit)):
                tracker._end_without_finish(TaskStatus.FAILED, f"{type(error).__name__}: {_describe(error)}")
            else:
                tracker._end_without_finish(
                    TaskStatus.INTERRUPTED, "the program ended without finishing the task"
                )
        except Exception:  # at exit, log and go on with the others
            log.exception("stepsdk: finishing a task at exit failed")


def _finish_dropped(pipeline: Pipeline, task: Task) -> None:
    """A tracker garbage collected without finish() or close(): say so in the task row, then
    shut the pipeline down in the background."""
    if task.status is TaskStatus.RUNNING:
        _ended(task, TaskStatus.INTERRUPTED, "the tracker was dropped without finish() or close()")
        pipeline.submit(dataclasses.replace(task))
    pipeline.stop_async()


def _ended(task: Task, status: TaskStatus, message: str) -> None:
    now = time.time()
    task.status = status
    task.finished_at = max(now, task.started_at)
    task.error_message = task.error_message or message
    task.version = max(time.time_ns(), task.version + 1)


def _check_str(name: str, value: Any, max_len: int | None = None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str{' or None' if allow_none else ''}, got {type(value).__name__}")
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"{name} is {len(value)} characters long; the limit is {max_len}")


class StepHandle:
    """What `with tracker.step(...) as s:` gives the block: set fields before it ends."""

    __slots__ = (
        "action_result",
        "error_message",
        "metadata",
        "screenshot",
        "step_data",
        "success",
        "thinking",
    )

    def __init__(self, step_data: dict[str, Any]) -> None:
        self.step_data = step_data
        self.action_result: Any = None
        self.success: bool = True
        self.screenshot: Any = None
        self.thinking: str | None = None
        self.error_message: str | None = None
        self.metadata: dict[str, Any] = {}


class StepTracker:
    """Records the steps of one task (agent run) into Supabase, with a local backup.

    ``StepTracker(task_id=None, title=None, *, agent=None, description=None, metadata=None,
    buffer_size=50, flush_interval=5.0, supabase_url=None, supabase_key=None, backup_dir=None,
    level=None, owner_id=None)``. `task_id` is generated when None (``task-<utc time>-<hex>``).
    Supabase URL/key default to SUPABASE_URL and SUPABASE_SECRET_KEY (or
    SUPABASE_SERVICE_ROLE_KEY); without them the tracker runs in local mode (backup only).

    Use as a context manager (sync or async): on exit the task is finished ("success", or
    "failed"/"interrupted" when an exception escapes) and the tracker is closed.

    Guarantees:
    - `record_step` costs a few microseconds (median ~2.5 µs, ~2-3x a bare `queue.put`; see
      benchmarks/bench_record_step.py) and never raises for runtime failures (network,
      storage, disk, bad images); wrong argument types raise TypeError/ValueError at the call.
    - Durability: a background thread writes every step to the backup journal (write-ahead)
      within milliseconds; a SIGKILL loses only the steps still queued for it: at most
      `max_queue` + 256 steps (1,256 by default), however loaded the machine. At an agent's
      pace the queue stays short: the lost steps are the newest, those of the last few
      milliseconds (benchmarks/bench_chaos.py --only sigkill); at a few steps per second it is none. In a tight loop
      the queue fills and newer steps spill to disk on the caller's thread, so the lost ones
      are the queued (older) ones, still at most the bound (tests/recording/test_chaos_crash.py). Screenshots are encoded
      on a thread of their own and never delay the journal: a crash while one is encoded loses
      only that screenshot (the step stays, with `metadata.screenshot_pending`).
    - Memory is bounded whatever the backend does: at most `max_queue` steps (default 1,000)
      wait for the journal thread (more are written on the caller's thread instead) and at
      most `max_in_memory` records (default 5,000) wait in memory for upload; the rest wait in
      the journal on disk and are re-read when the backend is back.
    - `flush`, `finish` and `close` return within their `timeout` (default 5 s) and cover
      every step recorded before them, screenshots still being encoded included; against a
      backend that is down or never answers, leaving a `with` block and interpreter exit take
      under 2 s, with everything safe in the backup (`stepsdk resync` uploads it later).
    - Threads: three per tracker in remote mode (journal, screenshots, upload), two in local
      mode (docs/architecture.md). SIGTERM marks the task interrupted and flushes
      (`handle_signals=False` to opt out); a reused `task_id` resumes the task (README).
    """

    def __init__(
        self,
        task_id: str | None = None,
        title: str | None = None,
        *,
        agent: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        buffer_size: int = 50,
        flush_interval: float = 5.0,
        supabase_url: str | None = None,
        supabase_key: str | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        level: str | Level | None = None,
        owner_id: str | None = None,
        config: Config | None = None,
        max_queue: int = 1_000,
        max_in_memory: int = 5_000,
        sink: SinkSource = None,
        handle_signals: bool | None = None,
        screenshot_policy: str | None = None,
    ) -> None:
        _check_str("task_id", task_id)
        if task_id is not None:
            _check_task_id(task_id)
        _check_str("title", title, MAX_TITLE)
        _check_str("agent", agent, MAX_AGENT)
        _check_str("description", description)
        _check_str("owner_id", owner_id)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or not 1 <= buffer_size <= 1000:
            raise ValueError("buffer_size must be an int between 1 and 1000")
        if (
            isinstance(flush_interval, bool)
            or not isinstance(flush_interval, (int, float))
            or not 0 < flush_interval <= 3600
        ):
            raise ValueError("flush_interval must be a number of seconds between 0 and 3600")
        for name, value in (("max_queue", max_queue), ("max_in_memory", max_in_memory)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int")
        if config is None:
            config = Config.resolve(supabase_url, supabase_key, backup_dir, level, owner_id=owner_id)
        elif not isinstance(config, Config):
            raise TypeError("config must be a stepsdk Config")
        elif any(v is not None for v in (supabase_url, supabase_key, backup_dir, level, owner_id)):
            raise TypeError(
                "pass either config= or supabase_url/supabase_key/backup_dir/level/owner_id, not both"
            )
        if sink is not None and not (callable(sink) or hasattr(sink, "upsert")):
            raise TypeError("sink must be a stepsdk.backend.sink.Sink or a callable returning one")
        # sensitive screens: store | redact | encrypt (stepsdk/recording/sensitive.py)
        if screenshot_policy is not None:
            config = dataclasses.replace(config, screenshot_policy=screenshot_policy)
        _sensitive.policy_for(config)  # ValueError now for a bad policy or key, not on the worker
        self.config = config
        self.task_id = task_id or _new_task_id()
        now = time.time()
        # A task id given by the caller may be resumed (README: "Reusing a task id").
        self._numbers = StepNumbers(
            config.backup_dir, self.task_id, shared=task_id is not None, started_at=now
        )
        self._task = Task(
            task_id=self.task_id,
            title=title,
            description=description,
            agent=agent,
            started_at=min(now, self._numbers.first_started_at),
            metadata=dict(metadata or {}),
            owner_id=config.owner_id,
            version=time.time_ns(),
        )
        self._ids = IdSource()
        self._callbacks: list[Callable[[Step], Any]] = []
        self._finished = False
        self._closed = False
        self._pipeline = Pipeline(
            config,
            self.task_id,
            buffer_size=buffer_size,
            flush_interval=float(flush_interval),
            max_queue=max_queue,
            max_in_memory=max_in_memory,
            sink=sink,
        )
        self._pipeline.on_fork = _weak_call(self, "_after_fork")
        self._pipeline.submit(dataclasses.replace(self._task))
        _ensure_atexit()
        if signals.enabled(handle_signals):
            signals.watch(self)
        # If the tracker is dropped without close(), let the pipeline finish in the background.
        self._finalizer = weakref.finalize(self, _finish_dropped, self._pipeline, self._task)
        _live_trackers.add(self)

    def __repr__(self) -> str:  # the config's repr hides the key
        return (
            f"StepTracker(task_id={self.task_id!r}, mode={self.config.mode!r}, "
            f"backup_dir={str(self.config.backup_dir)!r})"
        )

    # ------------------------------------------------------------------ recording
    def add_step_callback(self, callback: Callable[[Step], Any]) -> None:
        """Call `callback(step)` after each recorded step, on the caller's thread. Exceptions from
        it are logged, never raised into the agent. Keep it fast: it adds to record_step's cost."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._callbacks.append(callback)

    def record_step(
        self,
        step_type: StepType | str,
        step_data: Mapping[str, Any] | None = None,
        *,
        thinking: str | None = None,
        action_result: Any = None,
        screenshot: Any = None,
        duration_ms: float | None = None,
        success: bool = True,
        error_message: str | None = None,
        error_type: str | None = None,
        stack_trace: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        name: str | None = None,
        usage: Mapping[str, Any] | None = None,
        error: BaseException | None = None,
        screenshot_path: str | os.PathLike[str] | None = None,
        sensitive: bool | None = None,
        redact_regions: Any = None,
        _number: int | None = None,
        _started_at: float | None = None,
    ) -> Step:
        """Record one step and return it (with its client-generated `id` and `step_number`).

        `step_data`/`metadata` are copied one level deep (nested objects are read later by the
        worker: do not mutate them after the call). `screenshot`: a path, bytes, base64/data-URL
        text or a PIL image, processed on the worker. Raises TypeError/ValueError only for wrong
        argument types or values.

        `name`: a short label shown in the viewer (at most 200 characters). `usage`: the model
        call's token counts (`prompt_tokens`, `completion_tokens`, `total_tokens`). `error`: an
        exception; fills `error_type`, `error_message` and `stack_trace` (unless given) and sets
        `success` False. `screenshot_path`: a screenshot file (same as `screenshot=` a path).
        `sensitive=True`: the screen shows secrets (the tracker's `screenshot_policy` decides what
        is stored); `redact_regions=[(x, y, w, h), ...]`: boxes hidden before encoding.
        """
        # rare arguments: the hot path skips them in one test
        if (
            screenshot_path is not None
            or error is not None
            or sensitive is not None
            or redact_regions is not None
        ):
            screenshot, success, error_type, error_message, stack_trace = self._rare_arguments(
                screenshot,
                screenshot_path,
                sensitive,
                redact_regions,
                error,
                success,
                error_type,
                error_message,
                stack_trace,
            )
        try:
            st = STEP_TYPES[step_type]
        except (KeyError, TypeError):
            raise _bad_step_type(step_type) from None
        if step_data is None:
            data: dict[str, Any] = {}
        elif type(step_data) is dict:
            data = step_data.copy()
        elif isinstance(step_data, Mapping):
            data = dict(step_data)
        else:
            raise TypeError(f"step_data must be a dict (mapping) or None, got {type(step_data).__name__}")
        if thinking is not None and not isinstance(thinking, str):
            raise TypeError(f"thinking must be a str or None, got {type(thinking).__name__}")
        if duration_ms is not None and not (
            type(duration_ms) is float and 0.0 <= duration_ms <= MAX_DURATION_MS
        ):
            duration_ms = _check_duration(duration_ms)  # the slow path: ints, errors
        if success is not True and success is not False:
            raise TypeError(f"success must be a bool, got {type(success).__name__}")
        if error_message is not None or error_type is not None or stack_trace is not None:
            _check_str("error_message", error_message)
            _check_str("error_type", error_type)
            _check_str("stack_trace", stack_trace)
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise TypeError(f"metadata must be a dict (mapping) or None, got {type(metadata).__name__}")
            metadata = dict(metadata)
        if name is not None:
            _check_str("name", name, MAX_STEP_NAME)
            if not name.strip():
                raise ValueError("name must not be empty")
        if usage is not None:
            usage = _check_usage(usage)
        if screenshot is not None:
            # imported early by the worker; a dict lookup here
            from stepsdk.recording import screenshots as _screenshots

            screenshot = _screenshots.capture(screenshot)  # TypeError for unsupported types
        now = _now()
        step = Step(
            self._ids.next(),
            self.task_id,
            _number or self._numbers.next(),
            st,
            data,
            thinking,
            action_result,
            screenshot,
            duration_ms,
            success,
            error_type,
            error_message,
            stack_trace,
            metadata,
            _started_at or (now - duration_ms / 1000 if duration_ms else now),
            now,
            name,
            usage,
        )
        if self._closed:
            self._late(step)
        else:
            self._pipeline.submit_step(step)
        if self._callbacks:
            self._run_callbacks(step)
        return step

    @staticmethod
    def _rare_arguments(
        screenshot: Any,
        screenshot_path: Any,
        sensitive: Any,
        redact_regions: Any,
        error: Any,
        success: Any,
        error_type: Any,
        error_message: Any,
        stack_trace: Any,
    ) -> tuple[Any, ...]:
        """screenshot_path=, sensitive=, redact_regions=, error=: turned into the common arguments."""
        if screenshot_path is not None:
            if screenshot is not None:
                raise TypeError("pass screenshot= or screenshot_path=, not both")
            if not isinstance(screenshot_path, (str, os.PathLike)):
                raise TypeError(
                    f"screenshot_path must be a str or path, got {type(screenshot_path).__name__}"
                )
            screenshot = Path(screenshot_path)
        if screenshot is not None and (sensitive is not None or redact_regions is not None):
            screenshot = _sensitive.mark(screenshot, sensitive, redact_regions)
        if error is not None:
            if not isinstance(error, BaseException):
                raise TypeError(f"error must be an exception, got {type(error).__name__}")
            success = False
            error_type = error_type if error_type is not None else type(error).__name__
            error_message = error_message if error_message is not None else _describe(error)
            if stack_trace is None:
                stack_trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return screenshot, success, error_type, error_message, stack_trace

    def _late(self, step: Step) -> None:
        log.warning(
            "stepsdk: step %d recorded after close(); written to the backup only "
            "(run `stepsdk resync` to upload it)",
            step.step_number,
        )
        self._pipeline.reopen_for_late_steps()
        self._pipeline.submit(step)

    def _run_callbacks(self, step: Step) -> None:
        for cb in self._callbacks:
            try:
                cb(step)
            except Exception:
                log.exception("stepsdk: step callback %r failed (ignored)", cb)

    @contextmanager
    def step(
        self,
        step_type: StepType | str,
        step_data: Mapping[str, Any] | None = None,
        *,
        thinking: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Iterator[StepHandle]:
        """Time a block as one step. The handle lets the block set `action_result`, `success`,
        `screenshot`, `thinking`, `error_message`, `metadata` and add to `step_data`. An exception
        is recorded (success False, error_type, error_message, stack_trace) and re-raised."""
        try:
            STEP_TYPES[step_type]
        except (KeyError, TypeError):
            raise _bad_step_type(step_type) from None
        if step_data is not None and not isinstance(step_data, Mapping):
            raise TypeError(f"step_data must be a dict (mapping) or None, got {type(step_data).__name__}")
        handle = StepHandle(dict(step_data or {}))
        handle.thinking = thinking
        handle.metadata = dict(metadata or {})
        number = self._numbers.next()
        started_at, t0 = time.time(), time.perf_counter()
        error: BaseException | None = None
        try:
            yield handle
        except BaseException as exc:
            error = exc
            raise
        finally:
            duration = (time.perf_counter() - t0) * 1000
            self._record_handle(step_type, handle, number, started_at, duration, error)

    def _record_handle(
        self,
        step_type: Any,
        h: StepHandle,
        number: int,
        started_at: float,
        duration: float,
        error: BaseException | None,
    ) -> None:
        # with error=, record_step fills error_type, the message (unless the block set one) and the stack
        success, emsg = h.success, h.error_message if error is None else (h.error_message or None)
        try:
            self.record_step(
                step_type,
                h.step_data,
                thinking=h.thinking if isinstance(h.thinking, str) else None,
                action_result=h.action_result,
                screenshot=h.screenshot,
                duration_ms=duration,
                success=success if isinstance(success, bool) else False,
                error_message=None if emsg is None else (emsg if isinstance(emsg, str) else repr(emsg)),
                error=error,
                metadata=h.metadata,
                _number=number,
                _started_at=started_at,
            )
        except (TypeError, ValueError) as exc:
            if error is not None:
                log.error("stepsdk: could not record step %d: %s", number, exc)
                return  # never mask the block's own exception
            raise

    # ------------------------------------------------------------------ lifecycle
    def finish(
        self,
        status: TaskStatus | str = TaskStatus.SUCCESS,
        result: str | None = None,
        error_message: str | None = None,
        timeout: float = 5.0,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> FlushResult:
        """Mark the task finished (success, failed or interrupted), then flush (bounded by
        `timeout`). Calling it again updates the task row (the latest call wins)."""
        try:
            st = TASK_STATUSES[status]
        except (KeyError, TypeError):
            raise ValueError(
                f"status must be one of {[s.value for s in TaskStatus]}, got {status!r}"
            ) from None
        _check_str("result", result)
        _check_str("error_message", error_message)
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
            self._task.metadata = {**self._task.metadata, **metadata}
        now = time.time()
        self._task.status = st
        self._task.finished_at = None if st is TaskStatus.RUNNING else max(now, self._task.started_at)
        self._task.result = result
        self._task.error_message = error_message
        self._task.version = max(time.time_ns(), self._task.version + 1)
        self._finished = st is not TaskStatus.RUNNING
        if self._closed:
            self._pipeline.reopen_for_late_steps()
        self._pipeline.submit(dataclasses.replace(self._task))
        return self.flush(timeout)

    def flush(self, timeout: float = 5.0) -> FlushResult:
        """Wait until everything recorded so far is uploaded, or safe in the backup when the
        backend is unreachable (or in local mode). Returns within about `timeout` seconds."""
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError("timeout must be a number of seconds >= 0")
        return self._pipeline.force_flush(float(timeout))

    def close(self, timeout: float = 5.0) -> FlushResult:
        """Flush (bounded by `timeout`), stop the background threads, fsync the backup."""
        if self._closed:  # again (after late steps): those were written directly; close their journal
            self._pipeline.close_journal()
            return self._pipeline.force_flush(0)
        self._closed = True
        self._finalizer.detach()
        signals.unwatch(self)
        result = self._pipeline.shutdown(float(timeout))
        self._numbers.release()
        return result

    def stats(self) -> TrackerStats:
        st = self._pipeline.stats()
        return TrackerStats(queue_depth=self._pipeline.queue_depth, **st)  # type: ignore[arg-type]

    def _interrupted_by(self, signal_name: str, timeout: float, close: bool = True) -> None:
        """SIGTERM (stepsdk/recording/signals.py): mark the task interrupted, flush, and close
        unless the program's own handler may let it go on (a later finish() then wins)."""
        deadline = time.monotonic() + timeout
        if not self._closed:
            if not self._finished:
                self.finish(
                    TaskStatus.INTERRUPTED,
                    error_message=f"terminated by {signal_name}",
                    timeout=timeout * 0.7,
                    metadata={"interrupted": {"signal": signal_name}},
                )
                self._finished = False  # the program may still finish it its own way
            if close:
                self.close(timeout=max(0.1, deadline - time.monotonic()))

    def _end_without_finish(self, status: TaskStatus, message: str) -> None:
        """Exit without finish(): the task row says how it ended (submitted, flushed by close)."""
        _ended(self._task, status, message)
        self._finished = True
        self._pipeline.submit(dataclasses.replace(self._task))

    def _after_fork(self) -> None:
        """In a forked child (the pipeline was restarted): the task row goes to the new journal
        and upload stage too, so the child's steps can be uploaded after it."""
        self._pipeline.submit(dataclasses.replace(self._task))

    @property
    def backup_dir(self) -> Path:
        return Path(self.config.backup_dir)

    @property
    def journal_path(self) -> Path:
        return self._pipeline.writer.path

    def __enter__(self) -> StepTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # finish + close share one budget of CLOSE_TIMEOUT seconds, whatever the backend does.
        deadline = time.monotonic() + CLOSE_TIMEOUT
        try:
            if not self._finished:
                if exc is None:
                    self.finish(TaskStatus.SUCCESS, timeout=CLOSE_TIMEOUT)
                elif isinstance(exc, _interruptions()):
                    self.finish(
                        TaskStatus.INTERRUPTED,
                        error_message=f"{type(exc).__name__}: {exc}",
                        timeout=CLOSE_TIMEOUT,
                    )
                else:
                    self.finish(
                        TaskStatus.FAILED, error_message=f"{type(exc).__name__}: {exc}", timeout=CLOSE_TIMEOUT
                    )
        finally:
            self.close(timeout=max(0.5, deadline - time.monotonic()))

    # ------------------------------------------------------------------ asyncio
    async def aflush(self, timeout: float = 5.0) -> FlushResult:
        """`flush` in a worker thread: never blocks the event loop."""
        import asyncio  # already imported when there is an event loop; not at `import stepsdk`

        return await asyncio.to_thread(self.flush, timeout)

    async def afinish(
        self,
        status: TaskStatus | str = TaskStatus.SUCCESS,
        result: str | None = None,
        error_message: str | None = None,
        timeout: float = 5.0,
    ) -> FlushResult:
        import asyncio

        return await asyncio.to_thread(self.finish, status, result, error_message, timeout)

    async def aclose(self, timeout: float = 5.0) -> FlushResult:
        import asyncio

        return await asyncio.to_thread(self.close, timeout)

    async def __aenter__(self) -> StepTracker:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.__exit__, exc_type, exc, tb)


def _interruptions() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "interrupted", not "failed". asyncio is not imported by stepsdk: if
    the program never imported it, no asyncio.CancelledError can exist."""
    aio = sys.modules.get("asyncio")
    return (KeyboardInterrupt, SystemExit) + ((aio.CancelledError,) if aio is not None else ())


def _new_task_id() -> str:
    return f"task-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.urandom(4).hex()}"


def _bad_step_type(value: Any) -> Exception:
    allowed = ", ".join(t.value for t in StepType)
    if isinstance(value, str):
        return ValueError(f"unknown step_type {value!r}: expected one of {allowed}")
    return TypeError(f"step_type must be a StepType or one of {allowed}, got {type(value).__name__}")


def _check_duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"duration_ms must be a number or None, got {type(value).__name__}")
    if not value >= 0 or value == float("inf"):  # also rejects NaN
        raise ValueError(f"duration_ms must be a finite number >= 0, got {value!r}")
    if value > MAX_DURATION_MS:
        raise ValueError(
            f"duration_ms={value!r} is more than 30 days: milliseconds are expected "
            "(was a timestamp, or microseconds, passed by mistake?)"
        )
    return float(value)


def _check_task_id(task_id: str) -> None:
    if not 1 <= len(task_id) <= MAX_TASK_ID:
        raise ValueError(f"task_id must be 1 to {MAX_TASK_ID} characters long")
    if "\x00" in task_id:
        raise ValueError("task_id must not contain NUL characters")
    try:
        task_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"task_id {task_id!r} is not valid Unicode text (it holds a lone surrogate, e.g. from "
            "os.fsdecode of a non-UTF-8 name); no database can store it"
        ) from None


def _describe(error: BaseException) -> str:
    """str(error), or its type name when that is empty or fails (an exception's own __str__ may raise)."""
    try:
        return str(error) or type(error).__name__
    except Exception:
        return type(error).__name__


def _weak_call(obj: Any, method: str) -> Callable[[], None]:
    ref = weakref.ref(obj)

    def call() -> None:
        target = ref()
        if target is not None:
            getattr(target, method)()

    return call


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _check_usage(value: Any) -> dict[str, int]:
    """Token usage: a mapping of the three counters (ints >= 0; missing ones left out, a
    missing total is the sum of the other two)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"usage must be a mapping of token counts, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in USAGE_KEYS)
    if unknown:
        raise ValueError(f"usage has unknown keys {unknown}; expected {list(USAGE_KEYS)}")
    out: dict[str, int] = {}
    for key in USAGE_KEYS:
        v = value.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
            raise ValueError(f"usage[{key!r}] must be an int >= 0, got {v!r}")
        out[key] = v
    if "total_tokens" not in out and ("prompt_tokens" in out or "completion_tokens" in out):
        out["total_tokens"] = out.get("prompt_tokens", 0) + out.get("completion_tokens", 0)
    return out

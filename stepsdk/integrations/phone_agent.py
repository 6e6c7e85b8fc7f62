"""Record Open-AutoGLM ``PhoneAgent`` / ``IOSPhoneAgent`` runs step by step, without forking.

``track_phone_agent(agent, **tracker_kwargs)`` wraps attributes of ONE agent instance (never its
class): ``run``, ``step``, ``reset``, ``_execute_step`` (step boundaries and device errors),
``model_client.request`` (screenshot, current app, thinking, timings, model errors),
``action_handler.execute`` (parsed action and its result) and the confirmation / take-over
callbacks. ``detach()`` puts the originals back.

Each ``run(task)`` becomes one task (one ``StepTracker``); each agent step becomes one step:

* ``action`` — the parsed action, its ``ActionResult``, the screenshot the model saw, thinking
  without ``<think>``/``<answer>`` tags, the current app and the model timings;
* ``error`` — a model error (``error_type`` = exception class), a reply that does not parse
  (``error_type="ActionParseError"``, recorded as failed although the agent calls it a finish),
  or a device error escaping the step (with its stack trace);
* ``validation`` — each confirmation request (``success`` = approved) and take-over request.

How a run ends → task status: finish action with a successful result → ``success`` (result =
the finish message); model error, unparsable reply, failed final action → ``failed``;
"Max steps reached" → ``interrupted`` (the agent was stopped by its step budget, it did not
fail on anything: filter these apart from real failures); ``KeyboardInterrupt`` →
``interrupted``; any other exception → ``failed`` with its stack trace, then re-raised.

Recording never changes what the agent does or returns: every hook calls the original with the
same arguments, returns its value and re-raises its exception unchanged, and all recording work
runs inside a guard that logs and swallows its own failures.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stepsdk.integrations._common import guarded, redact_url, summarize, truncate
from stepsdk.integrations._usage import usage_from
from stepsdk.model import StepType
from stepsdk.recording.step_names import phone_action_name
from stepsdk.schema import MAX_TITLE

_log = logging.getLogger("stepsdk.integrations.phone_agent")

__all__ = ["PhoneAgentTracking", "phone_step_data", "strip_model_tags", "track_phone_agent"]

TrackerFactory = Callable[..., Any]

_TAGS = re.compile(r"</?think>|</?answer>")
_MARK = "_stepsdk_phone_tracking"
ACTION_PARSE_ERROR = "ActionParseError"


def strip_model_tags(text: str | None) -> str:
    """The model's thinking without the ``<think>``, ``</think>``, ``<answer>`` tags."""
    return _TAGS.sub("", text or "").strip()


def phone_step_data(
    *,
    agent_step: int,
    action: dict[str, Any] | None,
    current_app: str | None,
    screen: tuple[int, int] | None = None,
    model_timing: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """The ``step_data`` of a phone step (shared with the demo so the viewer sees one layout).

    ``action`` keeps the agent's keys, with ``_metadata`` renamed ``type`` (``do``/``finish``);
    ``point`` is the tap/press position in screen pixels (the model speaks 0-1000 relative).
    """
    data: dict[str, Any] = {"agent_step": agent_step, "current_app": current_app}
    if action is not None:
        data["action"] = {("type" if k == "_metadata" else k): v for k, v in action.items()}
    if screen is not None:
        data["screen"] = {"width": screen[0], "height": screen[1]}
        element = (action or {}).get("element")
        if _is_point(element):
            data["point"] = {"x": int(element[0] / 1000 * screen[0]), "y": int(element[1] / 1000 * screen[1])}
    if model_timing:
        data["model_timing"] = model_timing
    return data


def _is_point(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


@dataclass
class _Step:
    """What the hooks learned about the agent step in progress."""

    number: int
    started: float = field(default_factory=time.perf_counter)
    screenshot: str | None = None
    sensitive: bool | None = None  # the device said the screen was sensitive (Screenshot.is_sensitive)
    current_app: str | None = None
    response: Any = None  # phone_agent ModelResponse
    model_error: BaseException | None = None
    model_trace: str | None = None
    action: dict[str, Any] | None = None
    result: Any = None  # phone_agent ActionResult
    screen: tuple[int, int] | None = None
    execute_error: BaseException | None = None
    execute_trace: str | None = None
    usage: dict[str, int] | None = None  # from the model reply, when the server reports it

    @property
    def duration_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    @property
    def parse_failed(self) -> bool:
        # On a ValueError from parse_action the agent substitutes finish(message=<raw action text>);
        # a real finish's message is always shorter than the raw text it came from.
        raw = getattr(self.response, "action", None)
        return (
            self.action is not None
            and self.action.get("_metadata") == "finish"
            and isinstance(raw, str)
            and self.action.get("message") == raw
        )

    @property
    def finished(self) -> bool:
        if self.model_error is not None:
            return True
        should_finish = bool(getattr(self.result, "should_finish", False))
        return bool(self.action and self.action.get("_metadata") == "finish") or should_finish


@dataclass
class _Outcome:
    finished: bool
    failed: bool
    message: str | None = None


class _Patch:
    """One instance attribute replaced by a wrapper, and how to put the original back."""

    def __init__(self, obj: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        self.obj, self.name = obj, name
        self.had_own = name in vars(obj)
        self.own_value = vars(obj).get(name)
        self.replacement = make(getattr(obj, name))
        setattr(obj, name, self.replacement)

    def undo(self) -> None:
        if vars(self.obj).get(self.name) is not self.replacement:
            # Someone wrapped it again after us: leave their wrapper; ours is inert once detached.
            _log.warning(
                "stepsdk: %s.%s was replaced after tracking started; left in place",
                type(self.obj).__name__,
                self.name,
            )
            return
        if self.had_own:
            setattr(self.obj, self.name, self.own_value)
        else:
            delattr(self.obj, self.name)


class PhoneAgentTracking:
    """The tracking attached to one agent instance. Use ``detach()`` (or ``with``) to remove it."""

    def __init__(
        self, agent: Any, tracker_factory: TrackerFactory, agent_name: str, flush_timeout: float = 5.0
    ) -> None:
        self.agent = agent
        self.agent_name = agent_name
        self.flush_timeout = flush_timeout
        self._factory = tracker_factory
        self._lock = threading.RLock()
        self._tracker: Any = None
        self._manual = False  # a task opened by step(), not run()
        self._step: _Step | None = None
        self._outcome: _Outcome | None = None
        self.last_task_id: str | None = None
        self.task_ids: list[str] = []
        self._patches: list[_Patch] = []
        self._attached = True
        self._install()

    # ---------------------------------------------------------------- attach / detach
    def _install(self) -> None:
        agent = self.agent
        handler = agent.action_handler
        targets: list[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
            (agent, "run", self._wrap_run),
            (agent, "step", self._wrap_step),
            (agent, "reset", self._wrap_reset),
            (agent.model_client, "request", self._wrap_request),
            (handler, "execute", self._wrap_execute),
        ]
        if hasattr(agent, "_execute_step"):
            targets.append((agent, "_execute_step", self._wrap_execute_step))
        else:  # a future agent without it: steps are then delimited by model calls
            _log.warning(
                "stepsdk: %s has no _execute_step; step timing starts at the model call", type(agent).__name__
            )
        for name, kind in (("confirmation_callback", "confirmation"), ("takeover_callback", "takeover")):
            if callable(getattr(handler, name, None)):
                targets.append((handler, name, functools.partial(self._wrap_callback, kind=kind)))
        try:
            for obj, name, make in targets:
                self._patches.append(_Patch(obj, name, make))
        except (AttributeError, TypeError) as exc:  # e.g. __slots__: put back what was wrapped, then say why
            for patch in reversed(self._patches):
                patch.undo()
            self._patches = []
            raise TypeError(f"track_phone_agent: cannot wrap this agent's attributes: {exc}") from None
        setattr(agent, _MARK, self)

    def detach(self) -> None:
        """Remove every wrapper; an open manual task is finished as interrupted."""
        with self._lock:
            if not self._attached:
                return
            with guarded("detach"):
                if self._tracker is not None:
                    self._end_task("interrupted", error_message="tracking detached before the task ended")
            self._attached = False
            for patch in reversed(self._patches):
                patch.undo()
            self._patches = []
            vars(self.agent).pop(_MARK, None)

    @property
    def attached(self) -> bool:
        return self._attached

    def __enter__(self) -> PhoneAgentTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # ---------------------------------------------------------------- run / step / reset
    def _wrap_run(self, original: Callable[[str], str]) -> Callable[[str], str]:
        @functools.wraps(original)
        def run(task: str) -> str:
            if not self._attached:
                return original(task)
            with guarded("run start"):
                self._start_task(task)
            try:
                message = original(task)
            except BaseException as exc:
                with guarded("run end (exception)"):
                    self._end_with_exception(exc)
                raise
            with guarded("run end"):
                self._end_run(message)
            return message

        return run

    def _wrap_step(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def step(task: str | None = None) -> Any:
            if not self._attached:
                return original(task)
            with guarded("manual step start"):
                # A first step (the agent's own test) outside a run; a subclass's run() may call step().
                if task and not self.agent.context and self._tracker is None:
                    self._start_task(task, manual=True)
            try:
                result = original(task)
            except BaseException as exc:
                with guarded("manual step end (exception)"):
                    if self._manual:
                        self._end_with_exception(exc)
                raise
            with guarded("manual step end"):
                self._commit_step()
                if self._manual and self._outcome is not None and self._outcome.finished:
                    self._end_finished(self._outcome, getattr(result, "message", None))
            return result

        return step

    def _wrap_reset(self, original: Callable[[], None]) -> Callable[[], None]:
        @functools.wraps(original)
        def reset() -> None:
            with guarded("reset"):
                if self._attached and self._manual:
                    self._end_task("interrupted", error_message="agent reset before the task finished")
            return original()

        return reset

    def _wrap_execute_step(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def execute_step(*args: Any, **kwargs: Any) -> Any:
            if not self._attached or self._tracker is None:
                return original(*args, **kwargs)
            with guarded("step start"):
                self._begin_step(before_increment=True)
                _watch_device_screens()
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                with guarded("device error"):
                    self._commit_step(device_error=exc)
                raise
            with guarded("step end"):
                self._commit_step()
            return result

        return execute_step

    # ---------------------------------------------------------------- model / action / callbacks
    def _wrap_request(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def request(messages: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._attached or self._tracker is None:
                return original(messages, *args, **kwargs)
            with guarded("model request"):
                step = self._step if self._step is not None else self._begin_step()
                step.screenshot, step.current_app = _screen_from_messages(messages)
                step.sensitive = getattr(_SCREEN, "sensitive", None)
            unwatch = _watch_usage(self.agent.model_client, step)
            try:
                response = original(messages, *args, **kwargs)
            except Exception as exc:
                with guarded("model error"):
                    step.model_error, step.model_trace = exc, traceback.format_exc()
                raise
            finally:
                unwatch()
            with guarded("model response"):
                step.response = response
            return response

        return request

    def _wrap_execute(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def execute(action: Any, screen_width: Any, screen_height: Any, *args: Any, **kwargs: Any) -> Any:
            step = self._step if self._attached else None
            if step is None:
                return original(action, screen_width, screen_height, *args, **kwargs)
            try:
                result = original(action, screen_width, screen_height, *args, **kwargs)
            except BaseException as exc:  # Ctrl+C in a callback too: the step shows what was attempted
                with guarded("action error"):
                    # The agent retries with finish(message=str(exc)); keep the first action's failure.
                    if step.execute_error is None:
                        step.action, step.execute_error = dict(action), exc
                        step.execute_trace = traceback.format_exc()
                raise
            with guarded("action result"):
                if step.execute_error is None:
                    step.action = dict(action) if isinstance(action, dict) else {"value": action}
                step.result, step.screen = result, (int(screen_width), int(screen_height))
            return result

        return execute

    def _wrap_callback(self, original: Callable[[str], Any], *, kind: str) -> Callable[[str], Any]:
        @functools.wraps(original)
        def callback(message: str, *args: Any, **kwargs: Any) -> Any:
            tracker = self._tracker if self._attached else None
            if tracker is None:
                return original(message, *args, **kwargs)
            started = time.perf_counter()
            try:
                answer = original(message, *args, **kwargs)
            except BaseException as exc:
                with guarded(f"{kind} callback error"):
                    self._record_callback(kind, message, None, started, exc)
                raise
            with guarded(f"{kind} callback"):
                self._record_callback(kind, message, answer, started, None)
            return answer

        return callback

    # ---------------------------------------------------------------- recording
    def _start_task(self, task: str, *, manual: bool = False) -> None:
        with self._lock:
            if self._tracker is not None:  # a manual task left open, then run(): close it honestly
                self._end_task("interrupted", error_message="a new task started before this one finished")
            self._step, self._outcome, self._manual = None, None, manual
            text = str(task)
            kwargs: dict[str, Any] = {
                "title": text,
                "agent": self.agent_name,
                "metadata": self._task_metadata(),
            }
            if len(text) > MAX_TITLE:  # tasks.title is limited; the full text goes to the description
                kwargs.update(title=text[: MAX_TITLE - 20] + " …[truncated]", description=text)
            self._tracker = self._factory(**kwargs)
            self.last_task_id = str(self._tracker.task_id)
            self.task_ids.append(self.last_task_id)

    def _task_metadata(self) -> dict[str, Any]:
        model = getattr(self.agent, "model_config", None)
        config = getattr(self.agent, "agent_config", None)
        meta: dict[str, Any] = {"integration": "phone_agent", "agent_class": type(self.agent).__name__}
        if model is not None:
            meta["model"] = getattr(model, "model_name", None)
            base_url = getattr(model, "base_url", None)
            meta["model_base_url"] = redact_url(base_url) if isinstance(base_url, str) else None
        if config is not None:
            for key in ("max_steps", "lang", "device_id"):
                meta[key] = getattr(config, key, None)
        return meta

    def _begin_step(self, before_increment: bool = False) -> _Step:
        with self._lock:
            if self._step is not None:  # only without _execute_step: the previous step ends here
                self._commit_step()
            # _execute_step increments step_count first thing; the model call comes after that.
            number = int(getattr(self.agent, "step_count", 0) or 0) + (1 if before_increment else 0)
            self._step = _Step(number=number)
            return self._step

    def _commit_step(self, device_error: BaseException | None = None) -> None:
        with self._lock:
            step, self._step = self._step, None
            tracker = self._tracker
        if step is None or tracker is None:
            return
        if device_error is not None:
            self._record_device_error(tracker, step, device_error)
            self._outcome = _Outcome(
                finished=True, failed=True, message=f"{type(device_error).__name__}: {device_error}"
            )
        elif step.model_error is not None:
            self._record_model_error(tracker, step)
        elif step.parse_failed:
            self._record_parse_error(tracker, step)
        elif step.action is not None or step.response is not None:
            self._record_action(tracker, step)

    def _common(self, step: _Step) -> dict[str, Any]:
        response = step.response
        timing = None
        if response is not None:
            timing = {
                k: getattr(response, k, None)
                for k in ("time_to_first_token", "time_to_thinking_end", "total_time")
            }
        return {
            "step_data": phone_step_data(
                agent_step=step.number,
                action=step.action,
                current_app=step.current_app,
                screen=step.screen,
                model_timing=timing,
            ),
            "thinking": strip_model_tags(getattr(response, "thinking", None)) or None,
            "screenshot": step.screenshot,
            "sensitive": True if step.sensitive and step.screenshot is not None else None,
            "duration_ms": step.duration_ms,
            "name": phone_action_name(step.action) or None,
            "usage": step.usage,
        }

    def _record_action(self, tracker: Any, step: _Step) -> None:
        kwargs = self._common(step)
        result = _result_dict(step.result)
        success = bool(result.get("success", False)) and step.execute_error is None
        error: dict[str, Any] = {}
        if step.execute_error is not None:
            # the stack as it was where the action failed (the exception's own grows as it unwinds)
            error = {
                "error": step.execute_error,
                "error_message": truncate(str(step.execute_error)),
                "stack_trace": step.execute_trace,
            }
        elif not success:
            error = {"error_type": "ActionFailed", "error_message": result.get("message") or "action failed"}
        tracker.record_step(StepType.ACTION, action_result=result or None, success=success, **kwargs, **error)
        message = result.get("message") or (step.action or {}).get("message")
        self._outcome = _Outcome(finished=step.finished, failed=not success, message=message)

    def _record_model_error(self, tracker: Any, step: _Step) -> None:
        exc = step.model_error
        tracker.record_step(
            StepType.ERROR,
            error=exc,
            error_message=truncate(f"Model error: {exc}"),
            stack_trace=step.model_trace,
            **self._common(step),
        )
        self._outcome = _Outcome(finished=True, failed=True, message=f"Model error: {exc}")

    def _record_parse_error(self, tracker: Any, step: _Step) -> None:
        kwargs = self._common(step)
        raw = getattr(step.response, "action", "")
        kwargs["step_data"]["raw_action"] = truncate(raw)
        kwargs["name"] = "Invalid action"
        tracker.record_step(
            StepType.ERROR,
            action_result=_result_dict(step.result) or None,
            success=False,
            error_type=ACTION_PARSE_ERROR,
            error_message=truncate(f"the model's reply is not a valid action: {raw!r}", 500),
            **kwargs,
        )
        self._outcome = _Outcome(
            finished=True, failed=True, message="the model's reply is not a valid action"
        )

    def _record_device_error(self, tracker: Any, step: _Step, exc: BaseException) -> None:
        tracker.record_step(
            StepType.ERROR,
            error=exc,
            error_message=truncate(str(exc) or type(exc).__name__),
            **self._common(step),
        )

    def _record_callback(
        self, kind: str, message: str, answer: Any, started: float, exc: BaseException | None
    ) -> None:
        number = self._step.number if self._step is not None else None
        data: dict[str, Any] = {"kind": kind, "message": summarize(message), "agent_step": number}
        if kind == "confirmation" and exc is None:
            data["approved"] = bool(answer)
        error: dict[str, Any] = {}
        if exc is not None:
            error = {"error": exc, "error_message": truncate(str(exc))}
        success = exc is None and (kind != "confirmation" or bool(answer))
        self._tracker.record_step(
            StepType.VALIDATION,
            data,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            success=success,
            **error,
        )

    # ---------------------------------------------------------------- task end
    def _end_run(self, message: str) -> None:
        self._commit_step()  # only pending when the agent has no _execute_step to delimit steps
        outcome = self._outcome
        if outcome is None or not outcome.finished:
            max_steps = getattr(getattr(self.agent, "agent_config", None), "max_steps", None)
            self._end_task(
                "interrupted",
                result=message,
                error_message=f"stopped after max_steps={max_steps} without finishing",
            )
        else:
            self._end_finished(outcome, message)

    def _end_finished(self, outcome: _Outcome, message: str | None) -> None:
        if outcome.failed:
            self._end_task("failed", result=message, error_message=outcome.message or message)
        else:
            self._end_task("success", result=message)

    def _end_with_exception(self, exc: BaseException) -> None:
        with self._lock:
            if self._step is not None:  # the step did not go through _execute_step's wrapper
                self._commit_step(device_error=exc)
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        self._end_task(status, error_message=truncate(f"{type(exc).__name__}: {exc}"))

    def _end_task(self, status: str, *, result: str | None = None, error_message: str | None = None) -> None:
        with self._lock:
            tracker, self._tracker, self._manual, self._step = self._tracker, None, False, None
        if tracker is None:
            return
        # Both flush, bounded by flush_timeout: the run's steps are uploaded (or safe in the backup
        # journal, which they reach within milliseconds anyway) before run() returns.
        try:
            tracker.finish(status, result=result, error_message=error_message, timeout=self.flush_timeout)
        finally:
            tracker.close(timeout=self.flush_timeout)


def _watch_usage(model_client: Any, step: _Step) -> Callable[[], None]:
    """For one model call: wrap the openai client's ``chat.completions.create`` on its instance so
    the reply's ``usage`` (a completion's, or a stream's usage chunk when the server sends one) is
    kept on ``step``. Returns the undo. Anything unexpected leaves the call untouched."""
    with guarded("usage watch"):
        completions = model_client.client.chat.completions
        original = completions.create
        had_own = "create" in vars(completions)

        def create(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            with guarded("model usage"):
                if hasattr(result, "__iter__") and not hasattr(result, "choices"):
                    return _UsageStream(result, step)
                step.usage = usage_from(getattr(result, "usage", None))
            return result

        completions.create = create

        def undo() -> None:
            with guarded("usage unwatch"):
                if had_own:
                    completions.create = original
                else:
                    del completions.create

        return undo
    return lambda: None


class _UsageStream:
    """A chat-completion stream passed through chunk by chunk, keeping the last reported usage."""

    def __init__(self, stream: Any, step: _Step) -> None:
        self._stream, self._step = stream, step

    def __iter__(self) -> Any:
        for chunk in self._stream:
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                with guarded("model usage"):
                    self._step.usage = usage_from(usage) or self._step.usage
            yield chunk

    def __enter__(self) -> Any:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._stream.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _result_dict(result: Any) -> dict[str, Any]:
    # A shallow copy is enough: ActionResult holds plain values, and the tracker sanitizes them.
    if result is None:
        return {}
    fields = getattr(result, "__dict__", None)
    if isinstance(fields, dict):
        return dict(fields)
    return {"value": summarize(result)}


_SCREEN = threading.local()  # .sensitive: is_sensitive of the last device screenshot on this thread
_WATCHED = "_stepsdk_watch_screens"


def _watch_device_screens() -> None:
    """Note ``Screenshot.is_sensitive`` of every device screenshot on this thread (PhoneAgent builds the
    model message from the screenshot and drops the flag). The device factory is phone_agent's one
    global object: its ``get_screenshot`` gets a pass-through wrapper once (an instance attribute,
    never the class), which returns the screenshot unchanged and only reads the flag."""
    _SCREEN.sensitive = None
    try:
        from phone_agent.device_factory import get_device_factory
    except ImportError:
        return
    factory = get_device_factory()
    if getattr(factory, _WATCHED, False):
        return
    original = factory.get_screenshot

    @functools.wraps(original)
    def get_screenshot(*args: Any, **kwargs: Any) -> Any:
        shot = original(*args, **kwargs)
        with guarded("screen sensitivity"):
            _SCREEN.sensitive = bool(getattr(shot, "is_sensitive", False))
        return shot

    factory.get_screenshot = get_screenshot
    setattr(factory, _WATCHED, True)


def _screen_from_messages(messages: Any) -> tuple[str | None, str | None]:
    """The screenshot data URL and current app from the newest user message (the one the model sees)."""
    if not isinstance(messages, list):
        return None, None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _screen_from_content(message.get("content"))
    return None, None


def _screen_from_content(content: Any) -> tuple[str | None, str | None]:
    if not isinstance(content, list):
        return None, _current_app(content if isinstance(content, str) else "")
    screenshot, app = None, None
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url")
            screenshot = url if isinstance(url, str) else screenshot
        elif part.get("type") == "text":
            app = _current_app(part.get("text") or "") or app
    return screenshot, app


def _current_app(text: str) -> str | None:
    # The agent appends json.dumps({"current_app": ...}) as the last line of the text part.
    start = text.rfind('{"current_app"')
    if start < 0:
        return None
    try:
        info, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    app = info.get("current_app") if isinstance(info, dict) else None
    return app if isinstance(app, str) else None


def _default_factory(tracker_kwargs: dict[str, Any]) -> TrackerFactory:
    from stepsdk import StepTracker

    if {"title", "agent", "task_id"} & set(tracker_kwargs):
        raise ValueError("track_phone_agent: title, agent and task_id are set per run; use agent_name=")
    extra_meta = tracker_kwargs.pop("metadata", None) or {}
    if not isinstance(extra_meta, Mapping):
        raise TypeError(f"track_phone_agent: metadata must be a mapping, got {type(extra_meta).__name__}")
    try:
        inspect.signature(StepTracker).bind(title="t", agent="a", metadata={}, **tracker_kwargs)
    except TypeError as exc:
        raise TypeError(f"track_phone_agent: invalid StepTracker argument: {exc}") from None

    def factory(*, title: str, agent: str, metadata: dict[str, Any], description: str | None = None) -> Any:
        return StepTracker(
            title=title,
            agent=agent,
            description=description,
            metadata={**metadata, **extra_meta},
            **tracker_kwargs,
        )

    return factory


def track_phone_agent(
    agent: Any,
    tracker_factory: TrackerFactory | None = None,
    *,
    agent_name: str | None = None,
    flush_timeout: float = 5.0,
    **tracker_kwargs: Any,
) -> PhoneAgentTracking:
    """Record every ``run()`` (and manual ``step()``) of this agent instance.

    ``tracker_kwargs`` go to ``StepTracker`` (``supabase_url``, ``supabase_key``, ``backup_dir``,
    ``metadata``...). Or pass ``tracker_factory(title=, agent=, metadata=[, description=]) ->
    StepTracker`` to build trackers yourself (``description`` only for a task text over 2,000 chars). Returns a ``PhoneAgentTracking``: ``.last_task_id``, ``.detach()``, and a
    context manager that detaches on exit. ``flush_timeout`` bounds the upload wait at the end of each
    run (steps not uploaded by then stay in the local backup and go up later). Raises ``TypeError``/``ValueError`` at this call for an
    object that is not a phone agent, bad tracker arguments, or an agent already tracked.
    """
    for attr in ("run", "step", "model_client", "action_handler"):
        if not hasattr(agent, attr):
            raise TypeError(
                f"track_phone_agent: expected a PhoneAgent/IOSPhoneAgent, got {type(agent).__name__} (no .{attr})"
            )
    if not callable(getattr(agent.model_client, "request", None)) or not callable(
        getattr(agent.action_handler, "execute", None)
    ):
        raise TypeError(
            "track_phone_agent: agent.model_client.request and agent.action_handler.execute must be callable"
        )
    if isinstance(vars(agent).get(_MARK), PhoneAgentTracking):
        raise ValueError(
            "track_phone_agent: this agent is already tracked; detach() the previous tracking first"
        )
    if agent_name is not None and not isinstance(agent_name, str):
        raise TypeError(f"track_phone_agent: agent_name must be a str, got {type(agent_name).__name__}")
    if tracker_factory is not None:
        if tracker_kwargs:
            raise ValueError(
                "track_phone_agent: pass either tracker_factory or StepTracker arguments, not both"
            )
        if not callable(tracker_factory):
            raise TypeError("track_phone_agent: tracker_factory must be callable")
    if (
        isinstance(flush_timeout, bool)
        or not isinstance(flush_timeout, int | float)
        or not 0 <= flush_timeout <= 600
    ):
        raise ValueError(
            f"track_phone_agent: flush_timeout must be seconds between 0 and 600, got {flush_timeout!r}"
        )
    factory = tracker_factory or _default_factory(tracker_kwargs)
    name = agent_name or f"open-autoglm/{type(agent).__name__}"
    return PhoneAgentTracking(agent, factory, name, float(flush_timeout))

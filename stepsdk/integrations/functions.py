"""Any function (sync or async) or code block as a recorded step.

    @tracked_step(tracker, StepType.ACTION)
    def tap(x: int, y: int) -> bool: ...

    @tracked_step(lambda: current_tracker, name="search")    # resolved at each call
    async def search(query: str, api_key: str) -> list[str]: ...

    with tracked_step(tracker, StepType.VALIDATION, name="check login") as block:
        block.result = page_shows_user()       # or, as with tracker.step(): block.action_result,
        block.success = block.result is True   # .success, .screenshot, .thinking, .error_message,
                                               # .metadata, .step_data

Each call records one step: ``step_data = {"kind": "function" (or "block"), "function", "args"}`` (arguments by
parameter name, ``self``/``cls`` left out, secret-looking names such as ``password``/``api_key``
redacted, long values truncated), ``action_result = {"return": <summary of the return value>}``,
``duration_ms``, and on an exception ``success=False`` with its type, message and stack, then the
exception is re-raised unchanged. A recording failure is logged and never reaches the caller.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

from stepsdk.integrations._common import check_tracker_source, guarded, resolve_tracker, summarize, truncate
from stepsdk.model import STEP_TYPES, StepType
from stepsdk.recording.tracker import StepHandle

__all__ = ["StepBlock", "tracked_step"]

F = TypeVar("F", bound=Callable[..., Any])
_SKIPPED_PARAMS = frozenset({"self", "cls"})


class StepBlock(StepHandle):
    """What a ``with tracked_step(...)`` block records: the handle ``tracker.step()`` gives
    (``step_data``, ``action_result``, ``success``, ``screenshot``, ``thinking``,
    ``error_message``, ``metadata``), plus ``result`` (recorded as ``{"return": <summary>}`` when no
    ``action_result`` is set) and ``data`` (the same dict as ``step_data``)."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        super().__init__({})
        self.result: Any = None

    @property
    def data(self) -> dict[str, Any]:
        return self.step_data


class tracked_step:  # lower-case: used as a decorator, named like one
    """Record a function call or a ``with`` block as one step (see the module docstring).

    ``tracker``: a ``StepTracker`` or a zero-argument callable returning one (or ``None`` to skip
    recording). ``record_args=False`` / ``record_result=False`` leave inputs / output out.
    """

    def __init__(
        self,
        tracker: Any,
        step_type: StepType | str = StepType.ACTION,
        *,
        name: str | None = None,
        record_args: bool = True,
        record_result: bool = True,
        max_chars: int = 2_000,
    ) -> None:
        check_tracker_source(tracker, "tracked_step")
        try:
            kind = STEP_TYPES[step_type]
        except (KeyError, TypeError):  # TypeError: unhashable values such as a list
            raise ValueError(
                f"tracked_step: unknown step_type {step_type!r}; use one of {[t.value for t in StepType]}"
            ) from None
        if name is not None and not isinstance(name, str):
            raise TypeError(f"tracked_step: name must be a str, got {type(name).__name__}")
        if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
            raise ValueError(f"tracked_step: max_chars must be an int >= 1, got {max_chars!r}")
        self._source, self._type, self._name = tracker, kind, name
        self._args, self._result, self._max = bool(record_args), bool(record_result), max_chars
        # the open with-blocks of this object, per thread and per asyncio task (one object may be
        # shared: `check = tracked_step(...)` used by concurrent coroutines, or nested)
        self._blocks: contextvars.ContextVar[tuple[list[Any], ...]] = contextvars.ContextVar(
            "tracked_step_blocks", default=()
        )

    # ---------------------------------------------------------------- decorator
    def __call__(self, fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"tracked_step: expected a function, got {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                "tracked_step: generator functions are not supported (the step would end at the first yield)"
            )
        name = self._name or getattr(fn, "__qualname__", None) or repr(fn)
        try:
            signature: _Params | None = _Params(inspect.signature(fn))
        except (TypeError, ValueError):  # some builtins have no signature
            signature = None
        if inspect.iscoroutinefunction(fn):
            return self._wrap_async(fn, name, signature)  # type: ignore[return-value]
        return self._wrap_sync(fn, name, signature)  # type: ignore[return-value]

    def _wrap_sync(self, fn: Callable[..., Any], name: str, sig: _Params | None) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                self._record(name, sig, args, kwargs, started, None, exc)
                raise
            self._record(name, sig, args, kwargs, started, value, None)
            return value

        return wrapper

    def _wrap_async(self, fn: Callable[..., Any], name: str, sig: _Params | None) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                value = await fn(*args, **kwargs)
            except BaseException as exc:  # CancelledError too: the step shows it was cancelled
                self._record(name, sig, args, kwargs, started, None, exc)
                raise
            self._record(name, sig, args, kwargs, started, value, None)
            return value

        return wrapper

    # ---------------------------------------------------------------- with-block
    def __enter__(self) -> StepBlock:
        block = StepBlock()
        entry: list[Any] = [block, time.perf_counter(), None]
        entry[2] = self._blocks.set((*self._blocks.get(), entry))
        return block

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        blocks = self._blocks.get()
        if not blocks:
            return
        block, started, token = blocks[-1]
        try:
            self._blocks.reset(token)  # also leaves nothing behind in the context (no leak per block)
        except (ValueError, RuntimeError):  # entered in another context: drop this entry only
            self._blocks.set(blocks[:-1])
        name = self._name or "block"
        with guarded(f"step {name!r}"):
            self._emit(name, dict(block.step_data), started, block.result, exc, kind="block", handle=block)

    async def __aenter__(self) -> StepBlock:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # ---------------------------------------------------------------- recording
    def _record(
        self,
        name: str,
        sig: _Params | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
        value: Any,
        exc: BaseException | None,
    ) -> None:
        with guarded(f"step {name!r}"):
            data = {"args": self._arguments(sig, args, kwargs)} if self._args else {}
            self._emit(name, data, started, value, exc)

    def _emit(
        self,
        name: str,
        data: dict[str, Any],
        started: float,
        value: Any,
        exc: BaseException | None,
        kind: str = "function",
        handle: StepBlock | None = None,
    ) -> None:
        tracker = resolve_tracker(self._source)
        if tracker is None:
            return
        step_data = {**summarize(data, limit=self._max), "kind": kind, "function": name}
        kwargs: dict[str, Any] = {
            "duration_ms": (time.perf_counter() - started) * 1000.0,
            "success": exc is None,
        }
        if exc is None and self._result:
            kwargs["action_result"] = {"return": summarize(value, limit=self._max)}
        if handle is not None:  # what the block set on its handle, as tracker.step() records it
            kwargs.update(_handle_fields(handle))
            kwargs["success"] = exc is None and handle.success is True
        if exc is not None:  # record_step fills error_type and stack_trace
            kwargs["error"] = exc
            kwargs["error_message"] = (
                handle.error_message
                if handle is not None and handle.error_message
                else truncate(str(exc) or type(exc).__name__, self._max)
            )
        tracker.record_step(self._type, step_data, name=name[:200], **kwargs)

    def _arguments(
        self, sig: _Params | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        if sig is None:
            return {"args": list(args), **kwargs}
        return sig.arguments(args, kwargs)


def _handle_fields(handle: StepHandle) -> dict[str, Any]:
    fields: dict[str, Any] = {"metadata": handle.metadata or None}
    if handle.action_result is not None:
        fields["action_result"] = handle.action_result
    for key in ("screenshot", "thinking", "error_message"):
        if getattr(handle, key) is not None:
            fields[key] = getattr(handle, key)
    return fields


class _Params:
    """Maps a call's arguments to parameter names; a fast path for plain signatures.

    ``Signature.bind`` costs tens of microseconds; most agent functions take plain positional or
    keyword parameters, which a zip does for a fraction of that.
    """

    __slots__ = ("defaults", "names", "plain", "signature")

    def __init__(self, signature: inspect.Signature) -> None:
        params = list(signature.parameters.values())
        self.signature = signature
        self.plain = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
        self.names = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.plain and len(args) <= len(self.names):
            bound = dict(zip(self.names, args, strict=False))
            bound.update(kwargs)
            for name, default in self.defaults.items():
                bound.setdefault(name, default)
        else:
            try:
                call = self.signature.bind(*args, **kwargs)
            except TypeError:  # the call itself failed on its arguments: show them as given
                return {"args": list(args), **kwargs}
            call.apply_defaults()  # show the values the call really used
            bound = dict(call.arguments)
        return {k: v for k, v in bound.items() if k not in _SKIPPED_PARAMS}

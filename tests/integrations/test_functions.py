"""tracked_step: functions (sync and async) and with-blocks as steps, through a real StepTracker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from stepsdk import StepHandle, StepTracker, StepType
from stepsdk.integrations.functions import tracked_step
from tests.integrations.conftest import backup_steps
from tests.timing import WAIT

pytestmark = pytest.mark.usefixtures("local_env")


@pytest.fixture
def tracker(tmp_path: Path) -> Any:
    t = StepTracker(title="functions", agent="test", backup_dir=tmp_path)
    yield t
    t.close()


def _steps(tracker: Any, tmp_path: Path) -> list[dict[str, Any]]:
    tracker.flush(WAIT)
    return backup_steps(tmp_path, tracker.task_id)


def test_sync_function_records_inputs_output_duration(tracker: Any, tmp_path: Path) -> None:
    @tracked_step(tracker, StepType.ACTION)
    def tap(x: int, y: int, *, password: str, note: str = "hi") -> dict[str, int]:
        return {"x": x * 2, "y": y * 2}

    assert tap(3, 4, password="hunter2-secret") == {"x": 6, "y": 8}
    assert tap.__name__ == "tap"  # functools.wraps kept the identity
    (step,) = _steps(tracker, tmp_path)
    assert step["step_type"] == "action" and step["success"] is True
    assert step["step_data"]["kind"] == "function"
    assert step["step_data"]["function"].endswith("tap")
    assert step["step_data"]["args"] == {"x": 3, "y": 4, "password": "[REDACTED:password]", "note": "hi"}
    assert step["action_result"] == {"return": {"x": 6, "y": 8}}
    assert step["duration_ms"] >= 0
    assert "hunter2-secret" not in repr(step)


def test_exception_is_recorded_then_reraised_unchanged(tracker: Any, tmp_path: Path) -> None:
    boom = KeyError("missing-element")

    @tracked_step(tracker, StepType.ACTION, name="find element")
    def find() -> None:
        raise boom

    with pytest.raises(KeyError) as caught:
        find()
    assert caught.value is boom
    (step,) = _steps(tracker, tmp_path)
    assert step["success"] is False
    assert step["error_type"] == "KeyError"
    assert "missing-element" in step["error_message"]
    assert "in find" in step["stack_trace"] and "raise boom" in step["stack_trace"]
    assert step["step_data"]["function"] == "find element"


async def test_async_function_and_cancellation(tracker: Any, tmp_path: Path) -> None:
    @tracked_step(tracker, StepType.VALIDATION)
    async def check(page: str) -> bool:
        await asyncio.sleep(0.01)
        return page == "home"

    @tracked_step(tracker)
    async def hang() -> None:
        await asyncio.sleep(10)

    assert await check("home") is True
    task = asyncio.ensure_future(hang())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    first, second = _steps(tracker, tmp_path)
    assert first["step_type"] == "validation" and first["action_result"] == {"return": True}
    assert first["duration_ms"] >= 10
    assert second["success"] is False and second["error_type"] == "CancelledError"


def test_with_block_records_result_and_data(tracker: Any, tmp_path: Path) -> None:
    with tracked_step(tracker, StepType.VALIDATION, name="login visible") as block:
        block.data["screen"] = "home"
        block.result = True
    with pytest.raises(ValueError, match="bad page"), tracked_step(tracker, name="parse page"):
        raise ValueError("bad page")
    ok, failed = _steps(tracker, tmp_path)
    assert ok["step_data"] == {"screen": "home", "kind": "block", "function": "login visible"}
    assert ok["action_result"] == {"return": True} and ok["success"] is True
    assert failed["success"] is False and failed["error_type"] == "ValueError"


def test_with_block_gives_the_handle_of_tracker_step(tracker: Any, tmp_path: Path) -> None:
    """The with-block's handle is a StepHandle: what a block sets on it is recorded as
    tracker.step() records it (the fields tracker.step() offers, same columns)."""
    with tracker.step(StepType.VALIDATION, {"screen": "home"}) as handle:
        handle.action_result, handle.success, handle.thinking = {"seen": "login"}, False, "is it there?"
        handle.error_message, handle.metadata = "login button missing", {"attempt": 2}
    with tracked_step(tracker, StepType.VALIDATION, name="login visible") as block:
        assert isinstance(block, StepHandle) and block.data is block.step_data
        block.step_data["screen"] = "home"
        block.action_result, block.success, block.thinking = {"seen": "login"}, False, "is it there?"
        block.error_message, block.metadata = "login button missing", {"attempt": 2}
    by_step, by_block = _steps(tracker, tmp_path)
    for key in ("step_type", "action_result", "success", "thinking", "error_message", "metadata"):
        assert by_block[key] == by_step[key], key
    assert by_block["success"] is False and by_block["error_message"] == "login button missing"
    assert by_block["step_data"] == {"screen": "home", "kind": "block", "function": "login visible"}


def test_an_exception_fills_type_message_and_stack_in_one_place(tracker: Any, tmp_path: Path) -> None:
    """record_step(error=exc), tracker.step(), a tracked function and a tracked block record the
    same error_type, error_message and stack trace for the same exception."""

    def fail() -> None:
        raise LookupError("no such element #login")

    try:
        fail()
    except LookupError as exc:
        tracker.record_step(StepType.ACTION, error=exc)
    with pytest.raises(LookupError), tracker.step(StepType.ACTION):
        fail()
    with pytest.raises(LookupError):
        tracked_step(tracker, name="fail")(fail)()
    with pytest.raises(LookupError), tracked_step(tracker, name="block"):
        fail()
    steps = _steps(tracker, tmp_path)
    assert len(steps) == 4
    for step in steps:
        assert step["success"] is False
        assert step["error_type"] == "LookupError"
        assert step["error_message"] == "no such element #login"
        assert step["stack_trace"].startswith("Traceback (most recent call last):")
        assert "in fail" in step["stack_trace"]
        assert step["stack_trace"].rstrip().endswith("LookupError: no such element #login")


def test_large_and_hostile_arguments_are_bounded(tracker: Any, tmp_path: Path) -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("repr exploded")

    @tracked_step(tracker, max_chars=100)
    def process(blob: str, raw: bytes, weird: object, nested: dict[str, Any]) -> str:
        return "y" * 5000

    deep: dict[str, Any] = {"a": {"b": {"c": {"d": {"e": "too deep"}}}}}
    assert process("x" * 10_000, b"\x00" * 300, BadRepr(), deep) == "y" * 5000
    (step,) = _steps(tracker, tmp_path)
    args = step["step_data"]["args"]
    assert len(args["blob"]) < 200 and "truncated" in args["blob"]
    assert args["raw"] == {"bytes": 300}
    assert "repr failed" in args["weird"]
    assert args["nested"]["a"]["b"] == repr({"c": {"d": {"e": "too deep"}}})  # past the depth limit: a repr
    assert len(step["action_result"]["return"]) < 200


def test_tracker_callable_resolved_per_call_and_none_skips(tmp_path: Path) -> None:
    current: dict[str, Any] = {"t": None}

    @tracked_step(lambda: current["t"])
    def work(n: int) -> int:
        return n + 1

    assert work(1) == 2  # no tracker: the call still runs, nothing recorded
    current["t"] = StepTracker(title="late", backup_dir=tmp_path)
    try:
        assert work(2) == 3
        steps = _steps(current["t"], tmp_path)
    finally:
        current["t"].close()
    assert [s["step_data"]["args"] for s in steps] == [{"n": 2}]


def test_recording_failure_never_reaches_the_caller(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken_lookup() -> Any:
        raise RuntimeError("tracker registry down")

    @tracked_step(broken_lookup)
    def work() -> str:
        return "done"

    with caplog.at_level(logging.WARNING, logger="stepsdk.integrations"):
        assert work() == "done"
    assert "recording step" in caplog.text and "tracker registry down" in caplog.text


def test_programming_mistakes_raise_at_the_call(tracker: Any) -> None:
    with pytest.raises(TypeError, match="tracker must be"):
        tracked_step("not a tracker")
    with pytest.raises(ValueError, match="unknown step_type"):
        tracked_step(tracker, "dance")
    with pytest.raises(ValueError, match="unknown step_type"):
        tracked_step(tracker, ["action"])
    with pytest.raises(ValueError, match="max_chars"):
        tracked_step(tracker, max_chars=0)
    with pytest.raises(TypeError, match="generator"):

        @tracked_step(tracker)
        def gen() -> Any:
            yield 1

    with pytest.raises(TypeError, match="expected a function"):
        tracked_step(tracker)(42)


def test_methods_leave_self_out(tracker: Any, tmp_path: Path) -> None:
    class Agent:
        secret_state = "internal"

        @tracked_step(tracker, StepType.ACTION)
        def act(self, target: str, *extra: int, **options: Any) -> str:
            return f"tapped {target}"

    assert Agent().act("ok-button", 1, 2, api_token="t0k", retries=3) == "tapped ok-button"
    (step,) = _steps(tracker, tmp_path)
    assert step["step_data"]["function"].endswith("Agent.act")
    assert step["step_data"]["args"] == {
        "target": "ok-button",
        "extra": [1, 2],
        "options": {"api_token": "[REDACTED:apitoken]", "retries": 3},
    }


def test_one_block_object_shared_by_coroutines_threads_and_nesting(tracker: Any, tmp_path: Path) -> None:
    """`check = tracked_step(...)` used by concurrent coroutines (or threads, or nested) records
    one step per block; it raised RuntimeError('already inside a with-block') into the agent."""
    import threading

    check = tracked_step(tracker, StepType.VALIDATION, name="check")

    async def one(n: int) -> None:
        async with check as block:
            await asyncio.sleep(0.01)
            block.result = n

    async def both() -> None:
        await asyncio.gather(one(1), one(2))

    asyncio.run(both())
    with check as outer:
        outer.result = 3
        with check as inner:
            inner.result = 4
    threads = [threading.Thread(target=lambda n=n: _in_block(check, n)) for n in (5, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import contextvars

    before = len(contextvars.copy_context())
    for _ in range(3):  # one object per block, as in an agent's loop: nothing stays in the context
        with tracked_step(tracker, name="loop"):
            pass
    assert len(contextvars.copy_context()) == before
    steps = [s for s in _steps(tracker, tmp_path) if s["name"] == "check"]
    assert sorted(s["action_result"]["return"] for s in steps) == [1, 2, 3, 4, 5, 6]
    assert all(s["success"] for s in steps)


def _in_block(check: Any, n: int) -> None:
    import time

    with check as block:
        time.sleep(0.02)
        block.result = n

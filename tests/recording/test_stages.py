"""The pipeline's parts with `MemorySink` and injected clocks: no database, no real waiting."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from stepsdk import StepTracker
from stepsdk.backend.retry import CircuitBreaker, RetryPolicy
from stepsdk.backend.sink import BackendUnavailable, RowRejected
from stepsdk.backend.uploader import T_SHOTS, T_STEPS, T_TASKS, Record, Unavailable, Uploader
from stepsdk.testing import MemorySink
from tests.fixtures_images import png_bytes, small_screen
from tests.timing import WAIT, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class ListJournal:
    def __init__(self) -> None:
        self.acks: list[tuple[str, dict[str, int]]] = []
        self.rejects: list[tuple[str, str, dict[str, Any]]] = []

    def ack(self, table: str, versions: dict[str, int]) -> None:
        self.acks.append((table, versions))

    def reject(self, table: str, key: str, error: dict[str, Any]) -> None:
        self.rejects.append((table, key, error))


def test_retry_policy_waits_on_the_injected_clock() -> None:
    clock, calls = FakeClock(), []

    def flaky() -> str:
        calls.append(clock.now)
        if len(calls) < 4:
            raise BackendUnavailable("down")
        return "ok"

    started = time.perf_counter()
    assert RetryPolicy(8.0, clock=clock, sleep=clock.sleep).call(flaky) == "ok"
    assert len(calls) == 4 and len(clock.slept) == 3 and time.perf_counter() - started < 0.5

    def never() -> None:
        raise BackendUnavailable("still down")

    clock.slept.clear()
    with pytest.raises(BackendUnavailable):
        RetryPolicy(8.0, clock=clock, sleep=clock.sleep).call(never)
    assert 7.9 <= sum(clock.slept) <= 8.0 + 1e-9  # gave up after 8 s of (fake) time


def test_circuit_breaker_probes_on_the_injected_clock() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(5.0, 30.0, clock=clock)
    assert breaker.allow()
    breaker.failure("down")
    assert not breaker.allow() and 4.0 <= breaker.seconds_to_probe() <= 5.0
    clock.now += 5.0
    assert breaker.allow()
    breaker.failure("still down")  # the interval doubles
    assert 8.0 <= breaker.seconds_to_probe() <= 10.0
    breaker.success()
    assert breaker.allow() and not breaker.open


def _uploader(sink: MemorySink, journal: ListJournal, objects: dict[str, bytes] | None = None) -> Uploader:
    return Uploader(sink, journal, policy=lambda: RetryPolicy(0.0), read_object=(objects or {}).get)


def _task(task_id: str = "t", version: int = 1) -> Record:
    return Record(
        T_TASKS,
        task_id,
        {"task_id": task_id, "status": "running", "started_at": "2026-11-30T00:00:00+00:00", "metadata": {}},
        version=version,
    )


def _step(number: int, task_id: str = "t", version: int = 0, **row: Any) -> Record:
    sid = row.pop("id", f"00000000-0000-4000-8000-{number:012d}")
    return Record(
        T_STEPS,
        sid,
        {
            "id": sid,
            "task_id": task_id,
            "step_number": number,
            "step_type": "action",
            "step_data": {},
            "metadata": {},
            **row,
        },
        version=version,
    )


def test_uploader_sends_in_foreign_key_order_and_sets_a_refused_row_aside() -> None:
    sink, journal = MemorySink(), ListJournal()
    path = "ab/" + "a" * 64 + ".webp"
    clash = _step(2, id="00000000-0000-4000-8000-00000000ffff")  # same number as step 2: refused
    shot = Record(
        T_SHOTS,
        "00000000-0000-4000-8000-0000000000c1",
        {
            "id": "00000000-0000-4000-8000-0000000000c1",
            "task_id": "t",
            "step_id": "00000000-0000-4000-8000-000000000001",
            "screenshot_path": path,
        },
    )
    batch = [_step(1, screenshot_path=path), shot, _step(2), clash, _step(3), _task()]
    _uploader(sink, journal, {path: b"RIFF....WEBP"}).upload(batch)
    assert sink.violations == [] and path in sink.objects
    assert [s["step_number"] for s in sink.steps()] == [1, 2, 3]
    assert [(t, k) for t, k, _ in journal.rejects] == [(T_STEPS, clash.key)]
    assert journal.rejects[0][2]["code"] == "23505"
    assert all(r.done for r in batch)
    acked = [k for t, v in journal.acks if t == T_STEPS for k in v]
    assert sorted(acked) == sorted(r.key for r in batch if r.table == T_STEPS and r is not clash)


def test_uploader_sends_the_newest_version_once_and_a_retry_sends_nothing_twice() -> None:
    sink, journal = MemorySink(), ListJournal()
    up = _uploader(sink, journal)
    up.upload([_task()])
    v0, v1 = (
        _step(1, metadata={"screenshot_pending": True}),
        _step(1, version=1, screenshot_path=None, metadata={}),
    )
    sink.fail_next(1)  # the step upsert fails once: the batch is retried by the caller
    with pytest.raises(Unavailable):
        up.upload([v0, v1])
    up.upload([v0, v1])
    assert sink.steps()[0]["metadata"] == {} and sink.steps()[0]["row_version"] == 1
    assert v0.done and v1.done and sink.stale == []
    assert [n for method, table, n in sink.requests if table == T_STEPS] == [1, 1]  # one row each time


def test_memory_sink_refuses_like_the_database() -> None:
    sink = MemorySink()
    with pytest.raises(RowRejected):
        sink.upsert("task_steps", [_step(1).row | {"row_version": 0}])
    assert sink.violations == ["step 00000000-0000-4000-8000-000000000001 before its task t"]


def test_flush_covers_a_screenshot_still_being_encoded(tmp_path: Path) -> None:
    sink = MemorySink()
    t = StepTracker(title="t", backup_dir=tmp_path, sink=sink, flush_interval=60)
    t.record_step("action", {"a": 1}, screenshot=png_bytes(small_screen(size=(1080, 2400))))
    result = t.flush(WAIT)  # right after: the image is still being encoded
    assert not result.timed_out and result.ok and result.uploaded == 1, result
    (row,) = sink.steps(t.task_id)
    assert row["screenshot_path"] in sink.objects and len(sink.screenshots(t.task_id)) == 1
    assert t.close(5).ok


def test_transient_failures_are_retried_and_counted(tmp_path: Path) -> None:
    sink = MemorySink()
    sink.fail_next(2)
    with StepTracker(title="t", backup_dir=tmp_path, sink=sink, flush_interval=0.01) as t:
        for i in range(5):
            t.record_step("action", {"i": i})
        first = t.flush(WAIT)  # a retry is under way: flush does not wait on a struggling backend
        assert first.uploaded + first.backed_up == 5 and first.ok
        wait_for(lambda: len(sink.steps(t.task_id)) == 5, interval=0.01)
        result = t.flush(WAIT)
    assert result.uploaded == 5 and result.ok and t.stats().retried >= 1
    assert [s["step_number"] for s in sink.steps(t.task_id)] == [1, 2, 3, 4, 5]


def test_a_sink_factory_is_called_on_the_upload_thread(tmp_path: Path) -> None:
    import threading

    made_on: list[str] = []
    sink = MemorySink()

    def factory() -> MemorySink:
        made_on.append(threading.current_thread().name)
        return sink

    with StepTracker(title="t", backup_dir=tmp_path, sink=factory) as t:
        t.record_step("action", {})
    assert made_on == ["stepsdk-upload"] and len(sink.steps(t.task_id)) == 1


def test_a_sink_that_is_not_one_fails_loudly_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sink must be"):
        StepTracker(title="t", backup_dir=tmp_path, sink=42)  # type: ignore[arg-type]


def test_a_tracker_dropped_without_close_finishes_in_the_background(tmp_path: Path) -> None:
    import gc

    from stepsdk.store.backup import BackupStore

    sink = MemorySink()
    t = StepTracker(title="forgotten", backup_dir=tmp_path, sink=sink)
    for i in range(3):
        t.record_step("action", {"i": i})
    task_id = t.task_id
    del t
    gc.collect()
    wait_for(lambda: any(p.parent.name == "archive" for p in tmp_path.rglob("*.log")))
    assert len(sink.steps(task_id)) == 3  # uploaded, and the journal closed and archived
    assert BackupStore(tmp_path).read().journals[0].closed

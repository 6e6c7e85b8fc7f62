"""StepTracker in local mode (the backup is the store): API, validation, failures never reach the agent."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from stepsdk import FlushResult, Level, StepTracker, StepType, TaskStatus
from stepsdk.config import Config
from stepsdk.store.backup import BackupStore, iter_journal
from stepsdk.testing import MemorySink
from tests.fixtures_images import gallery_screen, png_bytes, small_screen
from tests.timing import WAIT, wait_for


def _tracker(tmp_path: Path, **kw: object) -> StepTracker:
    return StepTracker(title="t", backup_dir=tmp_path, supabase_url="", supabase_key="", **kw)


def _steps(tmp_path: Path, task_id: str) -> list[dict]:
    return BackupStore(tmp_path).read().steps.get(task_id, [])


def test_record_returns_step_and_everything_lands_in_backup(tmp_path: Path) -> None:
    seen: list[int] = []
    with _tracker(tmp_path, agent="a") as t:
        t.add_step_callback(lambda s: seen.append(s.step_number))
        s1 = t.record_step(StepType.THINKING, {"analysis": "x"}, thinking="hmm")
        s2 = t.record_step(
            "action",
            {"action": "tap", "x": 1},
            action_result={"ok": True},
            duration_ms=120,
            success=True,
            metadata={"m": 1},
        )
        assert (s1.step_number, s2.step_number) == (1, 2) and s1.id != s2.id
    rows = _steps(tmp_path, t.task_id)
    assert [r["id"] for r in rows] == [s1.id, s2.id] and seen == [1, 2]
    assert rows[0]["thinking"] == "hmm" and rows[0]["step_type"] == "thinking"
    assert rows[1]["action_result"] == {"ok": True} and rows[1]["duration_ms"] == 120.0
    assert rows[1]["metadata"] == {"m": 1}
    task = BackupStore(tmp_path).read().tasks[t.task_id]
    assert task["status"] == "success" and task["agent"] == "a" and task["finished_at"]


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"step_type": "bogus"}, ValueError),
        ({"step_type": 3}, TypeError),
        ({"step_data": [1, 2]}, TypeError),
        ({"step_data": "x"}, TypeError),
        ({"thinking": 5}, TypeError),
        ({"duration_ms": -1}, ValueError),
        ({"duration_ms": float("nan")}, ValueError),
        ({"duration_ms": "5"}, TypeError),
        ({"success": 1}, TypeError),
        ({"error_message": 3}, TypeError),
        ({"metadata": [1]}, TypeError),
        ({"screenshot": 12345}, TypeError),
    ],
)
def test_programming_mistakes_raise_at_the_call(tmp_path: Path, kwargs: dict, exc: type) -> None:
    args = {"step_type": "action"} | kwargs
    with _tracker(tmp_path) as t:
        with pytest.raises(exc):
            t.record_step(**args)
        assert t.stats().recorded == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task_id": ""},
        {"task_id": "x" * 201},
        {"task_id": "a\x00b"},
        {"task_id": "bad-\udcff-id"},
        {"buffer_size": 0},
        {"flush_interval": 0},
        {"level": "LOUD"},
    ],
)
def test_bad_tracker_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        _tracker(tmp_path, **kwargs)


def test_hostile_task_id_is_stored_but_never_a_path(tmp_path: Path) -> None:
    tid = "../../etc/passwd\\..\\:*?<>|"
    with _tracker(tmp_path, task_id=tid) as t:
        t.record_step("action", {})
    assert len(_steps(tmp_path, tid)) == 1
    assert {p.name for p in tmp_path.iterdir()} == {"journal", "numbers"}
    # the step-number counter of a given task id is named by a hash of the id, never the id
    assert [len(p.stem) for p in (tmp_path / "numbers").iterdir()] == [40]


def test_step_context_times_and_records_exceptions(tmp_path: Path) -> None:
    with _tracker(tmp_path) as t:
        with t.step("action", {"action": "launch"}) as s:
            time.sleep(0.02)
            s.action_result = {"launched": True}
        with pytest.raises(ZeroDivisionError), t.step(StepType.ACTION, {"action": "div"}):
            _ = 1 / 0
    ok, bad = _steps(tmp_path, t.task_id)
    assert ok["duration_ms"] >= 20 and ok["action_result"] == {"launched": True} and ok["success"]
    assert not bad["success"] and bad["error_type"] == "ZeroDivisionError"
    assert "division by zero" in bad["error_message"] and "ZeroDivisionError" in bad["stack_trace"]


def test_exception_escaping_marks_task_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), _tracker(tmp_path) as t:
        t.record_step("action", {})
        raise RuntimeError("agent crashed")
    task = BackupStore(tmp_path).read().tasks[t.task_id]
    assert task["status"] == "failed" and "agent crashed" in task["error_message"]


def test_finish_validates_status_and_latest_wins(tmp_path: Path) -> None:
    t = _tracker(tmp_path)
    with pytest.raises(ValueError):
        t.finish("done")
    t.finish(TaskStatus.FAILED, error_message="first")
    t.finish("success", result="second")
    t.close()
    task = BackupStore(tmp_path).read().tasks[t.task_id]
    assert task["status"] == "success" and task["result"] == "second"


def test_callback_errors_are_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with _tracker(tmp_path) as t:
        t.add_step_callback(lambda s: 1 / 0)
        t.record_step("action", {})
    assert "callback" in caplog.text and len(_steps(tmp_path, t.task_id)) == 1


def test_unwritable_backup_never_reaches_the_agent(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    t = StepTracker(backup_dir=blocker / "backup", supabase_url="", supabase_key="")
    for i in range(20):
        t.record_step("action", {"i": i}, screenshot=Image.new("RGB", (8, 8)))
    result = t.close(timeout=WAIT)
    stats = t.stats()
    assert stats.recorded == 20 and stats.backup_errors >= 1 and stats.dropped == 20
    assert "backup write failed" in (stats.last_error or "")
    assert result.pending == 0


def test_bad_screenshots_keep_the_step_with_reason(tmp_path: Path) -> None:
    with _tracker(tmp_path) as t:
        t.record_step("screenshot", {}, screenshot=b"garbage bytes")
        t.record_step("screenshot", {}, screenshot=str(tmp_path / "missing.png"))
        t.record_step("screenshot", {}, screenshot=Image.new("RGB", (40, 80), (1, 2, 3)))
    bad1, bad2, good = _steps(tmp_path, t.task_id)
    assert bad1["screenshot_path"] is None and bad1["metadata"]["screenshot_error"]["reason"]
    assert bad2["metadata"]["screenshot_error"]["reason"] == "not_found"
    store = BackupStore(tmp_path)
    assert store.screenshot_file(good["screenshot_path"]) is not None
    shots = store.read().screenshots[t.task_id]
    assert len(shots) == 1 and shots[0]["step_id"] == good["id"] and shots[0]["file_size"] > 0


def test_level_basic_drops_stack_and_screenshots(tmp_path: Path) -> None:
    with _tracker(tmp_path, level=Level.BASIC) as t:
        t.record_step(
            "error", {"x": "y" * 5000}, stack_trace="Traceback...", screenshot=Image.new("RGB", (8, 8))
        )
    row = _steps(tmp_path, t.task_id)[0]
    assert row["stack_trace"] is None and row["screenshot_path"] is None
    assert "level BASIC" in row["metadata"]["screenshot_dropped"]
    assert row["step_data"]["x"].endswith("…[truncated 4000 chars]")


def test_secrets_never_in_backup_repr_or_stats(tmp_path: Path) -> None:
    key = "sb_secret_THIS_MUST_NOT_LEAK_123"
    t = StepTracker(backup_dir=tmp_path, supabase_url="http://127.0.0.1:9", supabase_key=key, buffer_size=1)
    t.record_step("action", {"api_key": "hunter2-value", "note": f"the key is {key}"}, thinking=key)
    t.close(timeout=1)
    assert key not in repr(t) and key not in repr(t.config) and key not in repr(t.stats())
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert key.encode() not in blob and b"hunter2-value" not in blob


def test_flush_result_in_local_mode(tmp_path: Path) -> None:
    t = _tracker(tmp_path)
    for i in range(300):
        t.record_step("action", {"i": i})
    r = t.flush(timeout=WAIT)
    assert (r.uploaded, r.backed_up, r.pending, r.timed_out) == (0, 300, 0, False)
    t.close()


def test_full_queue_spills_to_disk_nothing_dropped(tmp_path: Path) -> None:
    t = _tracker(tmp_path, max_queue=5)
    for i in range(2000):
        t.record_step("action", {"i": i})
    t.close()
    assert t.stats().spilled > 0
    rows = _steps(tmp_path, t.task_id)
    assert sorted(r["step_number"] for r in rows) == list(range(1, 2001))


def test_records_after_close_go_to_backup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    t = _tracker(tmp_path)
    t.close()
    t.record_step("action", {"late": True})
    assert "after close" in caplog.text
    assert len(_steps(tmp_path, t.task_id)) == 1


def test_many_threads_one_tracker_numbers_unique(tmp_path: Path) -> None:
    import threading

    t = _tracker(tmp_path)
    threads = [
        threading.Thread(target=lambda: [t.record_step("action", {}) for _ in range(250)]) for _ in range(4)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.close()
    rows = _steps(tmp_path, t.task_id)
    assert len(rows) == 1000 and len({r["id"] for r in rows}) == 1000
    assert sorted(r["step_number"] for r in rows) == list(range(1, 1001))


async def test_async_surface_never_blocks_the_loop(tmp_path: Path) -> None:
    """aflush() runs the flush off the event loop: here the flush goes on only once the loop has
    run meanwhile (a flush that blocked the loop would wait for that in vain)."""
    import threading

    flushing = False
    loop_ran = threading.Event()

    async def ticker() -> None:
        while True:
            if flushing:
                loop_ran.set()
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    async with StepTracker(backup_dir=tmp_path, supabase_url="", supabase_key="") as t:
        flush = t.flush

        def flush_once_the_loop_ran(timeout: float) -> FlushResult:
            loop_ran.wait(10)
            return flush(timeout)

        t.flush = flush_once_the_loop_ran  # type: ignore[method-assign]
        for i in range(50):
            t.record_step("action", {"i": i})
        flushing = True
        r = await t.aflush(timeout=WAIT)
        assert loop_ran.is_set() and r.backed_up == 50 and not r.timed_out, r
    tick_task.cancel()
    assert BackupStore(tmp_path).read().tasks[t.task_id]["status"] == "success"


def test_garbage_collected_tracker_still_writes(tmp_path: Path) -> None:
    t = _tracker(tmp_path)
    tid = t.task_id
    for i in range(10):
        t.record_step("action", {"i": i})
    del t
    gc.collect()
    assert wait_for(lambda: len(_steps(tmp_path, tid)) == 10)


def test_interpreter_exit_flushes_pending_steps(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        from stepsdk import StepTracker
        t = StepTracker(task_id="exit-task", backup_dir={str(tmp_path)!r}, supabase_url="", supabase_key="")
        for i in range(500):
            t.record_step("action", {{"i": i}})
        # no close(): atexit must flush
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert len(_steps(tmp_path, "exit-task")) == 500


def test_log_output_is_valid_and_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="stepsdk")
    with _tracker(tmp_path) as t:
        t.record_step("action", {"password": "hunter2"})
    assert "hunter2" not in caplog.text
    line = next(p for p in (tmp_path / "journal").iterdir()).read_bytes().splitlines()[2]
    assert json.loads(line[9:])["row"]["step_data"] == {"password": "[REDACTED:password]"}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exit_is_bounded_and_safe_when_backend_is_down(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import time
        from stepsdk import StepTracker
        t = StepTracker(task_id="down-task", backup_dir={str(tmp_path)!r},
                        supabase_url="http://127.0.0.1:{_closed_port()}", supabase_key="k" * 40)
        for i in range(300):
            t.record_step("action", {{"i": i}})
        print(time.monotonic(), flush=True)
        # no close(): the interpreter exits with the backend down
    """)
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    exit_seconds = time.monotonic() - float(res.stdout.strip())
    assert res.returncode == 0, res.stderr
    assert exit_seconds < 10, exit_seconds
    assert time.monotonic() - start < 20
    assert "k" * 40 not in res.stderr
    assert len(_steps(tmp_path, "down-task")) == 300


def test_with_block_bounded_when_backend_is_down(tmp_path: Path) -> None:
    with StepTracker(
        backup_dir=tmp_path, supabase_url=f"http://127.0.0.1:{_closed_port()}", supabase_key="k" * 40
    ) as t:
        for i in range(100):
            t.record_step("action", {"i": i})
        start = time.monotonic()
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed
    assert len(_steps(tmp_path, t.task_id)) == 100
    assert BackupStore(tmp_path).read().tasks[t.task_id]["status"] == "success"


def test_step_handle_screenshot_and_data(tmp_path: Path) -> None:
    with _tracker(tmp_path) as t, t.step("screenshot", {"a": 1}) as s:
        s.step_data["b"] = 2
        s.screenshot = Image.new("RGB", (16, 16), (9, 9, 9))
        s.success = False
        s.error_message = "element not found"
    row = _steps(tmp_path, t.task_id)[0]
    assert row["step_data"] == {"a": 1, "b": 2} and row["screenshot_path"] and not row["success"]
    assert row["error_message"] == "element not found" and row["error_type"] is None


def test_unencodable_value_keeps_the_step(tmp_path: Path) -> None:
    class Evil:
        def model_dump(self) -> dict:
            raise RuntimeError("boom")

        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    with _tracker(tmp_path) as t:
        t.record_step("action", {"evil": Evil(), "ok": 1}, action_result=Evil())
    row = _steps(tmp_path, t.task_id)[0]
    assert row["step_data"]["ok"] == 1 and "repr failed" in row["step_data"]["evil"]


def test_fork_child_gets_its_own_journal_and_ids(tmp_path: Path) -> None:
    import os

    t = _tracker(tmp_path, task_id="forked")
    for i in range(5):
        t.record_step("action", {"who": "parent", "i": i})
    t.flush(timeout=5)
    pid = os.fork()
    if pid == 0:  # child: record, close, leave without running the parent's atexit
        code = 1
        try:
            for i in range(20):
                t.record_step("action", {"who": "child", "i": i})
            code = 0 if t.close(timeout=5).pending == 0 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for i in range(5):
        t.record_step("action", {"who": "parent", "i": i + 5})
    t.close()
    rows = _steps(tmp_path, "forked")
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30  # no id reused across the fork
    assert sum(r["step_data"]["who"] == "child" for r in rows) == 20
    assert len(list((tmp_path / "journal").iterdir())) == 2


def test_config_and_loose_arguments_conflict(tmp_path: Path) -> None:
    from stepsdk import Config

    with pytest.raises(TypeError, match="not both"):
        StepTracker(config=Config.resolve("", "", tmp_path), backup_dir=tmp_path)
    with pytest.raises(TypeError):
        StepTracker(config={"backup_dir": str(tmp_path)})  # type: ignore[arg-type]


def test_environment_configures_local_mode_folder_and_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("SUPABASE_URL", "SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("STEPSDK_LEVEL", "full")
    with StepTracker(title="env") as t:
        assert t.config.mode == "local" and t.config.level is Level.FULL
        t.record_step("error", {"x": "y" * 50_000}, stack_trace="s" * 30_000)
    row = _steps(tmp_path / "from-env", t.task_id)[0]
    assert len(row["step_data"]["x"]) == 50_000 and len(row["stack_trace"]) == 30_000
    with pytest.raises(ValueError, match="title"):
        StepTracker(title="t" * 2001)
    with pytest.raises(ValueError, match="agent"):
        StepTracker(agent="a" * 201)


def _journaled_ids(t: StepTracker) -> set[str]:
    if not t.journal_path.exists():
        return set()
    return {rec["row"]["id"] for _, rec, _, _ in iter_journal(t.journal_path) if rec and rec["k"] == "step"}


@pytest.mark.slow  # ~3 s: ten full-size screenshots are really encoded
def test_screenshot_encoding_never_delays_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The encoder is held back until the plain step recorded after 10 screenshot steps is in the
    journal: a journal thread that waited for any encoding would never get there."""
    import threading

    from stepsdk.recording.screenshot_stage import ScreenshotStage

    release = threading.Event()
    prepare = ScreenshotStage._prepare

    def held_encoder(self: ScreenshotStage, job: object, metadata: dict) -> tuple:
        release.wait(WAIT)
        return prepare(self, job, metadata)

    monkeypatch.setattr(ScreenshotStage, "_prepare", held_encoder)
    png = png_bytes(gallery_screen(seed=4))  # 1080x2400 photo-like: ~150-350 ms each to encode
    t = _tracker(tmp_path)
    shots = [t.record_step("action", {"n": i}, screenshot=png) for i in range(10)]
    start = time.monotonic()
    plain = t.record_step("action", {"plain": True})
    journaled = wait_for(lambda: plain.id in _journaled_ids(t), interval=0.002)
    latency = time.monotonic() - start
    encoded = t._pipeline.progress.shots_done
    release.set()
    print(f"plain step journaled {latency * 1000:.0f} ms after record_step, behind 10 screenshots")
    assert journaled and encoded == 0, (journaled, encoded)
    assert {s.id for s in shots} <= _journaled_ids(t)  # the screenshot steps are durable too (version 0)
    result = t.close(30)
    assert result.ok, result
    rows = _steps(tmp_path, t.task_id)
    assert len(rows) == 11 and sum(bool(r["screenshot_path"]) for r in rows) == 10
    assert not any("screenshot_pending" in r["metadata"] for r in rows)
    assert len(BackupStore(tmp_path).read().screenshots[t.task_id]) == 10


@pytest.mark.parametrize("buffer_size", [1, 3, 50])
def test_upload_order_with_screenshot_versions(tmp_path: Path, buffer_size: int) -> None:
    sink = MemorySink()
    t = StepTracker(title="t", backup_dir=tmp_path, sink=sink, buffer_size=buffer_size, flush_interval=0.01)
    for i in range(12):
        t.record_step("action", {"i": i}, screenshot=png_bytes(small_screen(seed=i)) if i % 3 else None)
    result = t.close(WAIT)
    assert result.ok and result.uploaded == 12, result
    assert sink.violations == [] and sink.stale == []
    steps = sink.rows["task_steps"]
    assert len(steps) == 12 and sum(bool(r["screenshot_path"]) for r in steps.values()) == 8
    assert not any("screenshot_pending" in r["metadata"] for r in steps.values())
    assert len(sink.rows["step_screenshots"]) == 8 and len(sink.objects) == 8
    step_upserts = sum(
        n for method, table, n in sink.requests if method == "upsert" and table == "task_steps"
    )
    assert 12 <= step_upserts <= 20  # a screenshot step is sent once or twice, never more
    snap = BackupStore(tmp_path).read()  # the journal was archived: everything acknowledged
    assert snap.pending_steps() == [] and snap.pending_screenshots() == []


def test_import_and_construction_stay_light() -> None:
    """`import stepsdk` loads no HTTP or image stack; a remote tracker is built in milliseconds
    (the Supabase client is created later, on the upload thread)."""
    code = textwrap.dedent("""
        import sys, tempfile, time
        import stepsdk
        heavy = sorted(m for m in ("supabase", "httpx", "PIL", "tenacity", "asyncio") if m in sys.modules)
        start = time.thread_time()
        t = stepsdk.StepTracker(backup_dir=tempfile.mkdtemp(), supabase_url="http://127.0.0.1:9", supabase_key="k")
        built = time.thread_time() - start
        t.close(0.5)
        print(heavy, round(built, 3))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    heavy, built = out.stdout.rsplit(" ", 1)
    assert heavy == "[]", out.stdout + out.stderr
    # CPU seconds of the caller's thread (what a loaded machine does not inflate): ~10 ms
    # measured; building the client here (imports included) costs ~0.9 s.
    assert float(built) < 0.3, built


def test_failing_client_creation_is_an_unavailable_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stepsdk.backend.supabase_sink as sink_module

    def broken(config: Config) -> None:
        raise ValueError("bad key format")

    monkeypatch.setattr(sink_module, "SupabaseSink", broken)
    config = Config.resolve("http://127.0.0.1:9", "key", tmp_path, probe_min=0.1, probe_max=0.2)
    t = StepTracker(title="t", config=config, flush_interval=0.01)
    t.record_step("action", {"a": 1})
    result = t.flush(5)
    assert result.backed_up == 1 and result.uploaded == 0 and not result.timed_out, result
    assert t.stats().backend == "down" and "Supabase client" in (t.stats().last_error or "")
    t.close(1)
    assert len(_steps(tmp_path, t.task_id)) == 1


def test_backlog_of_earlier_runs_is_hinted_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    import stepsdk.recording.pipeline as pipeline_module

    with _tracker(tmp_path) as earlier:  # local mode: 3 steps only `stepsdk resync` will upload
        for i in range(3):
            earlier.record_step("action", {"i": i}, screenshot=png_bytes(small_screen()) if i == 0 else None)
    monkeypatch.setattr(pipeline_module, "_backlog_hint", threading.Lock())  # a fresh "process"
    caplog.set_level(logging.WARNING, logger="stepsdk")
    for _ in range(2):
        with StepTracker(title="now", backup_dir=tmp_path, sink=MemorySink(), flush_interval=0.01) as t:
            t.record_step("action", {"now": True})  # its own step is never counted
    hints = [r.getMessage() for r in caplog.records if "earlier runs" in r.getMessage()]
    assert hints == [
        f"stepsdk: 3 steps pending in {tmp_path} from earlier runs (1 journals); "
        "run 'stepsdk resync' to upload them"
    ]


def test_steps_spilled_before_the_task_row_is_journaled_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full queue spills steps on the caller's thread, possibly before the journal thread has
    handled the task row queued first: the uploader must still send the task row first."""
    import threading

    from stepsdk.recording.rows import RowMaker

    slow_row = RowMaker.task_row

    recorded = threading.Event()

    def slow_task(self: RowMaker, task: object) -> dict:
        recorded.wait(WAIT)  # the journal stage is late with the task row: until the 20 are recorded
        return slow_row(self, task)

    monkeypatch.setattr(RowMaker, "task_row", slow_task)
    sink = MemorySink()
    t = StepTracker(
        title="t", backup_dir=tmp_path, sink=sink, buffer_size=5, flush_interval=0.01, max_queue=1
    )
    for i in range(20):
        t.record_step("action", {"i": i})
    recorded.set()
    assert t.stats().spilled >= 15
    result = t.close(WAIT)
    assert sink.violations == [] and result.ok and result.uploaded == 20, (sink.violations, result)
    assert not t.journal_path.exists() and list((tmp_path / "archive").iterdir())  # all done: archived


def test_full_screenshot_queue_holds_the_journal_thread_back_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from stepsdk.recording.screenshot_stage import ScreenshotStage

    release = threading.Event()
    prepare = ScreenshotStage._prepare

    def stuck_encoder(self: ScreenshotStage, job: object, metadata: dict) -> tuple:
        release.wait(WAIT)
        return prepare(self, job, metadata)

    monkeypatch.setattr(ScreenshotStage, "_prepare", stuck_encoder)
    t = _tracker(tmp_path)
    png = png_bytes(small_screen())
    first = [t.record_step("action", {"i": i}, screenshot=png) for i in range(50)]
    shots = t._pipeline.shots
    # The journal thread hands over 33 images (32 queued + 1 being encoded), then waits for room
    # for the 34th, whose batch it has journaled already: from then on it takes nothing new.
    assert wait_for(lambda: shots.queue.qsize() == 32 and len(_journaled_ids(t)) >= 34)
    later = [t.record_step("action", {"i": i}) for i in range(10)]
    time.sleep(0.3)  # time for the journal thread to (wrongly) take the later steps
    assert shots.queue.qsize() == shots.max_queue == 32  # bounded: the images wait in the caller's steps
    journaled = _journaled_ids(t)
    order = [s.id for s in first]
    # Each batch is journaled before its images are queued: a prefix of at least the 33 handed
    # over (32 queued + 1 being encoded); what came after the thread began waiting is not.
    assert len(journaled) >= 33 and journaled == set(order[: len(journaled)])
    release.set()
    assert t.close(WAIT).ok
    rows = _steps(tmp_path, t.task_id)
    assert len(rows) == 60 and sum(bool(r["screenshot_path"]) for r in rows) == 50
    assert {r["id"] for r in rows} >= {s.id for s in later}

"""StepTracker against the local Supabase stack (real PostgreSQL, real supabase client over HTTP)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stepsdk import StepTracker, StepType
from stepsdk.config import Config
from stepsdk.ops.resync import Resync
from stepsdk.store.backup import BackupStore
from tests.timing import WAIT, wait_for


def cfg(stack: Any, tmp_path: Path, **kw: Any) -> Config:
    opts = {
        "probe_min": 0.2,
        "probe_max": 1.0,
        "retry_max_time": 3.0,
        "request_timeout": 2.0,
        "connect_timeout": 1.0,
    } | kw
    return Config.resolve(stack.url, stack.service_role_key, tmp_path, **opts)


def db_steps(stack: Any, task_id: str) -> list[dict]:
    return stack.sql("select * from public.task_steps where task_id = %s order by step_number", (task_id,))


def _ts(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def assert_rows_equal(db: list[dict], backup: list[dict]) -> None:
    """Each DB row equals the recorded (backup) row, column by column."""
    assert len(db) == len(backup)
    for got, want in zip(db, backup, strict=True):
        for col, value in want.items():
            have = got[col]
            if col in ("started_at", "created_at"):
                assert _ts(have) == _ts(value), col
            elif col == "id":
                assert str(have) == value
            else:
                assert have == value, (col, have, value)


def test_steps_uploaded_exactly_once_and_equal(stack: Any, tmp_path: Path) -> None:
    with StepTracker(title="upload", agent="test", config=cfg(stack, tmp_path), buffer_size=40) as t:
        recorded = []
        for i in range(300):
            recorded.append(
                t.record_step(
                    StepType.ACTION if i % 3 else "thinking",
                    {"i": i, "when": dt.date(2026, 1, 1), "nested": {"a": [i]}},
                    thinking=f"thought {i}" if i % 3 == 0 else None,
                    action_result={"ok": i % 2 == 0},
                    duration_ms=i * 1.5,
                    success=i % 7 != 0,
                    error_message="e" if i % 7 == 0 else None,
                    metadata={"password": "secret!"},
                )
            )
        r = t.flush(timeout=WAIT)
        assert (r.uploaded, r.pending, r.rejected, r.timed_out) == (300, 0, 0, False)
    rows = db_steps(stack, t.task_id)
    assert [str(r["id"]) for r in rows] == [s.id for s in recorded]
    assert_rows_equal(rows, BackupStore(tmp_path).read().steps[t.task_id])
    assert rows[0]["step_data"] == {"i": 0, "when": "2026-01-01", "nested": {"a": [0]}}
    assert rows[0]["metadata"] == {"password": "[REDACTED:password]"}
    task = stack.sql("select * from public.tasks where task_id = %s", (t.task_id,))[0]
    assert task["status"] == "success" and task["finished_at"] is not None and task["agent"] == "test"
    assert BackupStore(tmp_path).read().pending_steps() == []
    # fully uploaded: the journal moved to archive/ (kept, readable), journal/ is empty
    assert not list((tmp_path / "journal").iterdir()) and len(list((tmp_path / "archive").iterdir())) == 1


def test_screenshots_object_then_rows(stack: Any, tmp_path: Path) -> None:
    with StepTracker(config=cfg(stack, tmp_path), buffer_size=10) as t:
        img = Image.new("RGB", (120, 240), (10, 200, 30))
        a = t.record_step("screenshot", {}, screenshot=img)
        b = t.record_step("screenshot", {}, screenshot=img)  # same pixels: one object
        t.record_step("screenshot", {}, screenshot=b"\x89PNG broken")
    shots = stack.sql("select * from public.step_screenshots order by created_at")
    assert {str(s["step_id"]) for s in shots} == {a.id, b.id}
    assert len({s["screenshot_path"] for s in shots}) == 1
    data = stack.client().storage.from_("step-screenshots").download(shots[0]["screenshot_path"])
    assert data[:4] == b"RIFF" and len(data) == shots[0]["file_size"]
    bad = db_steps(stack, t.task_id)[2]
    assert bad["screenshot_path"] is None and bad["metadata"]["screenshot_error"]["reason"]


def test_rejected_row_does_not_hold_back_its_batch(stack: Any, tmp_path: Path) -> None:
    first = StepTracker(task_id="dup-task", config=cfg(stack, tmp_path / "a"), buffer_size=50)
    for i in range(5):
        first.record_step("action", {"tracker": 1, "i": i})
    first.close()
    # A second tracker on the same task restarts numbering: steps 1-5 break unique(task_id, step_number).
    second = StepTracker(task_id="dup-task", config=cfg(stack, tmp_path / "b"), buffer_size=50)
    for i in range(10):
        second.record_step("action", {"tracker": 2, "i": i})
    r = second.flush(timeout=WAIT)
    second.close()
    assert r.rejected == 5 and r.uploaded == 5
    rows = db_steps(stack, "dup-task")
    assert [(r["step_data"]["tracker"], r["step_number"]) for r in rows] == [(1, n) for n in range(1, 6)] + [
        (2, n) for n in range(6, 11)
    ]
    snap = BackupStore(tmp_path / "b").read()
    assert len(snap.rejected) == 5
    assert len(list((tmp_path / "b" / "journal").iterdir())) == 1  # rejected rows keep it in journal/
    assert all(v["error"]["code"] == "23505" for v in snap.rejected.values())


def test_429_retry_after_is_honoured(stack: Any, tmp_path: Path) -> None:
    stack.faults.fail_next("POST /rest/v1/task_steps", n=1, status=429, retry_after=1)
    t = StepTracker(config=cfg(stack, tmp_path), buffer_size=5, flush_interval=0.1)
    start = time.monotonic()
    for i in range(5):
        t.record_step("action", {"i": i})
    assert wait_for(lambda: t.stats().uploaded == 5)
    elapsed = time.monotonic() - start
    t.close()
    assert t.stats().retried >= 1 and elapsed >= 0.9
    assert len(db_steps(stack, t.task_id)) == 5


def test_wrong_key_keeps_everything_pending_not_rejected(stack: Any, tmp_path: Path) -> None:
    bad = Config.resolve(stack.url, "not-a-valid-key-at-all", tmp_path, probe_min=0.2, retry_max_time=1.0)
    t = StepTracker(config=bad, buffer_size=5)
    for i in range(10):
        t.record_step("action", {"i": i})
    r = t.close(timeout=WAIT)
    assert r.rejected == 0 and r.uploaded == 0 and r.backed_up == 10
    assert t.stats().backend == "down" and "not-a-valid-key" not in (t.stats().last_error or "")
    assert len(BackupStore(tmp_path).read().pending_steps()) == 10


def test_backend_down_then_back_backlog_uploaded_in_background(
    stack: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stepsdk")
    t = StepTracker(config=cfg(stack, tmp_path), buffer_size=20, flush_interval=0.2, max_in_memory=100)
    t.record_step("action", {"before": True})
    assert t.flush(timeout=WAIT).uploaded == 1
    with stack.faults.outage():
        for i in range(600):
            t.record_step("action", {"i": i})
        r = t.flush(timeout=WAIT)
        # it returns once the steps are safe in the backup, not when the backend is back
        assert r.backed_up == 600 and r.pending == 0 and not r.timed_out, r
        assert wait_for(lambda: t.stats().backend == "down")
        assert t.stats().in_memory <= 100  # bounded: the rest waits on disk only
    assert "unreachable" in caplog.text
    assert wait_for(lambda: t.stats().uploaded == 601), t.stats()
    assert "reachable again" in caplog.text
    t.close()
    rows = db_steps(stack, t.task_id)
    assert len(rows) == 601 and len({r["id"] for r in rows}) == 601
    assert BackupStore(tmp_path).read().pending_steps() == []


def test_flush_and_close_bounded_when_requests_hang(stack: Any, tmp_path: Path) -> None:
    stack.faults.hang_next("* *", n=50, seconds=20)
    t = StepTracker(config=cfg(stack, tmp_path, request_timeout=15.0, retry_max_time=30.0), buffer_size=5)
    for i in range(30):
        t.record_step("action", {"i": i})
    start = time.monotonic()
    r = t.flush(timeout=2)
    c = t.close(timeout=2)
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed
    assert r.pending == 0 and c.pending == 0 and c.backed_up + c.uploaded == 30
    assert len(BackupStore(tmp_path).read().steps[t.task_id]) == 30


def test_unwritable_backup_still_uploads_and_agent_unaffected(stack: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the backup folder should be")
    t = StepTracker(config=cfg(stack, blocker / "backup"), buffer_size=10, flush_interval=0.1)
    for i in range(40):
        t.record_step("action", {"i": i}, screenshot=Image.new("RGB", (8, 8), (i, 0, 0)) if i == 3 else None)
    r = t.close(timeout=WAIT)
    stats = t.stats()
    assert r.uploaded == 40 and stats.dropped == 0 and stats.backup_errors >= 1
    assert len(db_steps(stack, t.task_id)) == 40
    assert stack.sql("select count(*) as n from public.step_screenshots")[0]["n"] == 1


def test_later_stage_failure_never_recounts_or_resends(stack: Any, tmp_path: Path) -> None:
    first = StepTracker(task_id="stage-task", config=cfg(stack, tmp_path / "a"))
    first.record_step("action", {"first": True})
    first.close()
    # Steps go through (one rejected: its number is taken), then the screenshot rows fail for a while.
    stack.faults.fail_next("POST /rest/v1/step_screenshots", n=6, status=503)
    t = StepTracker(
        task_id="stage-task",
        config=cfg(stack, tmp_path / "b", retry_max_time=0.3),
        buffer_size=10,
        flush_interval=0.1,
    )
    for i in range(3):
        t.record_step(
            "screenshot", {"i": i}, screenshot=Image.new("RGB", (8, 8), (0, 0, 200)) if i == 2 else None
        )
    assert wait_for(lambda: stack.sql("select count(*) as n from public.step_screenshots")[0]["n"] == 1)
    t.close(timeout=WAIT)
    stats = t.stats()
    assert (stats.uploaded, stats.rejected) == (2, 1), stats
    snap = BackupStore(tmp_path / "b").read()
    assert len(snap.rejected) == 1
    assert snap.pending_screenshots() == [] and len(snap.pending_steps()) == 1  # the rejected one
    assert stack.faults.requests("POST /rest/v1/task_steps") <= 4  # not re-sent after the steps stage passed


def test_late_steps_after_an_archived_close_are_kept(stack: Any, tmp_path: Path) -> None:
    t = StepTracker(task_id="late", config=cfg(stack, tmp_path))
    t.record_step("action", {"n": 1})
    t.close()
    assert len(list((tmp_path / "archive").iterdir())) == 1
    t.record_step("action", {"late": True})  # after close: backup only
    t.finish("success")
    t.close()  # closes the journal the late records went to
    report = Resync(tmp_path, cfg(stack, tmp_path)).run()
    assert report.ok and report.uploaded["task_steps"] == 1
    assert len(list((tmp_path / "archive").iterdir())) == 2  # both archives kept
    assert len(db_steps(stack, "late")) == 2
    assert len(BackupStore(tmp_path).read().steps["late"]) == 2


def test_step_uploaded_before_its_screenshot_is_completed_by_version_1(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 0 (no screenshot yet) reaches Supabase while the image is still being encoded;
    version 1 then fills in screenshot_path and metadata, and the screenshot row follows."""
    import threading

    from stepsdk.recording.screenshot_stage import ScreenshotStage
    from tests.fixtures_images import png_bytes, small_screen

    encoded = threading.Event()
    prepare = ScreenshotStage._prepare

    def slow_encoder(self: ScreenshotStage, job: Any, metadata: dict) -> tuple:
        encoded.wait(WAIT)  # a long encode: released once version 0 is stored
        return prepare(self, job, metadata)

    monkeypatch.setattr(ScreenshotStage, "_prepare", slow_encoder)
    with StepTracker(config=cfg(stack, tmp_path), buffer_size=1, flush_interval=0.01) as t:
        step = t.record_step(
            "action", {"a": 1}, screenshot=png_bytes(small_screen()), metadata={"keep": "me"}
        )
        assert wait_for(lambda: len(db_steps(stack, t.task_id)) == 1)
        early = db_steps(stack, t.task_id)[0]
        encoded.set()
    assert early["screenshot_path"] is None and early["metadata"] == {
        "keep": "me",
        "screenshot_pending": True,
    }
    row = db_steps(stack, t.task_id)[0]
    shots = stack.sql("select * from public.step_screenshots where step_id = %s", (step.id,))
    assert row["metadata"] == {"keep": "me"} and row["screenshot_path"] == shots[0]["screenshot_path"]
    assert len(shots) == 1 and t.stats().uploaded == 1
    assert BackupStore(tmp_path).read().pending_steps() == []

"""One bad value, id or neighbour never costs other steps (issue #11), through the public API,
the CLI and the local Supabase stack."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from stepsdk import StepTracker
from stepsdk.backend.retry import ErrorClass, classify
from stepsdk.cli import main
from stepsdk.ops.resync import Resync
from stepsdk.store.backup import BackupStore, JournalWriter, encode_record
from stepsdk.testing import MemorySink
from tests.fixtures_images import png_bytes, small_screen
from tests.recording.test_lifecycle import cfg, db_steps, db_task
from tests.timing import WAIT


def local(tmp_path: Path, **kw: Any) -> StepTracker:
    return StepTracker(backup_dir=tmp_path, supabase_url="", supabase_key="", **kw)


# ------------------------------------------------------------------------------------------ 1. reused task id
def test_a_reused_task_id_resumes_the_task(stack: Any, tmp_path: Path) -> None:
    config = cfg(stack, tmp_path)
    with StepTracker(task_id="again", title="first run", config=config) as first:
        for i in range(5):
            first.record_step("action", {"run": 1, "i": i})
    started = db_task(stack, "again")["started_at"]
    time.sleep(0.05)
    with StepTracker(task_id="again", title="second run", config=config) as second:
        steps = [second.record_step("action", {"run": 2, "i": i}) for i in range(3)]
    assert [s.step_number for s in steps] == [6, 7, 8]
    rows = db_steps(stack, "again")
    assert [r["step_number"] for r in rows] == list(range(1, 9))
    assert [r["step_data"]["run"] for r in rows] == [1] * 5 + [2] * 3
    task = db_task(stack, "again")
    assert task["started_at"] == started and task["status"] == "success" and task["title"] == "second run"
    assert not BackupStore(tmp_path).read().rejected


def test_a_forked_child_uploads_with_numbers_of_its_own(stack: Any, tmp_path: Path) -> None:
    t = StepTracker(task_id="forked", title="parent", config=cfg(stack, tmp_path), flush_interval=0.05)
    for i in range(3):
        t.record_step("action", {"who": "parent", "i": i})
    assert t.flush(WAIT).uploaded == 3
    pid = os.fork()
    if pid == 0:  # the child: records, flushes, closes, reports by its exit status
        code = 3
        try:
            for i in range(4):
                t.record_step("action", {"who": "child", "i": i})
            result = t.flush(WAIT)
            code = 0 if (not result.timed_out and result.uploaded == 4) else 1
            t.close(WAIT)
        finally:
            os._exit(code)
    for i in range(3):
        t.record_step("action", {"who": "parent", "i": 3 + i})
    assert t.close(WAIT).ok
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    rows = db_steps(stack, "forked")
    numbers = [r["step_number"] for r in rows]
    assert len(rows) == 10 and len(set(numbers)) == 10
    assert sorted(r["step_data"]["who"] for r in rows) == ["child"] * 4 + ["parent"] * 6
    assert not BackupStore(tmp_path).read().rejected


def test_step_numbers_continue_locally_and_never_collide_between_threads(tmp_path: Path) -> None:
    with local(tmp_path, task_id="local-again") as t:
        t.record_step("action", {})
    trackers = [local(tmp_path, task_id="local-again") for _ in range(3)]
    numbers: list[int] = []
    lock = threading.Lock()

    def record(tr: StepTracker) -> None:
        got = [tr.record_step("action", {}).step_number for _ in range(50)]
        with lock:
            numbers.extend(got)

    threads = [threading.Thread(target=record, args=(tr,)) for tr in trackers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for tr in trackers:
        tr.close()
    assert len(set(numbers)) == 150 and min(numbers) == 2
    with local(tmp_path, task_id="local-again") as last:
        assert last.record_step("action", {}).step_number == max(numbers) + 1


# ------------------------------------------------------------------------------------------ 2. unencodable ids
def test_a_task_id_with_a_lone_surrogate_is_refused_at_the_call(tmp_path: Path) -> None:
    bad = os.fsdecode(b"run-\xff")
    with pytest.raises(ValueError, match="lone surrogate"):
        local(tmp_path, task_id=bad)


def test_one_unencodable_task_never_holds_back_the_folder(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder holding a task whose id no database can store (written by an older version, or
    by hand) and 30 steps of other tasks: resync uploads the 30 and reports the bad one."""
    bad = "bad-\udcff-id"
    writer = JournalWriter(tmp_path)
    writer.append(
        [
            {"k": "task", "v": 1, "row": {"task_id": bad, "status": "running", "metadata": {}}},
            {
                "k": "step",
                "row": {
                    "id": "00000000-0000-4000-8000-000000000001",
                    "task_id": bad,
                    "step_number": 1,
                    "step_type": "action",
                    "step_data": {},
                    "metadata": {},
                },
            },
        ]
    )
    writer.close()
    ids = []
    for n in range(3):
        with local(tmp_path, title=f"good {n}") as t:
            for i in range(10):
                t.record_step("action", {"i": i})
        ids.append(t.task_id)
    report = Resync(tmp_path, cfg(stack, tmp_path)).run()
    assert report.uploaded["task_steps"] == 30 and not report.aborted
    assert sum("valid task_id" in p or "valid id" in p for p in report.problems) == 2, report.problems
    for task_id in ids:
        assert len(db_steps(stack, task_id)) == 10
    # every reader serves the rest: status and export succeed, the record is reported
    for var, value in (
        ("SUPABASE_URL", ""),
        ("SUPABASE_SECRET_KEY", ""),
        ("STEPSDK_BACKUP_DIR", str(tmp_path)),
    ):
        monkeypatch.setenv(var, value)
    assert main(["status", "--json"]) == 0
    assert main(["export", "-o", str(tmp_path / "out.json")]) == 0
    exported = json.loads((tmp_path / "out.json").read_text())
    assert sorted(b["task"]["task_id"] for b in exported["tasks"]) == sorted(ids)


def test_a_local_encoding_error_is_a_rejected_row_not_a_network_failure() -> None:
    try:
        "\udcff".encode("utf-8")
    except UnicodeEncodeError as exc:
        assert classify(exc) is ErrorClass.REJECTED
    assert classify(TypeError("Object of type set is not JSON serializable")) is ErrorClass.REJECTED


# ------------------------------------------------------------------------------------------ 3. values that fail late
def test_a_microsecond_duration_is_refused_at_the_call(tmp_path: Path) -> None:
    with local(tmp_path) as t:
        with pytest.raises(ValueError, match="milliseconds are expected"):
            t.record_step("action", {}, duration_ms=1.7e15)
        t.record_step("action", {}, duration_ms=30 * 24 * 3600 * 1000.0)  # 30 days is still fine
        assert t.stats().recorded == 1


def test_a_step_that_fails_conversion_is_kept_as_a_placeholder_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepsdk.recording.rows import RowMaker

    real = RowMaker._step_row

    def fragile(self: RowMaker, step: Any) -> dict:
        if step.step_data.get("i") == 7:
            raise OverflowError("date value out of range")
        return real(self, step)

    monkeypatch.setattr(RowMaker, "_step_row", fragile)
    with local(tmp_path) as t:
        for i in range(251):
            t.record_step("action", {"i": i})
    assert t.stats().degraded == 1
    rows = BackupStore(tmp_path).read().steps[t.task_id]
    assert len(rows) == 251
    (odd,) = [r for r in rows if "record_error" in r["metadata"]]
    assert odd["step_number"] == 8 and "OverflowError" in odd["metadata"]["record_error"]
    assert sum(r["step_data"].get("i") is not None for r in rows) == 250


# ------------------------------------------------------------------------------------------ 4. resync beside a live tracker
def test_an_older_version_never_replaces_a_newer_one_in_supabase(stack: Any, tmp_path: Path) -> None:
    from stepsdk.backend.supabase_sink import SupabaseSink

    sink = SupabaseSink(cfg(stack, tmp_path))
    task = {
        "task_id": "versions",
        "status": "success",
        "started_at": "2026-11-30T00:00:00+00:00",
        "finished_at": "2026-11-30T00:01:00+00:00",
        "metadata": {},
    }
    sink.upsert("tasks", [{**task, "row_version": 20}])
    sink.upsert("tasks", [{**task, "status": "running", "finished_at": None, "row_version": 10}])
    assert db_task(stack, "versions")["status"] == "success"
    step = {
        "id": "00000000-0000-4000-8000-0000000000aa",
        "task_id": "versions",
        "step_number": 1,
        "step_type": "action",
        "step_data": {},
        "metadata": {},
        "screenshot_path": "ab/" + "a" * 64 + ".webp",
    }
    sink.upsert("task_steps", [{**step, "row_version": 1}])
    sink.upsert(
        "task_steps",
        [{**step, "screenshot_path": None, "metadata": {"screenshot_pending": True}, "row_version": 0}],
    )
    (row,) = db_steps(stack, "versions")
    assert row["screenshot_path"] and row["metadata"] == {}
    sink.close()


def test_resync_beside_a_live_tracker_leaves_the_newest_versions(stack: Any, tmp_path: Path) -> None:
    config = cfg(stack, tmp_path)
    t = StepTracker(title="live", config=config, buffer_size=5, flush_interval=0.05)
    stop = threading.Event()
    reports: list[Any] = []

    def resyncs() -> None:
        while not stop.is_set():
            reports.append(Resync(tmp_path, config).run())

    th = threading.Thread(target=resyncs)
    th.start()
    try:
        for i in range(40):
            t.record_step(
                "action", {"i": i}, screenshot=png_bytes(small_screen(seed=i)) if i % 4 == 0 else None
            )
            time.sleep(0.005)
        t.finish("success")
        t.close()
    finally:
        stop.set()
        th.join(60)
    final = Resync(tmp_path, config).run()
    assert final.ok and len(reports) >= 1
    assert db_task(stack, t.task_id)["status"] == "success"
    rows = db_steps(stack, t.task_id)
    assert len(rows) == 40 and sum(bool(r["screenshot_path"]) for r in rows) == 10
    assert not any("screenshot_pending" in r["metadata"] for r in rows)
    assert not BackupStore(tmp_path).read().pending_steps()


# ------------------------------------------------------------------------------------------ 5. folder deleted
def test_backup_folder_deleted_mid_run_is_detected_recreated_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="stepsdk")
    backup = tmp_path / "backup"
    t = local(backup)
    for i in range(5):
        t.record_step("action", {"i": i})
    assert t.flush(WAIT).backed_up == 5
    shutil.rmtree(backup)
    for i in range(5, 10):
        t.record_step("action", {"i": i})
        t.record_step("thinking", thinking=f"more {i}")
    result = t.close(WAIT)
    rows = BackupStore(backup).read().steps[t.task_id]
    assert [r["step_number"] for r in rows] == list(range(6, 16))  # every step after the deletion
    assert not result.ok and result.dropped == 5
    assert any("deleted" in reason for reason in result.lost_reasons), result
    assert sum("was deleted while in use" in r.getMessage() for r in caplog.records) == 1


# ------------------------------------------------------------------------------------------ 6. disk full
DISK_FULL = """
import json, resource, signal, sys
from stepsdk import StepTracker
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG instead
t = StepTracker(backup_dir=sys.argv[1], supabase_url="", supabase_key="")
t.record_step("action", {"first": True})
t.flush(60)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))  # the disk is full now
for i in range(200):
    t.record_step("action", {"i": i, "pad": "x" * 100})
r = t.close(60)
print(json.dumps({"ok": r.ok, "dropped": r.dropped, "pending": r.pending, "reasons": r.lost_reasons,
                  "flushed_ok": r.ok}))
"""


def test_disk_full_is_never_reported_ok(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "STEPSDK_"))}
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path)], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["ok"] and out["dropped"] > 150 and out["pending"] == 0
    assert any("backup unwritable" in reason for reason in out["reasons"]), out


def test_unwritable_backup_is_counted_as_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    t = local(blocker / "backup")
    for i in range(20):
        t.record_step("action", {"i": i})
    result = t.close(timeout=WAIT)
    assert result.dropped == 20 and not result.ok and result.pending == 0
    assert result.lost_reasons == {"backup unwritable (local mode: nowhere else to keep it)": 20}


# ------------------------------------------------------------------------------------------ 7. a mistyped field
def _line(record: dict) -> bytes:
    body = json.dumps(record).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def test_a_mistyped_field_is_one_skipped_record_for_every_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local(tmp_path, title="fine") as t:
        for i in range(3):
            t.record_step("action", {"i": i})
    bad = {
        "k": "step",
        "row": {
            "id": "00000000-0000-4000-8000-0000000000bb",
            "task_id": t.task_id,
            "step_number": 9,
            "step_type": "action",
            "step_data": {},
            "success": "yes",
            "metadata": {},
        },
    }
    (tmp_path / "journal" / "hand-edited.log").write_bytes(
        encode_record({"k": "open", "pid": None}) + _line(bad)
    )
    snap = BackupStore(tmp_path).read()
    assert len(snap.steps[t.task_id]) == 3
    assert [p for p in snap.problems if "hand-edited.log" in p] == [
        "hand-edited.log at byte 33: mistyped field: success is not a boolean; record skipped"
    ]
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(tmp_path))
    monkeypatch.setenv("SUPABASE_URL", "")
    assert main(["status", "--json"]) == 0
    assert main(["export", "-o", str(tmp_path / "out.json")]) == 0
    from stepsdk.viewer.data.backup_source import BackupSource
    from stepsdk.viewer.data.base import Sort, TaskFilters

    rows, total = BackupSource(tmp_path).list_tasks(TaskFilters(), Sort(), 1, 50)
    assert total == 1 and rows[0]["task_id"] == t.task_id


def test_memory_sink_sees_the_same_run_as_supabase(tmp_path: Path) -> None:
    sink = MemorySink()
    with StepTracker(title="mem", backup_dir=tmp_path, sink=sink) as t:
        t.record_step("action", {"a": 1}, screenshot=png_bytes(small_screen()))
        t.record_step("error", error=RuntimeError("no element at (180, 132)"))
    steps = sink.steps(t.task_id)
    assert [s["step_number"] for s in steps] == [1, 2] and steps[0]["screenshot_path"] in sink.objects
    assert steps[1]["error_type"] == "RuntimeError" and steps[1]["error_category"] == "device"
    assert sink.tasks()[t.task_id]["status"] == "success" and sink.violations == []

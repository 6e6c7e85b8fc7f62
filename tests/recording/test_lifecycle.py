"""Whole agent lives against the local Supabase stack (issue #10): the end of a run right after a
screenshot, SIGTERM and SIGKILL of a recording process, a tight loop of screenshots then close,
an export restored after the task was deleted, and exit against a backend that never answers."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from stepsdk import StepTracker
from stepsdk.cli import main
from stepsdk.config import Config
from stepsdk.recording.signals import EXIT_BOUND
from stepsdk.recording.tracker import CLOSE_TIMEOUT, EXIT_TIMEOUT
from stepsdk.store.backup import BackupStore
from tests.timing import LOAD_SLACK, WAIT, wait_for


def cfg(stack: Any, backup: Path, **kw: Any) -> Config:
    return Config.resolve(stack.url, stack.service_role_key, backup, **kw)


def db_task(stack: Any, task_id: str) -> dict[str, Any]:
    (row,) = stack.sql("select * from public.tasks where task_id = %s", (task_id,))
    return row


def db_steps(stack: Any, task_id: str) -> list[dict[str, Any]]:
    return stack.sql("select * from public.task_steps where task_id = %s order by step_number", (task_id,))


def db_shots(stack: Any, task_id: str) -> list[dict[str, Any]]:
    return stack.sql("select * from public.step_screenshots where task_id = %s", (task_id,))


def phone_png(seed: int, size: tuple[int, int] = (1080, 2400)) -> bytes:
    """A phone-sized PNG with some structure (bars, rows, text), like an agent's screen."""
    img = Image.new("RGB", size, (250 - seed % 40, 248, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, size[0], 160), fill=(30, 90 + seed % 100, 200))
    for row in range(18):
        y = 200 + row * 120
        draw.rectangle((40, y, size[0] - 40, y + 100), outline=(120, 120, 120), width=3)
        draw.text((70, y + 40), f"Row {row} of screen {seed}", fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ the end of a run
def test_finish_right_after_a_screenshot_never_stalls(stack: Any, tmp_path: Path) -> None:
    """The last step carries a screenshot and finish() follows at once (what PhoneAgent.run()
    does): finish() must cover the screenshot, never waiting for the next periodic upload (the
    interval is longer than finish's timeout here), 20 runs of 20."""
    screens = [phone_png(0, (270, 600)), phone_png(1, (270, 600)), phone_png(2)]  # the last one 1080x2400
    for run in range(20):
        backup = tmp_path / f"run{run}"
        t = StepTracker(title=f"run {run}", config=cfg(stack, backup), flush_interval=2 * WAIT)
        for i, png in enumerate(screens):
            t.record_step("action", {"i": i}, screenshot=png)
            time.sleep(0.02)
        result = t.finish("success", timeout=WAIT)
        assert not result.timed_out and result.ok, (run, result)
        t.close()
        steps = db_steps(stack, t.task_id)
        assert [s["step_number"] for s in steps] == [1, 2, 3]
        assert all(s["screenshot_path"] for s in steps), run
        assert len(db_shots(stack, t.task_id)) == 3
        assert db_task(stack, t.task_id)["status"] == "success"


def test_tight_loop_of_screenshots_then_close_loses_nothing_silently(stack: Any, tmp_path: Path) -> None:
    """200 screenshot steps as fast as possible, then close() with a short budget: every step
    has its screenshot row or a visible metadata.screenshot_error, and the count is reported."""
    pngs = [phone_png(i, (540, 1200)) for i in range(4)]
    t = StepTracker(title="tight", config=cfg(stack, tmp_path))
    for i in range(200):
        t.record_step("action", {"i": i}, screenshot=pngs[i % 4])
    result = t.close(timeout=1.0)
    from stepsdk.ops.resync import resync

    report = resync(tmp_path, cfg(stack, tmp_path))  # whatever close left to the backup
    assert report.ok, report
    steps = db_steps(stack, t.task_id)
    assert len(steps) == 200
    with_shot = [s for s in steps if s["screenshot_path"]]
    with_error = [s for s in steps if "screenshot_error" in s["metadata"]]
    assert len(with_shot) + len(with_error) == 200
    assert not any("screenshot_pending" in s["metadata"] for s in steps)
    assert result.screenshots_lost == len(with_error) == t.stats().screenshots_lost
    assert all(s["metadata"]["screenshot_error"]["reason"] == "close_timeout" for s in with_error)
    if with_error:
        assert not result.ok and result.lost_reasons == {"screenshot: close_timeout": len(with_error)}
    shot_steps = {r["step_id"] for r in db_shots(stack, t.task_id)}
    assert shot_steps == {s["id"] for s in with_shot}


# ------------------------------------------------------------------------------------------ ends of life
CHILD = """
import json, os, sys, time
from stepsdk import StepTracker
backup, url, key, task_id, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
t = StepTracker(task_id=task_id, title="killed", backup_dir=backup, supabase_url=url, supabase_key=key,
                flush_interval=0.05)
for i in range(n):
    t.record_step("action", {"i": i})
t.flush(60)
print("ready", flush=True)
time.sleep(60)
"""


def _child(stack: Any, backup: Path, task_id: str, n: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "STEPSDK_"))}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(backup), stack.url, stack.service_role_key, task_id, str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_sigterm_marks_the_task_interrupted_at_once(stack: Any, tmp_path: Path) -> None:
    proc = _child(stack, tmp_path, "sigterm-run", 25)
    assert db_task(stack, "sigterm-run")["status"] == "running"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM  # the process still ends as SIGTERM would end it
    # the handler's work is bounded by EXIT_BOUND (+0.2 s to join its thread)
    assert time.monotonic() - started < EXIT_BOUND + 0.2 + LOAD_SLACK
    task = db_task(stack, "sigterm-run")
    assert task["status"] == "interrupted" and task["finished_at"] is not None
    assert task["metadata"]["interrupted"] == {"signal": "SIGTERM"}
    steps = db_steps(stack, "sigterm-run")
    assert [s["step_number"] for s in steps] == list(range(1, 26))


@pytest.mark.parametrize("found_by", ["resync", "status", "tracker"])
def test_sigkill_is_found_by_the_next_resync_status_or_tracker(
    stack: Any, tmp_path: Path, found_by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = f"sigkill-{found_by}"
    proc = _child(stack, tmp_path, task_id, 12)
    proc.kill()
    assert proc.wait(10) == -signal.SIGKILL
    assert db_task(stack, task_id)["status"] == "running"
    monkeypatch.setenv("SUPABASE_URL", stack.url)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", stack.service_role_key)
    if found_by == "status":
        assert main(["status", "--backup-dir", str(tmp_path), "--json"]) == 0
        assert BackupStore(tmp_path).read().tasks[task_id]["status"] == "interrupted"  # marked locally
    if found_by == "tracker":
        import stepsdk.recording.pipeline as pipeline_module

        monkeypatch.setattr(pipeline_module, "_housekept", set())  # a fresh process
        with StepTracker(title="next run", config=cfg(stack, tmp_path)):
            wait_for(lambda: db_task(stack, task_id)["status"] != "running")
    else:
        assert main(["resync", "--backup-dir", str(tmp_path)]) == 0
    task = db_task(stack, task_id)
    assert task["status"] == "interrupted"
    abandoned = task["metadata"]["abandoned"]
    assert abandoned["pid"] == proc.pid and abandoned["host"] == socket.gethostname()
    assert [s["step_number"] for s in db_steps(stack, task_id)] == list(range(1, 13))
    # the mark is made once: a second look finds nothing left to do
    assert main(["resync", "--backup-dir", str(tmp_path)]) == 0
    assert db_task(stack, task_id)["metadata"]["abandoned"]["detected_at"] == abandoned["detected_at"]


# ------------------------------------------------------------------------------------------ restore an export
def _export(tmp_path: Path, task_id: str, name: str) -> dict[str, Any]:
    import zipfile

    out = tmp_path / name
    assert main(["export", task_id, "--with-screenshots", "-o", str(out)]) == 0
    with zipfile.ZipFile(out) as z:
        data = json.loads(z.read("export.json"))
        images = {n: z.read(n) for n in z.namelist() if n.startswith("screenshots/")}
    (bundle,) = data["tasks"]
    return {
        "task": bundle["task"],
        "steps": bundle["steps"],
        "screenshots": bundle["screenshots"],
        "images": images,
    }


def test_export_delete_import_resync_restores_everything(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = tmp_path / "backup"
    with StepTracker(task_id="restore-me", title="restore", config=cfg(stack, backup)) as t:
        for i in range(30):
            t.record_step(
                "action",
                {"i": i},
                screenshot=phone_png(i % 5, (180, 400)) if i % 3 == 0 else None,
                thinking=f"step {i}",
            )
    monkeypatch.setenv("SUPABASE_URL", stack.url)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", stack.service_role_key)
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(backup))
    first = _export(tmp_path, "restore-me", "first.zip")
    assert len(first["steps"]) == 30 and len(first["screenshots"]) == 10 and len(first["images"]) == 5
    # the task is deleted in Supabase, rows and objects
    stack.sql("delete from public.tasks where task_id = 'restore-me'")
    stack.client().storage.from_("step-screenshots").remove([p.split("/", 1)[1] for p in first["images"]])
    assert main(["import", str(tmp_path / "first.zip")]) == 0
    assert main(["resync"]) == 0
    second = _export(tmp_path, "restore-me", "second.zip")
    assert second == first


# ------------------------------------------------------------------------------------------ exit bounds
@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel completes the handshake) and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


EXIT_CHILD = """
import atexit, sys, time
# Registered before stepsdk's own handler, so it runs after it (atexit is last in, first out):
# it prints how long stepsdk's exit work took (the interpreter's own teardown is not ours).
atexit.register(lambda: print(time.monotonic(), flush=True))
from stepsdk import StepTracker
t = StepTracker(title="exit", backup_dir=sys.argv[1], supabase_url=sys.argv[2], supabase_key="k")
time.sleep(1.5)  # the client is made on the upload thread meanwhile
for i in range(20):
    t.record_step("action", {"i": i})
print(time.monotonic(), flush=True)
"""


@pytest.mark.parametrize("backend", ["black_hole", "closed_port"])
def test_flush_exit_and_interpreter_exit_are_bounded(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(backend)
    t = StepTracker(title="flush", backup_dir=tmp_path / "a", supabase_url=url, supabase_key="k")
    time.sleep(1.5)
    for i in range(20):
        t.record_step("action", {"i": i})
    # A request in flight for SLOW_REQUEST (0.75 s) no longer holds a flush back (the rows are
    # safe in the backup): this flush must not time out, although the black hole's request only
    # ends at request_timeout (10 s). How fast it lets go is benchmarks/bench_exit.py's to say.
    result = t.flush(8.0)
    assert result.backed_up == 20 and not result.timed_out, result
    started = time.monotonic()
    with t:
        pass
    assert time.monotonic() - started < CLOSE_TIMEOUT + LOAD_SLACK  # finish + close: one budget
    assert len(BackupStore(tmp_path / "a").read().steps[t.task_id]) == 20
    # interpreter exit (atexit), in a child process
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD, str(tmp_path / "b"), url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    recorded, exited = map(float, proc.stdout.split())
    assert exited - recorded < EXIT_TIMEOUT + LOAD_SLACK
    (steps,) = BackupStore(tmp_path / "b").read().steps.values()
    assert len(steps) == 20

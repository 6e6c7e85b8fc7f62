"""Hostile review of the rebuilt recording pipeline (issues #10 and #11). Each test shows one
defect found by the review; they fail on branch `pipeline` as of b89d312."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stepsdk import StepTracker
from stepsdk.backend.sink import BackendUnavailable
from stepsdk.config import Config
from stepsdk.recording.abandoned import abandoned_tasks
from stepsdk.store.backup import BackupStore
from stepsdk.testing import MemorySink
from tests.timing import LOAD_SLACK, WAIT, wait_for


def local(tmp_path: Path, **kw: Any) -> StepTracker:
    return StepTracker(backup_dir=tmp_path, supabase_url="", supabase_key="", **kw)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "STEPSDK_"))}


def wait_housekeeping() -> None:
    assert wait_for(lambda: not any(t.name == "stepsdk-housekeeping" for t in threading.enumerate()))


# ------------------------------------------------------------------------------------------ numbering
def test_forked_child_of_a_generated_task_id_never_reuses_the_parents_step_numbers(tmp_path: Path) -> None:
    """README: "Trackers of the same task at the same time (a forked child process, ...) get
    disjoint step numbers". A generated task id counts in memory: the child inherits the counter."""
    t = local(tmp_path)  # task_id=None: the default
    for i in range(3):
        t.record_step("action", {"who": "parent", "i": i})
    assert t.flush(WAIT).backed_up == 3
    pid = os.fork()
    if pid == 0:
        try:
            for i in range(3):
                t.record_step("action", {"who": "child", "i": i})
            t.close(WAIT)
        finally:
            os._exit(0)
    for i in range(3):
        t.record_step("action", {"who": "parent", "i": 3 + i})
    t.close(WAIT)
    os.waitpid(pid, 0)
    rows = BackupStore(tmp_path).read().steps[t.task_id]
    assert len(rows) == 9
    numbers = [r["step_number"] for r in rows]
    assert len(set(numbers)) == 9, f"duplicate step numbers (refused as 23505 in Supabase): {sorted(numbers)}"


# ------------------------------------------------------------------------------------------ abandoned tasks
def test_a_forked_worker_that_exits_does_not_mark_the_live_parents_task_abandoned(tmp_path: Path) -> None:
    """multiprocessing (fork) workers end with os._exit: the pipeline restarted in the child left a
    journal with the parent's task row (same version), no close record, and a dead pid. The
    reader picks that journal for the task (ties go to the later file), so the task of a parent
    that is alive and recording is marked interrupted/abandoned by `status`, `resync` or any
    tracker start."""
    t = local(tmp_path, task_id="parent-alive", title="long run")
    t.record_step("action", {"i": 0})
    t.flush(WAIT)
    pid = os.fork()
    if pid == 0:  # a multiprocessing worker: does its work, never touches the tracker, os._exit
        time.sleep(0.3)
        os._exit(0)
    os.waitpid(pid, 0)
    t.record_step("action", {"i": 1})
    t.flush(WAIT)
    try:
        marks = abandoned_tasks(BackupStore(tmp_path).read())
        assert [row["task_id"] for row, _ in marks] == [], "a live process's task is marked abandoned"
    finally:
        t.close(5)


KILLED = textwrap.dedent("""
    import sys, time
    from stepsdk import StepTracker
    t = StepTracker(task_id="resumed", title="first", backup_dir=sys.argv[1], supabase_url="", supabase_key="")
    for i in range(3):
        t.record_step("action", {"i": i})
    t.flush(60)
    print("ready", flush=True)
    time.sleep(60)
""")


def test_resuming_a_killed_task_is_not_marked_interrupted_while_it_runs(tmp_path: Path) -> None:
    """A scheduler restarts a SIGKILLed run with the same task id (README: it resumes). The new
    tracker's own start-up housekeeping runs before its task row is journaled, sees the old
    `running` row of the dead writer and marks the task interrupted with a version newer than the
    live tracker's row: the viewer shows the live run as interrupted, and when this run is killed
    in turn it is never detected (the newest row is no longer `running`)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=clean_env()
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    t = local(tmp_path, task_id="resumed", title="second")
    try:
        t.record_step("action", {"run": 2})
        wait_housekeeping()
        t.flush(WAIT)
        assert BackupStore(tmp_path).read().tasks["resumed"]["status"] == "running"
    finally:
        t.close(5)


CRASHES = textwrap.dedent("""
    import sys
    from stepsdk import StepTracker
    t = StepTracker(task_id="crashed", title="agent", backup_dir=sys.argv[1], supabase_url="", supabase_key="")
    for i in range(3):
        t.record_step("action", {"i": i})
    raise RuntimeError("the agent crashed")
""")


def test_an_agent_that_dies_of_an_uncaught_exception_does_not_stay_running_for_ever(tmp_path: Path) -> None:
    """The commonest way an agent dies: an exception escapes (no `with`, no finish()). atexit
    flushes and closes the journal (a close record) but never finishes the task, and the
    abandoned-task lookup skips closed journals: the task is `running` for ever."""
    proc = subprocess.run(
        [sys.executable, "-c", CRASHES, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert proc.returncode == 1 and "the agent crashed" in proc.stderr
    snap = BackupStore(tmp_path).read()
    assert len(snap.steps["crashed"]) == 3
    marks = abandoned_tasks(snap)
    status = marks[0][0]["status"] if marks else snap.tasks["crashed"]["status"]
    assert status != "running", "a process that exited long ago left its task running, undetectable"


# ------------------------------------------------------------------------------------------ fork
FORK_EARLY = textwrap.dedent("""
    import os, signal, sys, time

    class SlowImport:  # Pillow's import takes ~0.4 s, as on a loaded machine or a cold disk
        def find_spec(self, name, path=None, target=None):
            if name == "PIL.Image":
                time.sleep(0.4)
            return None

    sys.meta_path.insert(0, SlowImport())
    from stepsdk import StepTracker
    t = StepTracker(backup_dir=sys.argv[1], supabase_url="", supabase_key="")
    t.record_step("action", {"i": 0})
    time.sleep(0.1)
    pid = os.fork()  # e.g. a multiprocessing pool made right after the tracker
    if pid == 0:
        signal.alarm(30)  # a deadlocked child dies of SIGALRM instead of hanging the test
        from PIL import Image  # the child's own work
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    t.close(5)
    print(os.waitstatus_to_exitcode(status))
""")


def test_forking_soon_after_a_tracker_starts_never_deadlocks_the_child(tmp_path: Path) -> None:
    """The screenshot thread imports Pillow when it starts (~30 ms idle, much more under load).
    A fork during that import leaves the module locks held in the child by a thread that does
    not exist there: the child deadlocks on its first `import PIL` (and the child's own
    screenshot stage never starts, so its close() always waits its whole timeout)."""
    proc = subprocess.run(
        [sys.executable, "-c", FORK_EARLY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) == 0, "the child deadlocked importing PIL (killed by SIGALRM)"


# ------------------------------------------------------------------------------------------ SIGTERM
TIGHT_LOOP = textwrap.dedent("""
    import sys
    from stepsdk import StepTracker
    t = StepTracker(task_id="term", backup_dir=sys.argv[1], supabase_url="", supabase_key="", max_queue=1)
    data = {f"k{i}": ("eyJ Bearer " * 150) for i in range(20)}  # slow to sanitize: regexes
    print("go", flush=True)
    while True:
        t.record_step("action", data)
""")


def sigterm_outcomes(script: str, tmp_path: Path) -> list[int | str]:
    """Three runs of `script` (it prints "go" once it loops), each sent SIGTERM half a second
    later: the exit status of each, or "hung" when it had not ended 10 s after the signal
    (`docker stop`'s grace period; stepsdk's handler takes EXIT_BOUND = 1.8 s at most)."""
    outcomes: list[int | str] = []
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / str(attempt))],
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
            outcomes.append(proc.returncode)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            outcomes.append("hung")
    return outcomes


def test_sigterm_while_a_step_spills_on_the_callers_thread_ends_the_process(tmp_path: Path) -> None:
    """A full queue makes record_step write on the caller's thread, inside Sanitizer.field()'s
    non-reentrant lock. A SIGTERM there runs the handler on the same thread: finish/close write
    the task row through the same sanitizer and wait on that lock for ever. The process never
    ends (docker stop then SIGKILLs it after its grace period; the task stays running)."""
    assert sigterm_outcomes(TIGHT_LOOP, tmp_path) == [-signal.SIGTERM] * 3


# ------------------------------------------------------------------------------------------ counts
class SwitchSink(MemorySink):
    """A MemorySink whose backend is down until `down` is set False."""

    down = True

    def _maybe_fail(self) -> None:
        if self.down:
            raise BackendUnavailable("down")
        super()._maybe_fail()


def test_records_waiting_on_disk_lost_with_a_deleted_folder_are_never_reported_ok(tmp_path: Path) -> None:
    """Backend down, memory full: records wait in the journal on disk only. The folder is
    deleted: those 25 steps are gone for good, yet close() answers ok=True, backed_up=26 (they
    count as "safe in the backup"), dropped=0, and lost_reasons counts 1 (an event, not steps)."""
    backup = tmp_path / "b"
    sink = SwitchSink()
    config = Config.resolve("", "", backup, retry_max_time=0.05, probe_min=0.1, probe_max=0.2)
    t = StepTracker(config=config, sink=sink, buffer_size=5, max_in_memory=5, flush_interval=0.05)
    for i in range(30):
        t.record_step("action", {"i": i})
    assert t.flush(WAIT).backed_up == 30
    shutil.rmtree(backup)
    t.record_step("action", {"i": 30})
    sink.down = False
    result = t.close(WAIT)
    arrived = len(sink.steps(t.task_id))
    stats = t.stats()
    assert arrived == 31 or (not result.ok and result.dropped >= 25), (arrived, result, stats)


def test_local_counts_add_up_after_the_folder_is_deleted(tmp_path: Path) -> None:
    """recorded = backed_up + dropped + pending: steps journaled before a deletion are counted
    both as backed_up and as dropped."""
    backup = tmp_path / "b"
    t = local(backup)
    for i in range(5):
        t.record_step("action", {"i": i})
    t.flush(WAIT)
    shutil.rmtree(backup)
    for i in range(10):
        t.record_step("action", {"i": i})
    result = t.close(WAIT)
    stats = t.stats()
    assert result.dropped == 5
    assert result.backed_up + result.dropped + result.pending == 15, result
    assert stats.backed_up + stats.dropped == stats.recorded == 15, stats


# ------------------------------------------------------------------------------------------ hostile values
def test_an_owner_id_that_is_not_a_uuid_is_refused_at_the_call_not_by_every_step(tmp_path: Path) -> None:
    """tasks.owner_id is a uuid column: a bad value would be refused with the task row, then every
    step as a foreign-key violation. It is refused at the call instead, with a clear message."""
    with pytest.raises(ValueError, match="UUID"):
        Config.resolve("http://127.0.0.1:9", "k", tmp_path, owner_id="alice")
    with pytest.raises(ValueError, match="UUID"):
        StepTracker(task_id="owned", backup_dir=tmp_path, supabase_url="", supabase_key="", owner_id="alice")


THREAD_MADE = textwrap.dedent("""
    import sys, threading, time
    from stepsdk import StepTracker
    made = threading.Event()
    def worker():  # a web server / job runner makes trackers on its worker threads
        t = StepTracker(task_id="threaded", backup_dir=sys.argv[1], supabase_url="", supabase_key="")
        t.record_step("action", {"i": 0})
        t.flush(5)
        made.set()
        time.sleep(60)
    threading.Thread(target=worker, daemon=True).start()
    made.wait()
    print("ready", flush=True)
    time.sleep(60)
""")


GIVEN_ID_LOOP = textwrap.dedent("""
    import sys
    from stepsdk import StepTracker
    t = StepTracker(task_id="term-numbers", backup_dir=sys.argv[1], supabase_url="", supabase_key="",
                    max_queue=10**9)
    print("go", flush=True)
    while True:
        t.record_step("action")
""")


def test_sigterm_while_step_numbers_are_reserved_ends_the_process(tmp_path: Path) -> None:
    """A given task id reserves numbers under flock() on the agent's thread (once per 32
    steps). A SIGTERM there runs the handler on that thread: close() -> StepNumbers.release()
    opens the counter file again and flock()s a second open file description, which blocks on
    the lock the interrupted frame holds: the process never ends."""
    assert sigterm_outcomes(GIVEN_ID_LOOP, tmp_path) == [-signal.SIGTERM] * 3


# ------------------------------------------------------------------------------------------ memory bound
class CountingSink(SwitchSink):
    """Down until `down` is False; then takes rows and keeps only their number (no storage)."""

    def __init__(self) -> None:
        super().__init__()
        self.step_rows = 0

    def upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._maybe_fail()
            if table == "task_steps":
                self.step_rows += len(rows)


def test_draining_a_disk_backlog_keeps_memory_bounded_by_max_in_memory(tmp_path: Path) -> None:
    """UploadStage._reload_backlog does `list(iter_journal(path, backlog_offset, end))`: every
    record from the backlog's start to the end of the journal is decoded and held at once, to
    keep `room` of them; and each reload parses the rest again (quadratic drain). With
    max_in_memory=100 and 2,000 steps of ~2 KB waiting on disk, the drain peaks at ~10 MB (the
    whole backlog) instead of ~100 records, and takes ~15x longer than from memory."""
    import tracemalloc

    sink = CountingSink()
    config = Config.resolve("", "", tmp_path, retry_max_time=0.05, probe_min=0.05, probe_max=0.1)
    t = StepTracker(config=config, sink=sink, buffer_size=50, max_in_memory=100, flush_interval=0.05)
    n = 2000
    for i in range(n):
        t.record_step("action", {"i": i, "pad": "p" * 2000})
    assert t.flush(30).backed_up == n
    tracemalloc.start()
    try:
        sink.down = False
        deadline = time.monotonic() + 60
        while sink.step_rows < n and time.monotonic() < deadline:
            time.sleep(0.05)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        t.close(5)
    assert sink.step_rows == n
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB while draining 100 records at a time"


def test_one_huge_int_never_costs_its_neighbours(tmp_path: Path) -> None:
    """An int over Python's 4,300-digit str limit passes the sanitizer; encoding the journal line
    raises ValueError, record_line's fallback keeps top-level ints and raises again, outside
    Journal.append's try: the journal stage drops the whole batch it was writing (here every
    step and the task row: nothing in the backup, `pending=11`, no reason given)."""
    t = local(tmp_path, task_id="huge-int")
    for i in range(5):
        t.record_step("action", {"i": i})
    t.record_step("action", {"i": "big"}, action_result=10**5000)
    for i in range(5, 10):
        t.record_step("action", {"i": i})
    t.record_step("action", {"n": 10**5000})
    result = t.close(WAIT)
    steps = BackupStore(tmp_path).read().steps.get("huge-int", [])
    good = [r for r in steps if isinstance(r["step_data"].get("i"), int)]
    assert len(good) == 10, (len(steps), result)
    assert result.pending == 0, result


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ failed")


def test_an_exception_whose_str_fails_is_recorded_never_raised_into_the_agent(tmp_path: Path) -> None:
    """record_step(error=exc) calls str(exc) on the caller's thread: a broken __str__ raises
    into the agent; `with tracker.step()` replaces the block's own exception by it."""
    t = local(tmp_path, task_id="broken-str")
    try:
        step = t.record_step("action", error=BrokenStr())
        assert step.success is False
        try:
            with t.step("action"):
                raise BrokenStr()
        except BrokenStr:
            pass  # the block's own exception, as documented: "recorded ... and re-raised"
    finally:
        t.close(5)
    assert len(BackupStore(tmp_path).read().steps["broken-str"]) == 2


IGNORES_SIGTERM = textwrap.dedent("""
    import os, signal, sys, time
    from stepsdk import StepTracker
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # this program chose to ignore SIGTERM
    t = StepTracker(task_id="ignores", supabase_url=sys.argv[1], supabase_key=sys.argv[2], backup_dir=sys.argv[3])
    t.record_step("action", {"i": 0})
    os.kill(os.getpid(), signal.SIGTERM)  # ignored, as the program asked: it goes on
    time.sleep(0.3)
    for i in range(1, 4):
        t.record_step("action", {"i": i})
    r = t.finish("success", timeout=60)
    t.close(60)
    print(r.uploaded, flush=True)
""")


def test_a_sigterm_the_program_ignores_does_not_end_the_recording(stack: Any, tmp_path: Path) -> None:
    """With SIGTERM set to SIG_IGN before the tracker, stepsdk's handler still marks the task
    interrupted and closes the tracker, then returns (the process goes on, as it asked). Every
    later step is a "late" step kept in the backup only: never uploaded, and finish() reports
    nothing uploaded."""
    proc = subprocess.run(
        [sys.executable, "-c", IGNORES_SIGTERM, stack.url, stack.service_role_key, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    steps = stack.sql("select step_number from public.task_steps where task_id = 'ignores'")
    tasks = stack.sql("select status from public.tasks where task_id = 'ignores'")
    assert len(steps) == 4 and [t["status"] for t in tasks] == ["success"], (len(steps), tasks, proc.stdout)


def test_a_task_resumed_after_an_import_continues_its_step_numbers(tmp_path: Path) -> None:
    """README: a tracker whose task_id this backup folder has recorded before resumes after the
    last number. `stepsdk import` writes the task's steps into the folder but not the
    numbers/ counter: a tracker resuming the imported task numbers from 1 again, and every one
    of its steps is a duplicate (task_id, step_number), refused by Supabase (23505)."""
    from stepsdk.cli import main

    first, second = tmp_path / "first", tmp_path / "second"
    with local(first, task_id="moved") as t:
        for i in range(5):
            t.record_step("action", {"run": 1, "i": i})
    export = tmp_path / "moved.json"
    assert main(["export", "moved", "--backup-dir", str(first), "--local", "-o", str(export)]) == 0
    assert main(["import", str(export), "--backup-dir", str(second)]) == 0
    with local(second, task_id="moved") as t:
        numbers = [t.record_step("action", {"run": 2, "i": i}).step_number for i in range(3)]
    assert numbers == [6, 7, 8]


SLOW_BACKEND = textwrap.dedent("""
    import sys, time
    from stepsdk import StepTracker
    from stepsdk.testing import MemorySink
    class Slow(MemorySink):  # a healthy backend on a slow link: every request takes 1 s
        def upsert(self, table, rows):
            time.sleep(1.0)
            super().upsert(table, rows)
    sink = Slow()
    with StepTracker(task_id="slow", backup_dir=sys.argv[1], supabase_url="", supabase_key="", sink=sink) as t:
        for i in range(3):
            t.record_step("action", {"i": i})
    print(len(sink.steps("slow")), sink.tasks()["slow"]["status"] if "slow" in sink.tasks() else None, flush=True)
""")


PIL_LOOP = textwrap.dedent("""
    import resource, sys
    from PIL import Image
    from stepsdk import StepTracker
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = StepTracker(backup_dir=sys.argv[1], supabase_url="", supabase_key="")
    for i in range(120):  # a screen-recording agent: fresh 1080x2400 frames, faster than WebP encodes
        t.record_step("screenshot", screenshot=Image.new("RGB", (1080, 2400), (i % 256, 100, 100)))
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024
    t.close(1)
    print(grown)
""")


def test_a_close_that_runs_out_of_time_says_so(tmp_path: Path) -> None:
    """Pipeline.shutdown() drops force_flush()'s result and always answers timed_out=False,
    even when the close ran out of time and abandoned screenshots (FlushResult.timed_out: "the
    wait hit its timeout")."""
    from PIL import Image

    t = local(tmp_path)
    for i in range(10):
        t.record_step("screenshot", screenshot=Image.new("RGB", (1080, 2400), (i, 100, 100)))
    started = time.monotonic()
    result = t.close(0.2)
    assert time.monotonic() - started < 0.2 + LOAD_SLACK
    assert result.screenshots_lost > 0, result  # it did run out of time
    assert result.timed_out, result


def test_a_killed_container_agent_is_found_abandoned_by_the_next_container(tmp_path: Path) -> None:
    """Docker gives every container a new hostname. An agent OOM-killed in one container leaves a
    journal whose writer host is not this host's name: `writer_alive` answers "cannot tell,
    assume alive" and dead_writer_journals skips it, so the next container on the same backup
    volume never marks the task: `running` for ever (the commonest SIGKILL is a container's)."""
    from stepsdk.store.backup import decode_line, encode_record

    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=clean_env()
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    (journal,) = (tmp_path / "journal").glob("*.log")
    lines = journal.read_bytes().splitlines(keepends=True)
    header = decode_line(lines[0])
    header["host"] = "3f2a9c1be0d4"  # the container that was killed (this one has another name)
    journal.write_bytes(encode_record(header) + b"".join(lines[1:]))
    marks = abandoned_tasks(BackupStore(tmp_path).read())
    assert [row["task_id"] for row, _ in marks] == ["resumed"]


def test_a_fork_while_another_thread_reserves_step_numbers_never_freezes_the_parent(tmp_path: Path) -> None:
    """StepNumbers._update holds an flock on a freshly opened counter file. A fork at that moment
    (another thread forking workers: multiprocessing, ProcessPoolExecutor with the fork context)
    gives the child a copy of that open file description, and the lock with it: the parent's
    next reservation (every 32 steps) blocks in flock() until the child exits, freezing the
    agent's thread inside record_step for the child's whole life."""
    t = local(tmp_path, task_id="fork-flock", max_queue=10**9)
    recorded = [0]
    stop = threading.Event()

    def agent() -> None:
        while not stop.is_set():
            t.record_step("action")
            recorded[0] += 1

    th = threading.Thread(target=agent, daemon=True)
    th.start()
    kids = []
    live, release = os.pipe()  # the workers live until `release` is closed
    try:
        for _ in range(20):  # worker processes that live for a while
            pid = os.fork()
            if pid == 0:
                os.close(release)
                os.read(live, 1)  # returns when the parent closes its end
                os._exit(0)
            kids.append(pid)
            time.sleep(0.005)
        before = recorded[0]
        # two step-number reservations (one per 32 steps) while the workers still live
        progressed = wait_for(lambda: recorded[0] - before > 64)
    finally:
        stop.set()
        os.close(release)
        os.close(live)
        for pid in kids:
            os.waitpid(pid, 0)
        th.join(10)
        t.close(WAIT)
    assert progressed, "the agent's thread was frozen in record_step while the forked workers lived"


def test_a_counter_file_emptied_by_a_crash_does_not_restart_step_numbers(tmp_path: Path) -> None:
    """StepNumbers._update rewrites the counter with ftruncate() then pwrite(), never fsynced: a
    SIGKILL between the two, or a power loss (ext4 delayed allocation), leaves it empty. The
    next tracker of the task then numbers from 1 while the backup holds steps 1..5: duplicates
    (task_id, step_number), refused by Supabase. The backup itself knows the last number."""
    from stepsdk.recording.numbering import counter_path

    with local(tmp_path, task_id="emptied") as t:
        for i in range(5):
            t.record_step("action", {"run": 1, "i": i})
    counter_path(tmp_path, "emptied").write_bytes(b"")  # what the crash left
    with local(tmp_path, task_id="emptied") as t:
        numbers = [t.record_step("action", {"run": 2}).step_number for _ in range(3)]
    assert numbers == [6, 7, 8]


# ------------------------------------------------------------------------------------------ stale reads
def test_a_task_finished_after_the_backup_was_read_is_not_marked_abandoned(tmp_path: Path) -> None:
    """Resync beside a live tracker (found flaky under load): resync reads the folder while the
    task is `running`, the tracker then finishes and closes (its lease released), and the
    lookup, asking about writers only now, took the read's `running` for a dead writer's: the
    finished task was marked `interrupted` with a newer version than its `success`."""
    t = StepTracker(title="finishing", backup_dir=tmp_path, supabase_url="", supabase_key="")
    t.record_step("action", {"i": 1})
    assert t.flush(WAIT).ok
    snap = BackupStore(tmp_path).read()  # what a concurrent resync saw
    assert snap.tasks[t.task_id]["status"] == "running"
    t.finish("success")
    t.close(5)
    assert abandoned_tasks(snap) == []
    assert abandoned_tasks(BackupStore(tmp_path).read()) == []

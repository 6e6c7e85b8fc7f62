"""Chaos against the local Supabase stack: flaky requests, whole-run outage, memory under outage,
several threads and processes sharing one backup folder. Sizes are small; counts are exact."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image

from stepsdk import StepTracker
from stepsdk.config import Config
from stepsdk.ops.resync import Resync
from stepsdk.store.backup import BackupStore
from tests.timing import LOAD_SLACK, WAIT, wait_for


def cfg(stack: Any, folder: Path, **kw: Any) -> Config:
    opts = {
        "probe_min": 0.2,
        "probe_max": 1.0,
        "retry_max_time": 20.0,
        "request_timeout": 1.0,
        "connect_timeout": 1.0,
    } | kw
    return Config.resolve(stack.url, stack.service_role_key, folder, **opts)


def _ts(v: Any) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v)


@pytest.mark.slow
def test_flaky_fifth_of_requests_fail_in_mixed_ways(stack: Any, tmp_path: Path) -> None:
    n = 500
    stack.faults.fail_fraction(
        "* /rest/v1/*",
        0.2,
        kinds=("500", "503", "429", "reset", "hang", "commit_then_fail"),
        seed=7,
        hang_seconds=3.0,
        retry_after=0,
    )
    stack.faults.fail_fraction("* /storage/v1/*", 0.2, kinds=("500", "reset", "commit_then_fail"), seed=8)
    t = StepTracker(config=cfg(stack, tmp_path), buffer_size=10, flush_interval=0.2)
    shot = Image.new("RGB", (64, 128), (5, 5, 5))
    for i in range(n):
        t.record_step("action", {"i": i}, screenshot=shot if i % 100 == 0 else None)
    assert wait_for(lambda: t.stats().uploaded == n, timeout=120), t.stats()
    t.close(timeout=WAIT)
    injected = stack.faults.injected
    stack.faults.clear()
    assert sum(injected.values()) >= 15 and len(injected) >= 5, injected  # the faults really happened
    row = stack.sql(
        "select count(*) as n, count(distinct id) as ids, count(distinct step_number) as nums "
        "from public.task_steps where task_id = %s",
        (t.task_id,),
    )[0]
    assert row == {"n": n, "ids": n, "nums": n}
    assert stack.sql("select count(*) as n from public.step_screenshots")[0]["n"] == 5
    snap = BackupStore(tmp_path).read()
    assert snap.pending_steps() == [] and snap.pending_screenshots() == [] and snap.pending_tasks() == []
    assert t.stats().retried > 0


@pytest.mark.slow
def test_outage_for_whole_run_then_resync_exact(stack: Any, tmp_path: Path) -> None:
    n = 800
    stack.faults.start_outage()
    try:
        t = StepTracker(title="offline run", config=cfg(stack, tmp_path, retry_max_time=2.0), buffer_size=50)
        recorded = [
            t.record_step(
                "action" if i % 2 else "thinking",
                {"i": i, "nested": {"k": [i, str(i)]}},
                thinking=f"t{i}",
                duration_ms=float(i),
                success=i % 5 != 0,
                screenshot=Image.new("RGB", (32, 32), (i % 256, 0, 0)) if i % 200 == 0 else None,
            )
            for i in range(n)
        ]
        start = time.monotonic()
        result = t.finish("success", result="done offline")
        t.close()
        bounded = time.monotonic() - start
        assert bounded < 5.0 + 5.0 + LOAD_SLACK, bounded  # finish() and close(): 5 s each at most (defaults)
        assert result.backed_up == n and result.uploaded == 0 and result.pending == 0
    finally:
        stack.faults.end_outage()
    report = Resync(tmp_path, cfg(stack, tmp_path)).run()
    assert report.ok, report
    assert report.uploaded["task_steps"] == n and report.uploaded["objects"] == 4
    rows = stack.sql("select * from public.task_steps where task_id = %s order by step_number", (t.task_id,))
    assert [str(r["id"]) for r in rows] == [s.id for s in recorded]
    backup_rows = BackupStore(tmp_path).read().steps[t.task_id]
    for got, want in zip(rows, backup_rows, strict=True):
        for col, value in want.items():
            if col in ("started_at", "created_at"):
                assert _ts(got[col]) == _ts(value)
            else:
                assert (str(got[col]) if col == "id" else got[col]) == value, col
    task = stack.sql("select status, result from public.tasks where task_id = %s", (t.task_id,))[0]
    assert task == {"status": "success", "result": "done offline"}
    again = Resync(tmp_path, cfg(stack, tmp_path)).run()
    assert sum(again.uploaded.values()) == 0 and again.ok
    assert list((tmp_path / "archive").iterdir())  # uploaded journals archived, not deleted


@pytest.mark.slow
def test_memory_flat_while_backend_down(stack: Any, tmp_path: Path) -> None:
    proc = psutil.Process()
    with stack.faults.outage():
        t = StepTracker(
            config=cfg(stack, tmp_path, retry_max_time=1.0), buffer_size=50, max_queue=2000, max_in_memory=500
        )
        payload = {"action": "tap", "text": "x" * 300}
        for _ in range(5000):
            t.record_step("action", payload)
        t.flush(timeout=WAIT)
        before = proc.memory_info().rss
        for _ in range(25000):
            t.record_step("action", payload)
        t.flush(timeout=WAIT)
        after = proc.memory_info().rss
        stats = t.stats()
        t.close(timeout=WAIT)
    assert stats.in_memory <= 500 and stats.dropped == 0
    growth_mb = (after - before) / 1e6
    print(f"RSS growth over 25,000 steps with the backend down: {growth_mb:.1f} MB")
    assert growth_mb < 25, growth_mb
    assert len(BackupStore(tmp_path).read().steps[t.task_id]) == 30000


def _process_tracker(folder: str, tag: int, n: int) -> None:
    t = StepTracker(task_id=f"proc-{tag}", backup_dir=folder, supabase_url="", supabase_key="")
    for i in range(n):
        t.record_step("action", {"proc": tag, "i": i})
    t.close()


@pytest.mark.slow
def test_threads_and_processes_share_one_backup_folder(stack: Any, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_tracker, args=(str(tmp_path), k, 400)) for k in (1, 2)]
    for p in procs:
        p.start()
    shared = StepTracker(task_id="threads", backup_dir=tmp_path, supabase_url="", supabase_key="")
    own = [
        StepTracker(task_id=f"own-{k}", backup_dir=tmp_path, supabase_url="", supabase_key="")
        for k in range(2)
    ]

    def work(k: int) -> None:
        for i in range(300):
            shared.record_step("action", {"thread": k, "i": i})
            if k < 2:
                own[k].record_step("action", {"i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for tr in [shared, *own]:
        tr.close()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    report = Resync(tmp_path, cfg(stack, tmp_path)).run()
    assert report.ok, report
    counts = {
        r["task_id"]: r["n"]
        for r in stack.sql("select task_id, count(distinct id) as n from public.task_steps group by task_id")
    }
    assert counts == {"threads": 1200, "own-0": 300, "own-1": 300, "proc-1": 400, "proc-2": 400}
    assert stack.sql("select count(*) as n from public.task_steps")[0]["n"] == 2600

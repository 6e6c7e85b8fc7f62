"""The backup index at scale: build, page times, incremental update, memory.

    .venv/bin/python benchmarks/bench_index.py [--tasks 100000] [--steps 2000000] [--journals 100]
        [--runs 5] [--dir DIR] [--keep]

Generates a backup folder (TASKS tasks spread over JOURNALS journals with STEPS steps in total,
plus one task of 1,000 steps; 20 agents; every 37th step failed with a message carrying numbers),
then, in a fresh process (so RSS is the viewer's, not the generator's):
  * first open: the first task-list call on a new BackupSource, which builds the index;
  * the median of RUNS of each page's data-source calls (what the page or API route waits for);
  * an incremental update: one more journal with a 1,000-step task, then the next list call;
  * RSS (current and peak) of that process and the size of the index file.
Prints a markdown table (milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VERBS = ["open", "tap", "enable", "check", "swipe to", "search for", "buy", "close"]
OBJECTS = [
    "wifi toggle",
    "settings menu",
    "checkout button",
    "cart",
    "search field",
    "profile page",
    "notification",
    "login form",
    "map view",
    "camera",
]
TYPES = ["thinking", "action", "screenshot", "action", "validation"]


def _step(task_id: str, t: int, n: int, started: datetime) -> dict[str, Any]:
    failed = (t + n) % 37 == 0
    thinking = TYPES[n % len(TYPES)] == "thinking"
    return {
        "k": "step",
        "row": {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}")),
            "task_id": task_id,
            "step_number": n,
            "step_type": TYPES[n % len(TYPES)],
            "name": f"{VERBS[n % 8]} {OBJECTS[(t + n) % 10]}",
            "step_data": {"action": VERBS[n % 8], "x": (t * 7 + n) % 1080, "y": (t * 13 + n) % 2400},
            "thinking": f"Step {n}: I will {VERBS[(t + n) % 8]} the {OBJECTS[(t * 3 + n) % 10]} on screen {t % 50}",
            "action_result": {"ok": not failed},
            "screenshot_path": None,
            "duration_ms": float(50 + (t * 7 + n * 13) % 2000),
            "success": not failed,
            "error_type": "ElementNotFound" if failed else None,
            "error_message": f"no element at ({(t * 7) % 1080}, {(n * 13) % 2400})" if failed else None,
            "stack_trace": None,
            "started_at": None,
            "metadata": {},
            "created_at": (started + timedelta(seconds=n)).isoformat(),
            # a model call's tokens on thinking steps; a category on failed ones
            "usage": (
                {"prompt_tokens": 400 + n, "completion_tokens": 20 + t % 50, "total_tokens": 420 + n + t % 50}
                if thinking
                else None
            ),
            "error_category": ("device" if n % 2 else "timeout") if failed else None,
        },
    }


def generate(root: Path, tasks: int, steps: int, journals: int) -> float:
    from stepsdk.store.backup import JournalWriter

    start = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    per_task, extra = divmod(steps, tasks)
    writers = [JournalWriter(root, name=f"bench-{j:04d}") for j in range(journals)]
    for j, writer in enumerate(writers):
        batch: list[dict[str, Any]] = []
        for t in range(j, tasks, journals):
            task_id = f"task-{t:07d}"
            started = now - timedelta(seconds=30 * t)
            n_steps = per_task + (1 if t < extra else 0)
            batch.append(
                {
                    "k": "task",
                    "v": 1,
                    "row": {
                        "task_id": task_id,
                        "title": f"{VERBS[t % 8].capitalize()} the {OBJECTS[t % 10]} #{t}",
                        "description": None,
                        "agent": f"agent-{t % 20}",
                        "status": "failed" if t % 10 == 0 else "success",
                        "started_at": started.isoformat(),
                        "finished_at": (started + timedelta(seconds=n_steps)).isoformat(),
                        "result": f"done {OBJECTS[t % 10]}",
                        "error_message": None,
                        "metadata": {"model": f"m{t % 3}"},
                        "owner_id": None,
                    },
                }
            )
            batch.extend(_step(task_id, t, n, started) for n in range(1, n_steps + 1))
            if len(batch) >= 5000:
                writer.append(batch)
                batch = []
        if batch:
            writer.append(batch)
        writer.close()
    big = JournalWriter(root, name="bench-big")
    started = now - timedelta(hours=1)
    big.append(
        [
            {
                "k": "task",
                "v": 1,
                "row": {
                    "task_id": "big-task",
                    "title": "A task of 1,000 steps",
                    "description": None,
                    "agent": "agent-0",
                    "status": "success",
                    "started_at": started.isoformat(),
                    "finished_at": (started + timedelta(seconds=1000)).isoformat(),
                    "result": None,
                    "error_message": None,
                    "metadata": {},
                    "owner_id": None,
                },
            },
            *(_step("big-task", 1, n, started) for n in range(1, 1001)),
        ]
    )
    big.close()
    return time.perf_counter() - start


def _rss() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def measure(root: Path, runs: int) -> dict[str, Any]:
    from stepsdk.ops.alerts import LocalMeasures, upload_backlog
    from stepsdk.store.backup import JournalWriter
    from stepsdk.viewer.api import stats_payload
    from stepsdk.viewer.data.backup_source import BackupSource
    from stepsdk.viewer.data.base import Sort, TaskFilters

    src = BackupSource(root)
    start = time.perf_counter()
    src.list_tasks(TaskFilters(), Sort(), 1, 25)
    build = time.perf_counter() - start
    build_rss = _rss()
    reopen_start = time.perf_counter()
    BackupSource(root).list_tasks(TaskFilters(), Sort(), 1, 25)
    reopen = time.perf_counter() - reopen_start

    def task_page() -> None:
        src.get_task("big-task")
        steps, _ = src.get_steps("big-task", 1, 50)
        src.get_screenshots("big-task", [s["id"] for s in steps])
        src.step_durations("big-task")
        src.step_type_breakdown("big-task")

    def alert_measures(window: int) -> None:  # what `stepsdk alerts check` reads, opening included
        measures = LocalMeasures(root)
        measures.failure_rate(window, None)
        measures.failure_rate(window, "agent-3")
        measures.step_p95(window, None, None)
        measures.step_p95(window, "action", "tap cart")
        measures.error_counts(window)

    big_step = str(uuid.uuid5(uuid.NAMESPACE_URL, "big-task/500"))

    cases = {
        "task list, page 1 (25 newest, with total)": lambda: src.list_tasks(TaskFilters(), Sort(), 1, 25),
        "task list sorted by failed_steps": lambda: src.list_tasks(
            TaskFilters(), Sort("failed_steps", True), 1, 25
        ),
        "task list sorted by success_rate, page 200": lambda: src.list_tasks(
            TaskFilters(), Sort("success_rate", False), 200, 25
        ),
        "task list filtered by agent": lambda: src.list_tasks(TaskFilters(agent="agent-3"), Sort(), 1, 25),
        "task list, title search 'checkout'": lambda: src.list_tasks(
            TaskFilters(search="checkout"), Sort(), 1, 25
        ),
        "task of 1,000 steps (task, 50 steps, shots, durations, types)": task_page,
        "statistics page, 14 days": lambda: stats_payload(src, 14, 10, None),
        "statistics page, 90 days, one agent": lambda: stats_payload(src, 90, 10, "agent-3"),
        "search 'wifi toggle' (100 matches)": lambda: src.search("wifi toggle", 100),
        "search 'checkout button' for one agent": lambda: src.search("checkout button", 20, "agent-7"),
        "search a rare text '#12345'": lambda: src.search("#12345", 20),
        "stepsdk status figures (pending, refused, last upload)": src.upload_state,
        "operations page figures (storage + pending)": lambda: (src.storage_figures(), src.upload_state()),
        "a step's screenshot path": lambda: src.step_screenshot_path(big_step),
        "token usage of the 1,000-step task": lambda: src.task_usage("big-task"),
        "tasks by token usage, top 20": lambda: src.tasks_by_usage(20),
        "daily token usage, 14 days": lambda: src.daily_usage(14),
        "failed steps, newest 100 (all categories)": lambda: src.failed_steps(None, 100),
        "failed steps, newest 100 of category 'device'": lambda: src.failed_steps("device", 100),
        "alert measures, 1 h window (LocalMeasures: open + 5 calls)": lambda: alert_measures(3600),
        "alert measures, 30 d window (LocalMeasures: open + 5 calls)": lambda: alert_measures(30 * 86400),
        "alert rule upload_backlog (every row pending)": lambda: upload_backlog(root),
    }
    times = {}
    for name, call in cases.items():
        samples = []
        for _ in range(runs):
            src._cache.clear()  # answers are cached until a journal changes: time the work itself
            if getattr(src, "_snap", None) is not None:  # (so was the merged snapshot, before schema 10)
                src._snap = None
            t0 = time.perf_counter()
            call()
            samples.append((time.perf_counter() - t0) * 1000)
        times[name] = statistics.median(samples)
    writer = JournalWriter(root, name="bench-incremental")
    now = datetime.now(UTC)
    writer.append(
        [
            {
                "k": "task",
                "v": 1,
                "row": {
                    "task_id": "incremental",
                    "title": "new",
                    "agent": "agent-1",
                    "status": "running",
                    "started_at": now.isoformat(),
                },
            },
            *(_step("incremental", 2, n, now) for n in range(1, 1001)),
        ]
    )
    writer.close()
    t0 = time.perf_counter()
    rows, _ = src.list_tasks(TaskFilters(), Sort(), 1, 25)
    incremental = time.perf_counter() - t0
    assert rows[0]["task_id"] == "incremental" and rows[0]["total_steps"] == 1000
    counts = src.index.counts()
    return {
        "build_s": build,
        "reopen_ms": reopen * 1000,
        "times_ms": times,
        "incremental_ms": incremental * 1000,
        "rss_mb": _rss(),
        "build_rss_mb": build_rss,
        "index_mb": (root / "index.sqlite3").stat().st_size / 2**20,
        "wal_mb": (
            Path(f"{root / 'index.sqlite3'}-wal").stat().st_size / 2**20
            if Path(f"{root / 'index.sqlite3'}-wal").exists()
            else 0.0
        ),
        "counts": counts,
    }


def measure_merge(root: Path) -> dict[str, Any]:
    """What `stepsdk status` did before it read the index: merge every journal in memory."""
    from stepsdk.store.backup import BackupStore
    from stepsdk.store.upload_state import UploadState

    t0 = time.perf_counter()
    UploadState.from_snapshot(BackupStore(root).read())
    return {"merge_s": time.perf_counter() - t0, "rss_mb": _rss()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--journals", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", help="backup folder to create (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    parser.add_argument(
        "--reuse-index", action="store_true", help="keep an existing index (no build measured)"
    )
    parser.add_argument("--merge", action="store_true", help="also time the old status (merge in memory)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--measure-merge", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.runs)))
        return
    if args.measure_merge:
        print(json.dumps(measure_merge(Path(args.measure_merge))))
        return
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="stepsdk-bench-index-")) / "backup"
    try:
        if not (root / "journal").exists():
            gen = generate(root, args.tasks, args.steps, args.journals)
            print(
                f"generated {args.tasks:,} tasks / {args.steps + 1000:,} steps in {args.journals + 1} journals "
                f"({sum(p.stat().st_size for p in (root / 'journal').iterdir()) / 2**20:,.0f} MB) in {gen:.0f} s",
                flush=True,
            )
        for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
            if not args.reuse_index:
                (root / name).unlink(missing_ok=True)
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(root), "--runs", str(args.runs)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        r = json.loads(out.stdout)
        print(f"\nrows in the index: {r['counts']}")
        print("\n| what | time |\n|---|---:|")
        print(f"| first open: index build from the journals | {r['build_s']:.1f} s |")
        print(f"| open again in a new process (index exists, nothing new) | {r['reopen_ms']:.0f} ms |")
        for name, ms in r["times_ms"].items():
            print(f"| {name} | {ms:.0f} ms |")
        print(f"| incremental: next list call after 1,000 new steps | {r['incremental_ms']:.0f} ms |")
        print(
            f"| RSS right after the first open (peak during the build) | {r['build_rss_mb']['VmRSS']:.0f} MB "
            f"({r['build_rss_mb']['VmHWM']:.0f} MB) |"
        )
        print(
            f"| RSS of the viewer process after all of the above (peak) | {r['rss_mb']['VmRSS']:.0f} MB "
            f"({r['rss_mb']['VmHWM']:.0f} MB) |"
        )
        print(f"| index file (+ WAL) | {r['index_mb']:.0f} MB (+ {r['wal_mb']:.0f} MB) |")
        if args.merge:
            m = json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--measure-merge", str(root)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                ).stdout
            )
            print(
                f"| for comparison: status figures by merging every journal in memory | "
                f"{m['merge_s']:.1f} s, peak RSS {m['rss_mb']['VmHWM']:.0f} MB |"
            )
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()

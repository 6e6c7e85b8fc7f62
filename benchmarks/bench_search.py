"""Search and per-agent statistics over TASKS tasks in both sources (server time).

    .venv/bin/python benchmarks/bench_search.py [--tasks 10000] [--steps-per-task 10] [--runs 5]

Writes the same tasks (SPT steps each, thinking text on every step, every 37th step failed with
numbers in its message) to the local Supabase stack (tests/supabase_local, real PostgreSQL 15 with
the migrations, pg_trgm indexes included) and to a backup folder, then prints the median of RUNS
of each call, in milliseconds, for both sources.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_index import generate


def median_ms(fn: Any, runs: int, source: Any = None) -> float:
    samples = []
    for _ in range(runs):
        if hasattr(source, "_cache"):
            source._cache.clear()  # the backup source caches answers until a journal changes: time the work
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--steps-per-task", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from stepsdk.store.backup import BackupStore
    from stepsdk.viewer.api import stats_payload
    from stepsdk.viewer.data.backup_source import BackupSource
    from stepsdk.viewer.data.supabase_source import SupabaseSource
    from tests.supabase_local import LocalStack

    tmp = Path(tempfile.mkdtemp(prefix="stepsdk-bench-search-"))
    root = tmp / "backup"
    try:
        generate(root, args.tasks, args.tasks * args.steps_per_task, 10)
        snap = BackupStore(root).read()
        with LocalStack.start() as stack:
            client = stack.client()
            tasks = list(snap.tasks.values())
            steps = [s for rows in snap.steps.values() for s in rows]
            for i in range(0, len(tasks), 1000):
                client.table("tasks").upsert(tasks[i : i + 1000]).execute()
            for i in range(0, len(steps), 1000):
                client.table("task_steps").upsert(steps[i : i + 1000]).execute()
            stack.sql("analyze")
            sources = {
                "backup (SQLite index)": BackupSource(root),
                "Supabase (local stack)": SupabaseSource(stack.url, stack.service_role_key, timeout=60),
            }
            sources["backup (SQLite index)"].agents()  # builds the index
            calls = {
                "search 'wifi toggle' (100 matches)": lambda s: s.search("wifi toggle", 100),
                "search 'checkout button', one agent": lambda s: s.search("checkout button", 20, "agent-7"),
                "search a rare text '#1234'": lambda s: s.search("#1234", 20),
                "search, no match": lambda s: s.search("zebra crossing", 20),
                "statistics payload, 14 days": lambda s: stats_payload(s, 14, 10, None),
                "statistics payload, 30 days, one agent": lambda s: stats_payload(s, 30, 10, "agent-3"),
            }
            print(f"\n{args.tasks:,} tasks, {len(steps):,} steps\n")
            print("| call | " + " | ".join(sources) + " |\n|---|" + "---:|" * len(sources))
            for name, call in calls.items():
                cells = [
                    f"{median_ms(lambda s=s, c=call: c(s), args.runs, s):.0f} ms" for s in sources.values()
                ]
                print(f"| {name} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

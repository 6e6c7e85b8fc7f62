"""Memory while the backend is down: RSS every 10,000 steps over 100,000 recorded steps.

    .venv/bin/python benchmarks/bench_memory.py [--steps 100000] [--max-in-memory 5000] [--max-queue 1000]

Supabase is configured but unreachable (a closed local port), so nothing can be uploaded: every
step goes to the local backup journal; at most `max_in_memory` wait in memory for the upload
thread and at most `max_queue` in the caller->journal queue (beyond that a step is written on
the caller's thread). RSS must stay flat; the journal grows on disk instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.supabase_local.postgres import free_port  # closed again on return: connections are refused

from stepsdk import StepTracker
from stepsdk.config import Config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--max-in-memory", type=int, default=5_000)
    parser.add_argument("--max-queue", type=int, default=1_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    proc = psutil.Process()
    payload = {"action": "type", "text": "hello world " * 20, "x": 540, "y": 720}
    with tempfile.TemporaryDirectory() as folder:
        config = Config.resolve(
            f"http://127.0.0.1:{free_port()}",
            "k" * 40,
            folder,
            retry_max_time=1.0,
            probe_min=2.0,
            probe_max=10.0,
        )
        tracker = StepTracker(
            title="memory", config=config, max_in_memory=args.max_in_memory, max_queue=args.max_queue
        )
        print(
            f"backend down; {args.steps:,} steps; max_in_memory={args.max_in_memory:,} max_queue={args.max_queue:,}\n"
        )
        print("| steps | RSS MB | in memory | queue | spilled | journal MB | s |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        start = time.monotonic()
        step = max(1, args.steps // 10)
        for i in range(1, args.steps + 1):
            tracker.record_step("action", payload)
            if i % step == 0:
                s = tracker.stats()
                journal = tracker.journal_path.stat().st_size / 1e6 if tracker.journal_path.exists() else 0
                print(
                    f"| {i:,} | {proc.memory_info().rss / 1e6:.1f} | {s.in_memory:,} | {s.queue_depth:,} | "
                    f"{s.spilled:,} | {journal:.1f} | {time.monotonic() - start:.1f} |",
                    flush=True,
                )
        result = tracker.close(timeout=10)
        s = tracker.stats()
        print(f"\nclose: {result}; backed_up={s.backed_up:,} dropped={s.dropped}")


if __name__ == "__main__":
    main()

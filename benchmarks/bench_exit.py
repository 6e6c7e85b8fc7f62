"""How long a tracker takes to let go when the backend misbehaves: `flush`, leaving the `with`
block, and interpreter exit (atexit), against a backend that accepts TCP connections and never
answers (a black hole) and against a closed port.

    .venv/bin/python benchmarks/bench_exit.py [--runs 5] [--steps 200]

Prints a markdown table of the median and worst seconds per case, and the steps found in the
backup afterwards (every one of them must be there). The target is 2 s for each. Interpreter
exit is the time of stepsdk's atexit work (from the last step to the end of the atexit handlers),
not the interpreter's own teardown.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHILD = """
import atexit, sys, time
atexit.register(lambda: print(time.monotonic(), flush=True))  # runs after stepsdk's handler
from stepsdk import StepTracker
t = StepTracker(title="exit", backup_dir=sys.argv[1], supabase_url=sys.argv[2], supabase_key="k")
time.sleep(1.0)
for i in range(int(sys.argv[3])):
    t.record_step("action", {"i": i})
print(time.monotonic(), flush=True)
"""


def in_process(url: str, steps: int) -> tuple[float, float, int]:
    from stepsdk import StepTracker
    from stepsdk.store.backup import BackupStore

    with tempfile.TemporaryDirectory() as folder:
        t = StepTracker(title="bench", backup_dir=folder, supabase_url=url, supabase_key="k")
        time.sleep(1.0)  # the client is made on the upload thread meanwhile
        for i in range(steps):
            t.record_step("action", {"i": i})
        start = time.monotonic()
        t.flush(5)
        flushed = time.monotonic() - start
        start = time.monotonic()
        with t:
            pass
        exited = time.monotonic() - start
        kept = sum(len(v) for v in BackupStore(folder).read().steps.values())
    return flushed, exited, kept


def at_exit(url: str, steps: int) -> tuple[float, int]:
    from stepsdk.store.backup import BackupStore

    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, folder, url, str(steps)], capture_output=True, text=True, timeout=60
        )
        recorded, exited = map(float, proc.stdout.split())
        kept = sum(len(v) for v in BackupStore(folder).read().steps.values())
        return exited - recorded, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    backends = {
        "black hole (accepts, never answers)": f"http://127.0.0.1:{hole.getsockname()[1]}",
        "closed port (connection refused)": f"http://127.0.0.1:{closed_port}",
    }
    print(f"\nexit bounds, {args.steps} steps recorded, {args.runs} runs each (seconds: median / worst)\n")
    print("| backend | flush | with-exit | interpreter exit | steps in the backup |")
    print("|---|---:|---:|---:|---:|")
    for name, url in backends.items():
        flushes, exits, interps, kept = [], [], [], []
        for _ in range(args.runs):
            f, e, k = in_process(url, args.steps)
            i, k2 = at_exit(url, args.steps)
            flushes.append(f)
            exits.append(e)
            interps.append(i)
            kept += [k, k2]
        cell = lambda xs: f"{statistics.median(xs):.2f} / {max(xs):.2f}"  # noqa: E731
        print(
            f"| {name} | {cell(flushes)} | {cell(exits)} | {cell(interps)} | "
            f"{min(kept)}-{max(kept)} of {args.steps} |"
        )
    hole.close()


if __name__ == "__main__":
    main()

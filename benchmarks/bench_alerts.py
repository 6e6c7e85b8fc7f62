"""How long does ``stepsdk alerts check`` take on a local backup folder?

Writes ``--tasks`` tasks of ``--steps`` steps (recent, some failing) into a temporary backup with
the journal writer, a rule file with one rule of each kind, then times ``alerts check`` end to
end (read the folder, measure, compare with the episodes, write the state; no webhook) over
``--repeat`` runs. Prints the median and best wall time.

    .venv/bin/python benchmarks/bench_alerts.py                    # 2,000 tasks x 20 steps
    .venv/bin/python benchmarks/bench_alerts.py --tasks 10000 --steps 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepsdk.cli import main  # noqa: E402
from stepsdk.store.backup import JournalWriter  # noqa: E402

RULES = """
[[rule]]
name = "failing"
kind = "failure_rate"
window = "1h"
above = 0.2
[[rule]]
name = "slow"
kind = "step_p95"
window = "1h"
step_type = "action"
above_ms = 1000
[[rule]]
name = "repeats"
kind = "error_repeats"
window = "1h"
more_than = 5
[[rule]]
name = "backlog"
kind = "upload_backlog"
older_than = "15m"
"""


def generate(root: Path, tasks: int, steps: int) -> None:
    writer = JournalWriter(root)
    now = datetime.now(UTC)
    for i in range(tasks):
        started = now - timedelta(seconds=i * 3600 / tasks)
        task_id = f"bench-{i}"
        records = [
            {
                "k": "task",
                "v": 1,
                "row": {
                    "task_id": task_id,
                    "title": f"Task {i}",
                    "agent": "bench",
                    "status": "failed" if i % 4 == 0 else "success",
                    "started_at": started.isoformat(),
                    "finished_at": (started + timedelta(seconds=30)).isoformat(),
                    "metadata": {},
                },
            }
        ]
        for n in range(1, steps + 1):
            failed = (i + n) % 13 == 0
            records.append(
                {
                    "k": "step",
                    "row": {
                        "id": str(uuid.uuid4()),
                        "task_id": task_id,
                        "step_number": n,
                        "step_type": ("thinking", "action")[n % 2],
                        "step_data": {},
                        "duration_ms": float((i * 7 + n * 13) % 3000),
                        "success": not failed,
                        "error_type": "TimeoutError" if failed else None,
                        "error_message": f"Element {i % 20} not found" if failed else None,
                        "created_at": (started + timedelta(seconds=n)).isoformat(),
                        "metadata": {},
                        "name": f"step {n % 5}",
                        "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050}
                        if n % 2
                        else None,
                    },
                }
            )
        writer.append(records)
    writer.close()


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, rules = Path(tmp) / "backup", Path(tmp) / "alerts.toml"
        t0 = time.perf_counter()
        generate(root, args.tasks, args.steps)
        print(f"generated {args.tasks:,} tasks x {args.steps} steps in {time.perf_counter() - t0:.1f} s")
        rules.write_text(RULES)
        for name in (
            "SUPABASE_URL",
            "SUPABASE_SECRET_KEY",
            "SUPABASE_SERVICE_ROLE_KEY",
            "STEPSDK_ALERT_WEBHOOK",
        ):
            os.environ.pop(name, None)
        walls, statuses = [], []
        devnull = open(os.devnull, "w")  # noqa: SIM115 - the console lines of the first check
        stdout, sys.stdout = sys.stdout, devnull
        try:
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                statuses.append(main(["alerts", "check", "--rules", str(rules), "--backup-dir", str(root)]))
                walls.append(time.perf_counter() - t0)
        finally:
            sys.stdout = stdout
            devnull.close()
        print(
            f"alerts check (4 rules, local backup): median {statistics.median(walls) * 1000:.0f} ms, "
            f"best {min(walls) * 1000:.0f} ms; exit statuses {statuses}"
        )


if __name__ == "__main__":
    main_bench()

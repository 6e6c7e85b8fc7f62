"""Full-size chaos runs against the local Supabase stack (the test suite runs the same at 1/10).

    .venv/bin/python benchmarks/bench_chaos.py [--steps 5000] [--trials 30] [--only outage|flaky|sigkill]

- outage: the backend is down for a whole run of N steps (every 250th with a screenshot);
  `stepsdk resync` after it is back must store exactly N rows, equal to the backup field by field.
- flaky: N steps while a fifth of the REST and Storage requests fail in mixed ways (500, 503,
  429, connection resets, hangs past the request timeout, and commits answered with a 500):
  exactly N rows, no duplicates, nothing left pending in the backup, no resync needed.
- sigkill: T agent processes (tests/recording/test_chaos_crash.py's child, at an agent's pace and
  in a tight loop) SIGKILLed at a random step: how many steps each lost and how long before the
  kill the oldest lost one was recorded (the time bound the test suite does not assert: it
  measures how soon the OS ran the journal thread). No stack needed.

Starts its own stack (tests/supabase_local) for outage and flaky, prints a markdown table of
counts and timings. Exits non-zero when a count is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHOT_EVERY = 250


def _config(stack: Any, folder: Path, **kw: Any) -> Any:
    from stepsdk.config import Config

    opts = {
        "probe_min": 0.2,
        "probe_max": 1.0,
        "retry_max_time": 20.0,
        "request_timeout": 1.0,
        "connect_timeout": 1.0,
    } | kw
    return Config.resolve(stack.url, stack.service_role_key, folder, **opts)


def _record(tracker: Any, n: int) -> tuple[list[Any], float]:
    from PIL import Image

    start = time.monotonic()
    steps = [
        tracker.record_step(
            "action" if i % 2 else "thinking",
            {"i": i, "nested": {"k": [i, str(i)]}},
            thinking=f"t{i}",
            duration_ms=float(i),
            success=i % 5 != 0,
            screenshot=Image.new("RGB", (64, 128), (i % 256, 0, 0)) if i % SHOT_EVERY == 0 else None,
        )
        for i in range(n)
    ]
    return steps, time.monotonic() - start


def _db_counts(stack: Any, task_id: str) -> dict[str, int]:
    row = stack.sql(
        "select count(*) as n, count(distinct id) as ids, count(distinct step_number) as nums, "
        "count(screenshot_path) as with_shot from public.task_steps where task_id = %s",
        (task_id,),
    )[0]
    shots = stack.sql(
        "select count(*) as n, count(distinct step_id) as d from public.step_screenshots where task_id = %s",
        (task_id,),
    )[0]
    return {
        "rows": row["n"],
        "distinct ids": row["ids"],
        "distinct numbers": row["nums"],
        "rows with screenshot": row["with_shot"],
        "screenshot rows": shots["n"],
        "screenshot rows (distinct steps)": shots["d"],
    }


def _ts(v: Any) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v)


def _field_mismatches(stack: Any, task_id: str, backup_rows: list[dict[str, Any]]) -> int:
    rows = stack.sql("select * from public.task_steps where task_id = %s order by step_number", (task_id,))
    bad = abs(len(rows) - len(backup_rows))
    for got, want in zip(rows, backup_rows, strict=False):
        for col, value in want.items():
            have = got[col]
            if col in ("started_at", "created_at"):
                bad += _ts(have) != _ts(value)
            else:
                bad += (str(have) if col == "id" else have) != value
    return bad


def outage(stack: Any, n: int) -> dict[str, Any]:
    from stepsdk import StepTracker
    from stepsdk.ops.resync import Resync
    from stepsdk.store.backup import BackupStore

    folder = Path(tempfile.mkdtemp(prefix="chaos-outage-"))
    stack.faults.start_outage()
    try:
        t = StepTracker(
            title="offline run", config=_config(stack, folder, retry_max_time=2.0), buffer_size=50
        )
        _, record_s = _record(t, n)
        start = time.monotonic()
        result = t.finish("success", result="done offline")
        t.close()
        close_s = time.monotonic() - start
    finally:
        stack.faults.end_outage()
    start = time.monotonic()
    report = Resync(folder, _config(stack, folder)).run()
    resync_s = time.monotonic() - start
    snap = BackupStore(folder).read()
    out = {
        "steps recorded": n,
        "backed up at close": result.backed_up,
        "uploaded by the tracker": result.uploaded,
        "resync uploaded": report.uploaded["task_steps"],
        "resync failed": len(report.failed),
    }
    out |= _db_counts(stack, t.task_id)
    out["fields differing from the backup"] = _field_mismatches(stack, t.task_id, snap.steps[t.task_id])
    out["pending after resync"] = len(snap.pending_steps()) + len(snap.pending_screenshots())
    out |= {"record_step loop (s)": record_s, "finish + close (s)": close_s, "resync (s)": resync_s}
    ok = (
        out["rows"] == out["distinct ids"] == out["distinct numbers"] == n
        and report.ok
        and out["fields differing from the backup"] == 0
        and out["pending after resync"] == 0
        and out["screenshot rows"] == out["rows with screenshot"] == len(range(0, n, SHOT_EVERY))
    )
    return out | {"ok": ok}


def flaky(stack: Any, n: int) -> dict[str, Any]:
    from stepsdk import StepTracker
    from stepsdk.store.backup import BackupStore

    folder = Path(tempfile.mkdtemp(prefix="chaos-flaky-"))
    stack.faults.fail_fraction(
        "* /rest/v1/*",
        0.2,
        kinds=("500", "503", "429", "reset", "hang", "commit_then_fail"),
        seed=7,
        hang_seconds=3.0,
        retry_after=0,
    )
    stack.faults.fail_fraction("* /storage/v1/*", 0.2, kinds=("500", "reset", "commit_then_fail"), seed=8)
    t = StepTracker(config=_config(stack, folder), buffer_size=10, flush_interval=0.2)  # ~600 requests
    _, record_s = _record(t, n)
    start = time.monotonic()
    deadline = start + 900
    while t.stats().uploaded < n and time.monotonic() < deadline:
        time.sleep(0.1)
    upload_s = time.monotonic() - start
    result = t.close(timeout=30)
    injected = stack.faults.injected
    stack.faults.clear()
    snap = BackupStore(folder).read()
    stats = t.stats()
    out = {
        "steps recorded": n,
        "uploaded by the tracker": result.uploaded,
        "rejected": result.rejected,
        "request retries": stats.retried,
        "faults injected": sum(injected.values()),
        "faults by kind": ", ".join(f"{k} {v}" for k, v in sorted(injected.items())),
    }
    out |= _db_counts(stack, t.task_id)
    out["pending in the backup"] = (
        len(snap.pending_steps()) + len(snap.pending_screenshots()) + len(snap.pending_tasks())
    )
    out |= {"record_step loop (s)": record_s, "until all uploaded (s)": upload_s}
    ok = (
        out["rows"] == out["distinct ids"] == out["distinct numbers"] == n == result.uploaded
        and out["pending in the backup"] == 0
        and not result.rejected
        and out["screenshot rows"] == out["screenshot rows (distinct steps)"] == len(range(0, n, SHOT_EVERY))
    )
    return out | {"ok": ok}


def sigkill(trials: int) -> dict[str, dict[str, Any]]:
    """Paced and tight trials of the crash test's child; the test's own checks run on each."""
    import random
    import statistics

    from stepsdk.store.backup import BackupStore
    from tests.recording.test_chaos_crash import CRASH_BOUND_STEPS, lost_steps, run_and_kill

    rng = random.Random(7)
    out: dict[str, dict[str, Any]] = {}
    for pace, low, high in (("paced", 300, 3000), ("tight", 3 * CRASH_BOUND_STEPS, 8 * CRASH_BOUND_STEPS)):
        lags: list[float] = []
        lost_counts: list[int] = []
        recorded = spilled = failures = 0
        for n in range(trials):
            task_id = f"{pace}-{n}"
            with tempfile.TemporaryDirectory(prefix="chaos-sigkill-") as folder:
                trial = run_and_kill(Path(folder), task_id, pace, rng.randint(low, high))
                present = {r["step_number"] for r in BackupStore(folder).read().steps.get(task_id, [])}
            try:
                lost = lost_steps(trial, present, pace)
            except AssertionError as exc:
                print(f"{pace} trial {n}: {exc}", file=sys.stderr)
                failures += 1
                continue
            lags.append(trial.lag_ms(lost))
            lost_counts.append(len(lost))
            recorded += max(trial.seen)
            spilled += trial.spill_count
        out[pace] = {
            "trials": trials,
            "steps recorded": recorded,
            "steps spilled": spilled,
            "lost per trial: median": statistics.median(lost_counts) if lost_counts else "",
            "lost per trial: max": max(lost_counts, default=""),
            f"lost per trial: bound ({CRASH_BOUND_STEPS:,})": "exceeded" if failures else "kept",
            "oldest lost step, ms before the kill: median": statistics.median(lags) if lags else "",
            "oldest lost step, ms before the kill: max": max(lags, default=""),
            "trials over 250 ms": sum(lag > 250 for lag in lags),
            "ok": failures == 0,
        }
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=30, help="SIGKILL trials per pace (sigkill)")
    parser.add_argument("--only", choices=("outage", "flaky", "sigkill"))
    args = parser.parse_args()
    from tests.supabase_local import LocalStack

    results: dict[str, dict[str, Any]] = {}
    if args.only in (None, "outage", "flaky"):
        with LocalStack.start() as stack:
            for name, run in (("outage", outage), ("flaky", flaky)):
                if args.only in (None, name):
                    stack.reset()
                    print(f"running {name} ({args.steps:,} steps)...", file=sys.stderr)
                    results[name] = run(stack, args.steps)
        _table(f"{args.steps:,} steps", results)
    kills: dict[str, dict[str, Any]] = {}
    if args.only in (None, "sigkill"):
        print(f"running sigkill ({args.trials} trials per pace)...", file=sys.stderr)
        kills = sigkill(args.trials)
        _table("SIGKILL", kills)
    return 0 if all(r["ok"] for r in (results | kills).values()) else 1


def _table(title: str, results: dict[str, dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print(f"\n| {title} | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for k in keys:
        print(f"| {k} | " + " | ".join(_fmt(r.get(k, "")) for r in results.values()) + " |")


if __name__ == "__main__":
    sys.exit(main())

"""The scheduled retention run by pg_cron's own scheduler (not by hand, as the fast test does).

    .venv/bin/python benchmarks/bench_pg_cron.py [--tasks 2000] [--steps 10]

Debian's pg_cron 1.4 has minute resolution (second-level schedules came in 1.5), so the suite
cannot wait for a real tick; this script does: it starts the local stack (pg_cron preloaded),
writes TASKS old tasks (40 days) of STEPS steps with screenshot rows and 10 new ones, schedules
``stepsdk_run_retention('30 days')`` every minute, waits for pg_cron's run to appear in
``cron.job_run_details`` and prints what it deleted and how long the run took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    from tests.supabase_local import LocalStack

    stack = LocalStack.start()
    try:
        stack.sql("create extension if not exists pg_cron")
        stack.sql(
            """insert into public.tasks (task_id, status, started_at, finished_at)
               select 'old-' || t, 'success', now() - interval '40 days', now() - interval '40 days'
               from generate_series(1, %s) t
               union all
               select 'new-' || t, 'success', now() - interval '1 day', now() - interval '1 day'
               from generate_series(1, 10) t""",
            (args.tasks,),
        )
        stack.sql(
            """insert into public.task_steps (task_id, step_number, step_type, screenshot_path)
               select t.task_id, n, 'screenshot', lpad(to_hex(n), 2, '0') || '/' || md5(t.task_id || n) || '.webp'
               from public.tasks t, generate_series(1, %s) n""",
            (args.steps,),
        )
        stack.sql(
            """insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash)
               select task_id, id, screenshot_path, 1000, repeat('ab', 32) from public.task_steps"""
        )
        rows = stack.sql("select count(*) as n from public.task_steps")[0]["n"]
        [job] = stack.sql("select public.stepsdk_schedule_retention(interval '30 days', '* * * * *') as id")
        scheduled = time.monotonic()
        print(
            f"scheduled job {job['id']} with {args.tasks + 10} tasks, {rows} steps; waiting for the next minute",
            file=sys.stderr,
        )
        while True:
            done = stack.sql(
                "select status, start_time, end_time, return_message from cron.job_run_details"
                " where jobid = %s and status in ('succeeded', 'failed')",
                (job["id"],),
            )
            if done:
                break
            if time.monotonic() - scheduled > 130:
                raise SystemExit("pg_cron did not run the job within 130 s")
            time.sleep(0.5)
        [run] = done
        left = stack.sql("select count(*) as n from public.tasks")[0]["n"]
        freed = stack.sql("select count(*) as n from public.stepsdk_freed_objects")[0]["n"]
        [logged] = stack.sql(
            "select tasks_deleted, objects_freed, finished_at - started_at as took"
            " from public.stepsdk_retention_runs"
        )
        stack.sql("select public.stepsdk_unschedule_retention()")
        print(
            "| tasks | steps | pg_cron status | waited for tick s | run took s | tasks deleted | tasks left |"
            " objects queued |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print(
            f"| {args.tasks + 10} | {rows} | {run['status']} | {time.monotonic() - scheduled:.0f} | "
            f"{(run['end_time'] - run['start_time']).total_seconds():.2f} | {logged['tasks_deleted']} | {left} | "
            f"{freed} |"
        )
    finally:
        stack.close()


if __name__ == "__main__":
    main()

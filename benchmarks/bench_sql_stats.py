"""How fast are the statistics views and functions on a large database?

Creates a throw-away PostgreSQL 15 cluster (or uses ``--dsn``), applies the Supabase platform
stand-in and the migrations, generates ``--tasks`` tasks with ``--steps`` steps each (every
third step of some tasks carries a screenshot row, 1 % of the tasks owned by one user), then
times the queries the viewer and the console run: as the service role (no RLS) and as that
authenticated user (RLS on). Prints one line per query: median and best wall time over
``--repeat`` runs, and the server-side execution time from EXPLAIN ANALYZE.

    .venv/bin/python benchmarks/bench_sql_stats.py                 # 100,000 tasks, 10 steps each
    .venv/bin/python benchmarks/bench_sql_stats.py --tasks 20000 --repeat 3 --match daily
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.supabase_local.postgres import PgCluster, create_database  # noqa: E402
from tests.supabase_local.stack import bootstrap  # noqa: E402

OWNER = "a0000000-0000-4000-8000-000000000001"

GENERATE = """
insert into public.tasks (task_id, title, agent, status, started_at, finished_at, owner_id)
select 'bench-' || i, 'Task ' || i, (array['phone-agent','browser-agent','api-agent'])[1 + i %% 3],
       s.st, now() - i * interval '30 seconds',
       case when s.st = 'running' then null
            else now() - i * interval '30 seconds' + (i %% 600) * interval '1 second' end,
       case when i %% 100 = 0 then %(owner)s::uuid end
from generate_series(1, %(tasks)s) i,
     lateral (select (array['success','success','success','failed','interrupted','running'])[1 + i %% 6] as st) s;

insert into public.task_steps (task_id, step_number, step_type, duration_ms, success, error_type,
                               error_message, screenshot_path, created_at, usage, error_category)
select 'bench-' || i, n, (array['thinking','action','screenshot','validation','error'])[1 + (n + i) %% 5],
       ((i * 7919 + n * 104729) %% 5000)::double precision, (i + n) %% 13 <> 0,
       case when (i + n) %% 13 = 0 then 'TimeoutError' end,
       case when (i + n) %% 13 = 0 then 'Element ' || (i %% 50) || ' not found' end,
       -- paths repeat across tasks, as content-addressed screenshots do
       case when n %% 3 = 0 then md5(((i %% 5000) * 100 + n)::text) || '.webp' end,
       now() - i * interval '30 seconds' + n * interval '1 second',
       -- a model call behind every other step (token usage), a category on the failed ones
       case when n %% 2 = 1 then jsonb_build_object('prompt_tokens', 1000 + n, 'completion_tokens', 50 + n,
                                                    'total_tokens', 1050 + 2 * n) end,
       case when (i + n) %% 13 = 0 then 'timeout' end
from generate_series(1, %(tasks)s) i, generate_series(1, %(steps)s) n;

insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash)
select s.task_id, s.id, s.screenshot_path, 40000, encode(sha256(convert_to(s.screenshot_path, 'UTF8')), 'hex')
from public.task_steps s where s.screenshot_path is not null;
"""

QUERIES: list[tuple[str, str]] = [
    (
        "task list page 1 (order started_at desc limit 50)",
        "select * from public.task_summary order by started_at desc limit 50",
    ),
    (
        "task list page 101 (offset 5000)",
        "select * from public.task_summary order by started_at desc limit 50 offset 5000",
    ),
    (
        "task list status=failed page 1",
        "select * from public.task_summary where status = 'failed' order by started_at desc limit 50",
    ),
    (
        "task list agent=api-agent page 1",
        "select * from public.task_summary where agent = 'api-agent' order by started_at desc limit 50",
    ),
    ("task list count(*) (PostgREST count=exact)", "select count(*) from public.task_summary"),
    (
        "task_list page 1 (task_summary + metadata, the viewer's list)",
        "select * from public.task_list order by started_at desc limit 50",
    ),
    (
        "task_list metadata->>'model' = 'x' page 1",
        "select * from public.task_list where metadata->>'model' = 'x' order by started_at desc limit 50",
    ),
    (
        "task list sorted by failed_steps desc (all tasks aggregated)",
        "select * from public.task_summary order by failed_steps desc, task_id limit 50",
    ),
    (
        "task list sorted by duration_ms desc (a tasks column)",
        "select * from public.task_summary order by duration_ms desc nulls last limit 50",
    ),
    (
        "task list search ilike '%77%' on task_id/title page 1",
        "select * from public.task_summary where task_id ilike '%77%' or title ilike '%77%'"
        " order by started_at desc limit 50",
    ),
    (
        "one task (task_summary where task_id=)",
        "select * from public.task_summary where task_id = 'bench-700'",
    ),
    ("stepsdk_task_stats(one task)", "select * from public.stepsdk_task_stats('bench-700')"),
    ("stepsdk_daily_stats(7)", "select * from public.stepsdk_daily_stats(7)"),
    ("stepsdk_daily_stats(30)", "select * from public.stepsdk_daily_stats(30)"),
    ("daily_summary (all days)", "select * from public.daily_summary"),
    ("error_summary", "select * from public.error_summary order by occurrences desc limit 10"),
    ("stepsdk_slowest_steps(20)", "select * from public.stepsdk_slowest_steps(20)"),
    ("step_type_breakdown", "select * from public.step_type_breakdown"),
    ("stepsdk_task_step_types(one task)", "select * from public.stepsdk_task_step_types('bench-700')"),
    (
        "task_usage top 20 by tokens (all tasks aggregated)",
        "select * from public.task_usage where steps_with_usage > 0 order by total_tokens desc, task_id limit 20",
    ),
    ("stepsdk_top_token_tasks(20) (usage)", "select * from public.stepsdk_top_token_tasks(20)"),
    ("task_usage one task", "select * from public.task_usage where task_id = 'bench-700'"),
    ("stepsdk_daily_usage(30)", "select * from public.stepsdk_daily_usage(30)"),
    ("error_category_summary", "select * from public.error_category_summary"),
    ("stepsdk_alert_failure_rate(1 h)", "select * from public.stepsdk_alert_failure_rate(3600)"),
    ("stepsdk_alert_step_p95(1 h, action)", "select * from public.stepsdk_alert_step_p95(3600, 'action')"),
    ("stepsdk_alert_error_counts(1 h)", "select * from public.stepsdk_alert_error_counts(3600)"),
    ("stepsdk_alert_error_counts(7 d)", "select * from public.stepsdk_alert_error_counts(604800)"),
    (
        "retention dry run (30 days, batch 1000)",
        "select public.stepsdk_delete_tasks_older_than(interval '30 days', true, 1000)",
    ),
]


def _as_role(conn: psycopg.Connection, role: str) -> None:
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (role, json.dumps({"sub": OWNER, "role": role})),
    )


def _time(conn: psycopg.Connection, query: str, role: str, repeat: int) -> tuple[float, float, float]:
    """Median and best wall ms over ``repeat`` runs, and EXPLAIN ANALYZE's execution ms.

    Every run is its own transaction under ``role`` and is rolled back (psycopg.Rollback),
    so the retention dry run and the rest leave the data as it was.
    """
    walls = []
    for _ in range(repeat):
        with conn.transaction():
            _as_role(conn, role)
            t0 = time.perf_counter()
            conn.execute(query).fetchall()
            walls.append((time.perf_counter() - t0) * 1000)
            raise psycopg.Rollback()
    with conn.transaction():
        _as_role(conn, role)
        plan = conn.execute("explain (analyze, format json) " + query).fetchone()[0][0]
        raise psycopg.Rollback()
    return statistics.median(walls), min(walls), float(plan["Execution Time"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dsn", help="an existing server's admin DSN (default: a private temp cluster)")
    ap.add_argument("--match", default="", help="only the queries whose name contains this text")
    args = ap.parse_args()

    cluster = None
    admin = args.dsn
    if admin is None:
        cluster = PgCluster().start()
        admin = cluster.dsn()
    dsn = create_database(admin, "bench_" + uuid.uuid4().hex[:8])
    try:
        bootstrap(dsn)  # the platform, then every migration, as LocalStack does
        with psycopg.connect(dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            params = {"tasks": args.tasks, "steps": args.steps, "owner": OWNER}
            for statement in GENERATE.split(";\n"):
                if statement.strip():
                    conn.execute(statement, params)
            conn.execute("vacuum analyze")
            counts = conn.execute(
                "select (select count(*) from public.tasks), (select count(*) from public.task_steps),"
                " (select count(*) from public.step_screenshots)"
            ).fetchone()
            print(
                f"generated {counts[0]:,} tasks, {counts[1]:,} steps, {counts[2]:,} screenshot rows "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            jit = conn.execute("show jit").fetchone()[0]
            print(f"PostgreSQL {conn.info.server_version}, jit={jit}, repeat={args.repeat}; times in ms")
            for role in ("service_role", "authenticated"):
                print(f"\n-- as {role}" + (" (RLS: owns 1% of the tasks)" if role == "authenticated" else ""))
                print(f"{'query':<64} {'median':>9} {'best':>9} {'server':>9}")
                for name, query in QUERIES:
                    if args.match not in name:
                        continue
                    if role == "authenticated" and "delete_tasks" in query:
                        continue  # service_role only, by design
                    med, best, server = _time(conn, query, role, args.repeat)
                    print(f"{name:<64} {med:9.1f} {best:9.1f} {server:9.1f}")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()

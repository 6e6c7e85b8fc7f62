"""The migrations and the seed apply cleanly, twice, on fresh databases; the objects they create
have the security properties the README promises (security_invoker views, invoker functions
with an empty search_path, grants to authenticated/service_role only, retention service-only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from stepsdk.ops.migrations import schema_sql
from tests.supabase_local import postgres
from tests.supabase_local.stack import (
    MIGRATIONS_DIR,
    SEED_SQL,
    apply_migrations,
    apply_platform,
    migration_dsn,
    run_sql,
)

SEED = SEED_SQL.read_text()
MIGRATIONS = sorted(MIGRATIONS_DIR.glob("*.sql"))

VIEWS = ["task_summary", "daily_summary", "error_summary", "step_type_breakdown", "task_list"]
READ_FUNCTIONS = [
    "stepsdk_task_stats(text)",
    "stepsdk_daily_stats(integer)",
    "stepsdk_slowest_steps(integer, timestamp with time zone)",
    "stepsdk_task_step_types(text)",
    # 20261130001200_stepsdk_search_period_stats.sql
    "stepsdk_search(text, text, integer)",
    "stepsdk_error_groups(timestamp with time zone, text, integer)",
    "stepsdk_daily_stats_for(integer, text)",
    "stepsdk_step_types(timestamp with time zone, text, text)",
    "stepsdk_slowest_steps_for(integer, timestamp with time zone, text)",
]
# usage, error categories and alert measures (20261130001450_stepsdk_usage_alerts.sql)
VIEWS += ["task_usage", "error_category_summary"]
READ_FUNCTIONS += [
    "stepsdk_daily_usage(integer)",
    "stepsdk_top_token_tasks(integer)",
    "stepsdk_alert_failure_rate(integer, text)",
    "stepsdk_alert_step_p95(integer, text, text)",
    "stepsdk_alert_error_counts(integer)",
]
PURE_FUNCTIONS = ["stepsdk_error_group(text)"]  # immutable helpers, same grants as the read functions
RETENTION = "stepsdk_delete_tasks_older_than(interval, boolean, integer)"
OWNER = "a0000000-0000-4000-8000-000000000002"


@pytest.fixture
def fresh_db(supabase_stack) -> Iterator[str]:
    """A new empty database in the stack's cluster with only the platform bootstrap applied."""
    name = "fresh_" + uuid.uuid4().hex[:10]
    dsn = postgres.create_database(supabase_stack.db_url, name)
    try:
        apply_platform(dsn)
        yield dsn
    finally:
        postgres.drop_database(supabase_stack.db_url, name)


def _seed_counts(dsn: str) -> tuple[int, int, int]:
    r = run_sql(
        dsn,
        "select (select count(*) from public.tasks) t, (select count(*) from public.task_steps) s,"
        " (select count(*) from public.step_screenshots) c",
    )[0]
    return r["t"], r["s"], r["c"]


def test_each_migration_and_the_seed_apply_twice(fresh_db):
    for path in MIGRATIONS:
        for _ in range(2):  # "safe to apply twice": each file at its place in the history
            # one transaction per file, as the console runs it: as `postgres`, not a superuser (hosted)
            with psycopg.connect(migration_dsn(fresh_db)) as conn:
                conn.execute(path.read_text())
    for _ in range(2):
        run_sql(fresh_db, SEED)
    assert _seed_counts(fresh_db) == (5, 16, 5)
    # the statistics work in the fresh database too: 4 + 6 + 2 + 0 + 4 steps
    assert run_sql(fresh_db, "select sum(total_steps) as n from public.task_summary")[0]["n"] == 16


def test_pasted_schema_upgrades_a_released_database_and_pasting_it_again_is_harmless(fresh_db):
    """A database set up with stepsdk 0.1's migrations (pasted, so no history): the `stepsdk db
    sql` script renames step_screenshots.storage_path in place (data kept); a second paste and
    the CLI path find nothing left to do, although the core migration cannot run again."""
    released = [p for p in MIGRATIONS if p.name.startswith("20261122")]
    with psycopg.connect(migration_dsn(fresh_db)) as conn:
        for path in released:
            conn.execute(path.read_text())
    run_sql(
        fresh_db,
        f"""
        insert into public.tasks (task_id, status, owner_id) values ('old-task', 'running', '{OWNER}');
        insert into public.task_steps (id, task_id, step_number, step_type)
            values ('00000000-0000-4000-8000-00000000000a', 'old-task', 1, 'screenshot');
        insert into public.step_screenshots (id, task_id, step_id, storage_path, file_size, file_hash)
            values ('00000000-0000-4000-8000-00000000000b', 'old-task', '00000000-0000-4000-8000-00000000000a',
                    'ab/old.webp', 7, repeat('a', 64));""",
    )
    for _ in range(2):
        with psycopg.connect(migration_dsn(fresh_db)) as conn:  # the SQL editor: one transaction
            conn.execute(schema_sql())
    assert run_sql(fresh_db, "select screenshot_path, file_size from public.step_screenshots") == [
        {"screenshot_path": "ab/old.webp", "file_size": 7}
    ]
    assert run_sql(
        fresh_db,
        "select count(*) as n from information_schema.columns where table_schema = 'public' "
        "and column_name = 'storage_path'",
    ) == [{"n": 0}]
    assert run_sql(
        fresh_db,
        "select conname from pg_constraint where conrelid = 'public.step_screenshots'::regclass "
        "and contype = 'c' and conname like '%path%'",
    ) == [{"conname": "step_screenshots_screenshot_path_check"}]
    [policy] = run_sql(
        fresh_db, "select qual from pg_policies where policyname = 'owners read screenshots objects'"
    )
    assert "screenshot_path" in policy["qual"] and "storage_path" not in policy["qual"]
    # the functions naming the column work on the renamed table
    info = run_sql(fresh_db, "select public.stepsdk_storage_info() as i")[0]["i"]
    assert (info["screenshots"], info["objects"], info["bytes"]) == (1, 1, 7)
    assert run_sql(fresh_db, "select public.stepsdk_unreferenced_paths(array['old-task']) as p") == [
        {"p": ["ab/old.webp"]}
    ]
    assert apply_migrations(fresh_db) == []  # every version recorded by the script
    for _ in range(2):
        run_sql(fresh_db, SEED)
    assert _seed_counts(fresh_db) == (6, 17, 6)


def test_seed_reapplied_after_edits_restores_the_fixed_rows(fresh_db):
    apply_migrations(fresh_db)
    run_sql(fresh_db, SEED)
    run_sql(fresh_db, "update public.task_steps set duration_ms = 1 where task_id = 'seed-task-checkout'")
    run_sql(fresh_db, SEED)
    total = run_sql(
        fresh_db, "select total_duration_ms from public.task_summary where task_id = 'seed-task-checkout'"
    )
    assert total == [{"total_duration_ms": 9100}]
    assert _seed_counts(fresh_db) == (5, 16, 5)


def test_views_are_security_invoker(stack):
    rows = stack.sql(
        "select c.relname, c.reloptions from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relname = any(%s)",
        (VIEWS,),
    )
    assert {r["relname"]: r["reloptions"] for r in rows} == {v: ["security_invoker=true"] for v in VIEWS}


def test_functions_are_invoker_with_an_empty_search_path(stack):
    for signature, volatility in [
        *((f, "s") for f in READ_FUNCTIONS),
        *((f, "i") for f in PURE_FUNCTIONS),
        (RETENTION, "v"),
    ]:
        [r] = stack.sql(
            "select prosecdef, provolatile, proconfig from pg_proc where oid = %s::regprocedure",
            ("public." + signature,),
        )
        assert r["prosecdef"] is False, signature
        assert r["provolatile"] == volatility, signature
        assert 'search_path=""' in r["proconfig"], signature


def _privilege(stack, role: str, check: str, obj: str, privilege: str) -> bool:
    return stack.sql(f"select {check}(%s, %s, %s) as ok", (role, obj, privilege))[0]["ok"]


@pytest.mark.parametrize("role, allowed", [("anon", False), ("authenticated", True), ("service_role", True)])
def test_read_privileges(stack, role, allowed):
    for view in VIEWS:
        assert _privilege(stack, role, "has_table_privilege", "public." + view, "select") is allowed, view
        for write in ("insert", "update", "delete"):
            assert _privilege(stack, role, "has_table_privilege", "public." + view, write) is False or (
                role == "service_role"
            ), (view, write)
    for fn in [*READ_FUNCTIONS, *PURE_FUNCTIONS]:
        assert _privilege(stack, role, "has_function_privilege", "public." + fn, "execute") is allowed, fn
    assert _privilege(stack, role, "has_function_privilege", "public." + RETENTION, "execute") is (
        role == "service_role"
    )


def test_public_has_no_execute_grant(stack):
    # PUBLIC's grant shows as "=X/owner" in proacl; none of ours may carry one
    for fn in [*READ_FUNCTIONS, *PURE_FUNCTIONS, RETENTION]:
        [r] = stack.sql(
            "select proacl::text[] as acl from pg_proc where oid = %s::regprocedure", ("public." + fn,)
        )
        assert r["acl"] is not None and not any(entry.startswith("=") for entry in r["acl"]), (fn, r["acl"])

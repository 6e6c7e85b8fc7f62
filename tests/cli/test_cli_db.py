"""``stepsdk db sql|push|check`` against the local stack's PostgreSQL, as the non-superuser
``postgres`` role migrations run as on hosted Supabase."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from stepsdk.cli import main
from stepsdk.ops.migrations import migrations, schema_sql
from supabase_local import postgres
from supabase_local.stack import MIGRATIONS_DIR, apply_migrations, apply_platform, migration_dsn, run_sql

SHIPPED = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))


@pytest.fixture
def fresh_db(supabase_stack) -> Iterator[str]:
    """A new database with only what Supabase provides; yields the migration role's DSN."""
    name = "dbcli_" + uuid.uuid4().hex[:10]
    dsn = postgres.create_database(supabase_stack.db_url, name)
    try:
        apply_platform(dsn)
        yield migration_dsn(dsn)
    finally:
        postgres.drop_database(supabase_stack.db_url, name)


def _history(dsn: str) -> list[dict]:
    return run_sql(
        dsn, "select version, name, statements from supabase_migrations.schema_migrations order by version"
    )


def test_shipped_migrations_are_the_repository_ones():
    assert [m.filename for m in migrations()] == SHIPPED
    assert all(m.sql() == (MIGRATIONS_DIR / m.filename).read_text() for m in migrations())


def test_push_applies_pending_migrations_once_and_records_them_like_the_supabase_cli(fresh_db, capsys):
    assert main(["db", "push", "--db-url", fresh_db, "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] == SHIPPED
    assert run_sql(fresh_db, "select to_regclass('public.tasks') is null as none") == [{"none": True}]

    assert main(["db", "push", "--db-url", fresh_db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["applied"], out["already"]) == (SHIPPED, [])
    history = _history(fresh_db)
    assert [(h["version"], h["name"]) for h in history] == [tuple(f[:-4].split("_", 1)) for f in SHIPPED]
    assert all(
        h["statements"] == [(MIGRATIONS_DIR / f).read_text()] for h, f in zip(history, SHIPPED, strict=True)
    )
    assert run_sql(
        fresh_db, "select current_user as u, rolsuper from pg_roles where rolname = current_user"
    ) == [{"u": "postgres", "rolsuper": False}]

    assert main(["db", "push", "--db-url", fresh_db]) == 0  # second run: nothing to do
    captured = capsys.readouterr()
    assert "up to date (5 migrations recorded)".replace("5", str(len(SHIPPED))) in captured.out + captured.err
    assert _history(fresh_db) == history
    # the stack's `supabase db push` emulation (and the real CLI, tests/schema/test_supabase_cli.py) agree
    assert apply_migrations(fresh_db) == []


def test_push_applies_only_what_is_missing_after_a_partial_history(fresh_db, capsys):
    first = migrations()[0]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(first.sql())
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, name) values (%s, %s)",
            (first.version, first.name),
        )
    assert main(["db", "push", "--db-url", fresh_db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["applied"], out["already"]) == (SHIPPED[1:], SHIPPED[:1])


def test_pasted_schema_sql_is_recorded_so_push_has_nothing_left(fresh_db, capsys):
    assert main(["db", "sql"]) == 0
    script = capsys.readouterr().out
    assert script == schema_sql()
    for m in migrations():
        assert m.sql().rstrip() in script
    for _ in range(2):  # pasted twice: harmless
        with psycopg.connect(fresh_db) as conn:  # the SQL editor runs the whole script in one transaction
            conn.execute(script)
    assert [h["version"] for h in _history(fresh_db)] == [m.version for m in migrations()]
    assert main(["db", "push", "--db-url", fresh_db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] == []


def test_db_sql_queries_prints_every_console_query(capsys):
    assert main(["db", "sql", "--queries"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in (MIGRATIONS_DIR.parent / "queries").glob("*.sql"))
    assert len(names) >= 8 and all(f"-- ===== {n}" in out for n in names)


def test_push_errors_are_one_line_with_a_status(fresh_db, capsys, monkeypatch):
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    assert main(["db", "push"]) == 2
    assert "give --db-url" in capsys.readouterr().err
    assert main(["db", "push", "--db-url", "postgresql://postgres@127.0.0.1:9/postgres"]) == 69
    assert "cannot connect to the database" in capsys.readouterr().err
    # a failing migration: rolled back, not recorded, reported with its SQLSTATE
    run_sql(fresh_db, "create table public.tasks (task_id int)")  # conflicts with the core migration's index
    status = main(["db", "push", "--db-url", fresh_db])
    err = capsys.readouterr().err
    assert status == 1 and "migration failed (42703)" in err, err
    assert _history(fresh_db) == []


def _check(monkeypatch, capsys, stack) -> tuple[int, dict]:
    monkeypatch.setenv("SUPABASE_URL", stack.url)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", stack.service_role_key)
    status = main(["db", "check", "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_check_finds_everything_on_a_migrated_project(stack, monkeypatch, capsys):
    status, out = _check(monkeypatch, capsys, stack)
    assert status == 0 and out["ok"], out
    names = [c["name"] for c in out["checks"]]
    assert {
        "table tasks",
        "table task_steps",
        "view task_summary",
        "function stepsdk_delete_tasks_older_than",
        "bucket step-screenshots",
        "row-level security",
        "policies",
        "migration history",
    } <= set(names)
    history = next(c for c in out["checks"] if c["name"] == "migration history")
    assert history["detail"] == f"{len(SHIPPED)} of {len(SHIPPED)} applied"
    assert stack.service_role_key not in json.dumps(out)


def test_check_names_what_is_missing(stack, monkeypatch, capsys):
    # the screenshot-path migration re-creates the core migration's storage policy (the core
    # migration itself cannot run again once that column is renamed)
    policy = (MIGRATIONS_DIR / "20261130001410_stepsdk_screenshot_path.sql").read_text()
    run_sql(
        stack.migration_db_url,
        'drop policy "owners read screenshots objects" on storage.objects;'
        "alter table public.task_steps rename column usage to usage_renamed",
    )
    stack.sql("update storage.buckets set public = true where id = 'step-screenshots'")
    try:
        status, out = _check(monkeypatch, capsys, stack)
    finally:
        run_sql(stack.migration_db_url, "alter table public.task_steps rename column usage_renamed to usage")
        run_sql(stack.migration_db_url, policy)  # idempotent: recreates the policy
        # The gateway reloads its schema cache on the DDL's NOTIFY, asynchronously: reload it now so
        # the next test never meets the renamed column in the cache.
        stack.schema_cache.reload()
    failed = {c["name"]: c["detail"] for c in out["checks"] if not c["ok"]}
    assert status == 1 and not out["ok"]
    assert set(failed) == {"table task_steps", "bucket step-screenshots", "policies"}, failed
    assert "usage" in failed["table task_steps"]
    assert "public" in failed["bucket step-screenshots"]
    assert "owners read screenshots objects" in failed["policies"]


def test_check_without_configuration_is_a_config_error(monkeypatch, capsys):
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    assert main(["db", "check"]) == 78
    assert "not configured" in capsys.readouterr().err


def test_check_of_an_unreachable_project_is_status_69(monkeypatch, capsys):
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")  # discard port: connection refused
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "secret-key-value")
    assert main(["db", "check", "--json"]) == 69
    captured = capsys.readouterr()
    assert (
        "cannot reach the backend" in captured.err and "secret-key-value" not in captured.out + captured.err
    )


def test_check_says_so_when_the_schema_status_function_is_missing(stack, monkeypatch, capsys):
    run_sql(
        stack.migration_db_url, "revoke execute on function public.stepsdk_schema_status() from service_role"
    )
    try:
        status, out = _check(monkeypatch, capsys, stack)
    finally:
        run_sql(
            stack.migration_db_url, "grant execute on function public.stepsdk_schema_status() to service_role"
        )
    failed = {c["name"]: c["detail"] for c in out["checks"] if not c["ok"]}
    assert status == 1 and list(failed) == ["row-level security and policies"]
    assert (
        "42501" in failed["row-level security and policies"]
        and "stepsdk db push" in failed["row-level security and policies"]
    )

"""The project's migrations checked by Supabase's own tool, the real Supabase CLI from npm
(installed by ./dev.sh, pinned there), against the strict local stack's PostgreSQL as the
non-superuser ``postgres`` role: ``supabase db push --db-url`` applies them, agrees with
``stepsdk db push`` about what was applied (in both orders), and ``supabase db lint`` finds nothing.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from stepsdk.ops.migrations import push
from supabase_local import postgres
from supabase_local.stack import MIGRATIONS_DIR, apply_platform, migration_dsn, run_sql

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".tools" / "supabase-cli" / "node_modules" / ".bin" / "supabase"
SHIPPED = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    if not CLI.exists():
        pytest.fail(f"the Supabase CLI is not installed at {CLI}: run ./dev.sh setup")
    return subprocess.run(
        [str(CLI), *args, "--workdir", str(REPO)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(REPO / ".tools"),
            "SUPABASE_TELEMETRY_DISABLED": "1",
            "DO_NOT_TRACK": "1",
        },
    )


@pytest.fixture
def fresh(supabase_stack) -> Iterator[tuple[str, str]]:
    """A new database with what Supabase provides: (psycopg DSN, URL for the CLI), both as `postgres`."""
    name = "supacli_" + uuid.uuid4().hex[:10]
    dsn = postgres.create_database(supabase_stack.db_url, name)
    try:
        apply_platform(dsn)
        # hosted lets `postgres` enable plpgsql_check (supautils); here the superuser does it first
        run_sql(dsn, "create extension if not exists plpgsql_check")
        target = migration_dsn(dsn)
        p = conninfo_to_dict(target)
        yield target, f"postgresql://{p['user']}@{p['host']}:{p['port']}/{p['dbname']}?sslmode=disable"
    finally:
        postgres.drop_database(supabase_stack.db_url, name)


def _history(dsn: str) -> list[str]:
    return [
        r["v"]
        for r in run_sql(dsn, "select version as v from supabase_migrations.schema_migrations order by 1")
    ]


def test_supabase_cli_pushes_the_migrations_and_agrees_with_stepsdk_db_push(fresh):
    dsn, url = fresh
    first = _cli("db", "push", "--db-url", url, "--yes")
    assert first.returncode == 0, first.stderr
    assert all(f"Applying migration {name}" in first.stderr for name in SHIPPED), first.stderr
    assert _history(dsn) == [name.split("_", 1)[0] for name in SHIPPED]
    assert push(dsn).applied == []  # stepsdk sees the CLI's history: nothing left to apply

    lint = _cli("db", "lint", "--db-url", url, "--fail-on", "warning")
    assert lint.returncode == 0 and "No schema errors found" in lint.stdout + lint.stderr, (
        lint.stdout + lint.stderr
    )
    # the lint really inspects this database: a broken function is reported and fails it
    run_sql(
        dsn,
        "create function public.t_broken() returns int language plpgsql as "
        "$$ begin return (select count(*) from public.t_missing_table); end $$",
    )
    broken = _cli("db", "lint", "--db-url", url, "--fail-on", "error")
    assert broken.returncode != 0 and "t_missing_table" in broken.stdout + broken.stderr, broken.stdout


def test_supabase_cli_sees_stepsdk_db_push_history_as_up_to_date(fresh):
    dsn, url = fresh
    assert push(dsn).applied == SHIPPED
    pushed = _cli("db", "push", "--db-url", url, "--yes")
    assert pushed.returncode == 0 and "Remote database is up to date" in pushed.stdout, pushed.stderr

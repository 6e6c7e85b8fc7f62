"""``stepsdk db sql|push|check``: set up and verify the Supabase schema stepsdk needs.

The migrations ship with the package, so no repository checkout is needed:
  sql    print the schema (every migration, then its history rows) for the SQL editor
  push   apply the pending migrations to a database, recorded like `supabase db push`
  check  ask a project, through its REST API with the service key, whether everything is there
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from stepsdk.cli._common import (
    CliError,
    Exit,
    add_json_argument,
    emit,
    examples_formatter,
    open_supabase,
    resolve_source,
    run_safely,
)

EPILOG = """examples:
  stepsdk db sql > stepsdk.sql                     # paste into the Supabase SQL editor
  stepsdk db sql --queries                         # the ready-made console queries
  stepsdk db push --db-url "postgresql://postgres.<ref>:<password>@<host>:5432/postgres"
  SUPABASE_URL=https://<ref>.supabase.co SUPABASE_SECRET_KEY=... stepsdk db check"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "db",
        help="print, apply or check the Supabase schema",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    s = sub.add_parser("sql", help="print the schema SQL for the SQL editor")
    s.add_argument("--queries", action="store_true", help="print the console queries instead of the schema")
    s.set_defaults(func=run_sql)

    push = sub.add_parser("push", help="apply the pending migrations to a database (like `supabase db push`)")
    push.add_argument(
        "--db-url",
        metavar="URL",
        default=None,
        help="PostgreSQL connection URL (default: $SUPABASE_DB_URL); "
        "the project's direct or session-pooler connection string",
    )
    push.add_argument("--dry-run", action="store_true", help="list the pending migrations, apply nothing")
    add_json_argument(push)
    push.set_defaults(func=run_push)

    check = sub.add_parser(
        "check", help="does the project have the tables, bucket and policies stepsdk needs?"
    )
    add_json_argument(check)
    check.set_defaults(func=run_check)


@run_safely("db sql")
def run_sql(args: argparse.Namespace) -> int:
    from stepsdk.ops.migrations import queries, schema_sql

    if args.queries:
        text = "".join(f"-- ===== {q.name}\n{q.read_text(encoding='utf-8').rstrip()}\n\n" for q in queries())
    else:
        text = schema_sql()
    sys.stdout.write(text)
    sys.stdout.flush()
    return Exit.OK


@run_safely("db push")
def run_push(args: argparse.Namespace) -> int:
    from stepsdk.ops.migrations import push

    db_url = args.db_url or os.environ.get("SUPABASE_DB_URL")
    if not db_url:
        raise CliError("no database: give --db-url postgresql://... (or set SUPABASE_DB_URL)", Exit.USAGE)
    try:
        import psycopg
    except ImportError:
        raise CliError("`stepsdk db push` needs psycopg: pip install 'stepsdk[db]'", Exit.CONFIG) from None
    try:
        result = push(db_url, dry_run=args.dry_run)
    except psycopg.OperationalError as exc:
        raise CliError(f"cannot connect to the database: {_first_line(exc)}", Exit.UNAVAILABLE) from None
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None) or ""
        raise CliError(f"migration failed ({state}): {_first_line(exc)}", Exit.FAILED) from None
    verb = "would apply" if args.dry_run else "applied"
    if result.applied:
        human = f"{verb} {len(result.applied)} migration(s): " + ", ".join(result.applied)
    else:
        human = f"the database is up to date ({len(result.already)} migrations recorded)"
    emit(
        args,
        {"ok": True, "dry_run": args.dry_run, "applied": result.applied, "already": result.already},
        human,
    )
    return Exit.OK


@run_safely("db check")
def run_check(args: argparse.Namespace) -> int:
    from stepsdk.ops.db_check import as_dicts, run_checks

    source = resolve_source(argparse.Namespace())
    if source.kind != "supabase":
        raise CliError(
            "Supabase is not configured: set SUPABASE_URL and SUPABASE_SECRET_KEY "
            "(or SUPABASE_SERVICE_ROLE_KEY)",
            Exit.CONFIG,
        )
    checks = run_checks(open_supabase(source))
    ok = all(c.ok for c in checks)
    lines = [f"{'ok     ' if c.ok else 'MISSING'} {c.name}: {c.detail}" for c in checks]
    lines.append(
        f"{source.url}: "
        + (
            "everything stepsdk needs is there"
            if ok
            else "incomplete: run `stepsdk db push` (or paste `stepsdk db sql`)"
        )
    )
    emit(args, {"ok": ok, "url": source.url, "checks": as_dicts(checks)}, "\n".join(lines))
    return Exit.OK if ok else Exit.FAILED


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]

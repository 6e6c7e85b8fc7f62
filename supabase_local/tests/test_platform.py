"""The platform bootstrap, migrations, schema reload and the CLI of the local stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from psycopg.rows import dict_row

from supabase_local import bootstrap
from supabase_local.postgres import create_database, drop_database, free_port
from supabase_local.stack import MIGRATIONS_DIR, run_sql

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_db(supabase_stack):
    """A new, empty database in the session's cluster (dropped afterwards)."""
    names: list[str] = []

    def make() -> str:
        name = f"fresh_{uuid.uuid4().hex[:10]}"
        names.append(name)
        return create_database(supabase_stack.db_url, name)

    yield make
    for name in names:
        drop_database(supabase_stack.db_url, name)


def test_migrations_apply_from_scratch_twice(fresh_db):
    expected = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    for _ in range(2):
        dsn = fresh_db()
        assert bootstrap(dsn) == expected
        tables = {
            r["t"] for r in run_sql(dsn, "select tablename as t from pg_tables where schemaname = 'public'")
        }
        assert {"tasks", "task_steps", "step_screenshots"} <= tables
        assert bootstrap(dsn) == []  # recorded in supabase_migrations.schema_migrations: not re-run
        bucket = run_sql(
            dsn, "select public, file_size_limit from storage.buckets where id = 'step-screenshots'"
        )
        assert bucket == [{"public": False, "file_size_limit": 20971520}]
    # the newest migration promises that pasting it twice into the SQL console does no harm (the
    # core migration could not run again: 20261130001410 renamed a column its storage policy names)
    run_sql(dsn, sorted(MIGRATIONS_DIR.glob("*.sql"))[-1].read_text())
    assert run_sql(dsn, "select count(*) as n from storage.buckets") == [{"n": 1}]


def test_platform_roles_and_privileges(supabase_stack):
    roles = {
        r["rolname"]: r
        for r in supabase_stack.sql(
            "select rolname, rolcanlogin, rolinherit, rolbypassrls from pg_roles "
            "where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
        )
    }
    assert set(roles) == {"anon", "authenticated", "service_role", "authenticator"}
    assert roles["service_role"]["rolbypassrls"] and not roles["authenticated"]["rolbypassrls"]
    assert roles["authenticator"]["rolcanlogin"] and not roles["authenticator"]["rolinherit"]
    assert not roles["anon"]["rolcanlogin"]
    members = {
        r["r"]
        for r in supabase_stack.sql(
            "select r.rolname as r from pg_auth_members m join pg_roles r on r.oid = m.roleid "
            "join pg_roles u on u.oid = m.member where u.rolname = 'authenticator'"
        )
    }
    assert members == {"anon", "authenticated", "service_role"}
    # hosted "secure by default": a new public table created by the migration role is granted to
    # none of the API roles (test_hosted_strictness.py shows the API answering 42501)
    run_sql(supabase_stack.migration_db_url, "create table public.t_grants (id int)")
    try:
        privs = supabase_stack.sql(
            "select has_table_privilege('anon', 'public.t_grants', 'insert') as a, "
            "has_table_privilege('authenticated', 'public.t_grants', 'delete') as b, "
            "has_table_privilege('service_role', 'public.t_grants', 'select') as c"
        )
        assert privs == [{"a": False, "b": False, "c": False}]
    finally:
        supabase_stack.sql("drop table public.t_grants")
    rls = supabase_stack.sql(
        "select relname, relrowsecurity from pg_class where relnamespace = 'storage'::regnamespace "
        "and relname in ('buckets', 'objects') order by relname"
    )
    assert rls == [
        {"relname": "buckets", "relrowsecurity": True},
        {"relname": "objects", "relrowsecurity": True},
    ]
    cols = {
        r["c"]
        for r in supabase_stack.sql(
            "select column_name as c from information_schema.columns where table_schema = 'storage' "
            "and table_name = 'objects'"
        )
    }
    assert cols == {
        "id",
        "bucket_id",
        "name",
        "owner",
        "owner_id",
        "metadata",
        "user_metadata",
        "version",
        "created_at",
        "updated_at",
        "last_accessed_at",
        "path_tokens",
    }


def test_auth_helpers_read_the_request_claims(supabase_stack):
    sub = str(uuid.uuid4())
    claims = json.dumps({"sub": sub, "role": "authenticated", "email": "a@b.c"})
    with psycopg.connect(supabase_stack.db_url, row_factory=dict_row) as conn:
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        row = conn.execute(
            "select auth.uid() as uid, auth.role() as role, auth.jwt() ->> 'email' as email"
        ).fetchone()
    assert row == {"uid": uuid.UUID(sub), "role": "authenticated", "email": "a@b.c"}
    assert supabase_stack.sql("select auth.uid() as uid") == [{"uid": None}]


def test_schema_reload_serves_new_tables_without_restart(stack):
    url = f"{stack.url}/rest/v1/t_reload"
    headers = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    assert httpx.get(url, headers=headers).json()["code"] == "PGRST205"
    _settle(stack.schema_cache)  # a reload still running for an earlier test's DDL would see our table
    # a connection whose event triggers are off: only the explicit NOTIFY may reload the cache
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute("create table public.t_reload (id int primary key, label text)")
        conn.execute("grant select on public.t_reload to service_role")
        conn.execute("insert into public.t_reload values (1, 'one')")
    try:
        time.sleep(0.4)
        assert httpx.get(url, headers=headers).status_code == 404  # not reloaded yet: no NOTIFY was sent
        stack.sql("notify pgrst, 'reload schema'")
        _wait_status(url, headers, 200)
        assert httpx.get(url, headers=headers).json() == [{"id": 1, "label": "one"}]
        stack.sql("alter table public.t_reload add column extra int default 7")  # DDL → event trigger NOTIFY
        _wait_for(lambda: "extra" in httpx.get(url, headers=headers).json()[0])
    finally:
        stack.sql("drop table public.t_reload")
    _wait_status(url, headers, 404)


def _settle(cache, quiet: float = 0.3) -> None:
    """Wait until no schema reload happened for ``quiet`` seconds."""
    last, since = cache.reloads, time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.05)
        if cache.reloads != last or cache.busy:
            last, since = cache.reloads, time.monotonic()


def _wait_status(url: str, headers: dict, status: int) -> None:
    _wait_for(lambda: httpx.get(url, headers=headers).status_code == status)


def _wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _start_cli(*args: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "supabase_local", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return proc, json.loads(line)


def test_cli_prints_one_json_line_and_cleans_up(fresh_db):
    port = free_port()
    proc, info = _start_cli("--port", str(port))
    try:
        assert set(info) == {"url", "anon_key", "service_role_key", "jwt_secret", "db_url"}
        assert info["url"] == f"http://127.0.0.1:{port}"
        r = httpx.get(
            f"{info['url']}/rest/v1/tasks",
            headers={
                "apikey": info["service_role_key"],
                "Authorization": f"Bearer {info['service_role_key']}",
            },
        )
        assert (r.status_code, r.json()) == (200, [])
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # its private PostgreSQL is stopped (pg_ctl daemonizes it, so look for the postmaster by port)
    pg_port = psycopg.conninfo.conninfo_to_dict(info["db_url"])["port"]
    time.sleep(0.2)
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and "postgres" in p.info["cmdline"][0]
        and f"port={pg_port}" in " ".join(p.info["cmdline"])
    ]
    assert all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE for c in children)
    # --db-url: an existing database is bootstrapped and used, and left running afterwards
    dsn = fresh_db()
    proc, info = _start_cli("--db-url", dsn)
    try:
        assert info["db_url"] == dsn
        assert run_sql(dsn, "select count(*) as n from public.tasks") == [{"n": 0}]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


def test_env_db_url_is_used(fresh_db, monkeypatch):
    from supabase_local import LocalStack

    dsn = fresh_db()
    monkeypatch.setenv("STEPSDK_TEST_DB_URL", dsn)
    with LocalStack.start() as local:
        assert local.db_url == dsn
        local.client().table("tasks").insert({"task_id": "env"}).execute()
        assert run_sql(dsn, "select task_id from tasks") == [{"task_id": "env"}]
        url = local.url
    with pytest.raises(httpx.ConnectError):  # closed on leaving the block; the database stays
        httpx.get(f"{url}/rest/v1/tasks")
    assert run_sql(dsn, "select task_id from tasks") == [{"task_id": "env"}]
    assert os.environ["STEPSDK_TEST_DB_URL"] == dsn


def test_reset_restores_a_clean_stack(stack):
    sb = stack.client()
    sb.table("tasks").insert({"task_id": "t1"}).execute()
    sb.storage.from_("step-screenshots").upload("a/b.webp", b"RIFF", {"content-type": "image/webp"})
    sb.storage.create_bucket("extra")
    stack.sql("update storage.buckets set public = true, file_size_limit = 1 where id = 'step-screenshots'")
    stack.faults.fail_next("* *", n=5)
    stack.faults.start_outage()
    stack.sql("create table public.t_refs (task_id text references public.tasks (task_id))")
    try:
        stack.sql("insert into public.t_refs values ('t1')")
        stack.reset()  # DELETE would violate t_refs' foreign key: falls back to TRUNCATE … CASCADE
        assert stack.sql("select count(*) as n from tasks") == [{"n": 0}]
        assert stack.sql("select count(*) as n from storage.objects") == [{"n": 0}]
        assert stack.sql("select id, public, file_size_limit from storage.buckets") == [
            {"id": "step-screenshots", "public": False, "file_size_limit": 20971520}
        ]
        assert list((stack.root / "objects").iterdir()) == []
        assert not stack.faults.in_outage and stack.faults.pending() == 0
        assert sb.table("tasks").select("*").execute().data == []
    finally:
        stack.sql("drop table public.t_refs")

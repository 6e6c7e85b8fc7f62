"""The stack rejects what hosted Supabase rejects (reference: hosted-supabase.md):

- migrations run as ``postgres``, not a superuser;
- no default grants on new public objects: a table without explicit grants answers 42501;
- storage tables belong to ``supabase_storage_admin``: ``postgres`` may manage policies there
  and nothing else (ALTER TABLE, indexes, triggers, new tables: 42501);
- direct SQL deletes from storage tables are refused; the Storage API still deletes;
- an expired token on a private download is 403 AccessDenied, not InvalidJWT.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from supabase_local import make_token
from supabase_local.stack import apply_migrations, run_sql

BUCKET = "step-screenshots"


def _migration(tmp_path: Path, body: str) -> Path:
    """A migrations folder holding one migration file with ``body``."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20991231000000_probe.sql").write_text(body)
    return folder


def _wait_for(check, tries: int = 600) -> None:
    import time

    for _ in range(tries):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_migrations_run_as_a_non_superuser_postgres(supabase_stack):
    role = run_sql(
        supabase_stack.migration_db_url,
        "select current_user as u, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
        "from pg_roles where rolname = current_user",
    )
    assert role == [
        {"u": "postgres", "rolsuper": False, "rolcreaterole": True, "rolcreatedb": True, "rolbypassrls": True}
    ]
    # the project's migrations were applied by that role: it owns what they created
    owners = {
        r["o"]
        for r in supabase_stack.sql(
            "select pg_get_userbyid(relowner) as o from pg_class where relnamespace = 'public'::regnamespace "
            "and relname in ('tasks', 'task_steps', 'step_screenshots', 'task_summary')"
        )
    }
    assert owners == {"postgres"}
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # superuser-only DDL fails as on hosted
        run_sql(supabase_stack.migration_db_url, "create extension if not exists file_fdw")
    storage_owners = {
        r["o"]
        for r in supabase_stack.sql(
            "select pg_get_userbyid(relowner) as o from pg_class where relnamespace = 'storage'::regnamespace "
            "and relkind = 'r'"
        )
    } | {
        r["o"]
        for r in supabase_stack.sql(
            "select pg_get_userbyid(nspowner) as o from pg_namespace where nspname = 'storage'"
        )
    }
    assert storage_owners == {"supabase_storage_admin"}


def test_a_migration_creating_a_table_without_grants_fails_through_the_api_with_42501(stack, tmp_path):
    folder = _migration(
        tmp_path,
        "create table public.t_no_grants (id int primary key);\ninsert into public.t_no_grants values (1);\n",
    )
    try:
        assert apply_migrations(stack.db_url, folder) == ["20991231000000_probe.sql"]
        sb = stack.client()  # service_role: even it has no privilege on the new table
        with pytest.raises(APIError) as err:
            _wait_for(lambda: _readable(sb, "t_no_grants"))
        assert err.value.code == "42501"
        assert "permission denied for table t_no_grants" in err.value.message
        # the fix a migration needs: explicit grants
        run_sql(stack.migration_db_url, "grant select on public.t_no_grants to service_role")
        assert sb.table("t_no_grants").select("*").execute().data == [{"id": 1}]
        user = stack.client(
            key=stack.anon_key, headers={"Authorization": f"Bearer {stack.user_token(str(uuid.uuid4()))}"}
        )
        with pytest.raises(APIError) as err:
            user.table("t_no_grants").select("*").execute()
        assert err.value.code == "42501"
    finally:
        stack.sql(
            "drop table if exists public.t_no_grants; "
            "delete from supabase_migrations.schema_migrations where version = '20991231000000'"
        )


def test_functions_and_views_get_no_default_grants_either(stack):
    run_sql(
        stack.migration_db_url,
        """
        create function public.t_fn() returns int language sql as $$ select 1 $$;
        create view public.t_view with (security_invoker = true) as select 1 as one;
    """,
    )
    try:
        privs = stack.sql(
            "select has_function_privilege('anon', 'public.t_fn()', 'execute') as fa, "
            "has_function_privilege('service_role', 'public.t_fn()', 'execute') as fs, "
            "has_table_privilege('authenticated', 'public.t_view', 'select') as va, "
            "has_table_privilege('service_role', 'public.t_view', 'select') as vs"
        )
        assert privs == [{"fa": False, "fs": False, "va": False, "vs": False}]
    finally:
        stack.sql("drop function public.t_fn(); drop view public.t_view")


@pytest.mark.parametrize(
    "ddl",
    [
        "alter table storage.objects add column stepsdk_probe text",
        "create index stepsdk_probe_idx on storage.objects (created_at)",
        "create trigger stepsdk_probe after insert on storage.objects "
        "for each row execute function storage.protect_delete()",
        "alter table storage.objects add constraint stepsdk_probe check (name <> '')",
        "alter table storage.objects disable row level security",
        "alter table storage.buckets add column stepsdk_probe text",
    ],
)
def test_a_migration_altering_storage_tables_is_refused_like_hosted(supabase_stack, tmp_path, ddl):
    folder = _migration(tmp_path, ddl + ";\n")
    try:
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match=r"must be owner of table (objects|buckets)"
        ):
            apply_migrations(supabase_stack.db_url, folder)
    finally:  # were it accepted, the next cases would be skipped as applied and the stack changed
        supabase_stack.sql(
            "delete from supabase_migrations.schema_migrations where version = '20991231000000';"
            "drop trigger if exists stepsdk_probe on storage.objects"
        )
    # rolled back and not recorded: the storage tables are as the platform made them
    assert (
        supabase_stack.sql(
            "select 1 from supabase_migrations.schema_migrations where version = '20991231000000'"
        )
        == []
    )
    assert supabase_stack.sql(
        "select count(*) as n from information_schema.columns "
        "where table_schema = 'storage' and column_name = 'stepsdk_probe'"
    ) == [{"n": 0}]
    assert supabase_stack.sql(
        "select relrowsecurity from pg_class where oid = 'storage.objects'::regclass"
    ) == [{"relrowsecurity": True}]


def test_new_objects_in_the_storage_schema_and_drops_are_refused(supabase_stack):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema storage"):
        run_sql(supabase_stack.migration_db_url, "create table storage.t_probe (id int)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
        run_sql(supabase_stack.migration_db_url, "drop index storage.name_prefix_search")
    assert supabase_stack.sql("select to_regclass('storage.name_prefix_search') is not null as ok") == [
        {"ok": True}
    ]


def test_policies_on_storage_objects_are_allowed_as_with_supautils(supabase_stack):
    run_sql(
        supabase_stack.migration_db_url,
        "create policy t_probe_policy on storage.objects for select to authenticated using (false)",
    )
    try:
        assert supabase_stack.sql(
            "select count(*) as n from pg_policies where policyname = 't_probe_policy'"
        ) == [{"n": 1}]
    finally:
        run_sql(supabase_stack.migration_db_url, "drop policy t_probe_policy on storage.objects")


def test_direct_sql_deletes_from_storage_are_refused_but_the_storage_api_deletes(stack):
    storage = stack.client().storage.from_(BUCKET)
    storage.upload("ab/probe.webp", b"RIFF....WEBP", {"content-type": "image/webp"})
    for dsn in (stack.migration_db_url, stack.db_url):  # even the superuser, as on hosted
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="Direct deletion from storage tables"):
            run_sql(dsn, "delete from storage.objects where name = 'ab/probe.webp'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_sql(stack.migration_db_url, "delete from storage.buckets where id = 'nothing-here'")
    assert [o["name"] for o in storage.remove(["ab/probe.webp"])] == ["ab/probe.webp"]
    assert stack.sql("select count(*) as n from storage.objects") == [{"n": 0}]


def test_an_expired_token_on_a_private_download_is_403_access_denied(stack):
    stack.client().storage.from_(BUCKET).upload(
        "ab/exp.webp", b"RIFF....WEBP", {"content-type": "image/webp"}
    )
    expired = make_token(stack.jwt_secret, "authenticated", sub=str(uuid.uuid4()), expires_in=-10)
    headers = {"apikey": stack.anon_key, "Authorization": f"Bearer {expired}"}
    r = httpx.get(f"{stack.url}/storage/v1/object/authenticated/{BUCKET}/ab/exp.webp", headers=headers)
    assert r.json() == {
        "statusCode": "403",
        "code": "AccessDenied",
        "error": "Unauthorized",
        "message": '"exp" claim timestamp check failed',
    }
    r = httpx.get(f"{stack.url}/storage/v1/object/{BUCKET}/ab/exp.webp", headers=headers)
    assert r.json()["code"] == "NoSuchBucket"
    r = httpx.post(f"{stack.url}/storage/v1/object/list/{BUCKET}", headers=headers, json={"prefix": ""})
    assert r.json()["code"] == "AccessDenied"


def _readable(sb, table: str) -> bool:
    """True once the table is readable; 404 while the schema cache has not seen it; raises otherwise."""
    try:
        sb.table(table).select("*").execute()
    except APIError as exc:
        if exc.code in ("PGRST205", "42P01"):
            return False
        raise
    return True

-- What a Supabase project provides before any user migration runs, reduced to what stepsdk
-- and its tests touch: the API roles, the auth helpers (auth.uid/role/jwt reading the claims
-- PostgREST/Storage set), a minimal auth.users, and the storage schema (buckets, objects) with
-- RLS on, as on Supabase. Run by the cluster's superuser (`supabase_admin`, as on hosted).
-- Strict like hosted (see /work/shared/reference/hosted-supabase.md and README.md):
--   * migrations run as `postgres`: NOSUPERUSER, CREATEDB, CREATEROLE, BYPASSRLS;
--   * storage tables belong to `supabase_storage_admin`; `postgres` may only create, alter and
--     drop policies on them (supautils' policy_grants, emulated by an event trigger);
--   * direct DELETEs on storage tables are refused (Storage's protect_delete trigger);
--   * no default privileges on new objects in public for anon/authenticated/service_role.
-- Idempotent: roles are cluster-wide, so a second database in the same cluster re-runs it.

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit;
    end if;
    -- the role migrations run as (and the SQL editor): not a superuser on hosted
    if not exists (select 1 from pg_roles where rolname = 'postgres') then
        create role postgres login nosuperuser createdb createrole bypassrls;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
        create role supabase_storage_admin nologin noinherit createrole;
    end if;
end
$$;

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;
do $$
begin
    execute format('grant connect, create, temporary on database %I to postgres', current_database());
end
$$;

-- Supabase's per-role statement timeouts (applied by the gateway when it switches role).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';

-- Supabase: extensions live in their own schema, which every API role may use.
create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;

do $$
begin
    execute format('alter database %I set search_path = "$user", public, extensions', current_database());
end
$$;

grant usage, create on schema extensions to postgres;

-- Hosted "secure by default" (new projects since 2026-05-30, new objects everywhere since
-- 2026-10-30): a new table, view, sequence or function in public gives anon, authenticated and
-- service_role nothing; every object needs explicit grants (else 42501 through the API).
-- PostgreSQL's own default EXECUTE for PUBLIC on new functions is taken away too.
grant usage on schema public to postgres, anon, authenticated, service_role;
grant create on schema public to postgres;
alter default privileges for role postgres in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on sequences from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on functions from anon, authenticated, service_role;
-- (per-schema defaults can only add to the global ones: PUBLIC's EXECUTE goes globally)
alter default privileges for role postgres revoke execute on functions from public;
-- (an older stack granted everything by default for objects its superuser created: undo it)
alter default privileges in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges in schema public revoke all on sequences from anon, authenticated, service_role;
alter default privileges in schema public revoke all on functions from anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- auth: the helpers policies use, reading the claims the gateway sets per request
-- ---------------------------------------------------------------------------
create schema if not exists auth;
grant usage on schema auth to postgres, anon, authenticated, service_role;

create table if not exists auth.users (
    instance_id        uuid,
    id                 uuid primary key,
    aud                varchar(255),
    role               varchar(255),
    email              varchar(255) unique,
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    last_sign_in_at    timestamptz,
    raw_app_meta_data  jsonb,
    raw_user_meta_data jsonb,
    is_anonymous       boolean not null default false,
    created_at         timestamptz default now(),
    updated_at         timestamptz default now()
);

create or replace function auth.uid() returns uuid
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.jwt() to postgres, anon, authenticated, service_role;
grant select on auth.users to postgres;

-- ---------------------------------------------------------------------------
-- storage: buckets and objects as created by supabase/storage's tenant migrations
-- ---------------------------------------------------------------------------
create schema if not exists storage;
alter schema storage owner to supabase_storage_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;

create table if not exists storage.buckets (
    id                 text primary key,
    name               text not null,
    owner              uuid,
    owner_id           text,
    public             boolean default false,
    avif_autodetection boolean default false,
    file_size_limit    bigint,
    allowed_mime_types text[],
    created_at         timestamptz default now(),
    updated_at         timestamptz default now()
);
create unique index if not exists bname on storage.buckets (name);

create table if not exists storage.objects (
    id               uuid primary key default gen_random_uuid(),
    bucket_id        text references storage.buckets (id),
    name             text,
    owner            uuid,
    owner_id         text,
    metadata         jsonb,
    user_metadata    jsonb,
    version          text,
    created_at       timestamptz default now(),
    updated_at       timestamptz default now(),
    last_accessed_at timestamptz default now(),
    path_tokens      text[] generated always as (string_to_array(name, '/')) stored
);
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);
create index if not exists name_prefix_search on storage.objects (name text_pattern_ops);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
grant all on storage.buckets, storage.objects to postgres, anon, authenticated, service_role;

-- Storage's protect_delete: rows of storage tables are deleted through the Storage API only
-- (which sets storage.allow_delete_query for its own transaction); SQL deletes would orphan bytes.
create or replace function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
    if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
        raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
            using hint = 'This prevents accidental data loss from orphaned objects.', errcode = '42501';
    end if;
    return null;
end;
$$;
drop trigger if exists protect_buckets_delete on storage.buckets;
create trigger protect_buckets_delete before delete on storage.buckets
    for each statement execute function storage.protect_delete();
drop trigger if exists protect_objects_delete on storage.objects;
create trigger protect_objects_delete before delete on storage.objects
    for each statement execute function storage.protect_delete();

create or replace function storage.foldername(name text) returns text[]
language sql immutable
as $$ select (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1] $$;

create or replace function storage.filename(name text) returns text
language sql immutable
as $$ select (string_to_array(name, '/'))[array_length(string_to_array(name, '/'), 1)] $$;

create or replace function storage.extension(name text) returns text
language sql immutable
as $$ select reverse(split_part(reverse(name), '.', 1)) $$;

alter function storage.foldername(text) owner to supabase_storage_admin;
alter function storage.filename(text) owner to supabase_storage_admin;
alter function storage.extension(text) owner to supabase_storage_admin;
alter function storage.protect_delete() owner to supabase_storage_admin;

-- ---------------------------------------------------------------------------
-- supautils' policy_grants, emulated: on hosted, `postgres` may CREATE/ALTER/DROP POLICY on the
-- storage tables although it does not own them; anything else there (ALTER TABLE, indexes,
-- triggers, new tables or functions, drops) fails with 42501. Here `postgres` is a member of
-- the owner so that policy commands pass PostgreSQL's owner check, and these event triggers
-- refuse every other DDL on the storage schema by a non-superuser session, rolling it back.
-- ---------------------------------------------------------------------------
grant supabase_storage_admin to postgres;

create or replace function extensions.storage_ddl_guard() returns event_trigger
language plpgsql
as $$
declare
    cmd record;
    rel oid;
begin
    if (select rolsuper from pg_catalog.pg_roles where rolname = session_user) then
        return;
    end if;
    for cmd in select * from pg_catalog.pg_event_trigger_ddl_commands() loop
        continue when cmd.command_tag in ('CREATE POLICY', 'ALTER POLICY');
        rel := case cmd.object_type
            when 'table' then cmd.objid
            when 'table column' then cmd.objid
            when 'index' then (select indrelid from pg_catalog.pg_index where indexrelid = cmd.objid)
            when 'trigger' then (select tgrelid from pg_catalog.pg_trigger where oid = cmd.objid)
            when 'table constraint' then (select conrelid from pg_catalog.pg_constraint where oid = cmd.objid)
            when 'rule' then (select ev_class from pg_catalog.pg_rewrite where oid = cmd.objid)
        end;
        -- triggers, rules and constraints carry no schema of their own: their table's counts
        continue when cmd.schema_name is distinct from 'storage' and (rel is null or
            (select relnamespace from pg_catalog.pg_class where oid = rel) <> 'storage'::regnamespace);
        if rel is null or cmd.command_tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') then
            raise exception 'permission denied for schema storage' using errcode = '42501';
        end if;
        raise exception 'must be owner of table %', (select relname from pg_catalog.pg_class where oid = rel)
            using errcode = '42501';
    end loop;
end;
$$;

create or replace function extensions.storage_drop_guard() returns event_trigger
language plpgsql
as $$
declare
    obj record;
begin
    if (select rolsuper from pg_catalog.pg_roles where rolname = session_user) then
        return;
    end if;
    for obj in select * from pg_catalog.pg_event_trigger_dropped_objects() loop
        continue when obj.schema_name is distinct from 'storage' or obj.object_type = 'policy';
        raise exception 'must be owner of % %', obj.object_type, obj.object_identity using errcode = '42501';
    end loop;
end;
$$;

drop event trigger if exists storage_ddl_guard;
create event trigger storage_ddl_guard on ddl_command_end execute procedure extensions.storage_ddl_guard();
drop event trigger if exists storage_drop_guard;
create event trigger storage_drop_guard on sql_drop execute procedure extensions.storage_drop_guard();

-- ---------------------------------------------------------------------------
-- Supabase reloads PostgREST's schema cache on every DDL statement (pgrst_ddl_watch).
-- ---------------------------------------------------------------------------
create or replace function extensions.pgrst_ddl_watch() returns event_trigger
language plpgsql
as $$
begin
    notify pgrst, 'reload schema';
end;
$$;

drop event trigger if exists pgrst_ddl_watch;
create event trigger pgrst_ddl_watch on ddl_command_end execute procedure extensions.pgrst_ddl_watch();
drop event trigger if exists pgrst_drop_watch;
create event trigger pgrst_drop_watch on sql_drop execute procedure extensions.pgrst_ddl_watch();

-- pg_cron, when the server preloads it (issue 14's retention schedule): hosted lets `postgres`
-- create it (supautils' privileged extensions); here the superuser creates it first, so a
-- migration's `create extension if not exists pg_cron` is a no-op, and `postgres` may schedule.
do $$
begin
    if pg_catalog.current_setting('shared_preload_libraries', true) like '%pg_cron%'
       and pg_catalog.current_setting('cron.database_name', true) = pg_catalog.current_database()
       and exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron') then
        create extension if not exists pg_cron;
        grant usage on schema cron to postgres;
        grant all on all tables in schema cron to postgres;
    end if;
end
$$;

-- What `supabase db push` records (created by the migration role, as the CLI does on hosted).
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
alter table supabase_migrations.schema_migrations add column if not exists statements text[];
alter table supabase_migrations.schema_migrations add column if not exists name text;
alter schema supabase_migrations owner to postgres;
alter table supabase_migrations.schema_migrations owner to postgres;

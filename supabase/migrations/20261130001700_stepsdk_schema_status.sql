-- stepsdk_schema_status(): what `stepsdk db check` needs to know that PostgREST cannot show:
-- row-level security on the stepsdk tables, the policies present, and the migration history
-- (supabase_migrations.schema_migrations, as `supabase db push` / `stepsdk db push` record it;
-- null when the schema was applied without history).
-- SECURITY DEFINER (the catalog and the history table are not readable by the API roles),
-- search_path empty, execute for service_role only. Read-only.

create or replace function public.stepsdk_schema_status()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    history jsonb;
begin
    if pg_catalog.to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select coalesce(pg_catalog.jsonb_agg(version order by version), ''[]'')'
                ' from supabase_migrations.schema_migrations'
            into history;
    end if;
    return pg_catalog.jsonb_build_object(
        'rls', (
            select coalesce(pg_catalog.jsonb_object_agg(c.relname, c.relrowsecurity), '{}'::jsonb)
            from pg_catalog.pg_class c
            join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'public' and c.relname in ('tasks', 'task_steps', 'step_screenshots')
        ),
        'policies', (
            select coalesce(pg_catalog.jsonb_agg(
                       pg_catalog.jsonb_build_object('schema', p.schemaname, 'table', p.tablename,
                                                     'name', p.policyname)
                       order by p.schemaname, p.tablename, p.policyname), '[]'::jsonb)
            from pg_catalog.pg_policies p
            where (p.schemaname = 'public' and p.tablename in ('tasks', 'task_steps', 'step_screenshots'))
               or (p.schemaname = 'storage' and p.tablename in ('objects', 'buckets'))
        ),
        'migrations', history
    );
end;
$$;

revoke all on function public.stepsdk_schema_status() from public, anon, authenticated;
grant execute on function public.stepsdk_schema_status() to service_role;

-- stepsdk scheduled retention: pg_cron runs the retention function by itself.
--
-- Apply after 20261130001400_stepsdk_delete_tasks.sql. Safe to apply twice. Needs no extension
-- to apply; scheduling needs pg_cron (Supabase: Dashboard -> Database -> Extensions -> pg_cron,
-- or `create extension pg_cron with schema pg_catalog;`).
--
-- Turn it on from the SQL console (as postgres), e.g. keep 30 days, run daily at 03:17 UTC:
--   select public.stepsdk_schedule_retention(interval '30 days');
--   select public.stepsdk_schedule_retention(interval '90 days', '0 4 * * 0');  -- weekly
--   select public.stepsdk_unschedule_retention();                               -- off
-- What is in force and the last run (also shown by `stepsdk status`):
--   select public.stepsdk_retention_status();
--
-- Screenshot objects: SQL cannot remove Storage objects (the bytes live behind the Storage API),
-- so each run queues the object keys it freed in public.stepsdk_freed_objects; `stepsdk cleanup`
-- (run it from any scheduler, e.g. daily after the job) removes them from the bucket, checking
-- first that no row references them again. No Edge function: it would have to be deployed and
-- hold the service key beside the database, and the CLI already does the same removal, tested.

create table if not exists public.stepsdk_freed_objects (
    screenshot_path text primary key check (char_length(screenshot_path) between 1 and 1024),
    freed_at        timestamptz not null default now()
);
comment on table public.stepsdk_freed_objects is
    'stepsdk: screenshot object keys freed by the scheduled retention; `stepsdk cleanup` removes them from Storage.';

create table if not exists public.stepsdk_retention_runs (
    id            bigint generated always as identity primary key,
    started_at    timestamptz not null default clock_timestamp(),
    finished_at   timestamptz,
    max_age       interval not null,
    tasks_deleted integer not null default 0,
    objects_freed integer not null default 0
);
comment on table public.stepsdk_retention_runs is
    'stepsdk: one row per run of public.stepsdk_run_retention (the scheduled job).';

alter table public.stepsdk_freed_objects enable row level security;
alter table public.stepsdk_retention_runs enable row level security;
revoke all on public.stepsdk_freed_objects from public, anon, authenticated, service_role;
revoke all on public.stepsdk_retention_runs from public, anon, authenticated, service_role;
grant select, insert, delete on public.stepsdk_freed_objects to service_role;
grant select, insert, update on public.stepsdk_retention_runs to service_role;

-- Delete every task older than max_age, batch after batch, queue the objects they freed and
-- log the run. This is the command the pg_cron job runs.
create or replace function public.stepsdk_run_retention(
    max_age interval,
    batch_limit integer default 1000
)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_run bigint;
    v_res jsonb;
    v_tasks integer := 0;
    v_objects integer := 0;
begin
    insert into public.stepsdk_retention_runs (max_age) values (max_age) returning id into v_run;
    loop
        v_res := public.stepsdk_delete_tasks_older_than(max_age, false, batch_limit);
        v_tasks := v_tasks + (v_res ->> 'task_count')::integer;
        insert into public.stepsdk_freed_objects (screenshot_path)
        select jsonb_array_elements_text(v_res -> 'unreferenced_paths')
        on conflict (screenshot_path) do nothing;
        v_objects := v_objects + jsonb_array_length(v_res -> 'unreferenced_paths');
        exit when not (v_res ->> 'has_more')::boolean or (v_res ->> 'task_count')::integer = 0;
    end loop;
    update public.stepsdk_retention_runs
       set finished_at = clock_timestamp(), tasks_deleted = v_tasks, objects_freed = v_objects
     where id = v_run;
    return jsonb_build_object('run_id', v_run, 'max_age', max_age, 'tasks_deleted', v_tasks,
                              'objects_freed', v_objects);
end;
$$;

comment on function public.stepsdk_run_retention(interval, integer) is
    'stepsdk scheduled retention (service_role / pg_cron): delete all tasks started before now() - max_age, '
    'queue the freed object keys in stepsdk_freed_objects, log the run in stepsdk_retention_runs.';

-- The job's name: one stepsdk retention job per database.
create or replace function public.stepsdk_schedule_retention(
    max_age interval,
    schedule text default '17 3 * * *'
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_job bigint;
begin
    if max_age is null or max_age < interval '1 minute' then
        raise exception 'stepsdk_schedule_retention: max_age must be an interval of at least 1 minute, got %',
            coalesce(max_age::text, 'null') using errcode = '22023';
    end if;
    if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
        raise exception 'stepsdk_schedule_retention: the pg_cron extension is not enabled'
            using errcode = '55000',
                  hint = 'Supabase: Dashboard -> Database -> Extensions -> pg_cron; PostgreSQL: '
                         'shared_preload_libraries = ''pg_cron'' then create extension pg_cron';
    end if;
    -- cron.schedule with a job name replaces the job of that name (pg_cron >= 1.3).
    -- The cron schema exists only where pg_cron is enabled: the statements name it through
    -- format() so that a linter (plpgsql_check) does not require it where it is not.
    execute format('select %I.schedule($1, $2, $3)', 'cron') into v_job
        using 'stepsdk-retention', schedule,
              format('select public.stepsdk_run_retention(%L::interval)', max_age::text);
    return v_job;
end;
$$;

create or replace function public.stepsdk_unschedule_retention()
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_done boolean := false;
begin
    if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
        execute format('select exists (select 1 from %I.job where jobname = $1)', 'cron')
            into v_done using 'stepsdk-retention';
        if v_done then
            execute format('select %I.unschedule($1)', 'cron') using 'stepsdk-retention';
        end if;
    end if;
    return v_done;
end;
$$;

-- For `stepsdk status` (service role over the API): the job, its last run as pg_cron saw it,
-- the last run as logged, and the freed objects still to remove. Security definer because
-- cron.job is readable only by the job's owner; it returns no command text but the age.
create or replace function public.stepsdk_retention_status()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_job jsonb;
    v_cron_run jsonb;
    v_run jsonb;
begin
    if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
        execute format($q$
            select jsonb_build_object('jobid', j.jobid, 'schedule', j.schedule, 'active', j.active,
                       'max_age', substring(j.command from 'stepsdk_run_retention\(''([^'']*)''')),
                   (select jsonb_build_object('status', d.status, 'start_time', d.start_time,
                                              'end_time', d.end_time, 'message', left(d.return_message, 500))
                      from %1$I.job_run_details d where d.jobid = j.jobid
                     order by d.start_time desc nulls last limit 1)
              from %1$I.job j where j.jobname = 'stepsdk-retention' limit 1
        $q$, 'cron') into v_job, v_cron_run;
    end if;
    select jsonb_build_object('started_at', r.started_at, 'finished_at', r.finished_at,
                              'max_age', r.max_age::text, 'tasks_deleted', r.tasks_deleted,
                              'objects_freed', r.objects_freed)
      into v_run
      from public.stepsdk_retention_runs r order by r.started_at desc, r.id desc limit 1;
    return jsonb_build_object(
        'pg_cron', exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron'),
        'job', v_job,
        'last_cron_run', v_cron_run,
        'last_run', v_run,
        'freed_objects_pending', (select count(*) from public.stepsdk_freed_objects)
    );
end;
$$;

comment on function public.stepsdk_retention_status() is
    'stepsdk (service_role only): the scheduled retention job in force (schedule, max_age), its last run '
    'and the freed screenshot objects not removed from Storage yet.';

revoke all on function public.stepsdk_run_retention(interval, integer) from public, anon, authenticated;
grant execute on function public.stepsdk_run_retention(interval, integer) to service_role;
-- Scheduling is for the database owner (the SQL console), not the API roles.
revoke all on function public.stepsdk_schedule_retention(interval, text) from public, anon, authenticated, service_role;
revoke all on function public.stepsdk_unschedule_retention() from public, anon, authenticated, service_role;
revoke all on function public.stepsdk_retention_status() from public, anon, authenticated;
grant execute on function public.stepsdk_retention_status() to service_role;

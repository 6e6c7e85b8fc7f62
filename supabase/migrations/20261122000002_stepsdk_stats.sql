-- stepsdk statistics: views and read-only functions over tasks, task_steps and step_screenshots.
--
-- Apply after 20261122000001_stepsdk_core.sql (`supabase db push`, or paste into the SQL console).
-- Safe to apply twice: views and functions are created with `create or replace`.
--
-- Security model (the same for every object here):
--   * views are `security_invoker`, so the RLS policies of the core tables apply to the caller:
--     an authenticated user's statistics cover only the tasks they own, service_role sees all;
--   * functions are SECURITY INVOKER (the default) for the same reason, `stable`, and run with an
--     empty search_path and fully-qualified names so a caller's objects can never shadow ours;
--   * select/execute is granted to authenticated and service_role only; anon gets nothing.
--
-- Units: every *_ms column is milliseconds (double precision); rates are 0..1 (numeric).
-- Percentiles are percentile_cont (linear interpolation) over the non-null step durations.

-- ---------------------------------------------------------------------------
-- Indexes the statistics need (the core migration's indexes cover the rest)
-- ---------------------------------------------------------------------------
-- daily_summary groups and filters by the UTC day a task started; with this expression
-- index a "last N days" query reads only those days instead of every task.
create index if not exists tasks_started_day_utc_idx
    on public.tasks (((started_at at time zone 'UTC')::date));

-- ---------------------------------------------------------------------------
-- task_summary: one row per task with its step statistics
-- ---------------------------------------------------------------------------
-- The aggregates are LATERAL subqueries keyed on task_id, so a page of the task list
-- (`order by started_at desc limit 50`, optionally filtered by status/agent) walks the
-- tasks indexes and aggregates the steps of just those 50 tasks through the
-- (task_id, step_number) unique index and step_screenshots_task_idx. Sorting by an
-- aggregate column (e.g. failed_steps) must compute every visible task: see README.
create or replace view public.task_summary
with (security_invoker = true) as
select
    t.task_id,
    t.title,
    t.agent,
    t.status,
    t.started_at,
    t.finished_at,
    (extract(epoch from (t.finished_at - t.started_at)) * 1000)::double precision as duration_ms,
    st.total_steps,
    st.successful_steps,
    st.failed_steps,
    st.successful_steps::numeric / nullif(st.total_steps, 0) as success_rate,
    st.total_duration_ms,
    st.avg_step_duration_ms,
    st.p50_step_duration_ms,
    st.p95_step_duration_ms,
    sc.screenshots_count,
    st.last_step_at
from public.tasks t
cross join lateral (
    select
        count(*)::integer as total_steps,
        count(*) filter (where s.success)::integer as successful_steps,
        count(*) filter (where not s.success)::integer as failed_steps,
        coalesce(sum(s.duration_ms), 0)::double precision as total_duration_ms,
        avg(s.duration_ms) as avg_step_duration_ms,
        percentile_cont(0.5) within group (order by s.duration_ms) as p50_step_duration_ms,
        percentile_cont(0.95) within group (order by s.duration_ms) as p95_step_duration_ms,
        max(s.created_at) as last_step_at
    from public.task_steps s
    where s.task_id = t.task_id
) st
cross join lateral (
    select count(*)::integer as screenshots_count
    from public.step_screenshots ss
    where ss.task_id = t.task_id
) sc;

comment on view public.task_summary is
    'stepsdk: one row per task with step counts, success rate (0..1, null without steps), step duration '
    'total/avg/p50/p95 (ms, over steps with a duration), screenshot rows and last step time. RLS of the caller applies.';

-- ---------------------------------------------------------------------------
-- stepsdk_task_stats: the statistics block of the viewer's task report, for one task
-- ---------------------------------------------------------------------------
-- One row for a task the caller can see; no row when the task does not exist or is not
-- theirs (so existence of other users' tasks is not revealed).
create or replace function public.stepsdk_task_stats(p_task_id text)
returns table (
    total_steps integer,
    successful_steps integer,
    failed_steps integer,
    success_rate numeric,
    total_duration_ms double precision,
    average_step_duration_ms double precision,
    screenshots_count integer
)
language plpgsql
stable
set search_path = ''
as $$
begin
    if p_task_id is null then
        raise exception 'stepsdk_task_stats: p_task_id must not be null' using errcode = '22023';
    end if;
    return query
        select ts.total_steps, ts.successful_steps, ts.failed_steps, ts.success_rate,
               ts.total_duration_ms, ts.avg_step_duration_ms, ts.screenshots_count
        from public.task_summary ts
        where ts.task_id = p_task_id;
end;
$$;

comment on function public.stepsdk_task_stats(text) is
    'stepsdk: the viewer report statistics of one task (no row when the task is unknown or not visible).';

-- ---------------------------------------------------------------------------
-- daily_summary: one row per UTC day on which at least one task started
-- ---------------------------------------------------------------------------
-- Steps are attributed to the day their task started. task_success_rate is
-- successful / finished tasks (running tasks have not succeeded or failed yet).
-- Task durations are wall times (finished_at - started_at) of finished tasks.
create or replace view public.daily_summary
with (security_invoker = true) as
select
    d.day,
    count(*)::integer as tasks,
    count(*) filter (where d.status = 'success')::integer as successful_tasks,
    count(*) filter (where d.status = 'failed')::integer as failed_tasks,
    count(*) filter (where d.status = 'running')::integer as running_tasks,
    count(*) filter (where d.status = 'interrupted')::integer as interrupted_tasks,
    (count(*) filter (where d.status = 'success'))::numeric
        / nullif(count(*) filter (where d.status <> 'running'), 0) as task_success_rate,
    coalesce(sum(st.steps), 0)::bigint as steps,
    coalesce(sum(st.failed_steps), 0)::bigint as failed_steps,
    min(d.duration_ms) as min_task_duration_ms,
    avg(d.duration_ms) as avg_task_duration_ms,
    max(d.duration_ms) as max_task_duration_ms,
    percentile_cont(0.5) within group (order by d.duration_ms) as p50_task_duration_ms,
    percentile_cont(0.95) within group (order by d.duration_ms) as p95_task_duration_ms
from (
    select
        t.task_id,
        t.status,
        (t.started_at at time zone 'UTC')::date as day,
        (extract(epoch from (t.finished_at - t.started_at)) * 1000)::double precision as duration_ms
    from public.tasks t
) d
-- Two counts instead of one aggregate over the step rows: each is an index-only scan (the
-- (task_id, step_number) unique index, and the partial index on failed steps), several times
-- cheaper than reading every step row of a month of tasks.
cross join lateral (
    select
        (select count(*) from public.task_steps s where s.task_id = d.task_id) as steps,
        (select count(*) from public.task_steps s where s.task_id = d.task_id and not s.success) as failed_steps
) st
group by d.day;

comment on view public.daily_summary is
    'stepsdk: per UTC day (of task start): task counts by status, task success rate (successful/finished), '
    'steps, failed steps, task wall-duration min/avg/max/p50/p95 (ms). RLS of the caller applies.';

-- ---------------------------------------------------------------------------
-- stepsdk_daily_stats: the last N UTC days, including days without any task
-- ---------------------------------------------------------------------------
create or replace function public.stepsdk_daily_stats(days integer default 7)
returns table (
    day date,
    tasks integer,
    successful_tasks integer,
    failed_tasks integer,
    running_tasks integer,
    interrupted_tasks integer,
    task_success_rate numeric,
    steps bigint,
    failed_steps bigint,
    min_task_duration_ms double precision,
    avg_task_duration_ms double precision,
    max_task_duration_ms double precision,
    p50_task_duration_ms double precision,
    p95_task_duration_ms double precision
)
language plpgsql
stable
set search_path = ''
-- A week is a few thousand tasks: JIT compiling the plan costs more than running it.
set jit = off
as $$
#variable_conflict use_column
declare
    v_today date := (now() at time zone 'UTC')::date;
    v_first date;
begin
    if days is null or days < 1 or days > 3660 then
        raise exception 'stepsdk_daily_stats: days must be between 1 and 3660, got %', coalesce(days::text, 'null')
            using errcode = '22023';
    end if;
    v_first := v_today - (days - 1);
    return query
        select g.day::date,
               coalesce(ds.tasks, 0), coalesce(ds.successful_tasks, 0), coalesce(ds.failed_tasks, 0),
               coalesce(ds.running_tasks, 0), coalesce(ds.interrupted_tasks, 0), ds.task_success_rate,
               coalesce(ds.steps, 0::bigint), coalesce(ds.failed_steps, 0::bigint),
               ds.min_task_duration_ms, ds.avg_task_duration_ms, ds.max_task_duration_ms,
               ds.p50_task_duration_ms, ds.p95_task_duration_ms
        from pg_catalog.generate_series(v_first::timestamp, v_today::timestamp, interval '1 day') as g(day)
        left join (
            -- the day filter sits inside so it reaches tasks_started_day_utc_idx
            select * from public.daily_summary x where x.day between v_first and v_today
        ) ds on ds.day = g.day::date
        order by g.day;
end;
$$;

comment on function public.stepsdk_daily_stats(integer) is
    'stepsdk: daily_summary for the last N UTC days (today included), with zero rows for days without tasks.';

-- ---------------------------------------------------------------------------
-- error_summary: failed steps grouped by error type and normalized message
-- ---------------------------------------------------------------------------
-- Normalization: surrounding whitespace trimmed, first 200 characters, empty -> null, so
-- the same error reported with a trailing newline or a huge payload lands in one group.
create or replace view public.error_summary
with (security_invoker = true) as
select
    e.error_type,
    e.error_message,
    count(*)::integer as occurrences,
    count(distinct e.task_id)::integer as tasks_affected,
    min(e.created_at) as first_seen,
    max(e.created_at) as last_seen,
    -- the most recent occurrence, to jump straight to an example
    (array_agg(e.task_id order by e.created_at desc, e.id))[1] as example_task_id,
    (array_agg(e.id order by e.created_at desc, e.id))[1] as example_step_id
from (
    select
        s.id,
        s.task_id,
        s.created_at,
        s.error_type,
        left(nullif(btrim(s.error_message, E' \t\r\n'), ''), 200) as error_message
    from public.task_steps s
    where not s.success
) e
group by e.error_type, e.error_message;

comment on view public.error_summary is
    'stepsdk: failed steps grouped by error_type and normalized error_message (trimmed, first 200 chars): '
    'occurrences, tasks affected, first/last seen, one example (most recent) task and step. RLS applies.';

-- ---------------------------------------------------------------------------
-- stepsdk_slowest_steps: the slowest steps (optionally since a time)
-- ---------------------------------------------------------------------------
-- Walks task_steps_duration_idx from the top, so it stays cheap on large tables.
create or replace function public.stepsdk_slowest_steps(limit_n integer default 20, since timestamptz default null)
returns table (
    step_id uuid,
    task_id text,
    step_number integer,
    step_type text,
    duration_ms double precision,
    success boolean,
    created_at timestamptz,
    task_title text
)
language plpgsql
stable
set search_path = ''
as $$
begin
    if limit_n is null or limit_n < 1 or limit_n > 1000 then
        raise exception 'stepsdk_slowest_steps: limit_n must be between 1 and 1000, got %',
            coalesce(limit_n::text, 'null') using errcode = '22023';
    end if;
    return query
        select s.id, s.task_id, s.step_number, s.step_type, s.duration_ms, s.success, s.created_at, t.title
        from public.task_steps s
        join public.tasks t on t.task_id = s.task_id
        where s.duration_ms is not null
          and (since is null or s.created_at >= since)
        order by s.duration_ms desc nulls last, s.id
        limit limit_n;
end;
$$;

comment on function public.stepsdk_slowest_steps(integer, timestamptz) is
    'stepsdk: the limit_n (1..1000) slowest steps with a duration, optionally created at or after `since`.';

-- ---------------------------------------------------------------------------
-- step_type_breakdown and stepsdk_task_step_types: per step type
-- ---------------------------------------------------------------------------
create or replace view public.step_type_breakdown
with (security_invoker = true) as
select
    s.step_type,
    count(*)::integer as steps,
    count(*) filter (where not s.success)::integer as failed_steps,
    avg(s.duration_ms) as avg_duration_ms,
    percentile_cont(0.95) within group (order by s.duration_ms) as p95_duration_ms
from public.task_steps s
group by s.step_type;

comment on view public.step_type_breakdown is
    'stepsdk: per step_type over all visible steps: steps, failed steps, avg and p95 duration (ms).';

create or replace function public.stepsdk_task_step_types(p_task_id text)
returns table (
    step_type text,
    steps integer,
    failed_steps integer,
    avg_duration_ms double precision,
    p95_duration_ms double precision
)
language plpgsql
stable
set search_path = ''
as $$
begin
    if p_task_id is null then
        raise exception 'stepsdk_task_step_types: p_task_id must not be null' using errcode = '22023';
    end if;
    return query
        select s.step_type,
               count(*)::integer,
               count(*) filter (where not s.success)::integer,
               avg(s.duration_ms),
               percentile_cont(0.95) within group (order by s.duration_ms)
        from public.task_steps s
        where s.task_id = p_task_id
        group by s.step_type
        order by s.step_type;
end;
$$;

comment on function public.stepsdk_task_step_types(text) is
    'stepsdk: step_type_breakdown for one task (no rows when the task is unknown or not visible).';

-- ---------------------------------------------------------------------------
-- Privileges: authenticated and service_role read; anon nothing.
-- (Supabase's default privileges grant anon everything on new public objects: take it back.)
-- ---------------------------------------------------------------------------
-- (authenticated only reads: the default grant includes insert/update/delete.)
revoke all on public.task_summary, public.daily_summary, public.error_summary, public.step_type_breakdown
    from public, anon, authenticated;
grant select on public.task_summary, public.daily_summary, public.error_summary, public.step_type_breakdown
    to authenticated, service_role;

revoke all on function public.stepsdk_task_stats(text) from public, anon;
revoke all on function public.stepsdk_daily_stats(integer) from public, anon;
revoke all on function public.stepsdk_slowest_steps(integer, timestamptz) from public, anon;
revoke all on function public.stepsdk_task_step_types(text) from public, anon;
grant execute on function public.stepsdk_task_stats(text) to authenticated, service_role;
grant execute on function public.stepsdk_daily_stats(integer) to authenticated, service_role;
grant execute on function public.stepsdk_slowest_steps(integer, timestamptz) to authenticated, service_role;
grant execute on function public.stepsdk_task_step_types(text) to authenticated, service_role;

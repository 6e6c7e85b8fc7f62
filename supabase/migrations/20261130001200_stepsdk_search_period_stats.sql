-- stepsdk: search across tasks, statistics per agent and per period, normalized error groups.
--
-- Apply after 20261122000002_stepsdk_stats.sql. Safe to apply twice (`if not exists`,
-- `create or replace`). Same security model as the statistics migration: SECURITY INVOKER
-- functions (the caller's RLS applies), an empty search_path, execute for authenticated and
-- service_role only. The local store (stepsdk/store/index.py) implements the same definitions in
-- SQLite; tests/viewer/test_sources.py checks both give equal answers.

create extension if not exists pg_trgm with schema extensions;

-- ---------------------------------------------------------------------------
-- Trigram indexes: `ilike '%text%'` over these columns reads the index, not every row
-- ---------------------------------------------------------------------------
create index if not exists tasks_title_trgm_idx on public.tasks using gin (title extensions.gin_trgm_ops);
create index if not exists tasks_result_trgm_idx on public.tasks using gin (result extensions.gin_trgm_ops);
create index if not exists tasks_error_trgm_idx on public.tasks using gin (error_message extensions.gin_trgm_ops);
create index if not exists task_steps_thinking_trgm_idx
    on public.task_steps using gin (thinking extensions.gin_trgm_ops);
create index if not exists task_steps_error_trgm_idx
    on public.task_steps using gin (error_message extensions.gin_trgm_ops);

-- ---------------------------------------------------------------------------
-- stepsdk_error_group: the message errors are grouped by
-- ---------------------------------------------------------------------------
-- Trimmed (space, tab, CR, LF), empty -> null, first 1000 characters; UUIDs and runs of 16+ hex
-- digits -> '<id>'; numbers (so coordinates too) -> '<n>'; first 200 characters. So
-- "no element at (180, 132)" and "no element at (200, 90)" are one group:
-- "no element at (<n>, <n>)". stepsdk._index.error_group is the same rule in Python.
create or replace function public.stepsdk_error_group(message text)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
    select left(
        pg_catalog.regexp_replace(
            pg_catalog.regexp_replace(
                pg_catalog.regexp_replace(
                    left(nullif(pg_catalog.btrim(message, E' \t\r\n'), ''), 1000),
                    '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '<id>', 'g'),
                '[0-9a-fA-F]{16,}', '<id>', 'g'),
            '[0-9]+(\.[0-9]+)?', '<n>', 'g'),
        200)
$$;

comment on function public.stepsdk_error_group(text) is
    'stepsdk: an error message normalized for grouping (trimmed, ids -> <id>, numbers -> <n>, 200 chars).';

-- error_summary groups by the normalized message from now on (same columns as before).
create or replace view public.error_summary
with (security_invoker = true) as
select
    e.error_type,
    e.error_message,
    count(*)::integer as occurrences,
    count(distinct e.task_id)::integer as tasks_affected,
    min(e.created_at) as first_seen,
    max(e.created_at) as last_seen,
    (array_agg(e.task_id order by e.created_at desc nulls last, e.id))[1] as example_task_id,
    (array_agg(e.id order by e.created_at desc nulls last, e.id))[1] as example_step_id
from (
    select s.id, s.task_id, s.created_at, s.error_type, public.stepsdk_error_group(s.error_message) as error_message
    from public.task_steps s
    where not s.success
) e
group by e.error_type, e.error_message;

comment on view public.error_summary is
    'stepsdk: failed steps grouped by error_type and stepsdk_error_group(error_message): occurrences, '
    'tasks affected, first/last seen, one example (most recent) task and step. RLS applies.';

-- ---------------------------------------------------------------------------
-- stepsdk_error_groups: error_summary for a period and/or one agent
-- ---------------------------------------------------------------------------
create or replace function public.stepsdk_error_groups(
    p_since timestamptz default null, p_agent text default null, limit_n integer default 10)
returns table (
    error_type text,
    error_message text,
    occurrences integer,
    tasks_affected integer,
    first_seen timestamptz,
    last_seen timestamptz,
    example_task_id text,
    example_step_id uuid,
    example_step_name text
)
language plpgsql
stable
set search_path = ''
as $$
begin
    if limit_n is null or limit_n < 1 or limit_n > 1000 then
        raise exception 'stepsdk_error_groups: limit_n must be between 1 and 1000' using errcode = '22023';
    end if;
    return query
        select e.error_type, e.grp, count(*)::integer, count(distinct e.task_id)::integer,
               min(e.created_at), max(e.created_at),
               (array_agg(e.task_id order by e.created_at desc nulls last, e.id))[1],
               (array_agg(e.id order by e.created_at desc nulls last, e.id))[1],
               (array_agg(e.name order by e.created_at desc nulls last, e.id))[1]
        from (
            select s.id, s.task_id, s.created_at, s.error_type, s.name,
                   public.stepsdk_error_group(s.error_message) as grp
            from public.task_steps s
            join public.tasks t on t.task_id = s.task_id
            where not s.success
              and (p_since is null or s.created_at >= p_since)
              and (p_agent is null or t.agent = p_agent)
        ) e
        group by e.error_type, e.grp
        order by count(*) desc, max(e.created_at) desc nulls last
        limit limit_n;
end;
$$;

-- ---------------------------------------------------------------------------
-- stepsdk_daily_stats_for: stepsdk_daily_stats for one agent (or all when null)
-- ---------------------------------------------------------------------------
create or replace function public.stepsdk_daily_stats_for(days integer default 7, p_agent text default null)
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
set jit = off
as $$
#variable_conflict use_column
declare
    v_today date := (now() at time zone 'UTC')::date;
    v_first date;
begin
    if days is null or days < 1 or days > 3660 then
        raise exception 'stepsdk_daily_stats_for: days must be between 1 and 3660' using errcode = '22023';
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
            select d.day,
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
                select t.task_id, t.status, (t.started_at at time zone 'UTC')::date as day,
                       (extract(epoch from (t.finished_at - t.started_at)) * 1000)::double precision as duration_ms
                from public.tasks t
                where (t.started_at at time zone 'UTC')::date between v_first and v_today
                  and (p_agent is null or t.agent = p_agent)
            ) d
            cross join lateral (
                select
                    (select count(*) from public.task_steps s where s.task_id = d.task_id) as steps,
                    (select count(*) from public.task_steps s where s.task_id = d.task_id and not s.success)
                        as failed_steps
            ) st
            group by d.day
        ) ds on ds.day = g.day::date
        order by g.day;
end;
$$;

-- ---------------------------------------------------------------------------
-- stepsdk_step_types: step_type_breakdown for a period, an agent and/or one task
-- ---------------------------------------------------------------------------
create or replace function public.stepsdk_step_types(
    p_since timestamptz default null, p_agent text default null, p_task_id text default null)
returns table (
    step_type text,
    steps integer,
    failed_steps integer,
    avg_duration_ms double precision,
    p95_duration_ms double precision
)
language sql
stable
set search_path = ''
as $$
    select s.step_type,
           count(*)::integer,
           count(*) filter (where not s.success)::integer,
           avg(s.duration_ms),
           percentile_cont(0.95) within group (order by s.duration_ms)
    from public.task_steps s
    join public.tasks t on t.task_id = s.task_id
    where (p_since is null or s.created_at >= p_since)
      and (p_agent is null or t.agent = p_agent)
      and (p_task_id is null or s.task_id = p_task_id)
    group by s.step_type
    order by s.step_type
$$;

-- ---------------------------------------------------------------------------
-- stepsdk_slowest_steps_for: stepsdk_slowest_steps for one agent (or all when null)
-- ---------------------------------------------------------------------------
create or replace function public.stepsdk_slowest_steps_for(
    limit_n integer default 20, since timestamptz default null, p_agent text default null)
returns table (
    step_id uuid,
    task_id text,
    step_number integer,
    step_type text,
    name text,
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
        raise exception 'stepsdk_slowest_steps_for: limit_n must be between 1 and 1000' using errcode = '22023';
    end if;
    return query
        select s.id, s.task_id, s.step_number, s.step_type, s.name, s.duration_ms, s.success, s.created_at, t.title
        from public.task_steps s
        join public.tasks t on t.task_id = s.task_id
        where s.duration_ms is not null
          and (since is null or s.created_at >= since)
          and (p_agent is null or t.agent = p_agent)
        order by s.duration_ms desc nulls last, s.id
        limit limit_n;
end;
$$;

-- ---------------------------------------------------------------------------
-- stepsdk_search: tasks whose title/result/error or whose steps' thinking/error contain a text
-- ---------------------------------------------------------------------------
-- Case-insensitive substring (ilike, with % _ \ taken literally), 3..200 characters, served by
-- the trigram indexes above. One row per match, newest task first; `snippet` is the matched
-- text with 40 characters of context on each side ("…" where cut), as stepsdk._index.snippet.
create or replace function public.stepsdk_search(p_query text, p_agent text default null, limit_n integer default 20)
returns table (
    task_id text,
    title text,
    agent text,
    status text,
    started_at timestamptz,
    field text,
    step_id uuid,
    step_number integer,
    snippet text
)
language plpgsql
stable
set search_path = ''
as $$
declare
    v_query text := pg_catalog.btrim(coalesce(p_query, ''));
    v_pattern text;
begin
    if pg_catalog.length(v_query) < 3 or pg_catalog.length(v_query) > 200 then
        raise exception 'stepsdk_search: the text must be 3..200 characters' using errcode = '22023';
    end if;
    if limit_n is null or limit_n < 1 or limit_n > 100 then
        raise exception 'stepsdk_search: limit_n must be between 1 and 100' using errcode = '22023';
    end if;
    v_pattern := '%' || pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
        v_query, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    return query
        with m as (
            select t.task_id, null::uuid as step_id, null::integer as step_number, 'title' as field, t.title as body
            from public.tasks t where t.title ilike v_pattern
            union all
            select t.task_id, null, null, 'result', t.result from public.tasks t where t.result ilike v_pattern
            union all
            select t.task_id, null, null, 'error_message', t.error_message
            from public.tasks t where t.error_message ilike v_pattern
            union all
            select s.task_id, s.id, s.step_number, 'thinking', s.thinking
            from public.task_steps s where s.thinking ilike v_pattern
            union all
            select s.task_id, s.id, s.step_number, 'error_message', s.error_message
            from public.task_steps s where s.error_message ilike v_pattern
        ), p as (
            select m.*, greatest(pg_catalog.strpos(lower(m.body), lower(v_query)) - 1, 0) as pos
            from m
        )
        select t.task_id, t.title, t.agent, t.status, t.started_at, p.field, p.step_id, p.step_number,
               (case when greatest(p.pos - 40, 0) > 0 then '…' else '' end)
               || substr(p.body, greatest(p.pos - 40, 0) + 1,
                         p.pos + pg_catalog.length(v_query) + 40 - greatest(p.pos - 40, 0))
               || (case when p.pos + pg_catalog.length(v_query) + 40 < pg_catalog.length(p.body) then '…' else '' end)
        from p
        join public.tasks t on t.task_id = p.task_id
        where p_agent is null or t.agent = p_agent
        order by t.started_at desc nulls last, t.task_id, p.step_number nulls first, p.field
        limit limit_n;
end;
$$;

comment on function public.stepsdk_search(text, text, integer) is
    'stepsdk: case-insensitive search (3..200 chars) over task titles/results/errors and step thinking/errors.';

-- ---------------------------------------------------------------------------
-- Privileges: authenticated and service_role execute; anon and public nothing.
-- ---------------------------------------------------------------------------
revoke all on public.error_summary from public, anon, authenticated;
grant select on public.error_summary to authenticated, service_role;

revoke all on function public.stepsdk_error_group(text) from public, anon;
revoke all on function public.stepsdk_error_groups(timestamptz, text, integer) from public, anon;
revoke all on function public.stepsdk_daily_stats_for(integer, text) from public, anon;
revoke all on function public.stepsdk_step_types(timestamptz, text, text) from public, anon;
revoke all on function public.stepsdk_slowest_steps_for(integer, timestamptz, text) from public, anon;
revoke all on function public.stepsdk_search(text, text, integer) from public, anon;
grant execute on function public.stepsdk_error_group(text) to authenticated, service_role;
grant execute on function public.stepsdk_error_groups(timestamptz, text, integer) to authenticated, service_role;
grant execute on function public.stepsdk_daily_stats_for(integer, text) to authenticated, service_role;
grant execute on function public.stepsdk_step_types(timestamptz, text, text) to authenticated, service_role;
grant execute on function public.stepsdk_slowest_steps_for(integer, timestamptz, text) to authenticated, service_role;
grant execute on function public.stepsdk_search(text, text, integer) to authenticated, service_role;

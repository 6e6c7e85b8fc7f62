-- stepsdk: token usage, error categories and the measures alert rules read (issue #14, items 3-5).
--
-- Apply after 20261130000000_stepsdk_step_fields.sql. Safe to apply twice (`create or replace`).
-- Existing databases: read-only views and functions only, nothing is rewritten.
-- Same security model as *_stepsdk_stats.sql: security_invoker views and SECURITY INVOKER
-- functions with an empty search_path (RLS of the caller applies), select/execute granted to
-- authenticated and service_role only, anon gets nothing.
--
-- Token counts are read from task_steps.usage ({prompt_tokens, completion_tokens, total_tokens});
-- a counter that is missing or not a number counts as absent (0 in sums). Steps "with usage" are
-- steps whose usage is not null.

-- ---------------------------------------------------------------------------
-- task_usage: tokens per task
-- ---------------------------------------------------------------------------
create or replace view public.task_usage
with (security_invoker = true) as
select
    t.task_id,
    t.title,
    t.agent,
    t.metadata ->> 'model' as model,
    t.started_at,
    u.steps_with_usage,
    u.prompt_tokens,
    u.completion_tokens,
    u.total_tokens
from public.tasks t
cross join lateral (
    select
        count(s.usage)::integer as steps_with_usage,
        coalesce(sum(case when jsonb_typeof(s.usage -> 'prompt_tokens') = 'number'
                          then (s.usage ->> 'prompt_tokens')::numeric end), 0)::bigint as prompt_tokens,
        coalesce(sum(case when jsonb_typeof(s.usage -> 'completion_tokens') = 'number'
                          then (s.usage ->> 'completion_tokens')::numeric end), 0)::bigint as completion_tokens,
        coalesce(sum(case when jsonb_typeof(s.usage -> 'total_tokens') = 'number'
                          then (s.usage ->> 'total_tokens')::numeric end), 0)::bigint as total_tokens
    from public.task_steps s
    where s.task_id = t.task_id
) u;

comment on view public.task_usage is
    'stepsdk: tokens per task (sums of task_steps.usage counters), with the task''s model (metadata.model). RLS applies.';

-- ---------------------------------------------------------------------------
-- stepsdk_top_token_tasks: the task_usage rows of the tasks that used the most tokens
-- ---------------------------------------------------------------------------
-- One pass over the steps with usage (a hash aggregate), then the top tasks joined: ordering
-- the task_usage view by total_tokens would aggregate every task one by one.
create or replace function public.stepsdk_top_token_tasks(limit_n integer default 20)
returns setof public.task_usage
language plpgsql
stable
set search_path = ''
-- JIT compiling the aggregate costs more than running it at these sizes (as stepsdk_daily_stats)
set jit = off
as $$
begin
    if limit_n is null or limit_n < 1 or limit_n > 1000 then
        raise exception 'stepsdk_top_token_tasks: limit_n must be between 1 and 1000, got %',
            coalesce(limit_n::text, 'null') using errcode = '22023';
    end if;
    return query
        select t.task_id, t.title, t.agent, t.metadata ->> 'model', t.started_at,
               u.steps_with_usage, u.prompt_tokens, u.completion_tokens, u.total_tokens
        from (
            select s.task_id,
                   count(*)::integer as steps_with_usage,
                   coalesce(sum(case when jsonb_typeof(s.usage -> 'prompt_tokens') = 'number'
                                     then (s.usage ->> 'prompt_tokens')::numeric end), 0)::bigint as prompt_tokens,
                   coalesce(sum(case when jsonb_typeof(s.usage -> 'completion_tokens') = 'number'
                                     then (s.usage ->> 'completion_tokens')::numeric end), 0)::bigint as completion_tokens,
                   coalesce(sum(case when jsonb_typeof(s.usage -> 'total_tokens') = 'number'
                                     then (s.usage ->> 'total_tokens')::numeric end), 0)::bigint as total_tokens
            from public.task_steps s
            where s.usage is not null
            group by s.task_id
            order by 5 desc, 1
            limit limit_n
        ) u
        join public.tasks t on t.task_id = u.task_id
        order by u.total_tokens desc, u.task_id;
end;
$$;

comment on function public.stepsdk_top_token_tasks(integer) is
    'stepsdk: task_usage rows of the limit_n (1..1000) tasks with the most total tokens (tasks with usage only).';

-- ---------------------------------------------------------------------------
-- stepsdk_daily_usage: tokens per UTC day of the step, the last N days (empty days included)
-- ---------------------------------------------------------------------------
create or replace function public.stepsdk_daily_usage(days integer default 7)
returns table (
    day date,
    tasks integer,
    steps_with_usage integer,
    prompt_tokens bigint,
    completion_tokens bigint,
    total_tokens bigint
)
language plpgsql
stable
set search_path = ''
-- JIT compiling the aggregate costs more than running it at these sizes (as stepsdk_daily_stats)
set jit = off
as $$
declare
    v_today date := (now() at time zone 'UTC')::date;
    v_first date;
begin
    if days is null or days < 1 or days > 3660 then
        raise exception 'stepsdk_daily_usage: days must be between 1 and 3660, got %',
            coalesce(days::text, 'null') using errcode = '22023';
    end if;
    v_first := v_today - (days - 1);
    return query
        select g.day::date,
               coalesce(u.tasks, 0), coalesce(u.steps, 0),
               coalesce(u.prompt_tokens, 0), coalesce(u.completion_tokens, 0), coalesce(u.total_tokens, 0)
        from generate_series(v_first, v_today, interval '1 day') g(day)
        left join (
            select (s.created_at at time zone 'UTC')::date as day,
                   count(distinct s.task_id)::integer as tasks,
                   count(*)::integer as steps,
                   coalesce(sum(case when jsonb_typeof(s.usage -> 'prompt_tokens') = 'number'
                                     then (s.usage ->> 'prompt_tokens')::numeric end), 0)::bigint as prompt_tokens,
                   coalesce(sum(case when jsonb_typeof(s.usage -> 'completion_tokens') = 'number'
                                     then (s.usage ->> 'completion_tokens')::numeric end), 0)::bigint as completion_tokens,
                   coalesce(sum(case when jsonb_typeof(s.usage -> 'total_tokens') = 'number'
                                     then (s.usage ->> 'total_tokens')::numeric end), 0)::bigint as total_tokens
            from public.task_steps s
            where s.usage is not null
              and s.created_at >= (v_first::timestamp at time zone 'UTC')
            group by 1
        ) u on u.day = g.day::date
        order by g.day;
end;
$$;

comment on function public.stepsdk_daily_usage(integer) is
    'stepsdk: tokens per UTC day of the step for the last N days (today included), zero rows for days without usage.';

-- ---------------------------------------------------------------------------
-- error_category_summary: failed steps per error category
-- ---------------------------------------------------------------------------
-- A failed step recorded before categories existed has a null category (shown as is).
create or replace view public.error_category_summary
with (security_invoker = true) as
select
    s.error_category,
    count(*)::integer as failed_steps,
    count(distinct s.task_id)::integer as tasks_affected,
    min(s.created_at) as first_seen,
    max(s.created_at) as last_seen
from public.task_steps s
where not s.success
group by s.error_category;

comment on view public.error_category_summary is
    'stepsdk: failed steps per error_category (timeout, connection, auth, rate_limit, validation, model_output, '
    'device, other; null for steps recorded before categories): steps, tasks affected, first/last seen. RLS applies.';

-- ---------------------------------------------------------------------------
-- Alert measures (read by `stepsdk alerts check`): each over the last window_seconds
-- ---------------------------------------------------------------------------
-- the failure-rate measure reads the tasks that finished in the window: keep that a range scan
create index if not exists tasks_finished_at_idx on public.tasks (finished_at desc) where finished_at is not null;

-- failure rate of the tasks that finished in the window (failed / finished; interrupted counts
-- as finished, not failed), optionally for one agent
create or replace function public.stepsdk_alert_failure_rate(window_seconds integer, p_agent text default null)
returns table (finished_tasks integer, failed_tasks integer, failure_rate numeric)
language plpgsql
stable
set search_path = ''
as $$
begin
    if window_seconds is null or window_seconds < 1 or window_seconds > 31622400 then
        raise exception 'stepsdk_alert_failure_rate: window_seconds must be between 1 and 31622400, got %',
            coalesce(window_seconds::text, 'null') using errcode = '22023';
    end if;
    return query
        select count(*)::integer,
               count(*) filter (where t.status = 'failed')::integer,
               (count(*) filter (where t.status = 'failed'))::numeric / nullif(count(*), 0)
        from public.tasks t
        where t.status <> 'running'
          and t.finished_at >= now() - make_interval(secs => window_seconds)
          and (p_agent is null or t.agent = p_agent);
end;
$$;

-- p95 (percentile_cont) of the durations of the steps created in the window, optionally of one
-- step type and/or one step name
create or replace function public.stepsdk_alert_step_p95(window_seconds integer, p_step_type text default null,
                                                         p_name text default null)
returns table (steps integer, p95_duration_ms double precision)
language plpgsql
stable
set search_path = ''
as $$
begin
    if window_seconds is null or window_seconds < 1 or window_seconds > 31622400 then
        raise exception 'stepsdk_alert_step_p95: window_seconds must be between 1 and 31622400, got %',
            coalesce(window_seconds::text, 'null') using errcode = '22023';
    end if;
    return query
        select count(*)::integer, percentile_cont(0.95) within group (order by s.duration_ms)
        from public.task_steps s
        where s.duration_ms is not null
          and s.created_at >= now() - make_interval(secs => window_seconds)
          and (p_step_type is null or s.step_type = p_step_type)
          and (p_name is null or s.name = p_name);
end;
$$;

-- failed steps of the window grouped by error type and normalized message (as error_summary:
-- trimmed, first 200 characters), most frequent first
create or replace function public.stepsdk_alert_error_counts(window_seconds integer)
returns table (error_type text, error_message text, occurrences integer, last_seen timestamptz,
               example_task_id text)
language plpgsql
stable
set search_path = ''
as $$
begin
    if window_seconds is null or window_seconds < 1 or window_seconds > 31622400 then
        raise exception 'stepsdk_alert_error_counts: window_seconds must be between 1 and 31622400, got %',
            coalesce(window_seconds::text, 'null') using errcode = '22023';
    end if;
    return query
        select e.error_type, e.error_message, count(*)::integer, max(e.created_at),
               (array_agg(e.task_id order by e.created_at desc, e.id))[1]
        from (
            select s.id, s.task_id, s.created_at, s.error_type,
                   left(nullif(btrim(s.error_message, E' \t\r\n'), ''), 200) as error_message
            from public.task_steps s
            where not s.success
              and s.created_at >= now() - make_interval(secs => window_seconds)
        ) e
        group by e.error_type, e.error_message
        order by count(*) desc, max(e.created_at) desc;
end;
$$;

comment on function public.stepsdk_alert_failure_rate(integer, text) is
    'stepsdk alerts: finished and failed tasks of the last window_seconds and their ratio (optionally one agent).';
comment on function public.stepsdk_alert_step_p95(integer, text, text) is
    'stepsdk alerts: p95 duration (ms) of the steps of the last window_seconds (optionally one step_type / name).';
comment on function public.stepsdk_alert_error_counts(integer) is
    'stepsdk alerts: failed steps of the last window_seconds per error type and normalized message.';

-- ---------------------------------------------------------------------------
-- Privileges: authenticated and service_role read; anon nothing.
-- ---------------------------------------------------------------------------
revoke all on public.task_usage, public.error_category_summary from public, anon, authenticated;
grant select on public.task_usage, public.error_category_summary to authenticated, service_role;

revoke all on function public.stepsdk_daily_usage(integer) from public, anon;
revoke all on function public.stepsdk_top_token_tasks(integer) from public, anon;
grant execute on function public.stepsdk_top_token_tasks(integer) to authenticated, service_role;
revoke all on function public.stepsdk_alert_failure_rate(integer, text) from public, anon;
revoke all on function public.stepsdk_alert_step_p95(integer, text, text) from public, anon;
revoke all on function public.stepsdk_alert_error_counts(integer) from public, anon;
grant execute on function public.stepsdk_daily_usage(integer) to authenticated, service_role;
grant execute on function public.stepsdk_alert_failure_rate(integer, text) to authenticated, service_role;
grant execute on function public.stepsdk_alert_step_p95(integer, text, text) to authenticated, service_role;
grant execute on function public.stepsdk_alert_error_counts(integer) to authenticated, service_role;

-- stepsdk (issue 13): task_summary gains the task's metadata as its last column, so the task list
-- can show chosen metadata keys as columns and filter on them (PostgREST: metadata->>model=eq.x).
-- create or replace view keeps the existing columns and appends this one; the privileges are
-- re-stated because hosted Supabase grants nothing by default.

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
    st.last_step_at,
    t.metadata
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
    'total/avg/p50/p95 (ms, over steps with a duration), screenshot rows, last step time and the task metadata. '
    'RLS of the caller applies.';

revoke all on public.task_summary from public, anon, authenticated;
grant select on public.task_summary to authenticated, service_role;

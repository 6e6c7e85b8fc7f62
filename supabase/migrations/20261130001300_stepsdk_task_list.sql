-- stepsdk (issue 13): task_list = task_summary plus the task's metadata, for the viewer's task
-- list (chosen metadata keys as columns; PostgREST filters such as metadata->>model=eq.gpt-4o).
-- A view of its own rather than a column appended to task_summary: re-applying the earlier
-- migrations (as pasted in the SQL console) recreates task_summary with its own columns.
-- Columns are listed, not s.*, so that re-applying this file stays valid if task_summary grows.

create or replace view public.task_list
with (security_invoker = true) as
select
    s.task_id,
    s.title,
    s.agent,
    s.status,
    s.started_at,
    s.finished_at,
    s.duration_ms,
    s.total_steps,
    s.successful_steps,
    s.failed_steps,
    s.success_rate,
    s.total_duration_ms,
    s.avg_step_duration_ms,
    s.p50_step_duration_ms,
    s.p95_step_duration_ms,
    s.screenshots_count,
    s.last_step_at,
    t.metadata
from public.task_summary s
join public.tasks t on t.task_id = s.task_id;

comment on view public.task_list is
    'stepsdk: task_summary columns plus the task metadata (jsonb), for listing and filtering tasks. '
    'RLS of the caller applies.';

-- hosted Supabase grants nothing by default; the default grant to anon/authenticated is taken back
revoke all on public.task_list from public, anon, authenticated;
grant select on public.task_list to authenticated, service_role;

-- Recent tasks with their step statistics (newest first).
-- Paste into the Supabase SQL console. Change the limit, or uncomment a filter.
-- Cheap on large tables: it walks tasks_started_at_idx and aggregates only the rows shown.
select
    task_id,
    title,
    agent,
    status,
    started_at,
    round((duration_ms / 1000)::numeric, 1)      as duration_s,        -- wall time; null while running
    total_steps,
    failed_steps,
    round(success_rate * 100, 1)                 as success_pct,       -- null when the task has no steps
    round(avg_step_duration_ms::numeric, 1)      as avg_step_ms,
    round(p95_step_duration_ms::numeric, 1)      as p95_step_ms,
    screenshots_count,
    last_step_at
from public.task_summary
-- where status = 'failed'
-- where agent = 'phone-agent'
order by started_at desc, task_id
limit 50;

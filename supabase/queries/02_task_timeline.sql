-- Timeline of one task: every step in order, when it happened relative to the task start,
-- how long it took, the running total, and what went wrong.
-- Set the task id in the `params` CTE below (works as-is in the web console; no psql variables).
with params as (
    select 'seed-task-checkout'::text as task_id   -- set task id here
)
select
    s.step_number,
    s.step_type,
    s.created_at,
    round((extract(epoch from (s.created_at - t.started_at)) * 1000)::numeric, 0)  as at_ms,       -- since task start
    s.duration_ms,
    sum(coalesce(s.duration_ms, 0)) over (order by s.step_number)                  as cumulative_ms,
    s.success,
    s.error_type,
    left(btrim(s.error_message, E' \t\r\n'), 200)                                  as error_message,
    left(coalesce(s.thinking, s.step_data::text), 120)                              as detail,
    s.screenshot_path
from params p
join public.tasks t on t.task_id = p.task_id
join public.task_steps s on s.task_id = t.task_id
order by s.step_number;

-- Task success rate and volume per UTC day (days on which tasks started; newest first).
-- task_success_pct = successful / finished tasks (running tasks are not counted yet).
-- For the last N calendar days including empty ones: select * from public.stepsdk_daily_stats(30);
select
    day,
    tasks,
    successful_tasks,
    failed_tasks,
    interrupted_tasks,
    running_tasks,
    round(task_success_rate * 100, 1)                  as task_success_pct,
    steps,
    failed_steps,
    round(100.0 * failed_steps / nullif(steps, 0), 1) as failed_step_pct,
    round((p50_task_duration_ms / 1000)::numeric, 1)   as p50_task_s,
    round((p95_task_duration_ms / 1000)::numeric, 1)   as p95_task_s
from public.daily_summary
order by day desc
limit 90;

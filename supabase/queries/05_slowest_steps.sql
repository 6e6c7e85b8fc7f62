-- The 20 slowest steps overall. To look at a recent window only, pass a start time, e.g.
--   public.stepsdk_slowest_steps(20, now() - interval '7 days')
select
    step_id,
    task_id,
    task_title,
    step_number,
    step_type,
    duration_ms,
    success,
    created_at
from public.stepsdk_slowest_steps(20);

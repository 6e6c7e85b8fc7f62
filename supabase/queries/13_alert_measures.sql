-- What `stepsdk alerts check` measures, over the last hour (change the 3600 seconds):
-- the task failure rate, the p95 step duration (all steps; pass a step_type and/or a step
-- name to narrow it), and the errors that repeat (type + normalized message).
select 'failure_rate' as measure,
       failure_rate::double precision as value,
       format('%s of %s finished tasks failed', failed_tasks, finished_tasks) as detail
from public.stepsdk_alert_failure_rate(3600)
union all
select 'step_p95_ms', p95_duration_ms, format('%s steps', steps)
from public.stepsdk_alert_step_p95(3600)          -- e.g. (3600, 'action', 'Tap')
union all
select * from (
    select 'error_repeats', occurrences::double precision,
           format('%s: %s', coalesce(error_type, 'error'), coalesce(error_message, '(no message)'))
    from public.stepsdk_alert_error_counts(3600)
    order by occurrences desc
    limit 10
) e;

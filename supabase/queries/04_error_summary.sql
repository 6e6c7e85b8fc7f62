-- Which errors happen, how often, since when, and where to look at one.
-- Messages are grouped after trimming whitespace and cutting to 200 characters.
select
    error_type,
    error_message,
    occurrences,
    tasks_affected,
    first_seen,
    last_seen,
    example_task_id,      -- most recent occurrence: open it with 02_task_timeline.sql
    example_step_id
from public.error_summary
order by occurrences desc, last_seen desc, error_type nulls last, error_message nulls last;

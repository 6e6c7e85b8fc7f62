-- The most recent failed steps, with their task, newest first.
-- Uses task_steps_failed_idx (a partial index on failed steps).
select
    s.created_at,
    s.task_id,
    t.title                                         as task_title,
    t.status                                        as task_status,
    s.step_number,
    s.step_type,
    s.error_type,
    left(btrim(s.error_message, E' \t\r\n'), 200)   as error_message,
    s.duration_ms,
    s.id                                            as step_id
from public.task_steps s
join public.tasks t on t.task_id = s.task_id
where not s.success
order by s.created_at desc, s.id
limit 100;

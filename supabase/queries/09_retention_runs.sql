-- Scheduled retention (pg_cron, see supabase/README.md): the job in force, pg_cron's last run
-- of it, the last ten runs logged by public.stepsdk_run_retention, and how many freed screenshot
-- objects `stepsdk cleanup` still has to remove from Storage. One row with empty run columns
-- when retention never ran; job columns are empty when it is not scheduled (or pg_cron is off).
--   schedule it:  select public.stepsdk_schedule_retention(interval '30 days');   -- daily 03:17 UTC
--   turn it off:  select public.stepsdk_unschedule_retention();
select
    (s.r ->> 'pg_cron')::boolean                  as pg_cron_enabled,
    s.r -> 'job' ->> 'schedule'                   as schedule,
    s.r -> 'job' ->> 'max_age'                    as keeps,
    (s.r -> 'job' ->> 'active')::boolean          as active,
    s.r -> 'last_cron_run' ->> 'status'           as last_cron_status,
    (s.r ->> 'freed_objects_pending')::integer    as freed_objects_pending,
    runs.started_at, runs.finished_at, runs.max_age, runs.tasks_deleted, runs.objects_freed
from (select public.stepsdk_retention_status() as r) s
left join lateral (
    select started_at, finished_at, max_age, tasks_deleted, objects_freed
    from public.stepsdk_retention_runs
    order by started_at desc, id desc
    limit 10
) runs on true
order by runs.started_at desc nulls last;

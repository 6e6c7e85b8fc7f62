-- What retention would delete: tasks started more than `max_age` ago (oldest first, one batch),
-- and the screenshot objects no remaining task references (safe to remove from Storage).
-- Nothing is deleted (dry_run => true). Set the age in the `params` CTE.
-- To really delete (service role / SQL console only), call it without dry_run and loop while
-- "has_more" is true, then remove "unreferenced_paths" from the step-screenshots bucket:
--   select public.stepsdk_delete_tasks_older_than(interval '30 days');
with params as (
    select interval '30 days' as max_age   -- set retention age here
),
preview as (
    select public.stepsdk_delete_tasks_older_than(p.max_age, dry_run => true, batch_limit => 1000) as r
    from params p
)
select 'task' as kind, x.value as value, (pv.r ->> 'cutoff')::timestamptz as cutoff,
       (pv.r ->> 'has_more')::boolean as has_more
from preview pv, jsonb_array_elements_text(pv.r -> 'task_ids') as x(value)
union all
select 'unreferenced_path', x.value, (pv.r ->> 'cutoff')::timestamptz, (pv.r ->> 'has_more')::boolean
from preview pv, jsonb_array_elements_text(pv.r -> 'unreferenced_paths') as x(value)
order by kind, value;

-- stepsdk storage info: what the database holds, in one call (the viewer's GET /api/storage).
--
-- Apply after 20261122000001_stepsdk_core.sql. Safe to apply twice.
--   select public.stepsdk_storage_info();
--   client.rpc('stepsdk_storage_info', {})
-- Returns jsonb {tasks, steps, screenshots, objects, bytes, oldest_task_at, newest_task_at}:
-- screenshots counts screenshot rows, objects the distinct objects they reference (content
-- addressing shares one object between identical screens) and bytes those objects take.
-- Security invoker: a signed-in user (row-level security) sees the figures of their own tasks.

-- (Names step_screenshots.storage_path, the column's name at this point of the history;
-- 20261130001410 renames it screenshot_path and re-creates this function.)
create or replace function public.stepsdk_storage_info()
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'tasks', (select count(*) from public.tasks),
        'steps', (select count(*) from public.task_steps),
        'screenshots', (select count(*) from public.step_screenshots),
        'objects', (select count(distinct storage_path) from public.step_screenshots),
        'bytes', (select coalesce(sum(o.file_size), 0) from (
                      select max(file_size) as file_size from public.step_screenshots group by storage_path) o),
        'oldest_task_at', (select min(started_at) from public.tasks),
        'newest_task_at', (select max(started_at) from public.tasks)
    );
$$;

comment on function public.stepsdk_storage_info() is
    'stepsdk: counts of tasks, steps, screenshot rows and distinct objects, their bytes, oldest/newest task.';

revoke all on function public.stepsdk_storage_info() from public, anon;
grant execute on function public.stepsdk_storage_info() to authenticated, service_role;

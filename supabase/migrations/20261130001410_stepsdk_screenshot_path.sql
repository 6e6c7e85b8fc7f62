-- stepsdk: step_screenshots' object key column is named screenshot_path, as in the persistence
-- guide (and as task_steps.screenshot_path already is). It was storage_path up to stepsdk 0.1.
--
-- Apply after 20261130001402_stepsdk_storage_info.sql. Safe to apply twice.
--
-- Existing databases: the column is renamed in place (ALTER TABLE ... RENAME COLUMN: no rewrite,
-- rows, index and check kept, instant whatever the table size). Everything that names the column
-- in its text is re-created below with the new name: the storage read policy of the core
-- migration, stepsdk_unreferenced_paths (delete and retention) and stepsdk_storage_info.
-- Clients: stepsdk >= this release writes and reads screenshot_path; a stepsdk 0.1 uploader
-- still running against the renamed table has its screenshot rows refused (PGRST204, unknown
-- column): they stay in its backup folder, and `stepsdk resync` of the new release uploads them.

do $$
begin
    if exists (select 1 from information_schema.columns
               where table_schema = 'public' and table_name = 'step_screenshots' and column_name = 'storage_path')
       and not exists (select 1 from information_schema.columns
               where table_schema = 'public' and table_name = 'step_screenshots' and column_name = 'screenshot_path')
    then
        alter table public.step_screenshots rename column storage_path to screenshot_path;
    end if;
    -- the check constraint the core migration named after the column
    if exists (select 1 from pg_catalog.pg_constraint
               where conrelid = 'public.step_screenshots'::regclass and conname = 'step_screenshots_storage_path_check')
    then
        alter table public.step_screenshots
            rename constraint step_screenshots_storage_path_check to step_screenshots_screenshot_path_check;
    end if;
end;
$$;

comment on column public.step_screenshots.screenshot_path is
    'Object key in the step-screenshots storage bucket (content-addressed: <sha256[0:2]>/<sha256>.webp or .enc); '
    'named storage_path before migration 20261130001410.';

-- The core migration's storage policy, with the new column name (a policy stores its parsed
-- expression, so the old one kept working; re-created so that its text says what it does).
drop policy if exists "owners read screenshots objects" on storage.objects;
create policy "owners read screenshots objects" on storage.objects
    for select to authenticated
    using (
        bucket_id = 'step-screenshots'
        and exists (
            select 1
            from public.step_screenshots s
            join public.tasks t on t.task_id = s.task_id
            where s.screenshot_path = storage.objects.name and t.owner_id = (select auth.uid())
        )
    );

-- 20261130001400's shared object rule, with the new column name (a SQL function keeps its text:
-- the old one would fail on the renamed column).
create or replace function public.stepsdk_unreferenced_paths(task_ids text[])
returns text[]
language sql
stable
set search_path = ''
as $$
    select coalesce(array_agg(c.path order by c.path), '{}')
    from (
        select ss.screenshot_path as path from public.step_screenshots ss where ss.task_id = any (task_ids)
        union
        select s.screenshot_path from public.task_steps s
        where s.task_id = any (task_ids) and s.screenshot_path is not null
    ) c
    where not exists (
            select 1 from public.step_screenshots o
            where o.screenshot_path = c.path and not (o.task_id = any (task_ids)))
      and not exists (
            select 1 from public.task_steps o
            where o.screenshot_path = c.path and not (o.task_id = any (task_ids)));
$$;

comment on function public.stepsdk_unreferenced_paths(text[]) is
    'stepsdk (service_role only): the screenshot object keys the given tasks reference and no other task does.';

-- 20261130001402's storage figures, with the new column name.
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
        'objects', (select count(distinct screenshot_path) from public.step_screenshots),
        'bytes', (select coalesce(sum(o.file_size), 0) from (
                      select max(file_size) as file_size from public.step_screenshots group by screenshot_path) o),
        'oldest_task_at', (select min(started_at) from public.tasks),
        'newest_task_at', (select max(started_at) from public.tasks)
    );
$$;

comment on function public.stepsdk_storage_info() is
    'stepsdk: counts of tasks, steps, screenshot rows and distinct objects, their bytes, oldest/newest task.';

-- Grants as before (create or replace keeps them; stated again so this file stands on its own).
revoke all on function public.stepsdk_unreferenced_paths(text[]) from public, anon, authenticated;
grant execute on function public.stepsdk_unreferenced_paths(text[]) to service_role;
revoke all on function public.stepsdk_storage_info() from public, anon;
grant execute on function public.stepsdk_storage_info() to authenticated, service_role;

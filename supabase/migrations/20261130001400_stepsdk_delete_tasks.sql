-- stepsdk delete: delete chosen tasks (by id) with their steps and screenshot rows, and report
-- the screenshot objects no remaining task references. `stepsdk delete` and the viewer's delete
-- button call it; the retention function (20261122000003) now shares its object rule.
--
-- Apply after 20261122000003_stepsdk_retention.sql. Safe to apply twice.
--
-- Usage (service role only):
--   select public.stepsdk_delete_tasks(array['task-1', 'task-2']);                 -- delete
--   select public.stepsdk_delete_tasks(array['task-1'], dry_run => true);          -- preview
--   client.rpc('stepsdk_delete_tasks', {'task_ids': ['task-1'], 'dry_run': False})
-- Returns one jsonb object:
--   {"dry_run": bool, "task_count": int, "task_ids": [text], "unreferenced_paths": [text]}
-- task_ids are the tasks that existed and were deleted (ids that match no task are left out);
-- unreferenced_paths are the object keys no remaining task references (remove them from the
-- step-screenshots bucket afterwards, as for retention).

-- (Names step_screenshots.storage_path, the column's name at this point of the history;
-- 20261130001410 renames it screenshot_path and re-creates this function.)
-- The one copy of "which objects do these tasks free": the paths their screenshot rows and
-- steps point at that no step or screenshot row of any other task references.
create or replace function public.stepsdk_unreferenced_paths(task_ids text[])
returns text[]
language sql
stable
set search_path = ''
as $$
    select coalesce(array_agg(c.path order by c.path), '{}')
    from (
        select ss.storage_path as path from public.step_screenshots ss where ss.task_id = any (task_ids)
        union
        select s.screenshot_path from public.task_steps s
        where s.task_id = any (task_ids) and s.screenshot_path is not null
    ) c
    where not exists (
            select 1 from public.step_screenshots o
            where o.storage_path = c.path and not (o.task_id = any (task_ids)))
      and not exists (
            select 1 from public.task_steps o
            where o.screenshot_path = c.path and not (o.task_id = any (task_ids)));
$$;

comment on function public.stepsdk_unreferenced_paths(text[]) is
    'stepsdk (service_role only): the screenshot object keys the given tasks reference and no other task does.';

create or replace function public.stepsdk_delete_tasks(
    task_ids text[],
    dry_run boolean default false
)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_ids text[];
    v_paths text[];
begin
    if task_ids is null or cardinality(task_ids) > 10000 then
        raise exception 'stepsdk_delete_tasks: task_ids must be an array of at most 10000 ids'
            using errcode = '22023';
    end if;
    if dry_run is null then
        raise exception 'stepsdk_delete_tasks: dry_run must be true or false' using errcode = '22023';
    end if;
    -- Lock the rows to delete, so a concurrent delete or retention cannot report them too.
    if dry_run then
        select coalesce(array_agg(t.task_id order by t.started_at, t.task_id), '{}') into v_ids
        from public.tasks t where t.task_id = any (task_ids);
    else
        select coalesce(array_agg(x.task_id order by x.started_at, x.task_id), '{}') into v_ids
        from (select t.task_id, t.started_at from public.tasks t
              where t.task_id = any (task_ids) for update) x;
    end if;
    v_paths := public.stepsdk_unreferenced_paths(v_ids);
    if not dry_run then
        delete from public.tasks t where t.task_id = any (v_ids);  -- steps and screenshot rows cascade
    end if;
    return jsonb_build_object(
        'dry_run', dry_run,
        'task_count', cardinality(v_ids),
        'task_ids', to_jsonb(v_ids),
        'unreferenced_paths', to_jsonb(v_paths)
    );
end;
$$;

comment on function public.stepsdk_delete_tasks(text[], boolean) is
    'stepsdk delete (service_role only): delete the given tasks (steps and screenshot rows cascade); returns '
    'jsonb {dry_run, task_count, task_ids, unreferenced_paths}. Remove unreferenced_paths from the '
    'step-screenshots bucket afterwards.';

-- Retention, unchanged in behaviour, now picks its batch and hands it to the shared rule.
create or replace function public.stepsdk_delete_tasks_older_than(
    max_age interval,
    dry_run boolean default false,
    batch_limit integer default 1000
)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_cutoff timestamptz;
    v_ids text[];
    v_paths text[];
    v_has_more boolean;
begin
    -- A floor of one minute: a bare number such as 30 reads as 30 *seconds*, which would
    -- otherwise delete nearly every task; nobody means a retention shorter than a minute.
    if max_age is null or max_age < interval '1 minute' then
        raise exception 'stepsdk_delete_tasks_older_than: max_age must be an interval of at least 1 minute '
            '(e.g. ''30 days''; a bare number means seconds), got %', coalesce(max_age::text, 'null')
            using errcode = '22023';
    end if;
    if dry_run is null then
        raise exception 'stepsdk_delete_tasks_older_than: dry_run must be true or false' using errcode = '22023';
    end if;
    if batch_limit is null or batch_limit < 1 or batch_limit > 10000 then
        raise exception 'stepsdk_delete_tasks_older_than: batch_limit must be between 1 and 10000, got %',
            coalesce(batch_limit::text, 'null') using errcode = '22023';
    end if;
    v_cutoff := now() - max_age;

    -- Oldest first, so a loop of calls makes steady progress. Rows being deleted are locked
    -- (and ones another cleanup holds are skipped) so two concurrent cleanups never report
    -- the same task twice.
    if dry_run then
        select coalesce(array_agg(x.task_id order by x.started_at, x.task_id), '{}') into v_ids
        from (
            select t.task_id, t.started_at from public.tasks t
            where t.started_at < v_cutoff
            order by t.started_at, t.task_id
            limit batch_limit
        ) x;
    else
        select coalesce(array_agg(x.task_id order by x.started_at, x.task_id), '{}') into v_ids
        from (
            select t.task_id, t.started_at from public.tasks t
            where t.started_at < v_cutoff
            order by t.started_at, t.task_id
            limit batch_limit
            for update skip locked
        ) x;
    end if;

    v_paths := public.stepsdk_unreferenced_paths(v_ids);
    if not dry_run then
        delete from public.tasks t where t.task_id = any (v_ids);  -- steps and screenshot rows cascade
    end if;

    select exists (
        select 1 from public.tasks t
        where t.started_at < v_cutoff and not (t.task_id = any (v_ids))
    ) into v_has_more;

    return jsonb_build_object(
        'dry_run', dry_run,
        'cutoff', v_cutoff,
        'task_count', cardinality(v_ids),
        'task_ids', to_jsonb(v_ids),
        'unreferenced_paths', to_jsonb(v_paths),
        'has_more', v_has_more
    );
end;
$$;

revoke all on function public.stepsdk_unreferenced_paths(text[]) from public, anon, authenticated;
grant execute on function public.stepsdk_unreferenced_paths(text[]) to service_role;
revoke all on function public.stepsdk_delete_tasks(text[], boolean) from public, anon, authenticated;
grant execute on function public.stepsdk_delete_tasks(text[], boolean) to service_role;
revoke all on function public.stepsdk_delete_tasks_older_than(interval, boolean, integer)
    from public, anon, authenticated;
grant execute on function public.stepsdk_delete_tasks_older_than(interval, boolean, integer) to service_role;

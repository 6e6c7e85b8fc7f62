-- stepsdk retention: delete old tasks in batches and report which screenshot objects became
-- unreferenced, so the caller can remove them from Storage.
--
-- Apply after 20261122000001_stepsdk_core.sql. Safe to apply twice.
--
-- Why the function does not delete the objects itself: Storage objects live in an object
-- store behind the Storage API; deleting storage.objects rows from SQL would leave the bytes
-- behind (and is unsupported by Supabase). The caller (e.g. `stepsdk cleanup`) removes the
-- returned paths with `client.storage.from_('step-screenshots').remove(paths)`.
--
-- Usage (service role only), looping until nothing is left:
--   select public.stepsdk_delete_tasks_older_than(interval '30 days');                 -- delete
--   select public.stepsdk_delete_tasks_older_than(interval '30 days', dry_run => true); -- preview
--   client.rpc('stepsdk_delete_tasks_older_than', {'max_age': '30 days', 'batch_limit': 500})
-- Returns one jsonb object:
--   {"dry_run": bool, "cutoff": timestamptz, "task_count": int, "task_ids": [text],
--    "unreferenced_paths": [text], "has_more": bool}
-- task_ids are the tasks deleted (or that would be, when dry_run); unreferenced_paths are the
-- object keys that no remaining task references any more (neither a step_screenshots row nor a
-- task_steps.screenshot_path); has_more says another call would find more tasks to delete.

-- "Is this object still referenced by a step of another task?" must not scan task_steps.
create index if not exists task_steps_screenshot_path_idx
    on public.task_steps (screenshot_path) where screenshot_path is not null;

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

    -- Candidate objects: everything the doomed tasks point at (screenshot rows and, for an
    -- object whose screenshot row never landed, the step's own screenshot_path). Content
    -- addressing shares one object between tasks, so keep only the paths that no step or
    -- screenshot row of a surviving task references.
    select coalesce(array_agg(c.path order by c.path), '{}') into v_paths
    from (
        select ss.storage_path as path from public.step_screenshots ss where ss.task_id = any (v_ids)
        union
        select s.screenshot_path from public.task_steps s
        where s.task_id = any (v_ids) and s.screenshot_path is not null
    ) c
    where not exists (
            select 1 from public.step_screenshots o
            where o.storage_path = c.path and not (o.task_id = any (v_ids)))
      and not exists (
            select 1 from public.task_steps o
            where o.screenshot_path = c.path and not (o.task_id = any (v_ids)));

    if not dry_run then
        -- step rows and screenshot rows go with their task (on delete cascade)
        delete from public.tasks t where t.task_id = any (v_ids);
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

comment on function public.stepsdk_delete_tasks_older_than(interval, boolean, integer) is
    'stepsdk retention (service_role only): delete at most batch_limit tasks started before now() - max_age '
    '(steps and screenshot rows cascade); returns jsonb {dry_run, cutoff, task_count, task_ids, '
    'unreferenced_paths, has_more}. Remove unreferenced_paths from the step-screenshots bucket afterwards.';

-- Only the service role may run retention (Supabase grants execute on new functions to
-- anon and authenticated by default, and PostgreSQL to PUBLIC: take both away).
revoke all on function public.stepsdk_delete_tasks_older_than(interval, boolean, integer)
    from public, anon, authenticated;
grant execute on function public.stepsdk_delete_tasks_older_than(interval, boolean, integer) to service_role;

-- stepsdk: an upload never replaces a newer version of a row with an older one (issue #11).
--
-- The recorder writes each task row and step row in versions (a task row changes when the task
-- finishes; a screenshot step is written first without, then with its screenshot). Versions are
-- sent as `row_version`; several writers may upload the same row (a live tracker, `stepsdk
-- resync` next to it, a restored export), in any order. This trigger keeps the newest version:
-- an update carrying an older `row_version` is skipped. A resumed task (a second tracker with the
-- same task_id) keeps the original `started_at`.
-- Existing databases: additive; rows written before have row_version 0 and are replaced by any
-- versioned upload, as before.

alter table public.tasks add column if not exists row_version bigint not null default 0;
alter table public.task_steps add column if not exists row_version bigint not null default 0;
alter table public.step_screenshots add column if not exists row_version bigint not null default 0;

comment on column public.tasks.row_version is 'Version of the row as written by stepsdk; an older version never overwrites a newer one.';
comment on column public.task_steps.row_version is 'Version of the row as written by stepsdk; an older version never overwrites a newer one.';
comment on column public.step_screenshots.row_version is 'Version of the row as written by stepsdk; an older version never overwrites a newer one.';

create or replace function public.stepsdk_keep_newest_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.row_version < old.row_version then
        return null;  -- an older version arrived late: keep the stored one
    end if;
    if tg_table_name = 'tasks' then
        new.started_at := least(old.started_at, new.started_at);  -- a resumed task keeps its start
    end if;
    return new;
end;
$$;

revoke all on function public.stepsdk_keep_newest_version() from public, anon, authenticated;

drop trigger if exists tasks_keep_newest_version on public.tasks;
create trigger tasks_keep_newest_version before update on public.tasks
    for each row execute function public.stepsdk_keep_newest_version();
drop trigger if exists task_steps_keep_newest_version on public.task_steps;
create trigger task_steps_keep_newest_version before update on public.task_steps
    for each row execute function public.stepsdk_keep_newest_version();
drop trigger if exists step_screenshots_keep_newest_version on public.step_screenshots;
create trigger step_screenshots_keep_newest_version before update on public.step_screenshots
    for each row execute function public.stepsdk_keep_newest_version();

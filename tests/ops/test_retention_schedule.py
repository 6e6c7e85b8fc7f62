"""Retention that runs by itself: the pg_cron job in Supabase (pg_cron loaded by the local stack,
installed by dev.sh) and ``retention_days`` in the local backup; ``stepsdk cleanup`` removes the
objects the job freed; ``stepsdk status`` shows what is in force and the last run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.config import Config
from stepsdk.ops.local_retention import STATE_FILE, apply_on_start, last_run
from stepsdk.store.backup import BackupStore
from tests.cli_data import (
    Dataset,
    json_out,
    key_of,
    load_into_backup,
    load_into_stack,
    local_env,
    stack_env,
    stack_objects,
    webp,
)
from tests.timing import wait_for

SHARED, OWN_OLD, OWN_NEW = key_of(webp(1)), key_of(webp(2)), key_of(webp(3))
NEVER = "0 0 1 1 *"  # a real schedule that will not fire while the suite runs (1 January, 00:00)


def _dataset() -> Dataset:
    ds = Dataset()
    ds.add_task("old", age=timedelta(days=40), image_seeds=[1, 2])
    ds.add_task("older", age=timedelta(days=400), image_seeds=[])
    ds.add_task("new", age=timedelta(days=2), image_seeds=[1, 3])
    return ds


@pytest.fixture
def cron(stack) -> Iterator[object]:
    """pg_cron enabled in the stack's database, stepsdk's retention log empty; the job removed after."""
    stack.sql("create extension if not exists pg_cron")
    stack.sql("delete from public.stepsdk_freed_objects; delete from public.stepsdk_retention_runs")
    try:
        yield stack
    finally:
        stack.sql("select public.stepsdk_unschedule_retention()")
        stack.sql("delete from public.stepsdk_freed_objects; delete from public.stepsdk_retention_runs")


def test_pg_cron_job_deletes_old_tasks_and_cleanup_removes_their_objects(
    cron, stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_into_stack(stack, _dataset())
    # the scheduler is running in the cluster and serves this database (its launcher starts a
    # moment after the server: wait for it when this is the session's first test)
    launcher = "select datname from pg_stat_activity where backend_type = 'pg_cron launcher'"
    wait_for(lambda: stack.sql(launcher), interval=0.1)
    assert stack.sql(launcher) == [{"datname": stack.sql("select current_database() as d")[0]["d"]}]

    [job] = stack.sql("select public.stepsdk_schedule_retention(interval '30 days', %s) as id", (NEVER,))
    [row] = stack.sql(
        "select jobid, schedule, command, active, database from cron.job where jobname = 'stepsdk-retention'"
    )
    assert row["jobid"] == job["id"] and row["schedule"] == NEVER and row["active"]
    assert row["command"] == "select public.stepsdk_run_retention('30 days'::interval)"
    # scheduling again replaces the job (one per database), with the new age
    stack.sql("select public.stepsdk_schedule_retention(interval '30 days', %s)", (NEVER,))
    assert stack.sql("select count(*) as n from cron.job")[0]["n"] == 1

    # what the scheduler runs at each tick: the job's own command, as its owner
    stack.sql(row["command"])
    assert [r["task_id"] for r in stack.sql("select task_id from public.tasks")] == ["new"]
    assert [
        r["screenshot_path"] for r in stack.sql("select screenshot_path from public.stepsdk_freed_objects")
    ] == [OWN_OLD]
    [run] = stack.sql(
        "select max_age::text as age, tasks_deleted, objects_freed, finished_at from "
        "public.stepsdk_retention_runs"
    )
    assert (run["age"], run["tasks_deleted"], run["objects_freed"]) == ("30 days", 2, 1) and run[
        "finished_at"
    ]
    # no failed run of the job was recorded by pg_cron
    assert (
        stack.sql(
            "select status from cron.job_run_details where jobid = %s and status <> 'succeeded'", (job["id"],)
        )
        == []
    )
    assert stack_objects(stack) == {SHARED, OWN_OLD, OWN_NEW}  # SQL cannot remove objects: queued

    stack_env(monkeypatch, stack, tmp_path / "unused")
    (tmp_path / "unused").mkdir()  # status says so (exit 66) when the backup folder is missing
    assert main(["status", "--json"]) == Exit.OK
    retention = json_out(capsys.readouterr().out)["retention"]["supabase"]
    assert retention["job"] == {"jobid": job["id"], "schedule": NEVER, "active": True, "max_age": "30 days"}
    assert retention["last_run"]["tasks_deleted"] == 2 and retention["freed_objects_pending"] == 1

    assert main(["cleanup", "--dry-run", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["freed"] == [OWN_OLD]
    assert stack_objects(stack) == {SHARED, OWN_OLD, OWN_NEW}
    assert main(["cleanup", "--json"]) == Exit.OK  # no --older-than: only the queue
    out = json_out(capsys.readouterr().out)
    assert out["ok"] and out["freed"] == [OWN_OLD] and out["tasks"] == 0
    assert stack_objects(stack) == {SHARED, OWN_NEW}
    assert stack.sql("select count(*) as n from public.stepsdk_freed_objects")[0]["n"] == 0


def test_freed_object_referenced_again_is_kept(
    cron, stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_into_stack(stack, _dataset())
    stack.sql("select public.stepsdk_run_retention(interval '30 days')")
    # a new step records the same screen (content addressing) before the sweep runs
    stack.sql(
        "insert into public.task_steps (task_id, step_number, step_type, screenshot_path)"
        " values ('new', 99, 'screenshot', %s)",
        (OWN_OLD,),
    )
    stack_env(monkeypatch, stack, tmp_path / "unused")
    assert main(["cleanup", "--json"]) == Exit.OK
    out = json_out(capsys.readouterr().out)
    assert out["objects_kept"] == [OWN_OLD] and out["freed"] == []
    assert stack_objects(stack) == {SHARED, OWN_OLD, OWN_NEW}
    assert stack.sql("select count(*) as n from public.stepsdk_freed_objects")[0]["n"] == 0  # dequeued


def test_scheduled_retention_functions_are_service_only(stack) -> None:
    for fn, role_may in [
        ("stepsdk_run_retention(interval, integer)", {"service_role"}),
        ("stepsdk_retention_status()", {"service_role"}),
        ("stepsdk_schedule_retention(interval, text)", set()),
        ("stepsdk_delete_tasks(text[], boolean)", {"service_role"}),
    ]:
        for role in ("anon", "authenticated", "service_role"):
            ok = stack.sql("select has_function_privilege(%s, %s, 'execute') as ok", (role, "public." + fn))[
                0
            ]["ok"]
            assert ok is (role in role_may), (fn, role)
    for table in ("stepsdk_freed_objects", "stepsdk_retention_runs"):
        for role in ("anon", "authenticated"):
            assert not stack.sql(
                "select has_table_privilege(%s, %s, 'select') as ok", (role, "public." + table)
            )[0]["ok"]
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        stack.sql("select public.stepsdk_schedule_retention(interval '10 seconds')")


def test_schedule_without_pg_cron_says_how_to_enable_it(supabase_stack) -> None:
    from tests.supabase_local import postgres
    from tests.supabase_local.stack import apply_migrations, apply_platform

    dsn = postgres.create_database(supabase_stack.db_url, "nocron_db")
    try:
        apply_platform(dsn)
        apply_migrations(dsn)
        with (
            psycopg.connect(dsn, autocommit=True) as conn,
            pytest.raises(
                psycopg.errors.ObjectNotInPrerequisiteState, match="pg_cron extension is not enabled"
            ),
        ):
            conn.execute("select public.stepsdk_schedule_retention(interval '30 days')")
        with psycopg.connect(dsn, autocommit=True) as conn:
            status = conn.execute("select public.stepsdk_retention_status()").fetchone()[0]
        assert status == {
            "pg_cron": False,
            "job": None,
            "last_cron_run": None,
            "last_run": None,
            "freed_objects_pending": 0,
        }
    finally:
        postgres.drop_database(supabase_stack.db_url, "nocron_db")


# --------------------------------------------------------------------------- local backup


def _backup(tmp_path: Path) -> Path:
    root = tmp_path / "backup"
    load_into_backup(root, _dataset())
    return root


def test_tracker_start_applies_retention_days(tmp_path: Path) -> None:
    root = _backup(tmp_path)
    assert apply_on_start(Config.resolve("", "", root)) is None  # not configured: nothing happens
    assert set(BackupStore(root).read().tasks) == {"old", "older", "new"}

    report = apply_on_start(Config.resolve("", "", root, retention_days=30))
    assert report is not None and sorted(report.task_ids) == ["old", "older"]
    assert set(BackupStore(root).read().tasks) == {"new"}
    files = {str(p.relative_to(root / "screenshots")) for p in (root / "screenshots").rglob("*.webp")}
    assert files == {SHARED, OWN_NEW}
    run = last_run(root)
    assert run is not None and (run["trigger"], run["older_than"], run["tasks_deleted"]) == (
        "tracker",
        "30d",
        2,
    )


def test_tracker_start_retention_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _backup(tmp_path)
    (root / STATE_FILE).mkdir()  # the state cannot be written: logged, the tracker goes on
    assert apply_on_start(Config.resolve("", "", root, retention_days=30)) is None
    assert "local retention (30 days) failed" in caplog.text


def test_retention_days_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPSDK_RETENTION_DAYS", "14")
    assert Config.resolve("", "", tmp_path).retention_days == 14
    assert Config.resolve("", "", tmp_path, retention_days=3).retention_days == 3
    for bad in ("0", "2.5", "week"):
        monkeypatch.setenv("STEPSDK_RETENTION_DAYS", bad)
        with pytest.raises(ValueError, match="STEPSDK_RETENTION_DAYS"):
            Config.resolve("", "", tmp_path)


def test_cleanup_local_uses_retention_days_and_status_shows_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _backup(tmp_path)
    local_env(monkeypatch, root)
    monkeypatch.delenv("STEPSDK_RETENTION_DAYS", raising=False)
    assert main(["cleanup", "--local"]) == Exit.USAGE
    assert "STEPSDK_RETENTION_DAYS" in capsys.readouterr().err
    monkeypatch.setenv("STEPSDK_RETENTION_DAYS", "100")
    assert main(["cleanup", "--local", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["task_ids"] == ["older"]
    assert main(["status", "--json"]) == Exit.OK
    local = json_out(capsys.readouterr().out)["retention"]["local"]
    assert local["retention_days"] == 100
    assert (local["last_run"]["trigger"], local["last_run"]["older_than"]) == ("cleanup", "100d")
    assert main(["cleanup", "--local", "--older-than", "4w", "--json"]) == Exit.OK  # from cron
    assert json_out(capsys.readouterr().out)["task_ids"] == ["old"]
    assert last_run(root)["older_than"] == "4w"  # type: ignore[index]
    assert main(["status"]) == Exit.OK
    out = capsys.readouterr().out  # the report on stdout
    assert "local retention: 100 days" in out and "by cleanup (older than 4w): 1 task(s)" in out


def test_status_exits_non_zero_when_supabase_is_configured_but_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "k" * 24)
    assert main(["status", "--backup-dir", str(tmp_path), "--json"]) == Exit.UNAVAILABLE
    captured = capsys.readouterr()
    info = json_out(captured.out)
    assert info["backend"]["reachable"] is False and "k" * 24 not in captured.out + captured.err
    local_env(monkeypatch, tmp_path)
    assert main(["status", "--backup-dir", str(tmp_path)]) == Exit.OK  # local mode is fine

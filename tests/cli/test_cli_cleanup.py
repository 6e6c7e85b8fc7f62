"""``stepsdk cleanup``: retention on the local Supabase stack and on a local backup, with
screenshots shared between old and new tasks (content addressing): nothing still referenced
is deleted, everything unreferenced is."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.store import backup as _backup
from stepsdk.store.backup import BackupStore
from tests.cli_data import (
    BUCKET,
    Dataset,
    counts,
    json_out,
    key_of,
    load_into_backup,
    load_into_stack,
    local_env,
    stack_env,
    stack_objects,
    webp,
)

OLD, NEW = timedelta(days=40), timedelta(days=2)


def _dataset() -> Dataset:
    """old-a: images 1 (shared with new-c) and 2 (its own); old-b: image 3 and, via a step's
    screenshot_path only, nothing else; new-c: image 1. old-d: no steps at all."""
    ds = Dataset()
    ds.add_task("old-a", age=OLD, image_seeds=[1, 2, None])
    ds.add_task("old-b", age=OLD + timedelta(days=1), status="failed", image_seeds=[3, 3])
    ds.add_task("new-c", age=NEW, image_seeds=[1, None])
    ds.add_task("old-d", age=OLD + timedelta(days=5), image_seeds=[])
    return ds


SHARED, OWN_A, OWN_B = key_of(webp(1)), key_of(webp(2)), key_of(webp(3))


# --------------------------------------------------------------------------- Supabase


def test_cleanup_supabase_dry_run_then_delete_in_batches(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "unused")
    before = counts(stack)
    assert stack_objects(stack) == {SHARED, OWN_A, OWN_B}

    assert main(["cleanup", "--older-than", "30d", "--dry-run", "--json"]) == Exit.OK
    dry = json_out(capsys.readouterr().out)
    assert dry["dry_run"] and dry["task_ids"] == ["old-d", "old-b", "old-a"]
    assert sorted(dry["object_paths"]) == sorted([OWN_A, OWN_B])
    assert counts(stack) == before and stack_objects(stack) == {SHARED, OWN_A, OWN_B}  # nothing deleted

    assert main(["cleanup", "--older-than", "30d", "--batch-size", "1", "--json"]) == Exit.OK
    done = json_out(capsys.readouterr().out)
    assert done["ok"] and done["task_ids"] == ["old-d", "old-b", "old-a"]
    assert sorted(done["object_paths"]) == sorted([OWN_A, OWN_B])
    # only new-c is left, whole, with the object it shares with old-a
    assert [r["task_id"] for r in stack.sql("select task_id from public.tasks")] == ["new-c"]
    new_steps, new_shots = ds.for_task("new-c")
    assert counts(stack) == {"tasks": 1, "task_steps": len(new_steps), "step_screenshots": len(new_shots)}
    assert stack_objects(stack) == {SHARED}
    # a second run finds nothing
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["tasks"] == 0


def test_cleanup_supabase_keeps_objects_referenced_again(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An object a step references only by screenshot_path (its screenshot row never landed) is
    still referenced: kept."""
    ds = _dataset()
    load_into_stack(stack, ds)
    stack.sql(
        """insert into public.task_steps (id, task_id, step_number, step_type, screenshot_path)
                 values (gen_random_uuid(), 'new-c', 99, 'screenshot', %s)""",
        (OWN_B,),
    )
    stack_env(monkeypatch, stack, tmp_path / "unused")
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.OK
    out = json_out(capsys.readouterr().out)
    assert out["object_paths"] == [OWN_A]
    assert stack_objects(stack) == {SHARED, OWN_B}


def test_cleanup_supabase_storage_failure_is_reported(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "unused")
    stack.faults.fail_next("DELETE /storage/v1/object/*", n=10, status=500)
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.FAILED
    captured = capsys.readouterr()
    out = json_out(captured.out)
    assert not out["ok"] and sorted(out["objects_failed"]) == sorted([OWN_A, OWN_B])
    assert "removing 2 object(s) failed" in captured.err
    assert stack_objects(stack) == {SHARED, OWN_A, OWN_B}  # listed, not silently lost


# --------------------------------------------------------------------------- local backup


def _backup_state(root: Path) -> tuple[set[str], set[str]]:
    snap = BackupStore(root).read()
    assert snap.problems == []
    files = {str(p.relative_to(root / "screenshots")) for p in (root / "screenshots").rglob("*.webp")}
    return set(snap.tasks), files


def test_cleanup_local_dry_run_then_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "backup"
    ds = _dataset()
    load_into_backup(root, ds)
    local_env(monkeypatch, root)
    assert main(["cleanup", "--older-than", "30d", "--dry-run", "--json"]) == Exit.OK
    dry = json_out(capsys.readouterr().out)
    assert dry["task_ids"] == ["old-d", "old-b", "old-a"] and sorted(dry["object_paths"]) == sorted(
        [OWN_A, OWN_B]
    )
    assert _backup_state(root) == ({"old-a", "old-b", "new-c", "old-d"}, {SHARED, OWN_A, OWN_B})

    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.OK
    out = json_out(capsys.readouterr().out)
    assert out["ok"] and out["tasks"] == 3
    assert _backup_state(root) == ({"new-c"}, {SHARED})
    snap = BackupStore(root).read()
    new_steps, new_shots = ds.for_task("new-c")
    assert snap.steps == {"new-c": new_steps} and snap.screenshots == {"new-c": new_shots}
    # the records are gone from the files, not just hidden
    text = b"".join(p.read_bytes() for p in (root / "journal").glob("*.log"))
    assert b"old-a" not in text and b"new-c" in text
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["tasks"] == 0


def test_cleanup_local_spares_tasks_of_a_running_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal whose writer is alive (this process, not closed) is never rewritten; a task with
    records there is kept whole, and the exit status says not everything went."""
    root = tmp_path / "backup"
    ds = _dataset()
    load_into_backup(root, ds)
    live = _backup.JournalWriter(root)
    late_step = dict(ds.for_task("old-b")[0][0], id="7d1e2c34-1111-4222-8333-444455556666", step_number=9)
    live.append([{"k": "step", "row": late_step}])
    local_env(monkeypatch, root)
    try:
        assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.FAILED
    finally:
        live.close()
    captured = capsys.readouterr()
    out = json_out(captured.out)
    assert out["task_ids"] == ["old-d", "old-a"]
    assert "1 task(s) kept (old-b): its writer" in captured.err and out["kept"] == {
        "old-b": out["kept"]["old-b"]
    }
    assert _backup_state(root) == ({"new-c", "old-b"}, {SHARED, OWN_B})
    assert len(BackupStore(root).read().steps["old-b"]) == 3


def test_cleanup_local_leaves_unquarantined_corrupt_journals_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "backup"
    load_into_backup(root, _dataset())
    journal = next((root / "journal").glob("*.log"))
    with journal.open("ab") as fh:
        fh.write(b"deadbeef {not json}\n")
    local_env(monkeypatch, root)
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.FAILED
    captured = capsys.readouterr()
    assert json_out(captured.out)["tasks"] == 0
    assert "run 'stepsdk resync' first" in captured.err
    assert set(BackupStore(root).read().tasks) == {"old-a", "old-b", "new-c", "old-d"}


def test_cleanup_local_then_export_agrees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "backup"
    load_into_backup(root, _dataset())
    local_env(monkeypatch, root)
    assert main(["cleanup", "--older-than", "3d"]) == Exit.OK
    assert (
        "deleted 3 task(s) and 2 screenshot object(s)" in capsys.readouterr().out
    )  # the report goes to stdout
    assert main(["cleanup", "--older-than", "1d"]) == Exit.OK  # new-c too, and now its image
    capsys.readouterr()
    assert _backup_state(root) == (set(), set())
    assert main(["export", "--format", "jsonl"]) == Exit.OK
    assert capsys.readouterr().out == ""


def test_cleanup_local_drops_quarantined_corrupt_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once `resync` copied a corrupt line to quarantine/, the journal may be rewritten: the line
    goes (it is kept in quarantine/), and the reader reports no problem afterwards."""
    root = tmp_path / "backup"
    load_into_backup(root, _dataset())
    journal = next((root / "journal").glob("*.log"))
    with journal.open("ab") as fh:
        fh.write(b"deadbeef {not json}\n")
    store = BackupStore(root)
    marker = _backup.JournalWriter(root)
    assert store.quarantine(store.read(), marker) == 1
    marker.close()
    local_env(monkeypatch, root)
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["tasks"] == 3
    assert _backup_state(root) == ({"new-c"}, {SHARED})
    assert b"{not json}" not in journal.read_bytes()
    assert b"{not json}" in (root / "quarantine" / journal.name).read_bytes()


def test_cleanup_local_with_supabase_configured_keeps_what_is_not_uploaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "backup"
    ds = _dataset()
    load_into_backup(root, ds)
    steps, shots = ds.for_task("old-a")
    acks = _backup.JournalWriter(root)  # old-a was uploaded: the server acknowledged every row
    acks.append(
        [
            {"k": "ack", "t": "tasks", "v": {"old-a": 1}, "at": "2026-01-01T00:00:00+00:00"},
            {"k": "ack", "t": "task_steps", "ids": [s["id"] for s in steps]},
            {"k": "ack", "t": "step_screenshots", "ids": [r["id"] for r in shots]},
        ]
    )
    acks.close()
    local_env(monkeypatch, root)
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    assert main(["cleanup", "--older-than", "30d", "--local", "--json"]) == Exit.FAILED
    captured = capsys.readouterr()
    assert json_out(captured.out)["task_ids"] == ["old-a"]
    assert "3 task(s) kept (old-b, old-d, ...): not uploaded yet" not in captured.err
    assert "2 task(s) kept (old-b, old-d): not uploaded yet" in captured.err
    assert _backup_state(root) == ({"old-b", "new-c", "old-d"}, {SHARED, OWN_B})
    assert main(["cleanup", "--older-than", "30d", "--local", "--include-pending", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["task_ids"] == ["old-d", "old-b"]
    assert _backup_state(root) == ({"new-c"}, {SHARED})


def test_still_referenced_sees_past_the_row_cap(stack) -> None:
    """One object referenced by more rows than a response carries must not hide another one."""
    from stepsdk.ops.retention import SupabaseRetention

    ds = Dataset()
    ds.add_task("popular", image_seeds=[])
    load_into_stack(stack, ds)
    stack.sql(
        """insert into public.task_steps (id, task_id, step_number, step_type, screenshot_path)
                 select gen_random_uuid(), 'popular', n, 'screenshot', %s from generate_series(1, 1200) n""",
        (SHARED,),
    )
    stack.sql(
        """insert into public.task_steps (id, task_id, step_number, step_type, screenshot_path)
                 values (gen_random_uuid(), 'popular', 5000, 'screenshot', %s)""",
        (OWN_B,),
    )
    retention = SupabaseRetention(stack.client())
    assert retention.still_referenced([SHARED, OWN_A, OWN_B]) == {SHARED, OWN_B}


def _age_objects(stack, days: int = 40) -> None:
    stack.sql(
        "update storage.objects set created_at = now() - make_interval(days => %s), "
        "updated_at = now() - make_interval(days => %s)",
        (days, days),
    )


def test_cleanup_supabase_orphans_recover_a_failed_removal(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Removal fails: the rows are gone, the objects stay (reported). A later --orphans run
    removes exactly the old objects no row references: not referenced ones, not young ones, not
    keys stepsdk did not write."""
    load_into_stack(stack, _dataset())
    stack_env(monkeypatch, stack, tmp_path / "unused")
    stack.faults.fail_next("DELETE /storage/v1/object/*", n=10, status=500)
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.FAILED
    assert sorted(json_out(capsys.readouterr().out)["objects_failed"]) == sorted([OWN_A, OWN_B])
    stack.faults.clear()
    bucket = stack.client().storage.from_(BUCKET)
    foreign = "misc/not-ours.webp"
    bucket.upload(foreign, webp(50), {"content-type": "image/webp"})
    _age_objects(stack)
    young = key_of(webp(51))
    bucket.upload(young, webp(51), {"content-type": "image/webp"})

    assert main(["cleanup", "--older-than", "30d", "--orphans", "--dry-run", "--json"]) == Exit.OK
    assert sorted(json_out(capsys.readouterr().out)["orphans"]) == sorted([OWN_A, OWN_B])
    assert stack_objects(stack) == {SHARED, OWN_A, OWN_B, foreign, young}
    assert main(["cleanup", "--older-than", "30d", "--orphans", "--json"]) == Exit.OK
    assert sorted(json_out(capsys.readouterr().out)["orphans"]) == sorted([OWN_A, OWN_B])
    assert stack_objects(stack) == {SHARED, foreign, young}


def test_cleanup_local_orphans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import time

    root = tmp_path / "backup"
    load_into_backup(root, _dataset())
    old_orphan, young_orphan = key_of(webp(60)), key_of(webp(61))
    _backup.write_screenshot(root, old_orphan, webp(60))
    _backup.write_screenshot(root, young_orphan, webp(61))
    then = time.time() - 40 * 86400
    for file in (root / "screenshots").rglob("*.webp"):
        if file.name != young_orphan.split("/")[1]:
            os.utime(file, (then, then))
    local_env(monkeypatch, root)
    assert main(["cleanup", "--older-than", "60d", "--orphans", "--dry-run", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["orphans"] == []  # nothing is 60 days old
    assert main(["cleanup", "--older-than", "30d", "--orphans", "--dry-run", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["orphans"] == [old_orphan]
    assert main(["cleanup", "--older-than", "30d", "--orphans", "--json"]) == Exit.OK
    out = json_out(capsys.readouterr().out)
    assert out["orphans"] == [old_orphan] and out["tasks"] == 3
    assert _backup_state(root) == ({"new-c"}, {SHARED, young_orphan})


def test_cleanup_local_journal_archived_meanwhile_deletes_no_file(tmp_path: Path) -> None:
    """`stepsdk resync` may move a journal to archive/ while cleanup plans its rewrite: the
    journal is not brought back, no screenshot is deleted, and the report says to run again."""
    from stepsdk.ops.retention import BackupRetention

    root = tmp_path / "backup"
    load_into_backup(root, _dataset())

    class ArchivedMeanwhile(BackupRetention):
        def _rewrite(self, plan):  # type: ignore[no-untyped-def]
            (root / "archive").mkdir(exist_ok=True)
            plan.path.rename(root / "archive" / plan.path.name)  # what resync's archive_done does
            return super()._rewrite(plan)

    report = ArchivedMeanwhile(root).run(OLD - timedelta(days=10), dry_run=False)
    assert not report.ok and "moved during cleanup" in report.problems[0]
    assert report.objects_deleted == []
    assert _backup_state(root) == ({"old-a", "old-b", "new-c", "old-d"}, {SHARED, OWN_A, OWN_B})
    assert list((root / "journal").glob("*.log")) == []  # not resurrected next to the archived copy
    # the next run, with the journal in archive/, does the work
    assert BackupRetention(root).run(OLD - timedelta(days=10), dry_run=False).ok
    assert _backup_state(root) == ({"new-c"}, {SHARED})


def test_cleanup_local_keeps_a_screen_recorded_again_meanwhile(tmp_path: Path) -> None:
    """A running tracker records a step showing a screen an old task used (the same file, by
    content addressing) while cleanup works: that file stays."""
    from stepsdk.ops.retention import BackupRetention

    root = tmp_path / "backup"
    ds = _dataset()
    load_into_backup(root, ds)
    live = _backup.JournalWriter(root)
    live.append([])  # writes the journal's "open" header: the writer is alive from here on
    new_step = dict(
        ds.for_task("new-c")[0][0],
        id="5f0c1e2d-0000-4000-8000-00000000000a",
        step_number=7,
        screenshot_path=OWN_A,
    )

    class RecordedMeanwhile(BackupRetention):
        def _rewrite(self, plan):  # type: ignore[no-untyped-def]
            live.append([{"k": "step", "row": new_step}])
            return super()._rewrite(plan)

    try:
        report = RecordedMeanwhile(root).run(OLD - timedelta(days=10), dry_run=False)
    finally:
        live.close()
    assert report.task_ids == ["old-d", "old-b", "old-a"]
    assert report.objects_deleted == [OWN_B] and report.objects_kept == [OWN_A]
    assert _backup_state(root) == ({"new-c"}, {SHARED, OWN_A})


def test_cleanup_local_removes_temp_files_of_a_killed_cleanup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clean-up killed after writing its kept lines but before renaming them over the journal
    leaves `.<journal>.*.tmp` files: never read, only disk. The next clean-up removes those an
    hour old, never a fresh one (a clean-up running now)."""
    import os
    import time

    root = tmp_path / "backup"
    load_into_backup(root, _dataset())
    local_env(monkeypatch, root)
    journal = next((root / "journal").glob("*.log"))
    stale = journal.parent / f".{journal.name}.abc123.tmp"
    fresh = journal.parent / f".{journal.name}.def456.tmp"
    for path in (stale, fresh):
        path.write_bytes(journal.read_bytes())
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    assert main(["cleanup", "--older-than", "30d", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["tasks"] == 3
    assert not stale.exists() and fresh.exists()

"""The backup index (stepsdk/store/index.py): always consistent with the journals, whatever happens to
it or to them: SIGKILL of a reader mid-update or of a writer mid-write, deletion, concurrent
writers in other processes, journals archived or rewritten, torn and corrupt lines."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from stepsdk.store.backup import ARCHIVE_DIR, BackupStore, JournalWriter
from stepsdk.store.index import INDEX_FILE, BackupIndex, error_group, snippet
from stepsdk.store.upload_state import UploadState
from tests.timing import wait_for

ROOT_DIR = Path(__file__).resolve().parents[2]


def records(task_id: str, steps: int, *, agent: str = "a", start: int = 1) -> list[dict[str, Any]]:
    task = {
        "task_id": task_id,
        "title": f"title {task_id}",
        "agent": agent,
        "status": "success",
        "started_at": "2026-11-29T10:00:00+00:00",
        "finished_at": "2026-11-29T10:01:00+00:00",
        "metadata": {},
    }
    out: list[dict[str, Any]] = [{"k": "task", "v": 1, "row": task}]
    for n in range(start, start + steps):
        out.append(
            {
                "k": "step",
                "row": {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}")),
                    "task_id": task_id,
                    "step_number": n,
                    "step_type": "action",
                    "step_data": {},
                    "thinking": f"thinking {n} of {task_id}",
                    "action_result": None,
                    "screenshot_path": None,
                    "duration_ms": float(n % 97),
                    "success": n % 11 != 0,
                    "error_type": "E" if n % 11 == 0 else None,
                    "error_message": f"no element at ({n}, {n * 2})" if n % 11 == 0 else None,
                    "stack_trace": None,
                    "started_at": None,
                    "metadata": {},
                    "created_at": f"2026-11-29T10:00:{n % 60:02d}+00:00",
                },
            }
        )
    return out


def write(root: Path, recs: list[dict[str, Any]]) -> None:
    writer = JournalWriter(root)
    writer.append(recs)
    writer.close()


def assert_consistent(root: Path, index: BackupIndex) -> None:
    """The index answers exactly what merging every journal in memory answers."""
    snap = BackupStore(root).read()
    tasks = {t["task_id"]: t for t in index.tasks()}
    assert tasks == snap.tasks
    for task_id in tasks:
        assert index.steps(task_id) == snap.steps.get(task_id, [])
        assert len(index.screenshots(task_id)) == len(snap.screenshots.get(task_id, []))
    assert index.counts()["steps"] == sum(len(v) for v in snap.steps.values())
    assert sorted(index.problems()) == sorted(snap.problems)
    # upload bookkeeping (stepsdk status): pending, refused, last upload
    state, expected = index.upload_state(), UploadState.from_snapshot(snap)
    state.problems, expected.problems = sorted(state.problems), sorted(expected.problems)
    assert state == expected


def test_incremental_refresh_applies_only_new_records(tmp_path: Path) -> None:
    root = tmp_path / "b"
    write(root, records("t1", 30))
    index = BackupIndex(root)
    assert index.counts() == {"tasks": 1, "steps": 30, "shots": 0}
    writer = JournalWriter(root)
    writer.append(records("t2", 5))
    assert index.counts()["steps"] == 35
    writer.append([{"k": "step", "v": 1, "row": {**records("t2", 1)[1]["row"], "thinking": "newer"}}])
    assert index.steps("t2")[0]["thinking"] == "newer"  # the highest version wins
    writer.append([{"k": "step", "v": 0, "row": {**records("t2", 1)[1]["row"], "thinking": "older"}}])
    assert index.steps("t2")[0]["thinking"] == "newer"  # an older version never overrides
    writer.close()
    assert_consistent(root, index)
    # what was applied is remembered per journal: offset + CRC of the last record
    db = sqlite3.connect(root / INDEX_FILE)
    rows = db.execute("select name, offset, last_crc from journals").fetchall()
    assert {name: off for name, off, _ in rows} == {
        p.name: p.stat().st_size for p in (root / "journal").iterdir()
    }


def test_index_file_is_private_and_not_a_journal(tmp_path: Path) -> None:
    root = tmp_path / "b"
    write(root, records("t1", 3))
    BackupIndex(root).refresh()
    for name in (INDEX_FILE, f"{INDEX_FILE}-wal"):
        if (root / name).exists():
            assert stat.S_IMODE((root / name).stat().st_mode) == 0o600, name
    snap = BackupStore(root).read()
    assert snap.problems == [] and len(snap.journals) == 1


def test_deleting_the_index_rebuilds_it(tmp_path: Path) -> None:
    root = tmp_path / "b"
    write(root, records("t1", 40) + records("t2", 10, agent="b"))
    index = BackupIndex(root)
    before = index.tasks(), index.steps("t1")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / INDEX_FILE}{suffix}").unlink(missing_ok=True)
    assert (index.tasks(), index.steps("t1")) == before  # the same object notices and rebuilds
    assert (root / INDEX_FILE).exists()
    fresh = BackupIndex(root)
    assert (fresh.tasks(), fresh.steps("t1")) == before


def test_archived_journal_keeps_its_progress_rewritten_one_restarts(tmp_path: Path) -> None:
    root = tmp_path / "b"
    write(root, records("t1", 20))
    index = BackupIndex(root)
    index.refresh()
    db = sqlite3.connect(root / INDEX_FILE)
    generation = db.execute("select value from meta where key = 'generation'").fetchone()[0]
    journal = next((root / "journal").iterdir())
    (root / ARCHIVE_DIR).mkdir()
    os.replace(journal, root / ARCHIVE_DIR / journal.name)  # what resync does
    assert_consistent(root, index)
    assert db.execute("select value from meta where key = 'generation'").fetchone()[0] == generation
    assert db.execute("select archived from journals").fetchall() == [(1,)]
    # cleanup --local rewrites a journal without some tasks (temp file + rename): start over
    archived = root / ARCHIVE_DIR / journal.name
    lines = archived.read_bytes().splitlines(keepends=True)
    tmp = archived.with_suffix(".tmp")
    tmp.write_bytes(b"".join(lines[:1] + lines[12:]))
    os.replace(tmp, archived)
    assert_consistent(root, index)
    assert db.execute("select value from meta where key = 'generation'").fetchone()[0] != generation


def test_torn_and_corrupt_lines_are_reported_as_the_reader_does(tmp_path: Path) -> None:
    root = tmp_path / "b"
    write(root, records("t1", 5))
    journal = next((root / "journal").iterdir())
    with journal.open("ab") as fh:
        fh.write(b"deadbeef {not json}\n")
        fh.write(b'0badc0de {"k":"step"')  # a torn last line of a writer that is gone (closed)
    index = BackupIndex(root)
    assert_consistent(root, index)
    assert len(index.problems()) == 2
    # resync copies both to quarantine/ and marks them handled: no longer problems, the torn
    # tail included (it was still reported by the index)
    store = BackupStore(root)
    marker = JournalWriter(root)
    assert store.quarantine(store.read(), marker) == 2
    marker.close()
    assert_consistent(root, index)
    assert index.problems() == []
    # the torn line completed later (a reopened writer starts on a new line) stays one problem
    with journal.open("ab") as fh:
        fh.write(b"\n")
    writer = JournalWriter(root)
    writer.append(records("t3", 2))
    writer.close()
    assert_consistent(root, index)
    assert index.counts()["tasks"] == 2


def _run(code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_journal_appended_by_another_process_appears_in_the_next_request(tmp_path: Path) -> None:
    from stepsdk.viewer.data.backup_source import BackupSource
    from stepsdk.viewer.data.base import Sort, TaskFilters

    root = tmp_path / "b"
    write(root, records("t1", 3))
    source = BackupSource(root)
    assert source.list_tasks(TaskFilters(), Sort(), 1, 10)[1] == 1
    proc = _run(
        """
        import sys
        from tests.store.test_backup_index import records, write
        write(__import__('pathlib').Path(sys.argv[1]), records('from-other-process', 4))
    """,
        str(root),
    )
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    rows, total = source.list_tasks(TaskFilters(), Sort(), 1, 10)
    assert total == 2 and "from-other-process" in {r["task_id"] for r in rows}
    assert source.get_steps("from-other-process", 1, 10)[1] == 4


def test_sigkill_of_a_reader_mid_update_leaves_a_consistent_index(tmp_path: Path) -> None:
    root = tmp_path / "b"
    for i in range(8):
        write(root, records(f"t{i}", 1500))
    proc = _run(
        """
        import sys, stepsdk.store.index as m
        m.BATCH_LINES = 200
        m.BackupIndex(sys.argv[1]).refresh()
        print("done")
    """,
        str(root),
    )
    deadline = time.monotonic() + 60
    applied = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            db = sqlite3.connect(f"file:{root / INDEX_FILE}?mode=ro", uri=True, timeout=5)
            applied = db.execute("select coalesce(sum(offset), 0) from journals").fetchone()[0]
            db.close()
        except sqlite3.Error:
            applied = 0
        if applied:
            break
        time.sleep(0.02)
    still_running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert applied and still_running, "the reader was not killed in the middle of its update"
    index = BackupIndex(root)
    assert_consistent(root, index)
    assert index.counts()["steps"] == 8 * 1500


def test_sigkill_of_a_writer_mid_write_while_the_index_reads(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    proc = _run(
        """
        import sys, pathlib
        from stepsdk.store.backup import JournalWriter
        from tests.store.test_backup_index import records
        w = JournalWriter(pathlib.Path(sys.argv[1]))
        n = 0
        while True:
            n += 1
            w.append(records(f"w{n}", 20))
    """,
        str(root),
    )
    index = BackupIndex(root)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and index.counts()["tasks"] < 30:
        time.sleep(0.01)  # refreshes while the writer appends
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    journal = next((root / "journal").iterdir())
    with journal.open("ab") as fh:  # what a kill in the middle of a write() leaves behind
        fh.write(b'12345678 {"k":"step","row":')
    assert_consistent(root, index)
    assert any("torn write" in p for p in index.problems())  # its writer is dead: reported
    assert index.counts()["tasks"] >= 30


def test_two_processes_refreshing_at_once_agree(tmp_path: Path) -> None:
    root = tmp_path / "b"
    for i in range(4):
        write(root, records(f"t{i}", 800))
    code = """
        import sys, stepsdk.store.index as m
        m.BATCH_LINES = 300
        print(m.BackupIndex(sys.argv[1]).counts()["steps"])
    """
    procs = [_run(code, str(root)) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o.strip() for o, _ in outs] == [b"3200", b"3200"], outs
    assert_consistent(root, BackupIndex(root))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("no element at (180, 132)", "no element at (200, 90)"),
        ("timeout after 30.5 s", "  timeout after 2 s\n"),
        (
            "task 3f2a9c1e-8d7b-4c6a-9e5f-0a1b2c3d4e5f failed",
            "task 00000000-0000-4000-8000-000000000000 failed",
        ),
        ("object deadbeefcafebabe0123 missing", "object 0123456789abcdef0123 missing"),
    ],
)
def test_error_groups_normalize_numbers_coordinates_and_ids(a: str, b: str) -> None:
    assert error_group(a) == error_group(b)
    assert error_group("no element at (180, 132)") == "no element at (<n>, <n>)"
    assert error_group("Element not found") != error_group("screen did not change")
    assert error_group("   ") is None and error_group(None) is None
    assert len(error_group("x" * 5000) or "") == 200


def test_error_group_matches_the_sql_function(stack) -> None:
    messages = [
        "no element at (180, 132)",
        "  Element not found\n",
        "v1.2.3 failed at 0x1F",
        "",
        "uuid 3F2A9C1E-8D7B-4C6A-9E5F-0A1B2C3D4E5F and hex aaaaaaaaaaaaaaaa1 and 12abc",
        "数字 ４２ and 42",
        "tab\there 7.5.6",
        "x" * 300 + " 5",
    ]
    rows = stack.sql("select m, public.stepsdk_error_group(m) as g from unnest(%s::text[]) m", (messages,))
    assert {r["m"]: r["g"] for r in rows} == {m: error_group(m) for m in messages}


def test_snippet_shows_the_match_in_context() -> None:
    text = "a" * 100 + "Needle" + "b" * 100
    assert snippet(text, "needle") == "…" + "a" * 40 + "Needle" + "b" * 40 + "…"
    assert snippet("short needle text", "NEEDLE") == "short needle text"


def test_copy_of_a_backup_with_its_index_still_matches(tmp_path: Path) -> None:
    """A backup folder copied elsewhere (inodes change) is answered correctly there."""
    root = tmp_path / "b"
    write(root, records("t1", 10))
    BackupIndex(root).refresh()
    shutil.copytree(root, tmp_path / "copy")
    assert_consistent(tmp_path / "copy", BackupIndex(tmp_path / "copy"))


def test_many_finished_runs_new_journals_at_once_late_appends_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stepsdk.store.index as index_module

    monkeypatch.setattr(index_module, "CLOSED_CACHE_MIN", 2)
    monkeypatch.setattr(index_module, "CLOSED_RECHECK", 0.3)
    root = tmp_path / "b"
    for i in range(3):
        write(root, records(f"t{i}", 2))
    index = BackupIndex(root)
    assert index.counts()["tasks"] == 3
    write(root, records("new-run", 2))  # a new journal: seen by the next request
    assert index.counts()["tasks"] == 4
    late = JournalWriter(root, name=next((root / "journal").iterdir()).name[:-4])
    late.append(records("late", 1))  # steps recorded after close() go to the same, closed journal
    assert wait_for(lambda: index.counts()["tasks"] == 5)  # once CLOSED_RECHECK has passed
    late.close()
    assert_consistent(root, index)


def test_viewer_on_a_folder_where_the_index_cannot_be_written(tmp_path: Path) -> None:
    from stepsdk.viewer.data.backup_source import BackupSource
    from stepsdk.viewer.data.base import Sort, TaskFilters

    root = tmp_path / "b"
    write(root, records("t1", 3))
    (root / INDEX_FILE).mkdir()  # stands for read-only media (the tests run as root: chmod would not stop us)
    source = BackupSource(root)
    assert source.list_tasks(TaskFilters(), Sort(), 1, 10)[1] == 1
    assert source.index.path.parent != root and source.index.path.exists()
    source.index.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{source.index.path}{suffix}").unlink(missing_ok=True)

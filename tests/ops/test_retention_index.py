"""Local retention plans from the backup index (``stepsdk/ops/retention.py``, ``BackupRetention``):
only the journals holding the doomed tasks are read and rewritten, a task spread over several
journals goes everywhere or nowhere, running writers and unquarantined corrupt lines are
spared, pending uploads are kept on request, shared screenshot files stay, and the answers are
those of a plan made from every journal merged in memory (``BackupStore.read()``)."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stepsdk.ops import retention as _retention
from stepsdk.ops.delete import Selection, delete_backup
from stepsdk.ops.retention import BackupRetention, TaskChoice
from stepsdk.store import index as _index
from stepsdk.store.backup import (
    ARCHIVE_DIR,
    FORMAT_VERSION,
    BackupSnapshot,
    BackupStore,
    JournalWriter,
    encode_record,
)
from stepsdk.store.index import INDEX_FILE, BackupIndex
from tests.store.test_backup_index import assert_consistent

NOW = datetime.now(UTC)
AGE = timedelta(days=30)


def key(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{digest[:2]}/{digest}.webp"


def task(tid: str, days_old: float, *, v: int = 1, agent: str = "a") -> dict[str, Any]:
    started = (NOW - timedelta(days=days_old)).isoformat()
    row = {"task_id": tid, "title": tid, "agent": agent, "status": "success", "started_at": started}
    return {"k": "task", "v": v, "row": row}


def step_id(tid: str, n: int) -> str:
    return f"{tid}-s{n}"


def step(tid: str, n: int, path: str | None = None, *, v: int = 0) -> dict[str, Any]:
    row = {
        "id": step_id(tid, n),
        "task_id": tid,
        "step_number": n,
        "step_type": "action",
        "success": True,
        "duration_ms": 10.0,
        "screenshot_path": path,
        "created_at": NOW.isoformat(),
    }
    return {"k": "step", "v": v, "row": row}


def shot(tid: str, n: int, path: str) -> dict[str, Any]:
    row = {"id": f"{tid}-h{n}", "task_id": tid, "step_id": step_id(tid, n), "screenshot_path": path}
    return {"k": "shot", "v": 0, "row": row}


def journal(root: Path, recs: list[dict[str, Any]], name: str | None = None) -> Path:
    """A journal of a writer that closed it."""
    writer = JournalWriter(root, name=name)
    writer.append(recs)
    writer.close()
    return writer.path


def dead_writer_journal(root: Path, name: str, recs: list[dict[str, Any]], tail: bytes = b"") -> Path:
    """A journal whose writer died without closing it (its pid is gone, no lease), ``tail``
    appended as is (a torn last line)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    header = {
        "k": "open",
        "format": FORMAT_VERSION,
        "writer": name,
        "host": socket.gethostname(),
        "pid": proc.pid,
    }
    path = root / "journal" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode_record(r) for r in [header, *recs]) + tail)
    return path


def screenshots(root: Path, *paths: str) -> None:
    for path in paths:
        file = root / "screenshots" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"RIFF" + path.encode())


def files(root: Path) -> set[str]:
    folder = root / "screenshots"
    return {str(p.relative_to(folder)) for p in folder.rglob("*.webp")} if folder.is_dir() else set()


def tasks(root: Path) -> set[str]:
    snap = BackupStore(root).read()
    return set(snap.tasks) | set(snap.steps) | set(snap.screenshots)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The journal files read (by the index's refresh and by the clean-up's rewrite)."""
    seen: list[str] = []

    def watch(module: Any) -> None:
        real = module.iter_journal

        def iter_journal(path: Path, *args: Any, **kwargs: Any) -> Any:
            seen.append(Path(path).name)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(module, "iter_journal", iter_journal)

    watch(_retention)
    watch(_index)
    yield seen


def test_only_the_doomed_tasks_journals_are_read_and_rewritten(tmp_path: Path, opened: list[str]) -> None:
    root = tmp_path / "b"
    paths = []
    for j in range(20):  # runs of an agent: two of them are old
        days = 90 if j in (3, 11) else 1
        recs = []
        for t in range(5):
            tid = f"j{j}-t{t}"
            recs += [task(tid, days), step(tid, 1, key(tid)), shot(tid, 1, key(tid)), step(tid, 2)]
            screenshots(root, key(tid))
        paths.append(journal(root, recs, name=f"run-{j:02d}"))
    index = BackupIndex(root)
    index.refresh()
    generation = index.connection().execute("select value from meta where key = 'generation'").fetchone()[0]
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in paths}
    opened.clear()

    dry = BackupRetention(root).run(AGE, dry_run=True)
    assert opened == []  # a dry run reads the index only, and changes nothing
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in paths} == before
    assert len(files(root)) == 100
    assert dry.task_ids == sorted(f"j{j}-t{t}" for j in (3, 11) for t in range(5))
    assert dry.objects_deleted == sorted(key(t) for t in dry.task_ids)

    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.ok and report.task_ids == dry.task_ids and report.objects_deleted == dry.objects_deleted
    assert sorted(set(opened)) == ["run-03.log", "run-11.log"]  # read to be rewritten; no other
    for p in paths:
        same = (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) == before[p.name]
        assert same == (p.name not in ("run-03.log", "run-11.log")), p.name
    assert files(root) == {key(f"j{j}-t{t}") for j in range(20) for t in range(5) if j not in (3, 11)}
    reader = BackupIndex(root)  # pruned in step: valid for another process, no rebuild
    assert_consistent(root, reader)
    assert (
        reader.connection().execute("select value from meta where key = 'generation'").fetchone()[0]
        == generation
    )
    assert len(reader.tasks()) == 90


def test_a_task_spread_over_journals_goes_everywhere_or_nowhere(tmp_path: Path) -> None:
    root = tmp_path / "b"
    first = journal(root, [task("spread", 90), step("spread", 1), task("stay", 1), step("stay", 1)])
    second = journal(root, [step("spread", 2, key("s2")), shot("spread", 2, key("s2"))])
    third = dead_writer_journal(root, "third", [step("spread", 3), task("other", 90)], tail=b"")
    screenshots(root, key("s2"))
    # a corrupt line (its CRC does not match) not quarantined yet: the third journal stays as is
    with open(third, "ab") as fh:
        fh.write(b"deadbeef {not json}\n")
    contents = {p: p.read_bytes() for p in (first, second, third)}
    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.task_ids == [] and report.objects_deleted == []
    assert report.kept == {
        "spread": "third.log has corrupt lines: run 'stepsdk resync' first",
        "other": "third.log has corrupt lines: run 'stepsdk resync' first",
    }
    assert {p: p.read_bytes() for p in contents} == contents  # nowhere: not even from the clean journals
    assert files(root) == {key("s2")}
    # resync quarantines the line: now everywhere
    snap = BackupStore(root).read()
    quarantine = JournalWriter(root, name="resync")
    assert BackupStore(root).quarantine(snap, quarantine) == 1
    quarantine.close()
    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.ok and report.task_ids == ["other", "spread"] and report.objects_deleted == [key("s2")]
    assert tasks(root) == {"stay"} and files(root) == set()
    assert b"{not json}" not in third.read_bytes()
    assert_consistent(root, BackupIndex(root))


def test_a_running_writer_keeps_its_tasks_and_a_torn_tail_only_blocks_once_its_writer_is_gone(
    tmp_path: Path,
) -> None:
    root = tmp_path / "b"
    live = JournalWriter(root, name="live")
    live.append([task("busy", 90), step("busy", 1, key("busy"))])
    live.append_encoded(encode_record(step("busy", 2))[:20])  # mid-write: a torn last line
    journal(root, [step("busy", 3), task("idle", 90), step("idle", 1)], name="done")
    screenshots(root, key("busy"))
    try:
        report = BackupRetention(root).run(AGE, dry_run=False)
        assert report.task_ids == ["idle"] and report.kept == {"busy": "its writer live.log is still running"}
        assert not report.ok and report.problems == []
        assert tasks(root) == {"busy"} and files(root) == {key("busy")}
    finally:
        live._fh.close()  # the writer dies mid-line: no close record, the torn tail stays
    report = BackupRetention(root).run(AGE, dry_run=True)
    assert report.kept == {"busy": "live.log has corrupt lines: run 'stepsdk resync' first"}
    # a torn tail of a dead writer blocks only the tasks of its own journal
    dead_writer_journal(root, "crashed", [task("young", 1)], tail=b"abc")
    journal(root, [task("old-elsewhere", 90)])
    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.task_ids == ["old-elsewhere"] and set(report.kept) == {"busy"}
    assert tasks(root) == {"busy", "young"}


def test_a_quarantined_torn_tail_is_dropped_by_the_rewrite(tmp_path: Path) -> None:
    root = tmp_path / "b"
    torn = dead_writer_journal(
        root, "crashed", [task("old", 90), step("old", 1), task("new", 1)], tail=b"0badc0de {"
    )
    assert BackupRetention(root).run(AGE, dry_run=True).kept == {
        "old": "crashed.log has corrupt lines: run 'stepsdk resync' first"
    }
    snap = BackupStore(root).read()
    writer = JournalWriter(root, name="resync")
    assert BackupStore(root).quarantine(snap, writer) == 1
    writer.close()
    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.ok and report.task_ids == ["old"]
    assert torn.read_bytes().endswith(b"\n") and tasks(root) == {"new"}
    assert_consistent(root, BackupIndex(root))


def test_keep_pending_spares_tasks_with_anything_not_uploaded(tmp_path: Path) -> None:
    root = tmp_path / "b"
    recs = []
    for tid in ("all-acked", "step-pending", "shot-pending", "newer-version", "never"):
        recs += [task(tid, 90), step(tid, 1, key(tid)), shot(tid, 1, key(tid))]
    recs.append(task("newer-version", 90, v=2))  # changed after its upload
    journal(root, recs)
    journal(root, [task("archived", 90), step("archived", 1)], name="uploaded")
    (root / ARCHIVE_DIR).mkdir()
    os.replace(root / "journal" / "uploaded.log", root / ARCHIVE_DIR / "uploaded.log")  # all uploaded
    acked = ("all-acked", "step-pending", "shot-pending", "newer-version")
    journal(
        root,
        [
            {"k": "ack", "t": "tasks", "v": {t: 1 for t in acked}},
            {"k": "ack", "t": "task_steps", "ids": [step_id(t, 1) for t in acked if t != "step-pending"]},
            {"k": "ack", "t": "step_screenshots", "ids": [f"{t}-h1" for t in acked if t != "shot-pending"]},
        ],
    )
    report = BackupRetention(root).run(AGE, dry_run=True, keep_pending=True)
    assert report.task_ids == ["all-acked", "archived"]
    assert sorted(report.kept) == ["never", "newer-version", "shot-pending", "step-pending"]
    assert set(report.kept) == _snapshot_pending(BackupStore(root).read())
    assert BackupRetention(root).run(AGE, dry_run=False, keep_pending=True).task_ids == [
        "all-acked",
        "archived",
    ]
    assert tasks(root) == {"never", "newer-version", "shot-pending", "step-pending"}


def _snapshot_pending(snap: BackupSnapshot) -> set[str]:
    rows = snap.pending_tasks() + snap.pending_steps() + snap.pending_screenshots()
    return {r["task_id"] for r in rows}


def test_a_screenshot_shared_with_a_survivor_stays(tmp_path: Path) -> None:
    root = tmp_path / "b"
    by_step, by_shot, among_old = key("by-step"), key("by-shot"), key("among-old")
    journal(
        root,
        [
            task("old-1", 90),
            step("old-1", 1, by_step),
            shot("old-1", 2, by_shot),
            step("old-1", 3, among_old),
            task("old-2", 60),
            shot("old-2", 1, among_old),
        ],
    )
    journal(root, [task("new", 1), shot("new", 1, by_step), step("new", 2, by_shot)])
    screenshots(root, by_step, by_shot, among_old)
    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.ok and report.task_ids == ["old-1", "old-2"] and report.objects_deleted == [among_old]
    assert files(root) == {by_step, by_shot}


def test_deleting_by_id_and_by_agent(tmp_path: Path) -> None:
    root = tmp_path / "b"
    journal(root, [task("t1", 5, agent="x"), task("t2", 50, agent="x"), task("t3", 50, agent="y")])
    journal(root, [step("orphan-steps", 1)])  # a task known only from its steps (sorted last: no start)
    result = delete_backup(root, Selection(("t3", "orphan-steps", "nope")), dry_run=True)
    assert result.report.task_ids == ["t3", "orphan-steps"] and result.missing == ["nope"]
    result = delete_backup(root, Selection(agent="x", before=NOW - timedelta(days=10)), dry_run=False)
    assert result.report.task_ids == ["t2"] and tasks(root) == {"t1", "t3", "orphan-steps"}
    with pytest.raises(ValueError):
        TaskChoice()


def test_the_index_deleted_before_a_cleanup_is_rebuilt_with_the_same_result(tmp_path: Path) -> None:
    root = tmp_path / "b"
    journal(root, [task("old", 90), step("old", 1, key("a")), task("new", 1), step("new", 1, key("b"))])
    journal(root, [task("old-2", 45), shot("old-2", 1, key("b"))])
    screenshots(root, key("a"), key("b"))
    with_index = BackupRetention(root).run(AGE, dry_run=True).to_dict()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / INDEX_FILE}{suffix}").unlink(missing_ok=True)
    rebuilt = BackupRetention(root).run(AGE, dry_run=True)
    assert rebuilt.to_dict() | {"cutoff": ""} == with_index | {"cutoff": ""}
    assert (root / INDEX_FILE).exists()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / INDEX_FILE}{suffix}").unlink(missing_ok=True)
    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.task_ids == ["old", "old-2"] and report.objects_deleted == [key("a")]
    assert tasks(root) == {"new"} and files(root) == {key("b")}
    assert_consistent(root, BackupIndex(root))


def test_a_folder_whose_index_cannot_be_written_is_planned_from_a_temporary_one(tmp_path: Path) -> None:
    root = tmp_path / "b"
    journal(root, [task("old", 90), step("old", 1, key("a")), task("new", 1)])
    screenshots(root, key("a"))
    (root / INDEX_FILE).mkdir()  # stands for read-only media (the tests run as root: chmod would not stop us)
    assert BackupRetention(root).run(AGE, dry_run=True).task_ids == ["old"]
    report = BackupRetention(root).run(AGE, dry_run=False)
    assert report.ok and report.task_ids == ["old"] and report.objects_deleted == [key("a")]
    assert tasks(root) == {"new"} and files(root) == set()
    assert not list((root / INDEX_FILE).iterdir())


def test_the_plan_equals_the_plan_from_every_journal_merged(tmp_path: Path) -> None:
    """Random backups: the index's plan is the one the journals merged in memory give."""
    rng = random.Random(12)
    for round_ in range(3):
        root = tmp_path / f"r{round_}"
        pool = [key(f"p{round_}-{i}") for i in range(30)]
        journals: list[list[dict[str, Any]]] = [[] for _ in range(6)]
        for t in range(40):
            tid = f"t{t:02d}"
            if rng.random() < 0.9:
                journals[rng.randrange(6)].append(task(tid, rng.choice([1, 10, 40, 90]), v=rng.randint(1, 2)))
            for n in range(rng.randint(0, 4)):
                path = rng.choice([None, *pool])
                journals[rng.randrange(6)].append(step(tid, n, path, v=rng.randint(0, 1)))
                if path and rng.random() < 0.5:
                    journals[rng.randrange(6)].append(shot(tid, n, path))
        acks = [
            {"k": "ack", "t": "tasks", "v": {f"t{t:02d}": 1 for t in range(0, 40, 2)}},
            {
                "k": "ack",
                "t": "task_steps",
                "ids": [step_id(f"t{t:02d}", n) for t in range(40) for n in range(3)],
            },
        ]
        journals[0] += acks
        for j, recs in enumerate(journals):
            journal(root, recs, name=f"j{j}")
        screenshots(root, *pool)
        for keep_pending in (False, True):
            report = BackupRetention(root).run(AGE, dry_run=True, keep_pending=keep_pending)
            expected = _snapshot_plan(BackupStore(root).read(), NOW - AGE, keep_pending)
            assert (report.task_ids, report.objects_deleted, sorted(report.kept)) == expected
        report = BackupRetention(root).run(AGE, dry_run=False)
        assert_consistent(root, BackupIndex(root))
        assert files(root) == set(pool) - set(report.objects_deleted)
        assert not set(report.objects_deleted) & _snapshot_paths(BackupStore(root).read())


def _snapshot_paths(snap: BackupSnapshot, ids: set[str] | None = None) -> set[str]:
    ids = set(snap.tasks) | set(snap.steps) | set(snap.screenshots) if ids is None else ids
    found = {r["screenshot_path"] for t in ids for r in snap.screenshots.get(t, [])}
    return found | {
        s["screenshot_path"] for t in ids for s in snap.steps.get(t, []) if s.get("screenshot_path")
    }


def _snapshot_plan(
    snap: BackupSnapshot, cutoff: datetime, keep_pending: bool
) -> tuple[list[str], list[str], list[str]]:
    """The plan as it was made before the index (every journal merged in memory)."""
    doomed = {t for t, row in snap.tasks.items() if datetime.fromisoformat(row["started_at"]) < cutoff}
    kept = doomed & _snapshot_pending(snap) if keep_pending else set()
    doomed -= kept
    everyone = set(snap.tasks) | set(snap.steps) | set(snap.screenshots)
    ids = sorted(doomed, key=lambda t: (str(snap.tasks.get(t, {}).get("started_at")), t))
    return ids, sorted(_snapshot_paths(snap, doomed) - _snapshot_paths(snap, everyone - doomed)), sorted(kept)

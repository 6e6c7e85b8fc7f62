"""The index's upload bookkeeping (what `stepsdk status` and the viewer's operations page show):
pending rows in their newest version, refusals until their key is uploaded, the last upload,
journals archived after the index read them, an interrupted pass; always equal to merging
every journal in memory (``UploadState.from_snapshot``)."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stepsdk import StepTracker
from stepsdk.config import Config
from stepsdk.ops.resync import Resync
from stepsdk.store import index as index_module
from stepsdk.store.backup import (
    ARCHIVE_DIR,
    T_OBJECTS,
    T_SHOTS,
    T_STEPS,
    T_TASKS,
    JournalWriter,
    ack_record,
)
from stepsdk.store.index import BackupIndex
from stepsdk.store.upload_state import UploadState, read_upload_state
from tests.store.test_backup_index import assert_consistent


def _sid(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"step/{n}"))


def _task(task_id: str, status: str = "success") -> dict[str, Any]:
    return {"task_id": task_id, "title": task_id, "status": status, "started_at": "2026-11-29T10:00:00+00:00"}


def _step(n: int, task_id: str = "t1", path: str | None = None) -> dict[str, Any]:
    return {
        "id": _sid(n),
        "task_id": task_id,
        "step_number": n,
        "step_type": "action",
        "success": True,
        "screenshot_path": path,
        "created_at": "2026-11-29T10:00:01+00:00",
    }


def _shot(n: int, path: str, task_id: str = "t1") -> dict[str, Any]:
    return {"id": _sid(1000 + n), "task_id": task_id, "step_id": _sid(n), "screenshot_path": path}


P1, P2 = "t1/" + "a" * 64 + ".webp", "t1/" + "b" * 64 + ".webp"


def _write(root: Path, records: list[dict[str, Any]]) -> Path:
    writer = JournalWriter(root)
    writer.append(records)
    writer.close()
    return writer.path


def _equal(root: Path, index: BackupIndex) -> UploadState:
    assert_consistent(root, index)  # upload bookkeeping included
    return index.upload_state()


def test_pending_refused_and_archived_follow_the_journals(tmp_path: Path) -> None:
    root = tmp_path / "b"
    data = _write(
        root,
        [
            {"k": "task", "v": 1, "row": _task("t1")},
            *({"k": "step", "row": _step(n)} for n in range(1, 11)),
            {"k": "shot", "row": _shot(1, P1)},
            {"k": "step", "v": 1, "row": _step(2, path=P2)},  # screenshot encoded: version 1
        ],
    )
    index = BackupIndex(root)
    state = _equal(root, index)
    assert state.pending == {T_TASKS: 1, T_STEPS: 10, T_SHOTS: 1, T_OBJECTS: 2}
    assert state.pending_objects == [P1, P2] and state.last_upload_at is None and state.tasks == 1

    _write(
        root,
        [
            ack_record(T_TASKS, {"t1": 1}),
            ack_record(T_STEPS, {_sid(1): 0, _sid(2): 0, _sid(3): 0}),  # step 2 only in version 0
            ack_record(T_SHOTS, {_sid(1001): 0}),
            ack_record(T_OBJECTS, {P1: 0}),
            {
                "k": "reject",
                "t": T_STEPS,
                "id": _sid(4),
                "error": {"code": "23514"},
                "at": "2026-11-29T11:00:00Z",
            },
            {
                "k": "reject",
                "t": T_STEPS,
                "id": _sid(5),
                "error": {"code": "22P02"},
                "at": "2026-11-29T11:00:01Z",
            },
            {"k": "reject", "t": T_TASKS, "id": "gone", "error": None, "at": "2026-11-29T11:00:02Z"},
        ],
    )
    state = _equal(root, index)
    assert state.pending == {T_TASKS: 0, T_STEPS: 8, T_SHOTS: 0, T_OBJECTS: 1}
    assert state.pending_objects == [P2]
    assert [(r["table"], r["id"]) for r in state.rejected] == sorted(
        [(T_TASKS, "gone"), (T_STEPS, _sid(4)), (T_STEPS, _sid(5))]
    )
    refused = {r["id"]: r for r in state.rejected}
    assert refused[_sid(4)]["error"] == {"code": "23514"} and refused["gone"]["error"] is None
    assert state.last_upload_at is not None

    _write(root, [ack_record(T_STEPS, {_sid(4): 0, _sid(2): 1})])  # a refused step uploaded later
    state = _equal(root, index)
    assert sorted(r["id"] for r in state.rejected) == sorted(["gone", _sid(5)])
    assert state.pending[T_STEPS] == 6

    # resync archives the data journal once all of it is uploaded: everything in it counts,
    # although the index had read it in journal/ (it reads it once more, for the acks only)
    (root / ARCHIVE_DIR).mkdir()
    os.replace(data, root / ARCHIVE_DIR / data.name)
    state = _equal(root, index)
    assert state.pending == {T_TASKS: 0, T_STEPS: 0, T_SHOTS: 0, T_OBJECTS: 0}
    assert [r["id"] for r in state.rejected] == ["gone"]  # its key was never uploaded

    # an import writes a newer version of the task: pending again, and a new index agrees
    _write(root, [{"k": "task", "v": 7, "row": _task("t1", "failed")}])
    assert _equal(root, index).pending[T_TASKS] == 1
    os.unlink(index.path)
    assert _equal(root, BackupIndex(root)).pending[T_TASKS] == 1


def test_a_pass_interrupted_midway_is_finished_by_the_next_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "b"
    data = _write(
        root,
        [{"k": "task", "v": 1, "row": _task("t1")}, *({"k": "step", "row": _step(n)} for n in range(1, 41))],
    )
    index = BackupIndex(root)
    assert _equal(root, index).pending[T_STEPS] == 40
    (root / ARCHIVE_DIR).mkdir()
    os.replace(data, root / ARCHIVE_DIR / data.name)

    monkeypatch.setattr(index_module, "BATCH_LINES", 7)
    passes = 0
    real = BackupIndex._ack_pass

    def dies_after_two(*args: Any) -> int:
        nonlocal passes
        passes += 1
        if passes > 2:
            raise KeyboardInterrupt  # as a kill between two transactions
        return real(*args)

    monkeypatch.setattr(BackupIndex, "_ack_pass", staticmethod(dies_after_two))
    with pytest.raises(KeyboardInterrupt):
        index.refresh()
    monkeypatch.setattr(BackupIndex, "_ack_pass", staticmethod(real))
    # two batches (14 lines: the writer's open record, the task, 12 steps) are committed as
    # uploaded, the rest is not, and the next reader (another process: a new index object)
    # finishes the pass instead of trusting the journal's archived flag
    assert BackupIndex(root).connection().execute("select count(*) from acks").fetchone()[0] == 13
    state = _equal(root, BackupIndex(root))
    assert state.pending == {T_TASKS: 0, T_STEPS: 0, T_SHOTS: 0, T_OBJECTS: 0}


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 128), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_a_run_through_an_outage_then_resync_as_status_sees_it(stack: Any, tmp_path: Path) -> None:
    """The whole life: a run recorded while Supabase is down (a closed port), the index read
    by a viewer meanwhile, `stepsdk resync` uploads and archives, the same index then says
    nothing is pending; at each point equal to the merged journals."""
    root = tmp_path / "backup"
    tracker = StepTracker(
        task_id="outage-ü", backup_dir=root, supabase_url="http://127.0.0.1:9", supabase_key="sb_secret_x" * 3
    )
    png = _png()
    for i in range(12):
        tracker.record_step("action", {"i": i}, screenshot=png if i % 3 == 0 else None)
    tracker.finish("success")
    tracker.close()
    index = BackupIndex(root)
    state = _equal(root, index)
    assert state.pending[T_STEPS] == 12 and state.pending[T_TASKS] == 1 and state.pending[T_OBJECTS] >= 1
    assert read_upload_state(root).pending == state.pending
    report = Resync(root, Config.resolve(stack.url, stack.service_role_key, root)).run()
    assert report.ok, report
    assert any((root / ARCHIVE_DIR).iterdir())
    state = _equal(root, index)
    assert state.pending == {T_TASKS: 0, T_STEPS: 0, T_SHOTS: 0, T_OBJECTS: 0}
    assert state.last_upload_at is not None and state.rejected == []

"""The backup journal and its reader: format, torn and corrupt records, several writers."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

import pytest

from stepsdk.store.backup import (
    BackupStore,
    JournalWriter,
    decode_line,
    encode_record,
    pending_steps_of_gone_writers,
    write_screenshot,
)


def _step(task_id: str, n: int, sid: str | None = None) -> dict:
    return {
        "k": "step",
        "row": {
            "id": sid or f"00000000-0000-4000-8000-{n:012x}",
            "task_id": task_id,
            "step_number": n,
            "step_type": "action",
            "step_data": {"n": n},
        },
    }


def test_missing_folder_reads_empty(tmp_path: Path) -> None:
    snap = BackupStore(tmp_path / "nope").read()
    assert snap.tasks == {} and snap.steps == {} and snap.problems == []


def test_file_instead_of_folder_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    snap = BackupStore(f).read()
    assert snap.problems and "not a folder" in snap.problems[0]


def test_roundtrip_latest_task_version_wins_and_steps_sorted(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([{"k": "task", "v": 1, "row": {"task_id": "t/../1", "status": "running"}}])
    w.append([_step("t/../1", 3), _step("t/../1", 1), _step("t/../1", 2)])
    w.append([{"k": "task", "v": 5, "row": {"task_id": "t/../1", "status": "success"}}])
    w2 = JournalWriter(tmp_path)  # an older version in another writer must not win
    w2.append([{"k": "task", "v": 3, "row": {"task_id": "t/../1", "status": "failed"}}])
    w.close()
    w2.close()
    snap = BackupStore(tmp_path).read()
    assert snap.tasks["t/../1"]["status"] == "success"
    assert [r["step_number"] for r in snap.steps["t/../1"]] == [1, 2, 3]
    assert snap.problems == []
    # the hostile task id never became a path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal"]


def test_duplicate_step_ids_are_deduplicated(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([_step("t", 1), _step("t", 1)])
    JournalWriter(tmp_path).append([_step("t", 1)])
    assert len(BackupStore(tmp_path).read().steps["t"]) == 1


def test_torn_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([_step("t", 1), _step("t", 2)])
    w.close()
    data = encode_record(_step("t", 3))
    with open(w.path, "ab") as fh:
        fh.write(data[: len(data) // 2])  # the process died mid-write
    snap = BackupStore(tmp_path).read()
    assert [r["step_number"] for r in snap.steps["t"]] == [1, 2]
    assert len(snap.problems) == 1 and "torn" in snap.problems[0]


@pytest.mark.parametrize("mutate", ["flip", "garbage", "badjson", "norow"])
def test_corrupt_middle_line_skipped_rest_kept(tmp_path: Path, mutate: str) -> None:
    w = JournalWriter(tmp_path)
    w.append([_step("t", 1), _step("t", 2), _step("t", 3)])
    w.close()
    lines = w.path.read_bytes().splitlines(keepends=True)
    if mutate == "flip":
        lines[2] = lines[2].replace(b'"n":2', b'"n":7')
    elif mutate == "garbage":
        lines[2] = b"\x00\xff garbage\n"
    elif mutate == "badjson":
        body = b"{not json"
        lines[2] = encode_record({"x": 1})[:0] + b"%08x %s\n" % (__import__("zlib").crc32(body), body)
    else:
        lines[2] = encode_record({"k": "step", "row": None})
    w.path.write_bytes(b"".join(lines))
    snap = BackupStore(tmp_path).read()
    assert [r["step_number"] for r in snap.steps["t"]] == [1, 3]
    assert len(snap.problems) == 1


def test_decode_rejects_missing_newline_and_bad_prefix() -> None:
    good = encode_record({"k": "open"})
    assert decode_line(good) == {"k": "open"}
    for bad in (good[:-1], b"zz" + good[2:], b"short\n"):
        with pytest.raises(ValueError):
            decode_line(bad)


def test_nan_is_refused_at_encode() -> None:
    with pytest.raises(ValueError):
        encode_record({"k": "step", "x": float("nan")})


def test_write_after_failed_partial_write_starts_new_line(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([_step("t", 1)])
    # simulate a torn write inside the writer (what ENOSPC leaves behind)
    w._fh.write(encode_record(_step("t", 2))[:20])
    w._needs_newline = True
    w.append([_step("t", 3)])
    w.close()
    snap = BackupStore(tmp_path).read()
    assert [r["step_number"] for r in snap.steps["t"]] == [1, 3]
    assert len(snap.problems) == 1


def test_acks_make_records_not_pending_and_rejects_are_visible(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([{"k": "task", "v": 2, "row": {"task_id": "t"}}, _step("t", 1), _step("t", 2)])
    r = JournalWriter(tmp_path, name="resync")
    r.append(
        [
            {"k": "ack", "t": "tasks", "v": {"t": 2}, "at": "2026-01-01T00:00:00+00:00"},
            {"k": "ack", "t": "task_steps", "ids": [_step("t", 1)["row"]["id"]], "at": "x"},
            {
                "k": "reject",
                "t": "task_steps",
                "id": _step("t", 2)["row"]["id"],
                "error": {"code": "23514", "message": "check"},
            },
        ]
    )
    snap = BackupStore(tmp_path).read()
    assert snap.pending_tasks() == []
    assert [s["step_number"] for s in snap.pending_steps()] == [2]
    assert ("task_steps", _step("t", 2)["row"]["id"]) in snap.rejected
    w.append([{"k": "task", "v": 3, "row": {"task_id": "t", "status": "success"}}])
    assert len(BackupStore(tmp_path).read().pending_tasks()) == 1


def test_screenshot_objects_atomic_and_path_checked(tmp_path: Path) -> None:
    data = b"RIFF....WEBPVP8 fake"
    sha = hashlib.sha256(data).hexdigest()
    path = write_screenshot(tmp_path, f"{sha[:2]}/{sha}.webp", data)
    assert path.read_bytes() == data
    store = BackupStore(tmp_path)
    assert store.screenshot_file(f"{sha[:2]}/{sha}.webp") == path
    assert store.screenshot_file("../../etc/passwd") is None
    assert store.screenshot_file(f"{sha[:2]}/{'0' * 64}.webp") is None
    with pytest.raises(ValueError):
        write_screenshot(tmp_path, "../x.webp", data)
    assert not list(path.parent.glob(".tmp-*"))


def test_archive_only_when_all_acked_and_writer_gone(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([_step("t", 1)])
    store = BackupStore(tmp_path)
    assert store.archive_done(store.read()) == []  # writer alive, not acked
    JournalWriter(tmp_path).append([{"k": "ack", "t": "task_steps", "ids": [_step("t", 1)["row"]["id"]]}])
    assert store.archive_done(store.read()) == []  # still alive (not closed)
    w.close()
    moved = store.archive_done(store.read())
    assert [p.name for p in moved] == [w.path.name]
    snap = store.read()
    assert len(snap.steps["t"]) == 1 and snap.pending_steps() == []


def test_quarantine_reports_once(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([_step("t", 1)])
    w.close()
    with open(w.path, "ab") as fh:
        fh.write(b"deadbeef {}\n")
    store = BackupStore(tmp_path)
    snap = store.read()
    assert len(snap.problems) == 1
    assert store.quarantine(snap, JournalWriter(tmp_path, name="r")) == 1
    assert store.read().problems == []
    assert (tmp_path / "quarantine" / w.path.name).exists()


def _writer_proc(root: str, tag: int, n: int) -> None:
    w = JournalWriter(root)
    for i in range(n):
        w.append([_step(f"t{tag}", i + 1, sid=f"00000000-0000-4{tag:03x}-8000-{i:012x}")])
    w.close()


def test_two_processes_and_threads_write_one_folder(tmp_path: Path) -> None:
    import threading

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer_proc, args=(str(tmp_path), t, 300)) for t in (1, 2)]
    threads = [threading.Thread(target=_writer_proc, args=(str(tmp_path), t, 300)) for t in (3, 4)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for p in procs:
        p.join(30)
    for t in threads:
        t.join(30)
    snap = BackupStore(tmp_path).read()
    assert snap.problems == []
    assert {k: len(v) for k, v in snap.steps.items()} == {f"t{i}": 300 for i in (1, 2, 3, 4)}
    assert len(os.listdir(tmp_path / "journal")) == 4


def test_archiving_twice_never_overwrites(tmp_path: Path) -> None:
    from stepsdk.store.backup import archive_target

    first = archive_target(tmp_path, "w.log")
    first.write_text("first")
    second = archive_target(tmp_path, "w.log")
    assert second != first and second.name == "w.2.log"
    second.write_text("second")
    assert archive_target(tmp_path, "w.log").name == "w.3.log"


def test_newest_step_version_wins_and_an_ack_covers_only_its_version(tmp_path: Path) -> None:
    v0 = _step("t", 1)
    v0["row"] |= {"screenshot_path": None, "metadata": {"screenshot_pending": True}}
    v1 = {
        "k": "step",
        "v": 1,
        "row": v0["row"] | {"screenshot_path": "ab/" + "ab" * 32 + ".webp", "metadata": {}},
    }
    sid = v0["row"]["id"]
    w = JournalWriter(tmp_path)
    w.append([v0, v1, v0])  # a stray older version after the newer one never wins
    snap = BackupStore(tmp_path).read()
    assert [r["screenshot_path"] for r in snap.steps["t"]] == [v1["row"]["screenshot_path"]]
    assert snap.step_versions[sid] == 1
    w.append([{"k": "ack", "t": "task_steps", "ids": [sid], "at": "x"}])  # version 0 uploaded
    snap = BackupStore(tmp_path).read()
    assert len(snap.pending_steps()) == 1 and snap.is_acked("task_steps", sid)
    assert "ab/" + "ab" * 32 + ".webp" in snap.pending_objects()
    w.append([{"k": "ack", "t": "task_steps", "ids": [sid], "v": {sid: 1}, "at": "x"}])
    assert BackupStore(tmp_path).read().pending_steps() == []


def test_bad_step_version_is_a_corrupt_record(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([_step("t", 1) | {"v": "1"}, _step("t", 2)])
    snap = BackupStore(tmp_path).read()
    assert [r["step_number"] for r in snap.steps["t"]] == [2]
    assert len(snap.problems) == 1 and "version" in snap.problems[0]


def test_pending_steps_of_gone_writers_counts_ids_only_of_finished_writers(tmp_path: Path) -> None:
    live = JournalWriter(tmp_path)  # this process, not closed: still writing, not "earlier"
    live.append([_step("a", 1), _step("a", 2)])
    gone = JournalWriter(tmp_path)
    gone.append([_step("b", n, f"00000000-0000-4000-8000-00000000b00{n}") for n in range(1, 4)])
    gone.close()
    JournalWriter(tmp_path).append(
        [{"k": "ack", "t": "task_steps", "ids": ["00000000-0000-4000-8000-00000000b001"]}]
    )
    assert pending_steps_of_gone_writers(tmp_path) == (2, 1)
    assert pending_steps_of_gone_writers(tmp_path, exclude=gone.path) == (0, 0)
    assert pending_steps_of_gone_writers(tmp_path / "missing") == (0, 0)

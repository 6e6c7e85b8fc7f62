"""A hostile or broken backup folder: the reader reports problems and keeps going, never crashes."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from stepsdk.store import backup as _backup
from stepsdk.store.backup import BackupStore, JournalWriter, encode_record
from stepsdk.store.index import BackupIndex
from stepsdk.store.upload_state import UploadState


def _line(body: bytes) -> bytes:
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _good(n: int) -> dict:
    return {"k": "step", "row": {"id": f"00000000-0000-4000-8000-{n:012x}", "task_id": "t", "step_number": n}}


def _journal(root: Path, *lines: bytes) -> Path:
    folder = root / "journal"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hostile.log"
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize(
    "bad",
    [
        _line(b"[" * 100_000 + b"]" * 100_000),  # nesting deep enough to blow json's recursion
        _line(b'{"k":"step","row":{"id":"x","task_id":"t","step_number":"1"}}'),  # wrong type
        _line(b'{"k":"step","row":[1,2]}'),
        _line(b'{"k":7}'),
        _line(b'["not","an","object"]'),
        _line(b'{"k":"task","row":{"task_id":"t"}}'),  # no version
        _line(b'{"k":"ack"}'),
        _line(b'{"k":"step","row":{"id":"\xff\xfe","task_id":"t","step_number":1}}'),  # not UTF-8
        b"\n",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\n",
        b"ffffffff " + b"x" * 50 + b"\n",
    ],
)
def test_bad_line_is_a_problem_and_the_next_line_is_read(tmp_path: Path, bad: bytes) -> None:
    _journal(tmp_path, encode_record(_good(1)), bad, encode_record(_good(2)))
    snap = BackupStore(tmp_path).read()
    assert [r["step_number"] for r in snap.steps["t"]] == [1, 2]
    assert len(snap.problems) == 1 and "hostile.log at byte" in snap.problems[0]


def test_runaway_line_is_skipped_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_backup, "MAX_RECORD_BYTES", 4096)
    huge = encode_record({"k": "step", "row": {**_good(5)["row"], "blob": "x" * 100_000}})
    _journal(tmp_path, encode_record(_good(1)), huge, encode_record(_good(2)))
    snap = BackupStore(tmp_path).read()
    assert [r["step_number"] for r in snap.steps["t"]] == [1, 2]
    assert len(snap.problems) == 1 and "larger than 4096 bytes" in snap.problems[0]


def test_empty_binary_and_odd_entries(tmp_path: Path) -> None:
    _journal(tmp_path)
    (tmp_path / "journal" / "garbage.log").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "journal" / "adir.log").mkdir()
    (tmp_path / "journal" / "notes.txt").write_text("ignored: not a journal")
    snap = BackupStore(tmp_path).read()
    assert snap.steps == {} and len(snap.problems) >= 1
    assert all("garbage.log" in p for p in snap.problems)


def test_hostile_screenshot_paths_never_leave_the_folder(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append(
        [
            {
                "k": "shot",
                "row": {"id": "s1", "task_id": "t", "step_id": "x", "screenshot_path": "../../etc/passwd"},
            }
        ]
    )
    store = BackupStore(tmp_path)
    snap = store.read()
    assert snap.pending_objects() == ["../../etc/passwd"]
    assert store.screenshot_file("../../etc/passwd") is None
    assert UploadState.from_snapshot(snap).pending_bytes(tmp_path) == 0  # never a file outside
    assert BackupIndex(tmp_path).upload_state().pending_bytes(tmp_path) == 0
    for odd in (None, 5, "", "ab/cd.webp", "/abs/" + "a" * 64 + ".webp"):
        assert store.screenshot_file(odd) is None  # type: ignore[arg-type]


_BIG = b"1" + b"0" * 400  # an int literal no float (and no 64-bit column) holds


@pytest.mark.parametrize(
    "bad",
    [
        b'{"k":"step","v":1,"row":{"id":"s","task_id":"t","step_number":3,"duration_ms":Infinity}}',
        b'{"k":"step","v":1,"row":{"id":"s","task_id":"t","step_number":3,"duration_ms":NaN}}',
        b'{"k":"step","v":1,"row":{"id":"s","task_id":"t","step_number":3,"duration_ms":1e400}}',
        b'{"k":"step","v":1,"row":{"id":"s","task_id":"t","step_number":3,"duration_ms":' + _BIG + b"}}",
        b'{"k":"step","v":1,"row":{"id":"s","task_id":"t","step_number":' + _BIG + b"}}",
        b'{"k":"step","v":1,"row":{"id":"s","task_id":"t","step_number":9223372036854775808}}',
        b'{"k":"task","v":' + _BIG + b',"row":{"task_id":"u","status":"completed"}}',
        b'{"k":"step","v":1,"row":{"id":"s","task_id":"t","step_number":3,"metadata":{"x":-Infinity}}}',
    ],
)
def test_out_of_range_numbers_are_a_problem_not_a_broken_index(tmp_path: Path, bad: bytes) -> None:
    """A CRC-valid line whose number no SQLite/PostgreSQL column holds (NaN, Infinity, an int
    beyond 64 bits, a duration beyond a float) is skipped as a problem: the index is still built."""
    from stepsdk.store.index import BackupIndex

    task = {"k": "task", "v": 1, "row": {"task_id": "t", "status": "completed"}}
    _journal(tmp_path, encode_record(task), encode_record(_good(1)), _line(bad), encode_record(_good(2)))
    snap = BackupStore(tmp_path).read()
    assert [r["step_number"] for r in snap.steps["t"]] == [1, 2] and len(snap.problems) == 1
    db = BackupIndex(tmp_path).refresh()
    assert [r[0] for r in db.execute("select step_number from steps order by step_number")] == [1, 2]


@pytest.mark.parametrize(
    "record",
    [
        {"k": "task", "v": 1, "row": {"task_id": "t", "started_at": "9999-12-31T23:59:59-05:00"}},
        {"k": "task", "v": 1, "row": {"task_id": "t", "finished_at": "0001-01-01T00:00:00+01:00"}},
        {"k": "step", "v": 1, "row": {**_good(3)["row"], "created_at": "0001-01-01T00:00:00+01:00"}},
    ],
)
def test_a_timestamp_beyond_pythons_utc_range_does_not_break_the_index(tmp_path: Path, record: dict) -> None:
    """PostgreSQL's timestamptz holds these; converting them to UTC raised OverflowError in the
    index (no local view at all): the index takes them as no timestamp."""
    from stepsdk.store.index import BackupIndex

    task = {"k": "task", "v": 1, "row": {"task_id": "t", "status": "completed"}}
    _journal(tmp_path, encode_record(task), encode_record(_good(1)), encode_record(record))
    db = BackupIndex(tmp_path).refresh()
    assert [r[0] for r in db.execute("select task_id from tasks")] == ["t"]
    assert len(db.execute("select * from steps").fetchall()) == 1 + (record["k"] == "step")

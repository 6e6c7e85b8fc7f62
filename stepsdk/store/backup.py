"""The local backup store: a write-ahead journal per writer, screenshots beside it, and a reader.

Format (documented fully in backup/README.md)::

    <dir>/journal/<host>-<pid>-<rand>.log   one file per writer (tracker or resync run), append only
    <dir>/archive/<same name>.log           journals whose every record was uploaded (moved by resync)
    <dir>/quarantine/<same name>.log        corrupt lines copied out by resync, with the reason
    <dir>/screenshots/<sha[:2]>/<sha>.webp  content-addressed screenshot objects (temp + rename)

Each journal line is ``<crc32 of the JSON bytes, 8 hex digits> <compact JSON record>\\n``. A torn
last line (a crash mid-write) fails the CRC or misses its newline and is skipped, never fatal.
Task ids never become file names: files are named after the writer only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import socket
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stepsdk.schema import STORAGE_PATH_RE
from stepsdk.store.export_format import upgrade_screenshot_row

log = logging.getLogger("stepsdk.backup")

JOURNAL_DIR = "journal"
ARCHIVE_DIR = "archive"
QUARANTINE_DIR = "quarantine"
SCREENSHOT_DIR = "screenshots"
SUFFIX = ".log"
FORMAT_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a line longer than this is corrupt (FULL level rows stay far below)

_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")

# Record kinds ("k") and the tables they belong to.
KIND_TASK, KIND_STEP, KIND_SHOT = "task", "step", "shot"
KIND_ACK, KIND_REJECT, KIND_OPEN, KIND_CLOSE, KIND_QUARANTINED = (
    "ack",
    "reject",
    "open",
    "close",
    "quarantined",
)
T_TASKS, T_STEPS, T_SHOTS, T_OBJECTS = "tasks", "task_steps", "step_screenshots", "objects"

# The backup holds step data and screenshots: only its owner may read it, whatever the umask.
DIR_MODE, FILE_MODE = 0o700, 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` where every folder it creates is 0700 (``Path.mkdir(parents=True)`` gives
    the parents the default mode)."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)
    return path


def open_private_append(path: str | os.PathLike[str]) -> Any:
    """Open for appending (binary); a new file is created 0600."""
    return os.fdopen(
        os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE), "ab"
    )


def encode_record(record: dict[str, Any]) -> bytes:
    """One journal line: CRC32 (hex) of the JSON bytes, a space, the JSON, a newline."""
    try:
        body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate slipped through: escape instead of failing
        body = json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode_line(line: bytes) -> dict[str, Any]:
    """Parse one journal line (with or without its newline); ValueError says why it is bad."""
    if not line.endswith(b"\n"):
        raise ValueError("incomplete record (no newline: torn write)")
    if len(line) < 11 or line[8:9] != b" ":
        raise ValueError("malformed record (no CRC prefix)")
    body = line[9:-1]
    try:
        crc = int(line[:8], 16)
    except ValueError:
        raise ValueError("malformed record (bad CRC prefix)") from None
    if zlib.crc32(body) != crc:
        raise ValueError("CRC mismatch (torn or corrupted record)")
    try:
        record = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:  # hostile nesting: json.loads recurses per level
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"invalid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(record, dict) or not isinstance(record.get("k"), str):
        raise ValueError("not a record object")
    _check_record(record)
    return record


_STEP_TEXT = (
    "thinking",
    "screenshot_path",
    "error_type",
    "error_message",
    "stack_trace",
    "started_at",
    "created_at",
    "name",
    "error_category",
)
_TASK_TEXT = (
    "title",
    "description",
    "agent",
    "started_at",
    "finished_at",
    "result",
    "error_message",
    "owner_id",
)


def _is_id(value: Any) -> bool:
    """A non-empty str that UTF-8 can encode (a lone surrogate can reach no database)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity: Python's json reads them, no writer of ours writes them (allow_nan=False),
    SQLite stores NaN as null and PostgreSQL refuses both in jsonb."""
    raise ValueError(f"{name} is not JSON")


def _is_int(value: Any) -> bool:
    """An int that fits a 64-bit column (SQLite's integer, PostgreSQL's bigint)."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _is_duration(value: Any) -> bool:
    """A finite number (an int literal too long for a float, or 1e400 read as inf, is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _bad_types(row: dict[str, Any], texts: tuple[str, ...], objects: tuple[str, ...]) -> str | None:
    for col in texts:
        if row.get(col) is not None and not isinstance(row[col], str):
            return f"{col} is not a string"
    for col in objects:
        if row.get(col) is not None and not isinstance(row[col], dict):
            return f"{col} is not an object"
    return None


def _check_record(record: dict[str, Any]) -> None:
    """Every field a reader relies on has its type: a record that passed its CRC but carries a
    mistyped field is reported and skipped like a corrupt one, never fatal to the reader."""
    kind = record["k"]
    row = record.get("row")
    if kind in (KIND_TASK, KIND_STEP, KIND_SHOT) and not isinstance(row, dict):
        raise ValueError(f"{kind} record without a row")
    if "v" in record and kind in (KIND_TASK, KIND_STEP, KIND_SHOT) and not _is_int(record["v"]):
        raise ValueError(f"{kind} record with a version that is not an int")
    problem: str | None = None
    if kind == KIND_TASK:
        if not (_is_id(row.get("task_id")) and _is_int(record.get("v"))):
            raise ValueError("task record without a valid task_id or version")
        problem = _bad_types(row, ("status", *_TASK_TEXT), ("metadata",))
    elif kind == KIND_STEP:
        if not (_is_id(row.get("id")) and _is_id(row.get("task_id")) and _is_int(row.get("step_number"))):
            raise ValueError("step record without a valid id, task_id or step_number")
        if not isinstance(row.get("success", True), bool):
            problem = "success is not a boolean"
        elif row.get("duration_ms") is not None and not _is_duration(row["duration_ms"]):
            problem = "duration_ms is not a finite number"
        problem = problem or _bad_types(row, ("step_type", *_STEP_TEXT), ("metadata", "usage"))
    elif kind == KIND_SHOT:
        row = record["row"] = upgrade_screenshot_row(row)  # stepsdk 0.1 journals: key storage_path
        if not (
            _is_id(row.get("id"))
            and _is_id(row.get("task_id"))
            and isinstance(row.get("screenshot_path"), str)
        ):
            raise ValueError("screenshot record without a valid id, task_id or screenshot_path")
        if row.get("step_id") is not None and not _is_id(row["step_id"]):
            problem = "screenshot record without a valid step_id"
        problem = problem or _bad_types(row, (), ("metadata",))
    elif kind in (KIND_ACK, KIND_REJECT):
        if not isinstance(record.get("t"), str):
            raise ValueError(f"{kind} record without table")
        if "ids" in record and not isinstance(record["ids"], list):
            problem = "ack ids is not a list"
        elif "v" in record and not isinstance(record["v"], dict):
            problem = "ack versions is not an object"
    elif kind == KIND_QUARANTINED and not (
        isinstance(record.get("file"), str) and _is_int(record.get("offset"))
    ):
        problem = "quarantined record without file or offset"
    elif kind == KIND_OPEN and not (record.get("pid") is None or _is_int(record.get("pid"))):
        problem = "open record with a pid that is not an int"
    if problem:
        raise ValueError(f"mistyped field: {problem}")


def ack_record(table: str, versions: dict[str, int]) -> dict[str, Any]:
    """The `ack` record confirming these keys in these versions (format: backup/README.md)."""
    if table == T_TASKS:
        return {"k": KIND_ACK, "t": table, "v": versions, "at": now_iso()}
    rec: dict[str, Any] = {"k": KIND_ACK, "t": table, "ids": list(versions), "at": now_iso()}
    newer = {k: v for k, v in versions.items() if v}
    if newer:
        rec["v"] = newer
    return rec


def new_writer_name(role: str = "w") -> str:
    """`<host>-<pid>-<role><random>`: unique per writer, safe as a file name on any OS."""
    host = _SAFE_NAME_RE.sub("_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{role}{os.urandom(4).hex()}"


def now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


class JournalWriter:
    """Append-only journal of one writer. Thread-safe; every `append` is flushed to the OS.

    No fsync per append (a SIGKILL does not lose the page cache; only a power loss could);
    `close()` makes it durable on disk.
    """

    def __init__(self, root: str | os.PathLike[str], name: str | None = None) -> None:
        self.root = Path(root)
        self.name = name or new_writer_name()
        self.path = self.root / JOURNAL_DIR / f"{self.name}{SUFFIX}"
        self._lock = threading.RLock()  # re-entrant: a SIGTERM handler may close it mid-append
        self._fh: Any = None
        self._position = 0
        self._needs_newline = False
        self.closed = False
        self.recreated = 0  # times the file (or its folder) vanished under us and was made anew

    def _open(self) -> Any:
        if self._fh is not None and _unlinked(self._fh):
            # Someone deleted the journal or the whole backup folder: writing on would put every
            # later record into a file nobody can ever read. Start a new file at the same path.
            log.warning(
                "stepsdk: the backup journal %s was deleted while in use; writing a new one "
                "(records written before the deletion are gone with it)",
                self.path,
            )
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
            self._needs_newline = False
            self.recreated += 1
        if self._fh is None:
            private_dir(self.path.parent)
            self._fh = open_private_append(self.path)  # kept open for the writer's life
            _take_lease(self._fh)
            self._position = self._fh.tell()
            if self._position == 0:
                header = {
                    "k": KIND_OPEN,
                    "format": FORMAT_VERSION,
                    "writer": self.name,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "at": now_iso(),
                }
                self._write(encode_record(header))
        return self._fh

    def _write(self, data: bytes) -> None:
        fh = self._fh
        if self._needs_newline:
            # A previous write failed midway (disk full...): end that torn line first so the
            # next record starts on a line of its own and stays readable.
            fh.write(b"\n")
            self._position += 1
            self._needs_newline = False
        try:
            fh.write(data)
            fh.flush()
        except BaseException:
            self._needs_newline = True
            with contextlib.suppress(OSError, ValueError):
                self._position = fh.tell()
            raise
        self._position += len(data)

    def append(self, records: list[dict[str, Any]]) -> int:
        """Write records; returns the file offset where the first one starts. Raises OSError."""
        return self.append_encoded(b"".join(encode_record(r) for r in records))

    def append_encoded(self, lines: bytes) -> int:
        """Write lines already made by `encode_record`; returns the offset of the first."""
        with self._lock:
            if self.closed:
                raise ValueError("journal is closed")
            self._open()
            start = self._position
            self._write(lines)
            return start

    @property
    def position(self) -> int:
        with self._lock:
            return self._position

    def close(self) -> None:
        """Write the close record, fsync and close. Idempotent; raises OSError on I/O failure."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._fh is None:
                return
            try:
                self._write(encode_record({"k": KIND_CLOSE, "at": now_iso()}))  # flushed
                os.fsync(self._fh.fileno())
            finally:
                self._fh.close()
                self._fh = None

    def reopen(self) -> None:
        """Allow appends again after `close()` (records made after close go to the same file)."""
        with self._lock:
            self.closed = False


def _unlinked(fh: Any) -> bool:
    """Whether an open file has lost its last name (deleted, or its folder removed)."""
    try:
        return os.fstat(fh.fileno()).st_nlink == 0
    except (OSError, ValueError):
        return True


def iter_journal(
    path: Path, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, dict[str, Any] | None, str | None, bytes]]:
    """Yield (offset, record or None, problem or None, raw line) for each line of a journal."""
    with open(path, "rb") as fh:
        fh.seek(start)
        offset = start
        while end is None or offset < end:
            line = fh.readline(MAX_RECORD_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_RECORD_BYTES and not line.endswith(b"\n"):
                size = len(line) + _skip_line(fh)  # never hold a runaway line in memory
                yield offset, None, f"record larger than {MAX_RECORD_BYTES} bytes ({size} bytes)", line[:200]
                offset += size
                continue
            try:
                yield offset, decode_line(line), None, line
            except ValueError as exc:
                yield offset, None, str(exc), line
            offset += len(line)


def _skip_line(fh: Any) -> int:
    skipped = 0
    while True:
        chunk = fh.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def write_screenshot(root: str | os.PathLike[str], screenshot_path: str, data: bytes) -> Path:
    """Store a screenshot object at screenshots/<screenshot_path>, atomically (temp + rename)."""
    if not STORAGE_PATH_RE.match(screenshot_path):
        raise ValueError(f"not a content-addressed screenshot path: {screenshot_path!r}")
    target = Path(root) / SCREENSHOT_DIR / screenshot_path
    if target.exists() and target.stat().st_size == len(data):
        return target  # content-addressed: same name means same bytes
    private_dir(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".webp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def archive_target(root: str | os.PathLike[str], name: str) -> Path:
    """A free path in archive/ for a journal (a reopened journal may be archived twice: never
    overwrite the earlier archive)."""
    folder = Path(root) / ARCHIVE_DIR
    private_dir(folder)
    target = folder / name
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{stem}.{n}{SUFFIX}"
    return target


def _take_lease(fh: Any) -> None:
    """A shared lock held for the writer's life: readers tell a live writer from a dead one by
    it, across pid namespaces (containers on one volume), pid reuse and zombies."""
    try:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except (ImportError, OSError):  # no flock here: readers fall back to the pid
        pass


def lease_held(path: Path) -> bool | None:
    """Whether a live writer holds the journal's lease (None: cannot tell on this system)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the lock we may have just taken
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclasses.dataclass
class JournalInfo:
    """What the reader learnt about one journal file."""

    path: Path
    archived: bool
    closed: bool = False
    pid: int | None = None
    host: str | None = None
    records: int = 0
    size_read: int = -1  # the file's size just before it was read (-1: unknown)
    # (table, key) -> the newest version this journal holds (an archived journal confirms only those)
    data_versions: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    @property
    def data_keys(self) -> Any:
        """The (table, key) pairs this journal holds (derived from `data_versions`)."""
        return self.data_versions.keys()

    def holds(self, table: str, key: str, version: int) -> None:
        if version > self.data_versions.get((table, key), -1):
            self.data_versions[(table, key)] = version

    @property
    def changed_since_read(self) -> bool:
        """Whether the file grew (or went) after it was read: what was read is not its last word."""
        try:
            return self.size_read < 0 or self.path.stat().st_size != self.size_read
        except OSError:
            return True

    @property
    def writer_alive(self) -> bool:
        if self.closed or self.archived or self.pid is None:
            return False
        lease = lease_held(self.path)
        if lease is not None:
            return lease
        if self.host != socket.gethostname():
            return True  # cannot tell for another host: assume it may still write
        return _pid_alive(self.pid)


@dataclasses.dataclass
class BackupSnapshot:
    """Everything in a backup folder, merged over all writers (see docs/architecture.md)."""

    tasks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    steps: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    screenshots: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    # Upload state (used by resync and status; the viewer may ignore it).
    task_versions: dict[str, int] = dataclasses.field(default_factory=dict)
    acked_task_versions: dict[str, int] = dataclasses.field(default_factory=dict)
    acked: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # table -> ids (steps: any version)
    step_versions: dict[str, int] = dataclasses.field(default_factory=dict)  # step id -> newest version
    acked_step_versions: dict[str, int] = dataclasses.field(default_factory=dict)  # step id -> newest acked
    shot_versions: dict[str, int] = dataclasses.field(default_factory=dict)  # screenshot row id -> newest
    acked_shot_versions: dict[str, int] = dataclasses.field(default_factory=dict)
    acked_object_versions: dict[str, int] = dataclasses.field(default_factory=dict)  # path -> newest acked
    task_journals: dict[str, JournalInfo] = dataclasses.field(
        default_factory=dict
    )  # journal of the newest version
    rejected: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    corrupt: list[tuple[Path, int, str, bytes]] = dataclasses.field(default_factory=list)
    journals: list[JournalInfo] = dataclasses.field(default_factory=list)
    last_upload_at: str | None = None

    def is_acked(self, table: str, key: str) -> bool:
        return key in self.acked.get(table, ())

    def pending_tasks(self) -> list[dict[str, Any]]:
        return [
            row
            for tid, row in self.tasks.items()
            if self.acked_task_versions.get(tid, -1) < self.task_versions.get(tid, 0)
        ]

    def step_done(self, step_id: str) -> bool:
        """Uploaded in its newest version (an upload of version 0 does not cover version 1)."""
        return self.acked_step_versions.get(step_id, -1) >= self.step_versions.get(step_id, 0)

    def pending_steps(self) -> list[dict[str, Any]]:
        return [r for rows in self.steps.values() for r in rows if not self.step_done(r["id"])]

    def shot_done(self, shot_id: str) -> bool:
        return self.acked_shot_versions.get(shot_id, -1) >= self.shot_versions.get(shot_id, 0)

    def pending_screenshots(self) -> list[dict[str, Any]]:
        return [r for rows in self.screenshots.values() for r in rows if not self.shot_done(r["id"])]

    def pending_objects(self) -> list[str]:
        """Objects a pending row points at, not uploaded at that row's version (a restored
        export re-uploads its objects: they may have been deleted with the task)."""
        return sorted(self.pending_object_versions())

    def pending_object_versions(self) -> dict[str, int]:
        """`pending_objects()` with the newest version of the rows that need each one."""
        need: dict[str, int] = {}
        for r in self.pending_screenshots():
            need[r["screenshot_path"]] = max(
                need.get(r["screenshot_path"], 0), self.shot_versions.get(r["id"], 0)
            )
        for r in self.pending_steps():
            path = r.get("screenshot_path")
            if path:
                need[path] = max(need.get(path, 0), self.step_versions.get(r["id"], 0))
        return {p: v for p, v in need.items() if self.acked_object_versions.get(p, -1) < v}


def _ack_step_versions(
    snap: BackupSnapshot, ids: list[str], versions: Any, acked: dict[str, int] | None = None
) -> None:
    """An ack's `ids` confirm version 0 of each key unless its `v` map names a higher one
    (steps by default; `acked` names the screenshot-row or object map)."""
    versions = versions if isinstance(versions, dict) else {}
    acked = snap.acked_step_versions if acked is None else acked
    for sid in ids:
        v = versions.get(sid, 0)
        if isinstance(v, int) and v > acked.get(sid, -1):
            acked[sid] = v


def pending_steps_of_gone_writers(
    root: str | os.PathLike[str], exclude: Path | None = None
) -> tuple[int, int]:
    """(steps not uploaded, journals holding them) among journals in journal/ whose writer is
    gone (closed, or its process ended). Keeps ids and versions only, never rows: cheap enough
    for a log hint. Archived journals are done by definition and not read."""
    versions: dict[str, int] = {}
    acked = BackupSnapshot()
    owner: dict[str, Path] = {}
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in sorted((Path(root) / JOURNAL_DIR).glob(f"*{SUFFIX}")):
            if path == exclude:
                continue
            info = JournalInfo(path=path, archived=False)
            ids: list[str] = []
            with contextlib.suppress(OSError):
                for _, rec, _, _ in iter_journal(path):
                    _note_for_hint(rec, info, ids, versions, acked)
            if not info.writer_alive:
                owner.update(dict.fromkeys(ids, path))
    pending = [i for i in owner if acked.acked_step_versions.get(i, -1) < versions.get(i, 0)]
    return len(pending), len({owner[i] for i in pending})


def dead_writer_journals(root: str | os.PathLike[str]) -> list[Path]:
    """Journals in journal/ whose writer is gone (its lease is free) and that do not end with a
    close record: candidates for tasks left running by a crash. Reads each journal's first line
    and last few KB."""
    dead: list[Path] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in sorted((Path(root) / JOURNAL_DIR).glob(f"*{SUFFIX}")):
            try:
                with open(path, "rb") as fh:
                    first = fh.readline(64 * 1024)
                record = decode_line(first)
            except (OSError, ValueError):
                continue
            if record["k"] != KIND_OPEN:
                continue
            info = JournalInfo(path=path, archived=False, pid=record.get("pid"), host=record.get("host"))
            if isinstance(info.pid, int) and not info.writer_alive and not _ends_closed(path):
                dead.append(path)
    return dead


def _ends_closed(path: Path) -> bool:
    """Whether the journal's last record is a `close` (reads only its last few KB)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 4096))
            tail = fh.read()
    except OSError:
        return False
    lines = tail.splitlines(keepends=True)
    if not lines:
        return False
    try:
        return decode_line(lines[-1])["k"] == KIND_CLOSE
    except ValueError:
        return False


def _note_for_hint(
    rec: dict[str, Any] | None,
    info: JournalInfo,
    ids: list[str],
    versions: dict[str, int],
    acked: BackupSnapshot,
) -> None:
    if rec is None:
        return
    kind = rec["k"]
    if kind == KIND_STEP:
        sid = rec["row"]["id"]
        ids.append(sid)
        versions[sid] = max(versions.get(sid, 0), rec.get("v", 0))
    elif kind == KIND_ACK and rec["t"] == T_STEPS:
        _ack_step_versions(acked, [i for i in rec.get("ids") or () if isinstance(i, str)], rec.get("v"))
    elif kind == KIND_OPEN:
        info.pid, info.host = rec.get("pid"), rec.get("host")
    elif kind == KIND_CLOSE:
        info.closed = True


class BackupStore:
    """Reader (and small maintenance helpers) for a backup folder. Never raises on a missing folder."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def journal_files(self) -> list[tuple[Path, bool]]:
        out: list[tuple[Path, bool]] = []
        for sub, archived in ((JOURNAL_DIR, False), (ARCHIVE_DIR, True)):
            folder = self.path / sub
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                out.extend((p, archived) for p in sorted(folder.glob(f"*{SUFFIX}")) if p.is_file())
        return out

    def read(self) -> BackupSnapshot:
        """Merge every journal (live and archived) into one snapshot. Corrupt lines become problems."""
        snap = BackupSnapshot()
        if self.path.exists() and not self.path.is_dir():
            snap.problems.append(f"{self.path} is not a folder")
            return snap
        steps: dict[str, dict[str, Any]] = {}
        shots: dict[str, dict[str, Any]] = {}
        quarantined: set[tuple[str, int]] = set()
        pending_corrupt: list[tuple[Path, int, str, bytes, JournalInfo]] = []
        for path, archived in self.journal_files():
            info = JournalInfo(path=path, archived=archived)
            snap.journals.append(info)
            try:
                info.size_read = path.stat().st_size
                lines = list(iter_journal(path))
            except FileNotFoundError:  # moved to archive/ while we listed: read it there
                moved = self.path / ARCHIVE_DIR / path.name
                if archived or not moved.exists():
                    continue
                info.path, info.archived = moved, True
                lines = list(iter_journal(moved))
            except OSError as exc:
                snap.problems.append(f"{path.name}: cannot read ({exc.strerror or exc})")
                continue
            for offset, record, problem, raw in lines:
                if record is None:
                    pending_corrupt.append((info.path, offset, problem or "corrupt", raw, info))
                    continue
                info.records += 1
                try:
                    self._apply(snap, info, record, steps, shots, quarantined)
                except Exception as exc:  # a record the checks let through: skip it, never fatal
                    pending_corrupt.append(
                        (info.path, offset, f"unusable record ({type(exc).__name__}: {exc})", raw, info)
                    )
        for path, offset, problem, raw, info in pending_corrupt:
            if (path.name, offset) in quarantined:
                continue
            torn_tail = not raw.endswith(b"\n")
            if torn_tail and info.writer_alive:
                continue  # the writer is in the middle of this line
            snap.corrupt.append((path, offset, problem, raw))
            snap.problems.append(f"{path.name} at byte {offset}: {problem}; record skipped")
        self._finish(snap, steps, shots)
        return snap

    @staticmethod
    def _apply(
        snap: BackupSnapshot,
        info: JournalInfo,
        record: dict[str, Any],
        steps: dict[str, dict[str, Any]],
        shots: dict[str, dict[str, Any]],
        quarantined: set[tuple[str, int]],
    ) -> None:
        kind = record["k"]
        if kind == KIND_STEP:
            row, version = record["row"], record.get("v", 0)
            if version >= snap.step_versions.get(row["id"], -1):  # newest version wins (ties: the later line)
                snap.step_versions[row["id"]] = version
                steps[row["id"]] = row
            info.holds(T_STEPS, row["id"], version)
        elif kind == KIND_TASK:
            row, version = record["row"], record["v"]
            tid = row["task_id"]
            info.holds(T_TASKS, tid, version)
            if version >= snap.task_versions.get(tid, -1):
                snap.task_versions[tid] = version
                snap.tasks[tid] = row
                snap.task_journals[tid] = info
        elif kind == KIND_SHOT:
            row, version = record["row"], record.get("v", 0)
            if version >= snap.shot_versions.get(row["id"], -1):
                snap.shot_versions[row["id"]] = version
                shots[row["id"]] = row
            info.holds(T_SHOTS, row["id"], version)
            info.holds(T_OBJECTS, row["screenshot_path"], version)
        elif kind == KIND_ACK:
            table = record["t"]
            if table == T_TASKS:
                for tid, version in (record.get("v") or {}).items():
                    if isinstance(version, int) and version > snap.acked_task_versions.get(tid, -1):
                        snap.acked_task_versions[tid] = version
            else:
                ids = [i for i in record.get("ids") or () if isinstance(i, str)]
                snap.acked.setdefault(table, set()).update(ids)
                if table == T_STEPS:
                    _ack_step_versions(snap, ids, record.get("v"))
                elif table == T_SHOTS:
                    _ack_step_versions(snap, ids, record.get("v"), snap.acked_shot_versions)
                elif table == T_OBJECTS:
                    _ack_step_versions(snap, ids, record.get("v"), snap.acked_object_versions)
            at = record.get("at")
            if isinstance(at, str) and (snap.last_upload_at is None or at > snap.last_upload_at):
                snap.last_upload_at = at
        elif kind == KIND_REJECT:
            snap.rejected[(record["t"], str(record.get("id")))] = {
                "error": record.get("error"),
                "at": record.get("at"),
            }
        elif kind == KIND_QUARANTINED:
            quarantined.add((record["file"], record["offset"]))
        elif kind == KIND_OPEN:
            info.pid, info.host = record.get("pid"), record.get("host")
        elif kind == KIND_CLOSE:
            info.closed = True

    @staticmethod
    def _finish(
        snap: BackupSnapshot, steps: dict[str, dict[str, Any]], shots: dict[str, dict[str, Any]]
    ) -> None:
        for row in steps.values():
            snap.steps.setdefault(row["task_id"], []).append(row)
        for rows in snap.steps.values():
            rows.sort(key=lambda r: (r["step_number"], r["id"]))
        for row in shots.values():
            snap.screenshots.setdefault(row["task_id"], []).append(row)
        # Acks for tasks written in archived journals count as acked even if no ack line says so.
        for table_key in (T_STEPS, T_SHOTS, T_OBJECTS):
            snap.acked.setdefault(table_key, set())
        for info in snap.journals:
            if not info.archived:
                continue
            # An archived journal's records were all uploaded: in the versions it holds (a newer
            # version written elsewhere since, e.g. by an import, stays pending).
            for (table, key), version in info.data_versions.items():
                if table == T_TASKS:
                    if version > snap.acked_task_versions.get(key, -1):
                        snap.acked_task_versions[key] = version
                    continue
                snap.acked[table].add(key)
                acked = {
                    T_STEPS: snap.acked_step_versions,
                    T_SHOTS: snap.acked_shot_versions,
                    T_OBJECTS: snap.acked_object_versions,
                }[table]
                _ack_step_versions(snap, [key], {key: version}, acked)
        for table, key in list(snap.rejected):
            if BackupStore._key_done(snap, table, key):
                del snap.rejected[(table, key)]

    def screenshot_file(self, screenshot_path: str) -> Path | None:
        """The local file of a screenshot object, or None (also for paths that are not ours)."""
        if not isinstance(screenshot_path, str) or not STORAGE_PATH_RE.match(screenshot_path):
            return None
        path = self.path / SCREENSHOT_DIR / screenshot_path
        return path if path.is_file() else None

    def archive_done(self, snap: BackupSnapshot) -> list[Path]:
        """Move journals whose writer is gone and whose every record is uploaded to archive/."""
        moved: list[Path] = []
        for info in snap.journals:
            if info.archived or info.writer_alive or not info.data_keys:
                continue
            if any(not self._key_done(snap, table, key) for table, key in info.data_keys):
                continue
            if any(p == info.path for p, *_ in snap.corrupt):
                continue  # keep files with unquarantined problems where they are
            target = archive_target(self.path, info.path.name)
            with contextlib.suppress(FileNotFoundError):
                os.replace(info.path, target)
                moved.append(target)
        return moved

    @staticmethod
    def _key_done(snap: BackupSnapshot, table: str, key: str) -> bool:
        if table == T_TASKS:
            return snap.acked_task_versions.get(key, -1) >= snap.task_versions.get(key, 0)
        if table == T_STEPS:
            return snap.step_done(key)
        if table == T_SHOTS:
            return snap.shot_done(key)
        if table == T_OBJECTS:
            return snap.acked_object_versions.get(key, -1) >= 0
        return snap.is_acked(table, key)

    def quarantine(self, snap: BackupSnapshot, writer: JournalWriter) -> int:
        """Copy corrupt lines to quarantine/ (with the reason) and mark them handled. Returns count."""
        if not snap.corrupt:
            return 0
        qdir = self.path / QUARANTINE_DIR
        private_dir(qdir)
        marks = []
        for path, offset, problem, raw in snap.corrupt:
            with open_private_append(qdir / path.name) as fh:
                fh.write(
                    json.dumps(
                        {
                            "offset": offset,
                            "problem": problem,
                            "at": now_iso(),
                            "raw": raw.decode("utf-8", "replace"),
                        }
                    ).encode()
                    + b"\n"
                )
            marks.append({"k": KIND_QUARANTINED, "file": path.name, "offset": offset, "problem": problem})
        writer.append(marks)
        return len(marks)

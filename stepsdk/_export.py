"""Export and import of recorded tasks (the logic behind ``stepsdk export`` / ``stepsdk import``).

Formats (version :data:`EXPORT_VERSION`):

- JSON: ``{"stepsdk_export": 1, "exported_at": ..., "source": ..., "tasks": [BUNDLE, ...]}``
  where ``BUNDLE = {"task": {...}, "steps": [...], "screenshots": [...]}`` (rows as stored);
- JSONL: one ``{"stepsdk_export": 1, **BUNDLE}`` per line (streams well, greps well);
- CSV: one row per step (a task without steps still gets one row), JSON columns serialized,
  text that a spreadsheet would run as a formula prefixed with ``'`` (:mod:`stepsdk._csv`);
- zip (``--with-screenshots``): ``manifest.json`` (version, data file name, sha256 and size of
  each image, the screenshots that could not be fetched), the data file, and
  ``screenshots/<storage_path>`` for every image.

Exports stream: task rows are selected first, then steps and screenshot rows are read 50 tasks
at a time (keyset pages on Supabase) and written as they come, so memory stays bounded.

Imports are validated completely (version, columns, types, ids, references, zip entry names and
sizes, image hashes) before anything is written, so a bad file changes nothing; the rows then go
through the recorder's sanitizer (secrets redacted) and into the backup as one new journal,
written atomically, from where ``stepsdk resync`` uploads them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import socket
import stat
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from stepsdk._csv import write_rows

EXPORT_VERSION = 1
FORMATS = ("json", "jsonl", "csv")
DATA_FILES = {"json": "export.json", "jsonl": "export.jsonl", "csv": "export.csv"}
MANIFEST = "manifest.json"
SCREENSHOT_DIR = "screenshots/"

TASK_STATUSES = ("running", "success", "failed", "interrupted")
STEP_TYPES = ("thinking", "action", "screenshot", "error", "validation")
TASK_COLUMNS = (
    "task_id", "title", "description", "agent", "status", "started_at", "finished_at", "result",
    "error_message", "metadata", "owner_id", "created_at", "updated_at",
)
STEP_COLUMNS = (
    "id", "task_id", "step_number", "step_type", "step_data", "thinking", "action_result",
    "screenshot_path", "duration_ms", "success", "error_type", "error_message", "stack_trace",
    "started_at", "metadata", "created_at",
)
SCREENSHOT_COLUMNS = (
    "id", "task_id", "step_id", "storage_path", "file_size", "file_hash", "compressed", "metadata",
    "created_at",
)
# Columns the schema declares NOT NULL, per table: an explicit null would be refused at upload.
NOT_NULL: dict[tuple[str, ...], frozenset[str]] = {
    TASK_COLUMNS: frozenset({"task_id", "status", "started_at", "metadata", "created_at", "updated_at"}),
    STEP_COLUMNS: frozenset({"id", "task_id", "step_number", "step_type", "step_data", "success", "metadata",
                             "created_at"}),
    SCREENSHOT_COLUMNS: frozenset({"id", "task_id", "step_id", "storage_path", "file_size", "file_hash",
                                   "compressed", "metadata", "created_at"}),
}


@dataclass(frozen=True)
class Limits:
    """What an import accepts; anything bigger is refused before it is read."""

    max_data_bytes: int = 512 * 1024 * 1024
    max_image_bytes: int = 25 * 1024 * 1024  # the bucket's own limit is 20 MiB
    max_total_bytes: int = 4 * 1024 * 1024 * 1024
    max_entries: int = 200_000
    max_errors_shown: int = 10


class ExportFormatError(ValueError):
    """The file is not a valid stepsdk export; ``errors`` lists what is wrong and where."""

    def __init__(self, errors: list[str], limit: int = 10) -> None:
        self.errors = errors
        shown = "; ".join(errors[:limit])
        more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
        super().__init__(f"{shown}{more}")


@dataclass
class TaskBundle:
    """One task with its steps and screenshot rows, as stored."""

    task: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    screenshots: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return str(self.task["task_id"])

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "steps": self.steps, "screenshots": self.screenshots}

    def normalized(self) -> TaskBundle:
        """Deterministic order: steps by number, screenshots by their step's number then id."""
        steps = sorted(self.steps, key=lambda s: (_int_or(s.get("step_number")), str(s.get("id"))))
        order = {str(s.get("id")): _int_or(s.get("step_number")) for s in steps}
        shots = sorted(self.screenshots, key=lambda r: (order.get(str(r.get("step_id")), 0), str(r.get("id"))))
        return TaskBundle(self.task, steps, shots)


def _int_or(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks to export: explicit ids, or status/agent/started-at filters (all optional)."""

    task_ids: tuple[str, ...] = ()
    status: str | None = None
    agent: str | None = None
    since: datetime | None = None  # started_at >= since
    until: datetime | None = None  # started_at < until

    def matches(self, task: dict[str, Any]) -> bool:
        if self.task_ids and task.get("task_id") not in self.task_ids:
            return False
        if self.status is not None and task.get("status") != self.status:
            return False
        if self.agent is not None and task.get("agent") != self.agent:
            return False
        if self.since is None and self.until is None:
            return True
        started = parse_timestamp(task.get("started_at"))
        if started is None:
            return False
        return (self.since is None or started >= self.since) and (self.until is None or started < self.until)


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO-8601 string with an offset → aware datetime; anything else → None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# --------------------------------------------------------------------------- reading sources


class ExportSource(Protocol):
    """Where tasks are read from (Supabase or the local backup).

    ``tasks`` selects the task rows (small); ``fill`` loads the steps and screenshot rows of a
    few of them at a time, so an export streams with bounded memory (see :func:`iter_bundles`).
    """

    label: str
    problems: list[str]

    def tasks(self, flt: TaskFilter) -> list[dict[str, Any]]: ...

    def fill(self, tasks: list[dict[str, Any]]) -> list[TaskBundle]: ...

    def screenshot(self, storage_path: str) -> bytes | None: ...


def sort_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first (by the instant, whatever the offset), then by id: a stable export order."""
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(tasks, key=lambda t: (parse_timestamp(t.get("started_at")) or oldest, str(t.get("task_id"))))


def iter_bundles(source: ExportSource, tasks: list[dict[str, Any]], chunk: int = 50) -> Iterator[TaskBundle]:
    for part in _chunks(tasks, chunk):
        yield from source.fill(part)


@dataclass
class Tally:
    """Counts what streams through :meth:`watch` (for the command's summary)."""

    tasks: int = 0
    steps: int = 0
    screenshots: int = 0

    def watch(self, bundles: Iterable[TaskBundle]) -> Iterator[TaskBundle]:
        for bundle in bundles:
            self.tasks += 1
            self.steps += len(bundle.steps)
            self.screenshots += len(bundle.screenshots)
            yield bundle


class BackupExportSource:
    """Reads through the backup reader API (``BackupStore(path).read()``)."""

    label = "backup"

    def __init__(self, path: Path) -> None:
        from stepsdk._backup import BackupSnapshot, BackupStore

        self.store = BackupStore(path)
        self.snap: BackupSnapshot | None = None
        self.problems: list[str] = []

    def tasks(self, flt: TaskFilter) -> list[dict[str, Any]]:
        self.snap = self.store.read()
        self.problems = [str(p) for p in self.snap.problems]
        return sort_tasks([dict(t) for t in self.snap.tasks.values() if flt.matches(t)])

    def fill(self, tasks: list[dict[str, Any]]) -> list[TaskBundle]:
        assert self.snap is not None, "tasks() first"
        snap = self.snap
        return [TaskBundle(task, [dict(s) for s in snap.steps.get(task["task_id"], [])],
                           [dict(r) for r in snap.screenshots.get(task["task_id"], [])]).normalized()
                for task in tasks]

    def screenshot(self, storage_path: str) -> bytes | None:
        path = self.store.screenshot_file(storage_path)
        return path.read_bytes() if path is not None else None


class SupabaseExportSource:
    """Reads with the official client; keyset pagination on the primary key, so no result cap
    (Supabase's ``db-max-rows``, 1000 by default) can cut a table short."""

    label = "supabase"
    ID_CHUNK = 50  # task ids per ``in.(...)`` filter: keeps URLs short

    def __init__(self, client: Any, bucket: str = "step-screenshots", page_size: int = 1000) -> None:
        self.client = client
        self.bucket = bucket
        self.page_size = page_size
        self.problems: list[str] = []

    def tasks(self, flt: TaskFilter) -> list[dict[str, Any]]:
        return sort_tasks(self._tasks(flt))

    def fill(self, tasks: list[dict[str, Any]]) -> list[TaskBundle]:
        ids = [t["task_id"] for t in tasks]
        steps = self._children("task_steps", ids)
        shots = self._children("step_screenshots", ids)
        return [TaskBundle(t, steps.get(t["task_id"], []), shots.get(t["task_id"], [])).normalized()
                for t in tasks]

    def _tasks(self, flt: TaskFilter) -> list[dict[str, Any]]:
        def narrow(q: Any) -> Any:
            if flt.status is not None:
                q = q.eq("status", flt.status)
            if flt.agent is not None:
                q = q.eq("agent", flt.agent)
            if flt.since is not None:
                q = q.gte("started_at", flt.since.isoformat())
            if flt.until is not None:
                q = q.lt("started_at", flt.until.isoformat())
            return q

        if not flt.task_ids:
            return self._paginate("tasks", "task_id", narrow)
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(list(flt.task_ids), self.ID_CHUNK):
            rows += self._paginate("tasks", "task_id", lambda q, c=chunk: narrow(q.in_("task_id", c)))
        return rows

    def _children(self, table: str, task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for chunk in _chunks(task_ids, self.ID_CHUNK):
            for row in self._paginate(table, "id", lambda q, c=chunk: q.in_("task_id", c)):
                grouped.setdefault(row["task_id"], []).append(row)
        return grouped

    def _paginate(self, table: str, key: str, narrow: Callable[[Any], Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        last: Any = None
        while True:  # until an empty page: a server cap below page_size cannot end it early
            query = narrow(self.client.table(table).select("*"))
            if last is not None:
                query = query.gt(key, last)
            page = query.order(key).limit(self.page_size).execute().data or []
            if not page:
                return rows
            rows += page
            last = page[-1][key]

    @retry(retry=retry_if_exception_type(httpx.TransportError), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def screenshot(self, storage_path: str) -> bytes | None:
        """The object's bytes, None when it is not in the bucket; network blips are retried."""
        from storage3.exceptions import StorageApiError

        try:
            return bytes(self.client.storage.from_(self.bucket).download(storage_path))
        except StorageApiError as exc:
            if str(exc.status) == "404" or exc.code in ("not_found", "NoSuchKey"):
                return None
            raise


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------- writing


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))


def envelope(bundles: Iterable[TaskBundle], source: str, **extra: Any) -> dict[str, Any]:
    return {
        "stepsdk_export": EXPORT_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "source": source,
        **extra,
        "tasks": [b.to_dict() for b in bundles],
    }


def write_json(bundles: Iterable[TaskBundle], out: IO[str], source: str) -> None:
    """The envelope with one task per line: readable, and compact dumps use the C encoder
    (``json.dump(indent=...)`` is pure Python, about 6x slower)."""
    head = envelope([], source)
    del head["tasks"]
    out.write(_dumps(head)[:-1] + ',"tasks":[')
    for i, bundle in enumerate(bundles):
        out.write(("\n" if i == 0 else ",\n") + _dumps(bundle.to_dict()))
    out.write("\n]}\n")


def write_jsonl(bundles: Iterable[TaskBundle], out: IO[str], source: str) -> None:
    del source  # each line stands alone; the version is on every line
    for bundle in bundles:
        out.write(_dumps({"stepsdk_export": EXPORT_VERSION, **bundle.to_dict()}) + "\n")


def csv_columns() -> list[str]:
    task = [f"task_{c}" for c in TASK_COLUMNS if c != "task_id"]
    step = [c for c in STEP_COLUMNS if c not in ("id", "task_id")]
    return ["task_id", *task, "step_id", *step, "screenshot_count"]


def write_csv(bundles: Iterable[TaskBundle], out: IO[str], source: str) -> None:
    """One row per step; JSON values serialized; text that a spreadsheet would run as a formula
    gets a leading ``'`` (see :mod:`stepsdk._csv`): step data comes from agents and web pages."""
    del source
    write_rows(out, csv_columns(), _csv_rows(bundles))


def _csv_rows(bundles: Iterable[TaskBundle]) -> Iterator[list[Any]]:
    for bundle in bundles:
        task_cells = [bundle.task.get(c) for c in TASK_COLUMNS if c != "task_id"]
        shots_per_step: dict[str, int] = {}
        for shot in bundle.screenshots:
            shots_per_step[str(shot.get("step_id"))] = shots_per_step.get(str(shot.get("step_id")), 0) + 1
        for step in bundle.steps or [None]:
            if step is None:  # keep tasks without steps visible
                yield [bundle.task_id, *task_cells] + [None] * (len(STEP_COLUMNS) - 1) + [0]
                continue
            step_cells = [step.get(c) for c in STEP_COLUMNS if c not in ("id", "task_id")]
            count = shots_per_step.get(str(step.get("id")), 0)
            yield [bundle.task_id, *task_cells, step.get("id"), *step_cells, count]


WRITERS: dict[str, Callable[[Iterable[TaskBundle], IO[str], str], None]] = {
    "json": write_json, "jsonl": write_jsonl, "csv": write_csv,
}


def storage_paths(bundles: Iterable[TaskBundle]) -> list[str]:
    """Every distinct screenshot object referenced (screenshot rows and steps), in order."""
    seen: dict[str, None] = {}
    for bundle in bundles:
        for shot in bundle.screenshots:
            if isinstance(shot.get("storage_path"), str):
                seen.setdefault(shot["storage_path"], None)
        for step in bundle.steps:
            if isinstance(step.get("screenshot_path"), str) and step["screenshot_path"]:
                seen.setdefault(step["screenshot_path"], None)
    return list(seen)


@dataclass
class ZipReport:
    images: int = 0
    image_bytes: int = 0
    missing: list[str] = field(default_factory=list)


def write_zip(
    target: Path, fmt: str, bundles: Iterable[TaskBundle], source: str,
    fetch: Callable[[str], bytes | None], advance: Callable[[int], None] = lambda n: None,
) -> ZipReport:
    """The data file (streamed), then ``screenshots/<storage_path>`` for every image it refers
    to, then ``manifest.json``; written to a temp file and renamed (atomic)."""
    report = ZipReport()
    images: dict[str, dict[str, Any]] = {}
    paths: dict[str, None] = {}

    def remember(stream: Iterable[TaskBundle]) -> Iterator[TaskBundle]:
        for bundle in stream:
            paths.update(dict.fromkeys(storage_paths([bundle])))
            yield bundle

    def build(tmp: IO[bytes]) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            with zf.open(DATA_FILES[fmt], "w", force_zip64=True) as raw:  # size unknown: may pass 2 GiB
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                WRITERS[fmt](remember(bundles), text, source)
                text.flush()
                text.detach()
            for path in paths:
                data = fetch(path) if is_safe_storage_path(path) else None
                advance(1)
                if data is None:
                    report.missing.append(path)
                    continue
                # WebP is already compressed: store it as is.
                zf.writestr(SCREENSHOT_DIR + path, data, compress_type=zipfile.ZIP_STORED)
                images[path] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                report.images += 1
                report.image_bytes += len(data)
            manifest = {"stepsdk_export": EXPORT_VERSION, "data": DATA_FILES[fmt], "format": fmt,
                        "screenshots": images, "missing_screenshots": report.missing}
            zf.writestr(MANIFEST, json.dumps(manifest, indent=1))

    write_atomically(target, build)
    return report


def write_atomically(target: Path, build: Callable[[IO[bytes]], None]) -> None:
    """Write to a temp file beside ``target`` and rename: no half-written export on failure.
    A target that exists and is not a regular file (``/dev/null``, a FIFO) is written in place:
    renaming over it would replace the device or pipe with a file."""
    target = Path(target)
    if target.exists() and not target.is_file():
        with target.open("wb") as special:
            build(special)
        return
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as tmp:
            build(tmp)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


# --------------------------------------------------------------------------- validation

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT4_MAX = 2**31 - 1


def is_safe_storage_path(path: Any) -> bool:
    """A relative object key: no empty, ``.`` or ``..`` segments, no backslash, no control chars."""
    if not isinstance(path, str) or not 1 <= len(path) <= 1024:
        return False
    if path.startswith("/") or "\\" in path or _CONTROL.search(path) or re.match(r"^[A-Za-z]:", path):
        return False
    return all(seg not in ("", ".", "..") for seg in path.split("/"))


class _Checker:
    """Collects every problem of one bundle with its location (``tasks[2].steps[0].id``)."""

    def __init__(self, errors: list[str], nul_possible: bool = True) -> None:
        self.errors = errors
        # Values parsed by _strict_json cannot hold NaN/Infinity; they can hold a NUL only if the
        # text has a \u0000 escape. Walking every JSON value is the costliest check: skip it then.
        self.nul_possible = nul_possible

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def row(self, row: Any, where: str, columns: tuple[str, ...]) -> bool:
        if not isinstance(row, dict):
            self.fail(where, f"must be an object, got {_kind(row)}")
            return False
        unknown = sorted(set(row) - set(columns))
        if unknown:
            self.fail(where, f"unknown column(s) {', '.join(map(repr, unknown))}")
        for key in sorted(NOT_NULL[columns] & set(row)):
            if row[key] is None:
                self.fail(f"{where}.{key}", "must not be null")
        return True

    def text(self, row: dict[str, Any], key: str, where: str, *, required: bool = False,
             max_len: int | None = None, min_len: int = 0) -> None:
        value = row.get(key)
        if value is None:
            if required:
                self.fail(f"{where}.{key}", "is required")
            return
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", f"must be a string, got {_kind(value)}")
        elif "\x00" in value:
            self.fail(f"{where}.{key}", "contains a NUL character")
        elif len(value) < min_len or (max_len is not None and len(value) > max_len):
            self.fail(f"{where}.{key}", f"length must be {min_len}..{max_len}, got {len(value)}")

    def uuid(self, row: dict[str, Any], key: str, where: str, *, required: bool = True) -> None:
        value = row.get(key)
        if value is None and not required:
            return
        try:
            if not isinstance(value, str):
                raise ValueError
            uuid.UUID(value)
        except ValueError:
            self.fail(f"{where}.{key}", f"must be a UUID string, got {_preview(value)}")

    def timestamp(self, row: dict[str, Any], key: str, where: str, *, required: bool = False) -> None:
        value = row.get(key)
        if value is None:
            if required:
                self.fail(f"{where}.{key}", "is required")
        elif parse_timestamp(value) is None:
            self.fail(f"{where}.{key}", f"must be an ISO-8601 timestamp with an offset, got {_preview(value)}")

    def json_object(self, row: dict[str, Any], key: str, where: str) -> None:
        value = row.get(key)
        if value is not None and not isinstance(value, dict):
            self.fail(f"{where}.{key}", f"must be an object, got {_kind(value)}")
        self.json_value(row, key, where)

    def json_value(self, row: dict[str, Any], key: str, where: str) -> None:
        if self.nul_possible and _has_nul(row.get(key)):
            self.fail(f"{where}.{key}", "contains a NUL character")

    def boolean(self, row: dict[str, Any], key: str, where: str) -> None:
        value = row.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(f"{where}.{key}", f"must be true or false, got {_preview(value)}")

    def integer(self, row: dict[str, Any], key: str, where: str, low: int, high: int, *,
                required: bool = False) -> None:
        value = row.get(key)
        if value is None and not required:
            return
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(f"{where}.{key}", f"must be an integer in {low}..{high}, got {_preview(value)}")

    def choice(self, row: dict[str, Any], key: str, where: str, choices: tuple[str, ...]) -> None:
        if row.get(key) not in choices:
            self.fail(f"{where}.{key}", f"must be one of {', '.join(choices)}, got {_preview(row.get(key))}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _preview(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_nul(value: Any) -> bool:
    """Whether any string (key or value) inside holds a NUL, which PostgreSQL text/jsonb refuse."""
    todo = [value]
    while todo:  # iterative: nesting depth is bounded by the JSON parser, not by this
        item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def _check_task(c: _Checker, task: Any, where: str) -> None:
    if not c.row(task, where, TASK_COLUMNS):
        return
    c.text(task, "task_id", where, required=True, min_len=1, max_len=200)
    if isinstance(task.get("task_id"), str) and _CONTROL.search(task["task_id"]):
        c.fail(f"{where}.task_id", "contains control characters")
    c.text(task, "title", where, max_len=2000)
    c.text(task, "agent", where, max_len=200)
    for key in ("description", "result", "error_message"):
        c.text(task, key, where)
    c.choice(task, "status", where, TASK_STATUSES)
    c.timestamp(task, "started_at", where, required=True)
    for key in ("finished_at", "created_at", "updated_at"):
        c.timestamp(task, key, where)
    c.json_object(task, "metadata", where)
    c.uuid(task, "owner_id", where, required=False)
    started, finished = parse_timestamp(task.get("started_at")), parse_timestamp(task.get("finished_at"))
    if task.get("status") in ("success", "failed", "interrupted") and task.get("finished_at") is None:
        c.fail(f"{where}.finished_at", f"is required when status is {task['status']}")
    if started and finished and finished < started:
        c.fail(f"{where}.finished_at", "is before started_at")


def _check_step(c: _Checker, step: Any, where: str, task_id: Any) -> None:
    if not c.row(step, where, STEP_COLUMNS):
        return
    c.uuid(step, "id", where)
    if step.get("task_id") != task_id:
        c.fail(f"{where}.task_id", f"must be the task's id {_preview(task_id)}, got {_preview(step.get('task_id'))}")
    c.integer(step, "step_number", where, 1, _INT4_MAX, required=True)
    c.choice(step, "step_type", where, STEP_TYPES)
    c.json_object(step, "step_data", where)
    c.json_value(step, "action_result", where)
    c.json_object(step, "metadata", where)
    for key in ("thinking", "error_type", "error_message", "stack_trace"):
        c.text(step, key, where)
    path = step.get("screenshot_path")
    if path is not None and not is_safe_storage_path(path):
        c.fail(f"{where}.screenshot_path", f"is not a safe relative object key: {_preview(path)}")
    duration = step.get("duration_ms")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)
                                 or not math.isfinite(duration) or duration < 0):
        c.fail(f"{where}.duration_ms", f"must be a number >= 0, got {_preview(duration)}")
    c.boolean(step, "success", where)
    c.timestamp(step, "started_at", where)
    c.timestamp(step, "created_at", where)


def _check_screenshot(c: _Checker, shot: Any, where: str, task_id: Any, step_ids: set[str]) -> None:
    if not c.row(shot, where, SCREENSHOT_COLUMNS):
        return
    c.uuid(shot, "id", where)
    c.uuid(shot, "step_id", where)
    if shot.get("task_id") != task_id:
        c.fail(f"{where}.task_id", f"must be the task's id {_preview(task_id)}, got {_preview(shot.get('task_id'))}")
    if isinstance(shot.get("step_id"), str) and shot["step_id"] not in step_ids:
        c.fail(f"{where}.step_id", f"refers to no step of this task: {shot['step_id']}")
    if not is_safe_storage_path(shot.get("storage_path")):
        c.fail(f"{where}.storage_path", f"is not a safe relative object key: {_preview(shot.get('storage_path'))}")
    c.integer(shot, "file_size", where, 0, 2**63 - 1, required=True)
    if not isinstance(shot.get("file_hash"), str) or not _HEX64.match(shot["file_hash"]):
        c.fail(f"{where}.file_hash", f"must be 64 lowercase hex digits, got {_preview(shot.get('file_hash'))}")
    c.boolean(shot, "compressed", where)
    c.json_object(shot, "metadata", where)
    c.timestamp(shot, "created_at", where)


def validate_bundle(raw: Any, where: str, errors: list[str], nul_possible: bool = True) -> TaskBundle | None:
    """Check one ``{"task", "steps", "screenshots"}`` object; problems go to ``errors``."""
    c = _Checker(errors, nul_possible)
    before = len(errors)
    if not isinstance(raw, dict):
        c.fail(where, f"must be an object, got {_kind(raw)}")
        return None
    unknown = sorted(set(raw) - {"task", "steps", "screenshots", "stepsdk_export"})
    if unknown:
        c.fail(where, f"unknown key(s) {', '.join(map(repr, unknown))}")
    task, steps, shots = raw.get("task"), raw.get("steps", []), raw.get("screenshots", [])
    _check_task(c, task, f"{where}.task")
    task_id = task.get("task_id") if isinstance(task, dict) else None
    if not isinstance(steps, list):
        c.fail(f"{where}.steps", f"must be an array, got {_kind(steps)}")
        steps = []
    if not isinstance(shots, list):
        c.fail(f"{where}.screenshots", f"must be an array, got {_kind(shots)}")
        shots = []
    for i, step in enumerate(steps):
        _check_step(c, step, f"{where}.steps[{i}]", task_id)
    _check_unique(c, steps, "id", f"{where}.steps")
    _check_unique(c, steps, "step_number", f"{where}.steps")
    step_ids = {s["id"] for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)}
    for i, shot in enumerate(shots):
        _check_screenshot(c, shot, f"{where}.screenshots[{i}]", task_id, step_ids)
    _check_unique(c, shots, "id", f"{where}.screenshots")
    if len(errors) > before:
        return None
    return TaskBundle(task, steps, shots)


def _check_unique(c: _Checker, rows: list[Any], key: str, where: str) -> None:
    seen: set[Any] = set()
    for row in rows:
        value = row.get(key) if isinstance(row, dict) else None
        if value is None or isinstance(value, dict | list):
            continue
        if value in seen:
            c.fail(where, f"duplicate {key} {_preview(value)}")
        seen.add(value)


# --------------------------------------------------------------------------- loading an export


@dataclass
class LoadedExport:
    """A validated export: the bundles and, from a zip, the images by storage path."""

    bundles: list[TaskBundle]
    images: dict[str, bytes] = field(default_factory=dict)
    missing_images: list[str] = field(default_factory=list)
    kind: str = "json"


def _strict_json(text: str, where: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise ExportFormatError([f"{where}: duplicate key {key!r}"])
            obj[key] = value
        return obj

    def no_constant(name: str) -> Any:
        raise ExportFormatError([f"{where}: {name} is not valid JSON"])

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):  # 1e999 parses as inf, which jsonb refuses
            raise ExportFormatError([f"{where}: number {number[:40]} is out of range"])
        return value

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant, parse_float=finite)
    except json.JSONDecodeError as exc:
        raise ExportFormatError([f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]) from None
    except RecursionError:
        raise ExportFormatError([f"{where}: nested too deeply"]) from None


def _check_version(obj: dict[str, Any], where: str) -> None:
    version = obj.get("stepsdk_export")
    if "stepsdk_export" not in obj:
        raise ExportFormatError([f"{where}: not a stepsdk export (no \"stepsdk_export\" version field)"])
    if type(version) is not int or version != EXPORT_VERSION:
        raise ExportFormatError([f"{where}: unsupported export version {_preview(version)} "
                                 f"(this stepsdk reads version {EXPORT_VERSION})"])


def parse_data(text: str, name: str, limits: Limits = Limits()) -> list[TaskBundle]:
    """Parse and validate an export data file (JSON envelope or JSONL)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ExportFormatError([f"{name}: the file is empty"])
    if not stripped.startswith("{"):
        hint = " (CSV exports cannot be imported: export with --format json or jsonl)" \
            if stripped.startswith("task_id,") else ""
        raise ExportFormatError([f"{name}: not a stepsdk export (expected a JSON object){hint}"])
    first_line = stripped.split("\n", 1)[0]
    raws: list[tuple[str, Any]]
    try:
        whole = json.loads(first_line)
        is_jsonl = isinstance(whole, dict) and "task" in whole
    except (json.JSONDecodeError, RecursionError):
        is_jsonl = False
    if is_jsonl:
        raws = []
        for number, line in enumerate(stripped.split("\n"), start=1):
            if line.strip():
                where = f"{name} line {number}"
                obj = _strict_json(line, where)
                if not isinstance(obj, dict):
                    raise ExportFormatError([f"{where}: must be an object, got {_kind(obj)}"])
                _check_version(obj, where)
                raws.append((where, obj))
    else:
        obj = _strict_json(stripped, name)
        if not isinstance(obj, dict):
            raise ExportFormatError([f"{name}: must be an object, got {_kind(obj)}"])
        _check_version(obj, name)
        if not isinstance(obj.get("tasks"), list):
            raise ExportFormatError([f"{name}: \"tasks\" must be an array, got {_kind(obj.get('tasks'))}"])
        raws = [(f"{name} tasks[{i}]", raw) for i, raw in enumerate(obj["tasks"])]
    return _validate_all(raws, limits, nul_possible="\\u0000" in text)


def _validate_all(raws: list[tuple[str, Any]], limits: Limits, nul_possible: bool = True) -> list[TaskBundle]:
    errors: list[str] = []
    bundles = [b for where, raw in raws if (b := validate_bundle(raw, where, errors, nul_possible)) is not None]
    seen: set[str] = set()
    for bundle in bundles:
        if bundle.task_id in seen:
            errors.append(f"task {bundle.task_id!r} appears more than once")
        seen.add(bundle.task_id)
    step_ids = [s["id"] for b in bundles for s in b.steps]
    if len(set(step_ids)) != len(step_ids):
        errors.append("a step id appears in more than one task")
    if errors:
        raise ExportFormatError(errors, limits.max_errors_shown)
    return bundles


def load_export(path: Path, limits: Limits = Limits()) -> LoadedExport:
    """Read and fully validate an export file (JSON, JSONL or zip). Raises ExportFormatError
    for invalid content and OSError for unreadable files."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _load_zip(path, limits)
    size = path.stat().st_size
    if size > limits.max_data_bytes:
        raise ExportFormatError([f"{path.name}: {size} bytes is more than the {limits.max_data_bytes} accepted"])
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportFormatError([f"{path.name}: not UTF-8 text (byte {exc.start}); is it an export?"]) from None
    return LoadedExport(parse_data(text, path.name, limits), kind="jsonl" if path.suffix == ".jsonl" else "json")


def check_zip_entry_name(name: str) -> str | None:
    """Why a zip entry name is refused (path traversal, absolute, odd), or None when fine."""
    if not name or "\x00" in name or _CONTROL.search(name):
        return "empty name or control characters"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        return "absolute path or backslash"
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "'..', '.' or empty path segment"
    return None


def _load_zip(path: Path, limits: Limits) -> LoadedExport:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ExportFormatError([f"{path.name}: not a readable zip ({exc})"]) from None
    with zf:
        infos = _check_zip_entries(zf, path.name, limits)
        manifest = _zip_manifest(zf, infos, path.name, limits)
        data_name = manifest["data"]
        text = _read_entry(zf, infos[data_name], limits.max_data_bytes, path.name).decode("utf-8", "replace")
        bundles = parse_data(text, f"{path.name}:{data_name}", limits)
        images = _zip_images(zf, infos, manifest, path.name, limits)
    referenced = storage_paths(bundles)
    declared_missing = set(manifest["missing_screenshots"])
    absent = [p for p in referenced if p not in images and p not in declared_missing]
    if absent:
        raise ExportFormatError([f"{path.name}: screenshot {p} is referenced but not in the zip" for p in absent])
    _check_image_rows(bundles, images, path.name)
    return LoadedExport(bundles, images, [p for p in referenced if p not in images], kind="zip")


def _check_zip_entries(zf: zipfile.ZipFile, name: str, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ExportFormatError([f"{name}: {len(infos)} entries is more than the {limits.max_entries} accepted"])
    errors: list[str] = []
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        why = check_zip_entry_name(info.filename)
        mode = info.external_attr >> 16
        if why is None and stat.S_ISLNK(mode):
            why = "symbolic link"
        if why is None and info.filename in by_name:
            why = "duplicate entry"
        if why is None and info.flag_bits & 0x1:
            why = "encrypted entry"
        if why:
            errors.append(f"{name}: entry {info.filename!r} refused ({why})")
            continue
        total += info.file_size
        limit = limits.max_image_bytes if info.filename.startswith(SCREENSHOT_DIR) else limits.max_data_bytes
        if info.file_size > limit:
            errors.append(f"{name}: entry {info.filename!r} is {info.file_size} bytes uncompressed, more than {limit}")
        by_name[info.filename] = info
    if total > limits.max_total_bytes:
        errors.append(f"{name}: {total} bytes uncompressed in all, more than {limits.max_total_bytes}")
    if errors:
        raise ExportFormatError(errors, limits.max_errors_shown)
    return by_name


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, name: str) -> bytes:
    """Read at most ``limit`` bytes: the header's sizes are not trusted."""
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ExportFormatError([f"{name}: entry {info.filename!r} cannot be read ({exc})"]) from None
    if len(data) > limit:
        raise ExportFormatError([f"{name}: entry {info.filename!r} is larger than {limit} bytes"])
    return data


def _zip_manifest(zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], name: str,
                  limits: Limits) -> dict[str, Any]:
    if MANIFEST not in infos:
        raise ExportFormatError([f"{name}: no {MANIFEST}: not a stepsdk export zip"])
    where = f"{name}:{MANIFEST}"
    raw = _read_entry(zf, infos[MANIFEST], limits.max_data_bytes, name)
    manifest = _strict_json(raw.decode("utf-8", "replace"), where)
    if not isinstance(manifest, dict):
        raise ExportFormatError([f"{where}: must be an object"])
    _check_version(manifest, where)
    problems = []
    data = manifest.get("data")
    if not isinstance(data, str) or data not in DATA_FILES.values() or data not in infos:
        problems.append(f"{where}: \"data\" must name the data file in the zip, got {_preview(manifest.get('data'))}")
    elif manifest["data"] == DATA_FILES["csv"]:
        problems.append(f"{where}: CSV exports cannot be imported: export with --format json or jsonl")
    shots = manifest.get("screenshots")
    if not isinstance(shots, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in shots.values()
    ):
        problems.append(f"{where}: \"screenshots\" must map storage paths to {{size, sha256}}")
    missing = manifest.get("missing_screenshots", [])
    if not isinstance(missing, list) or not all(isinstance(p, str) for p in missing):
        problems.append(f"{where}: \"missing_screenshots\" must be an array of storage paths")
    if problems:
        raise ExportFormatError(problems)
    allowed = {MANIFEST, manifest["data"]} | {SCREENSHOT_DIR + p for p in shots}
    extra = sorted(n for n in infos if n not in allowed and not (n.endswith("/") and infos[n].file_size == 0))
    if extra:
        raise ExportFormatError([f"{name}: unexpected entry {n!r} (not listed in the manifest)" for n in extra])
    manifest.setdefault("missing_screenshots", [])
    return manifest


def _zip_images(zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], manifest: dict[str, Any],
                name: str, limits: Limits) -> dict[str, bytes]:
    images: dict[str, bytes] = {}
    errors: list[str] = []
    for storage_path, meta in manifest["screenshots"].items():
        entry = SCREENSHOT_DIR + storage_path
        if not is_safe_storage_path(storage_path) or entry not in infos:
            errors.append(f"{name}: manifest screenshot {storage_path!r} is not a safe path present in the zip")
            continue
        data = _read_entry(zf, infos[entry], limits.max_image_bytes, name)
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            errors.append(f"{name}: {entry} does not match its sha256 in the manifest (corrupt or altered)")
            continue
        problem = image_problem(data)
        if problem:
            errors.append(f"{name}: {entry} {problem}")
            continue
        images[storage_path] = data
    if errors:
        raise ExportFormatError(errors, limits.max_errors_shown)
    return images


def image_problem(data: bytes) -> str | None:
    """Why these bytes are not a WebP/PNG/JPEG screenshot (checked with Pillow), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.verify()
    except Exception as exc:  # Pillow raises many types for broken images
        return f"is not a readable image ({type(exc).__name__})"
    if fmt not in ("WEBP", "PNG", "JPEG"):
        return f"is a {fmt} image; screenshots are WebP, PNG or JPEG"
    return None


def _check_image_rows(bundles: list[TaskBundle], images: dict[str, bytes], name: str) -> None:
    errors = []
    for bundle in bundles:
        for shot in bundle.screenshots:
            data = images.get(shot["storage_path"])
            if data is None:
                continue
            if hashlib.sha256(data).hexdigest() != shot["file_hash"] or len(data) != shot["file_size"]:
                errors.append(f"{name}: screenshot row {shot['id']} does not match the image "
                              f"{shot['storage_path']} (file_hash/file_size differ)")
    if errors:
        raise ExportFormatError(errors)


# --------------------------------------------------------------------------- importing into the backup

_STEP_DEFAULTS: dict[str, Any] = {"step_data": {}, "metadata": {}, "success": True}
_SHOT_DEFAULTS: dict[str, Any] = {"compressed": True, "metadata": {}}


@dataclass
class ImportReport:
    tasks: int = 0
    steps: int = 0
    screenshots: int = 0
    images: int = 0
    journal: str = ""


def _complete(row: dict[str, Any], columns: tuple[str, ...], defaults: dict[str, Any], now: str) -> dict[str, Any]:
    """Every column present (backup step rows always carry all), defaults for the NOT NULL ones."""
    full = {c: row[c] if c in row else defaults.get(c) for c in columns}
    if full.get("created_at") is None:
        full["created_at"] = now
    return full


_JSON_COLUMNS = ("step_data", "action_result", "metadata")
_TEXT_COLUMNS = ("title", "description", "result", "error_message", "thinking", "error_type", "stack_trace")


def sanitize_bundles(bundles: list[TaskBundle], secrets: tuple[str, ...] = ()) -> int:
    """Apply the recorder's own sanitizer (secret keys, JWTs, bearer tokens and ``secrets`` →
    "[REDACTED]"; FULL-level size limits) to imported rows, in place: a file made elsewhere
    must not carry into the backup what the SDK would never have written. Returns how many
    rows changed."""
    from stepsdk._config import LEVEL_LIMITS
    from stepsdk._model import Level
    from stepsdk._sanitize import Sanitizer

    sanitizer = Sanitizer(LEVEL_LIMITS[Level.FULL], secrets)
    changed = 0
    for bundle in bundles:
        for row in [bundle.task, *bundle.steps, *bundle.screenshots]:
            before = dict(row)
            for key in _JSON_COLUMNS:
                if row.get(key) is not None:
                    row[key] = sanitizer.object_field(row[key]) if key == "metadata" else sanitizer.field(row[key])
            for key in _TEXT_COLUMNS:
                if row.get(key) is not None:
                    row[key] = sanitizer.text(row[key])
            changed += row != before
    return changed


def import_into_backup(loaded: LoadedExport, root: Path) -> ImportReport:
    """Write a validated export into the backup folder as one new journal, atomically.

    Images go first (content-addressed, each written atomically); then the whole journal is
    written to a temp file and renamed into ``journal/``: a crash leaves either every record or
    none (at worst some unreferenced images). Tasks get a fresh version so they win over older
    copies and are pending for ``stepsdk resync``.
    """
    from stepsdk import _backup

    bad = [p for p in storage_paths(loaded.bundles) if not _backup.STORAGE_PATH_RE.match(p)]
    if bad:
        raise ExportFormatError([f"screenshot path {p!r} is not a content-addressed key "
                                 "(<sha256[0:2]>/<sha256>.webp)" for p in bad])
    root = Path(root)
    report = ImportReport()
    for storage_path, data in loaded.images.items():
        _backup.write_screenshot(root, storage_path, data)
        report.images += 1
    name = _backup.new_writer_name("i")
    now = _backup.now_iso()
    version = time.time_ns()
    records: list[dict[str, Any]] = [{"k": _backup.KIND_OPEN, "format": _backup.FORMAT_VERSION, "writer": name,
                                      "host": socket.gethostname(), "pid": os.getpid(), "at": now}]
    for bundle in loaded.bundles:
        task = dict(bundle.task)
        task.setdefault("metadata", {})
        records.append({"k": _backup.KIND_TASK, "v": version, "row": task})
        records += [{"k": _backup.KIND_STEP, "row": _complete(s, STEP_COLUMNS, _STEP_DEFAULTS, now)}
                    for s in bundle.steps]
        records += [{"k": _backup.KIND_SHOT, "row": _complete(r, SCREENSHOT_COLUMNS, _SHOT_DEFAULTS, now)}
                    for r in bundle.screenshots]
        report.tasks += 1
        report.steps += len(bundle.steps)
        report.screenshots += len(bundle.screenshots)
    records.append({"k": _backup.KIND_CLOSE, "at": now})
    journal = root / _backup.JOURNAL_DIR / f"{name}{_backup.SUFFIX}"
    journal.parent.mkdir(parents=True, exist_ok=True)

    def build(fh: IO[bytes]) -> None:
        for record in records:
            fh.write(_backup.encode_record(record))
        fh.flush()
        os.fsync(fh.fileno())

    write_atomically(journal, build)
    report.journal = str(journal)
    return report

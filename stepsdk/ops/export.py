"""Export of recorded tasks (the logic behind ``stepsdk export``; the format is described in
:mod:`stepsdk.store.export_format`).

Exports stream: task rows are selected first, then steps and screenshot rows are read 50 tasks
at a time (keyset pages on Supabase) and written as they come, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from stepsdk.schema import BUCKET
from stepsdk.store.csv_cells import write_rows
from stepsdk.store.export_format import (
    DATA_FILES,
    EXPORT_VERSION,
    MANIFEST,
    SCREENSHOT_DIR,
    STEP_COLUMNS,
    TASK_COLUMNS,
    TaskBundle,
    is_safe_screenshot_path,
    parse_timestamp,
    screenshot_paths,
    write_atomically,
)

log = logging.getLogger("stepsdk.export")


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

    def screenshot(self, screenshot_path: str) -> bytes | None: ...


def sort_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first (by the instant, whatever the offset), then by id: a stable export order."""
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(
        tasks, key=lambda t: (parse_timestamp(t.get("started_at")) or oldest, str(t.get("task_id")))
    )


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
    """Reads through the backup's index (``stepsdk.store.index.BackupIndex``): one task's rows at a
    time instead of the whole folder in memory. A folder where the index cannot be written
    (read-only media) is read with ``BackupStore(path).read()`` instead."""

    label = "backup"

    def __init__(self, path: Path) -> None:
        from stepsdk.store.backup import BackupSnapshot, BackupStore
        from stepsdk.store.index import BackupIndex

        self.store = BackupStore(path)
        self.index: BackupIndex | None = BackupIndex(path)
        self.snap: BackupSnapshot | None = None
        self.problems: list[str] = []

    def tasks(self, flt: TaskFilter) -> list[dict[str, Any]]:
        import sqlite3

        if self.index is not None and self.store.path.is_dir():
            try:
                rows = self.index.tasks()
                self.problems = self.index.problems()
                return sort_tasks([t for t in rows if flt.matches(t)])
            except (sqlite3.Error, OSError) as exc:
                log.warning("export: cannot use the backup index (%s): reading the journals", exc)
        self.index = None
        self.snap = self.store.read()
        self.problems = [str(p) for p in self.snap.problems]
        return sort_tasks([dict(t) for t in self.snap.tasks.values() if flt.matches(t)])

    def fill(self, tasks: list[dict[str, Any]]) -> list[TaskBundle]:
        if self.index is not None:
            index = self.index
            return [
                TaskBundle(
                    task, index.steps(task["task_id"]), index.screenshots(task["task_id"])
                ).normalized()
                for task in tasks
            ]
        assert self.snap is not None, "tasks() first"
        snap = self.snap
        return [
            TaskBundle(
                task,
                [dict(s) for s in snap.steps.get(task["task_id"], [])],
                [dict(r) for r in snap.screenshots.get(task["task_id"], [])],
            ).normalized()
            for task in tasks
        ]

    def screenshot(self, screenshot_path: str) -> bytes | None:
        path = self.store.screenshot_file(screenshot_path)
        return path.read_bytes() if path is not None else None


class SupabaseExportSource:
    """Reads with the official client; keyset pagination on the primary key, so no result cap
    (Supabase's ``db-max-rows``, 1000 by default) can cut a table short."""

    label = "supabase"
    ID_CHUNK = 50  # task ids per ``in.(...)`` filter: keeps URLs short

    def __init__(self, client: Any, bucket: str = BUCKET, page_size: int = 1000) -> None:
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
        return [
            TaskBundle(t, steps.get(t["task_id"], []), shots.get(t["task_id"], [])).normalized()
            for t in tasks
        ]

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
            rows += [_without_internal(r) for r in page]
            last = page[-1][key]

    @retry(
        retry=retry_if_exception_type(httpx.TransportError),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    def screenshot(self, screenshot_path: str) -> bytes | None:
        """The object's bytes, None when it is not in the bucket; network blips are retried."""
        from storage3.exceptions import StorageApiError

        try:
            return bytes(self.client.storage.from_(self.bucket).download(screenshot_path))
        except StorageApiError as exc:
            if str(exc.status) == "404" or exc.code in ("not_found", "NoSuchKey"):
                return None
            raise


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------- writing


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))


def write_json(bundles: Iterable[TaskBundle], out: IO[str], source: str) -> None:
    """The envelope with one task per line: readable, and compact dumps use the C encoder
    (``json.dump(indent=...)`` is pure Python, about 6x slower)."""
    head = {"stepsdk_export": EXPORT_VERSION, "exported_at": datetime.now(UTC).isoformat(), "source": source}
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
    gets a leading ``'`` (see :mod:`stepsdk.store.csv_cells`): step data comes from agents and web pages."""
    del source
    write_rows(out, csv_columns(), _csv_rows(bundles))


def _csv_rows(bundles: Iterable[TaskBundle]) -> Iterator[list[Any]]:
    for bundle in bundles:
        task_cells = [bundle.task.get(c) for c in TASK_COLUMNS if c != "task_id"]
        shots_per_step = Counter(str(shot.get("step_id")) for shot in bundle.screenshots)
        for step in bundle.steps or [None]:
            if step is None:  # keep tasks without steps visible
                yield [bundle.task_id, *task_cells] + [None] * (len(STEP_COLUMNS) - 1) + [0]
                continue
            step_cells = [step.get(c) for c in STEP_COLUMNS if c not in ("id", "task_id")]
            count = shots_per_step[str(step.get("id"))]
            yield [bundle.task_id, *task_cells, step.get("id"), *step_cells, count]


WRITERS: dict[str, Callable[[Iterable[TaskBundle], IO[str], str], None]] = {
    "json": write_json,
    "jsonl": write_jsonl,
    "csv": write_csv,
}


@dataclass
class ZipReport:
    images: int = 0
    image_bytes: int = 0
    missing: list[str] = field(default_factory=list)


def write_zip(
    target: Path,
    fmt: str,
    bundles: Iterable[TaskBundle],
    source: str,
    fetch: Callable[[str], bytes | None],
    advance: Callable[[int], None] = lambda n: None,
) -> ZipReport:
    """The data file (streamed), then ``screenshots/<screenshot_path>`` for every image it refers
    to, then ``manifest.json``; written to a temp file and renamed (atomic)."""
    report = ZipReport()
    images: dict[str, dict[str, Any]] = {}
    paths: dict[str, None] = {}

    def remember(stream: Iterable[TaskBundle]) -> Iterator[TaskBundle]:
        for bundle in stream:
            paths.update(dict.fromkeys(screenshot_paths([bundle])))
            yield bundle

    def build(tmp: IO[bytes]) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            with zf.open(DATA_FILES[fmt], "w", force_zip64=True) as raw:  # size unknown: may pass 2 GiB
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                WRITERS[fmt](remember(bundles), text, source)
                text.flush()
                text.detach()
            for path in paths:
                data = fetch(path) if is_safe_screenshot_path(path) else None
                advance(1)
                if data is None:
                    report.missing.append(path)
                    continue
                # WebP is already compressed: store it as is.
                zf.writestr(SCREENSHOT_DIR + path, data, compress_type=zipfile.ZIP_STORED)
                images[path] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                report.images += 1
                report.image_bytes += len(data)
            manifest = {
                "stepsdk_export": EXPORT_VERSION,
                "data": DATA_FILES[fmt],
                "format": fmt,
                "screenshots": images,
                "missing_screenshots": report.missing,
            }
            zf.writestr(MANIFEST, json.dumps(manifest, indent=1))

    write_atomically(target, build)
    return report


INTERNAL_COLUMNS = ("row_version",)  # the database's bookkeeping, not part of the export format


def _without_internal(row: dict[str, Any]) -> dict[str, Any]:
    for col in INTERNAL_COLUMNS:
        row.pop(col, None)
    return row

"""The one upload algorithm, used by the live upload stage and by `stepsdk resync`.

One call uploads a batch of records in foreign-key order: task rows, then the screenshot objects
the batch needs, then step rows, then screenshot rows. Each table's part is one upsert; when the
server refuses it, the part is split in halves until the refused row is alone (it is set aside
with the server's error, its neighbours go on). Every confirmed part is acknowledged at once
through `Journal.ack` and its records are marked `done`, so when a later part fails and the
batch is tried again nothing is uploaded, rejected or counted twice.

Versions: each record has a `version`; the row is sent with `row_version` (the database keeps
the newest, see the row-versions migration) and only the newest version of a key in a batch is
sent (older ones ride along and are acknowledged with it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from stepsdk.backend.retry import ErrorClass, RetryPolicy, classify, describe, one_line
from stepsdk.backend.sink import Sink

log = logging.getLogger("stepsdk")

T_TASKS, T_STEPS, T_SHOTS, T_OBJECTS = "tasks", "task_steps", "step_screenshots", "objects"


@dataclasses.dataclass(slots=True, eq=False)
class Record:
    """One version of one row waiting for upload (`table` is tasks, task_steps or
    step_screenshots). `final`: False for a step row whose screenshot is still being encoded
    (a newer version will follow). `data`: the object bytes of a screenshot row when the backup
    copy could not be written."""

    table: str
    key: str
    row: dict[str, Any]
    version: int = 0
    final: bool = True
    data: bytes | None = None
    offset: int | None = None  # where the record starts in its journal (live stage only)
    since: float = 0.0  # when it became pending (live stage only)
    done: bool = False
    riders: list[Record] | None = None


class Unavailable(Exception):
    """The backend cannot take this batch now (transient errors exhausted, or a fatal setup
    problem): nothing was lost, what was confirmed is acknowledged, the rest stays pending."""


class Journal(Protocol):
    """Where acknowledgements and rejections are written (the uploader's journal)."""

    def ack(self, table: str, versions: dict[str, int]) -> None: ...

    def reject(self, table: str, key: str, error: dict[str, Any]) -> None: ...


@dataclasses.dataclass
class Counts:
    """What one uploader confirmed over its life (records, not distinct steps)."""

    uploaded: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys((T_TASKS, T_OBJECTS, T_STEPS, T_SHOTS), 0)
    )
    failed: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class Uploader:
    """Uploads batches of `Record`s through a `Sink` (see the module docstring).

    `policy` makes a RetryPolicy for each request (the live stage makes a probe a single
    attempt). `read_object(path)` returns an object's bytes from the backup, or None with the
    reason noted by the caller. `on_confirmed(records)` and `on_rejected(record, error)` let
    the live stage count; `on_retry(exc)` sees every retried failure.
    """

    def __init__(
        self,
        sink: Sink,
        journal: Journal,
        *,
        policy: Callable[[], RetryPolicy],
        read_object: Callable[[str], bytes | None],
        on_confirmed: Callable[[str, list[Record]], None] | None = None,
        on_rejected: Callable[[str, str, Record | None, dict[str, Any]], None] | None = None,
        on_retry: Callable[[BaseException], None] | None = None,
        objects_done: Callable[[str], bool] | None = None,
    ) -> None:
        self.sink = sink
        self.journal = journal
        self.policy = policy
        self.read_object = read_object
        self.on_confirmed = on_confirmed or (lambda table, records: None)
        self.on_rejected = on_rejected or (lambda table, key, record, error: None)
        self.on_retry = on_retry
        self.objects_done = objects_done or (lambda path: False)
        self.counts = Counts()
        self._uploaded_objects: OrderedDict[str, None] = OrderedDict()  # this uploader's, bounded

    # ------------------------------------------------------------------ one batch
    def upload(self, batch: list[Record], existing_tasks: frozenset[str] | set[str] = frozenset()) -> None:
        """Upload what is not done yet in `batch`, in foreign-key order. Raises `Unavailable`.
        Task rows go first, except those of `existing_tasks` (already stored): a new version of
        those (a finish) goes last, so the task never says "success" ahead of its steps."""
        todo = [r for r in batch if not r.done]
        tasks = _newest([r for r in todo if r.table == T_TASKS])
        self._rows(T_TASKS, [r for r in tasks if r.key not in existing_tasks])
        shots = [r for r in todo if r.table == T_SHOTS]
        self._objects(shots, [r for r in todo if r.table == T_STEPS])
        self._rows(T_STEPS, _newest([r for r in todo if r.table == T_STEPS]))
        self._rows(T_SHOTS, _newest(shots))
        self._rows(T_TASKS, [r for r in tasks if r.key in existing_tasks])

    def _rows(self, table: str, records: list[Record]) -> None:
        records = [r for r in records if not r.done]
        if not records:
            return
        rows = [{**r.row, "row_version": r.version} for r in records]
        try:
            self._call(lambda: self.sink.upsert(table, rows))
        except _Rejected as exc:
            if len(records) == 1:
                self._reject(table, records[0].key, records[0], describe(exc.cause))
                _mark_done(records)
                return
            mid = len(records) // 2
            self._rows(table, records[:mid])
            self._rows(table, records[mid:])
            return
        self.journal.ack(table, {r.key: r.version for r in records})
        self.counts.uploaded[table] += len(records)
        _mark_done(records)
        self.on_confirmed(table, records)

    def _objects(self, shots: list[Record], steps: list[Record]) -> None:
        paths: dict[str, tuple[int, bytes | None]] = {}
        for r in shots:
            path = r.row.get("screenshot_path")
            if isinstance(path, str):
                paths[path] = (
                    max(r.version, paths.get(path, (0, None))[0]),
                    r.data or paths.get(path, (0, None))[1],
                )
        for r in steps:
            path = r.row.get("screenshot_path")
            if isinstance(path, str) and path not in paths:
                paths[path] = (r.version, None)
        self.upload_objects(paths)

    def upload_objects(self, paths: dict[str, tuple[int, bytes | None]]) -> None:
        """Upload objects (path -> (version, bytes or None to read from the backup)) not
        uploaded yet; each is acknowledged with the version of the row that needs it."""
        for path, (version, data) in paths.items():
            if path in self._uploaded_objects or self.objects_done(path):
                continue
            if data is None:
                data = self.read_object(path)
                if data is None:
                    continue  # the caller noted why; the rows still go (the viewer shows a placeholder)
            try:
                self._call(lambda p=path, d=data: self.sink.upload_object(p, d))
            except _Rejected as exc:  # e.g. too large: the rows go on without it
                self._reject(T_OBJECTS, path, None, describe(exc.cause))
                continue
            self.journal.ack(T_OBJECTS, {path: version})
            self.counts.uploaded[T_OBJECTS] += 1
            self._uploaded_objects[path] = None
            if len(self._uploaded_objects) > 10_000:
                self._uploaded_objects.popitem(last=False)

    def _reject(self, table: str, key: str, record: Record | None, error: dict[str, Any]) -> None:
        log.error(
            "stepsdk: Supabase refused %s %s: %s: %s (kept in the backup; see `stepsdk status`)",
            table,
            key,
            error.get("code"),
            error.get("message"),
        )
        self.journal.reject(table, key, error)
        self.counts.failed.append({"table": table, "id": key, "error": error})
        self.on_rejected(table, key, record, error)

    def _call(self, fn: Callable[[], Any]) -> None:
        try:
            self.policy().call(fn, self.on_retry)
        except Exception as exc:
            kind = classify(exc)
            if kind is ErrorClass.REJECTED:
                raise _Rejected(exc) from exc
            raise Unavailable(f"{kind.value} error: {one_line(exc)}") from exc


class _Rejected(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _newest(records: list[Record]) -> list[Record]:
    """One record per key, the newest version (older ones ride along and are done with it):
    one upsert cannot touch a row twice, and an older version must never overwrite a newer."""
    newest: dict[str, Record] = {}
    for r in records:
        r.riders = None  # a retried batch groups again from scratch
    for r in records:
        cur = newest.get(r.key)
        if cur is None:
            newest[r.key] = r
            continue
        old, new = (cur, r) if r.version >= cur.version else (r, cur)
        new.riders = [*(new.riders or ()), old, *(old.riders or ())]
        old.riders = None
        newest[r.key] = new
    return list(newest.values())


def _mark_done(records: list[Record]) -> None:
    for r in records:
        r.done = True
        for rider in r.riders or ():
            rider.done = True

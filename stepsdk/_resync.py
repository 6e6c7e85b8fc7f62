"""Upload everything pending in a backup folder, exactly once (idempotent upserts + acks).

Order: task rows, screenshot objects, step rows, screenshot rows (objects before the rows that
point at them, steps before the screenshot rows that reference them). An ack is appended to
this run's own journal after each confirmed batch, so a crash mid-resync loses nothing and the
next run only re-sends what was not confirmed (idempotently).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepsdk._backup import (
    KIND_ACK,
    KIND_REJECT,
    T_OBJECTS,
    T_SHOTS,
    T_STEPS,
    T_TASKS,
    BackupSnapshot,
    BackupStore,
    JournalWriter,
    new_writer_name,
    now_iso,
)
from stepsdk._config import Config
from stepsdk._retry import ErrorClass, RetryPolicy, classify, describe, one_line

log = logging.getLogger("stepsdk.resync")

Progress = Callable[[str, int], None]  # (stage, items done in this call)


class ResyncError(Exception):
    """Resync cannot run at all (no key, backend unreachable, bad folder). Message is safe to print."""


@dataclasses.dataclass
class ResyncReport:
    uploaded: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(_TABLES, 0))
    skipped: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(_TABLES, 0))
    failed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    quarantined: int = 0
    archived: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    remaining: dict[str, int] = dataclasses.field(default_factory=dict)
    dry_run: bool = False
    aborted: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.aborted and not any(self.remaining.values())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}


_TABLES = (T_TASKS, T_OBJECTS, T_STEPS, T_SHOTS)


def pending_counts(snap: BackupSnapshot) -> dict[str, int]:
    return {T_TASKS: len(snap.pending_tasks()), T_OBJECTS: len(snap.pending_objects()),
            T_STEPS: len(snap.pending_steps()), T_SHOTS: len(snap.pending_screenshots())}


class Resync:
    """One resync run over one backup folder."""

    def __init__(self, backup_dir: str | Path, config: Config, batch_size: int = 200,
                 progress: Progress | None = None, sink: Any = None,
                 totals: Callable[[dict[str, int]], None] | None = None) -> None:
        self.store = BackupStore(backup_dir)
        self.config = config
        self.batch_size = batch_size
        self.progress = progress or (lambda stage, n: None)
        self.totals = totals or (lambda counts: None)
        self._sink = sink
        self._writer: JournalWriter | None = None
        self.report = ResyncReport()

    @property
    def writer(self) -> JournalWriter:
        if self._writer is None:
            self._writer = JournalWriter(self.store.path, new_writer_name("r"))
        return self._writer

    @property
    def sink(self) -> Any:
        if self._sink is None:
            from stepsdk._supabase_sink import SupabaseSink

            self._sink = SupabaseSink(self.config)
        return self._sink

    def check_backend(self) -> None:
        """Raise ResyncError with a printable reason when the backend cannot be used."""
        if not self.config.remote:
            raise ResyncError("Supabase is not configured: set SUPABASE_URL and SUPABASE_SECRET_KEY "
                              "(or SUPABASE_SERVICE_ROLE_KEY)")
        try:
            RetryPolicy(min(3.0, self.config.retry_max_time)).call(self.sink.probe)
        except Exception as exc:
            raise ResyncError(f"Supabase at {self.config.supabase_url} is not usable: {one_line(exc)}") from None

    def run(self, dry_run: bool = False) -> ResyncReport:
        path = self.store.path
        if path.exists() and not path.is_dir():
            raise ResyncError(f"backup folder {path} is not a folder")
        snap = self.store.read()
        self.report.dry_run = dry_run
        self.report.problems = list(snap.problems)
        if dry_run:
            self.report.remaining = pending_counts(snap)
            return self.report
        self.check_backend()
        self.totals(pending_counts(snap))
        try:
            self.report.quarantined = self.store.quarantine(snap, self.writer)
            self._tasks(snap)
            self._objects(snap)
            self._rows(T_STEPS, snap.pending_steps(), snap.step_versions)
            self._rows(T_SHOTS, snap.pending_screenshots())
        except _Abort as exc:
            self.report.aborted = str(exc)
        finally:
            self.close()
        after = self.store.read()
        self.report.archived = len(self.store.archive_done(after))
        # Archiving moves only journals whose every record is done: the counts do not change.
        self.report.remaining = pending_counts(after)
        return self.report

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._sink is not None and hasattr(self._sink, "close"):
            self._sink.close()

    # ------------------------------------------------------------------ stages
    def _tasks(self, snap: BackupSnapshot) -> None:
        rows = snap.pending_tasks()
        for batch in _chunks(rows, self.batch_size):
            ok = self._upsert_split(T_TASKS, batch, lambda r: r["task_id"])
            self._ack({"k": KIND_ACK, "t": T_TASKS, "v": {r["task_id"]: snap.task_versions[r["task_id"]] for r in ok},
                       "at": now_iso()})
            self.report.uploaded[T_TASKS] += len(ok)
            self.progress(T_TASKS, len(batch))

    def _objects(self, snap: BackupSnapshot) -> None:
        for path in snap.pending_objects():
            data = self._object_bytes(path)
            if data is not None:
                try:
                    self._call(lambda p=path, d=data: self.sink.upload_object(p, d))
                except _Rejected as exc:
                    self._fail(T_OBJECTS, path, describe(exc.cause))
                else:
                    self._ack({"k": KIND_ACK, "t": T_OBJECTS, "ids": [path], "at": now_iso()})
                    self.report.uploaded[T_OBJECTS] += 1
            self.progress(T_OBJECTS, 1)

    def _object_bytes(self, path: str) -> bytes | None:
        """The object's bytes from the backup; None (recorded as failed) when missing or unreadable."""
        file = self.store.screenshot_file(path)
        if file is None:
            self._fail(T_OBJECTS, path, {"code": "missing", "message": "screenshot file is missing from the backup"})
            return None
        try:
            return file.read_bytes()
        except OSError as exc:  # removed since listed, permissions, I/O error: the other stages go on
            self._fail(T_OBJECTS, path, {"code": "unreadable", "message": f"cannot read the screenshot file: {exc.strerror or exc}"})
            return None

    def _rows(self, table: str, rows: list[dict[str, Any]], versions: dict[str, int] | None = None) -> None:
        """Upsert rows in batches. `versions` (steps): a row in a version above 0 is sent even
        when its id is already stored (the stored one may be version 0, without the screenshot)."""
        versions = versions or {}
        for batch in _chunks(rows, self.batch_size):
            ids = [r["id"] for r in batch]
            try:
                present = self.sink.existing(table, ids)
            except Exception:  # only for the report: upsert is idempotent anyway
                present = set()
            present -= {i for i in ids if versions.get(i, 0) > 0}
            todo = [r for r in batch if r["id"] not in present]
            ok = self._upsert_split(table, todo, lambda r: r["id"]) if todo else []
            done = [r["id"] for r in ok] + sorted(present)
            if done:
                ack: dict[str, Any] = {"k": KIND_ACK, "t": table, "ids": done, "at": now_iso()}
                newer = {i: versions[i] for i in done if versions.get(i, 0) > 0}
                if newer:
                    ack["v"] = newer
                self._ack(ack)
            self.report.uploaded[table] += len(ok)
            self.report.skipped[table] += len(present)
            self.progress(table, len(batch))

    # ------------------------------------------------------------------ helpers
    def _call(self, fn: Callable[[], Any]) -> None:
        try:
            RetryPolicy(self.config.retry_max_time).call(fn)
        except Exception as exc:
            if classify(exc) is ErrorClass.REJECTED:
                raise _Rejected(exc) from exc
            raise _Abort(f"Supabase stopped answering ({one_line(exc)}); what was confirmed is marked "
                         "uploaded, run `stepsdk resync` again later") from None

    def _upsert_split(self, table: str, rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
        if not rows:
            return []
        try:
            self._call(lambda: self.sink.upsert(table, rows))
            return rows
        except _Rejected as exc:
            if len(rows) == 1:
                self._fail(table, key(rows[0]), describe(exc.cause))
                return []
        mid = len(rows) // 2
        return self._upsert_split(table, rows[:mid], key) + self._upsert_split(table, rows[mid:], key)

    def _fail(self, table: str, key: str, error: dict[str, Any]) -> None:
        self.report.failed.append({"table": table, "id": key, "error": error})
        self._ack({"k": KIND_REJECT, "t": table, "id": key, "error": error, "at": now_iso()})

    def _ack(self, record: dict[str, Any]) -> None:
        self.writer.append([record])


class _Abort(Exception):
    pass


class _Rejected(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _chunks(rows: list[Any], n: int) -> list[list[Any]]:
    return [rows[i:i + n] for i in range(0, len(rows), n)]


def resync(backup_dir: str | Path | None = None, config: Config | None = None, *, dry_run: bool = False,
           batch_size: int = 200, progress: Progress | None = None) -> ResyncReport:
    """Upload what is pending in `backup_dir` (default from the environment). Raises ResyncError
    when it cannot run at all; otherwise returns a report (see `ResyncReport.ok`)."""
    config = config or Config.resolve(backup_dir=backup_dir)
    folder = Path(backup_dir) if backup_dir is not None else config.backup_dir
    return Resync(folder, config, batch_size, progress).run(dry_run=dry_run)

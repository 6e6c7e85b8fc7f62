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

from stepsdk.backend.retry import RetryPolicy, key_rejected, one_line
from stepsdk.backend.uploader import Record, Unavailable, Uploader
from stepsdk.config import Config
from stepsdk.errors import BackendUnavailableError, ConfigurationError, ResyncError
from stepsdk.recording.abandoned import abandoned_tasks
from stepsdk.store.backup import (
    KIND_REJECT,
    KIND_TASK,
    T_OBJECTS,
    T_SHOTS,
    T_STEPS,
    T_TASKS,
    BackupSnapshot,
    BackupStore,
    JournalWriter,
    ack_record,
    new_writer_name,
    now_iso,
)

log = logging.getLogger("stepsdk.resync")

Progress = Callable[[str, int], None]  # (stage, items done in this call)


class ResyncNotConfigured(ResyncError, ConfigurationError):
    """Resync needs Supabase and none is configured."""


class ResyncBackendUnavailable(ResyncError, BackendUnavailableError):
    """The configured Supabase cannot be used (unreachable, or it refused the probe)."""


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
    abandoned: list[str] = dataclasses.field(default_factory=list)  # tasks marked interrupted

    @property
    def ok(self) -> bool:
        return not self.failed and not self.aborted and not any(self.remaining.values())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}


_TABLES = (T_TASKS, T_OBJECTS, T_STEPS, T_SHOTS)


def pending_counts(snap: BackupSnapshot) -> dict[str, int]:
    return {
        T_TASKS: len(snap.pending_tasks()),
        T_OBJECTS: len(snap.pending_objects()),
        T_STEPS: len(snap.pending_steps()),
        T_SHOTS: len(snap.pending_screenshots()),
    }


class Resync:
    """One resync run over one backup folder (uploads with `stepsdk.backend.uploader.Uploader`,
    the same algorithm as a live tracker)."""

    def __init__(
        self,
        backup_dir: str | Path,
        config: Config,
        batch_size: int = 200,
        progress: Progress | None = None,
        sink: Any = None,
        totals: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.store = BackupStore(backup_dir)
        self.config = config
        self.batch_size = batch_size
        self.progress = progress or (lambda stage, n: None)
        self.totals = totals or (lambda counts: None)
        self._sink = sink
        self._writer: JournalWriter | None = None
        self._missing: set[str] = set()
        self.report = ResyncReport()

    @property
    def writer(self) -> JournalWriter:
        if self._writer is None:
            self._writer = JournalWriter(self.store.path, new_writer_name("r"))
        return self._writer

    @property
    def sink(self) -> Any:
        if self._sink is None:
            from stepsdk.backend.supabase_sink import SupabaseSink

            self._sink = SupabaseSink(self.config)
        return self._sink

    def check_backend(self) -> None:
        """Raise ResyncError with a printable reason when the backend cannot be used."""
        if not self.config.remote and self._sink is None:
            raise ResyncNotConfigured(
                "Supabase is not configured: set SUPABASE_URL and SUPABASE_SECRET_KEY "
                "(or SUPABASE_SERVICE_ROLE_KEY)"
            )
        try:
            RetryPolicy(min(3.0, self.config.retry_max_time)).call(self.sink.probe)
        except Exception as exc:
            if key_rejected(exc):  # a wrong key is configuration (exit 78), not an outage
                raise ResyncNotConfigured(
                    f"Supabase at {self.config.supabase_url} rejected the key: {one_line(exc)}"
                ) from None
            raise ResyncBackendUnavailable(
                f"Supabase at {self.config.supabase_url} is not usable: {one_line(exc)}"
            ) from None

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
        self.report.abandoned = mark_abandoned(snap, self.writer)
        self.totals(pending_counts(snap))
        uploader = Uploader(
            self.sink,
            _Acks(self.writer),
            policy=lambda: RetryPolicy(self.config.retry_max_time),
            read_object=self._object_bytes,
            objects_done=lambda p: snap.acked_object_versions.get(p, -1) >= 0 and p not in self._needed,
        )
        self._needed = set(snap.pending_objects())
        try:
            self.report.quarantined = self.store.quarantine(snap, self.writer)
            for batch in _chunks(snap.pending_tasks(), self.batch_size):
                uploader.upload(
                    [
                        Record(T_TASKS, r["task_id"], r, version=snap.task_versions[r["task_id"]])
                        for r in batch
                    ]
                )
                self.progress(T_TASKS, len(batch))
            for path, version in sorted(snap.pending_object_versions().items()):
                uploader.upload_objects({path: (version, None)})
                self.progress(T_OBJECTS, 1)
            self._needed = set()
            self._rows(uploader, T_STEPS, snap.pending_steps(), snap.step_versions)
            self._rows(uploader, T_SHOTS, snap.pending_screenshots(), snap.shot_versions)
        except Unavailable as exc:
            self.report.aborted = (
                f"Supabase stopped answering ({str(exc).split(': ', 1)[-1]}); what was "
                "confirmed is marked uploaded, run `stepsdk resync` again later"
            )
        finally:
            for table, n in uploader.counts.uploaded.items():
                self.report.uploaded[table] += n
            self.report.failed.extend(uploader.counts.failed)
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
    def _rows(
        self, uploader: Uploader, table: str, rows: list[dict[str, Any]], versions: dict[str, int]
    ) -> None:
        """Upload rows in batches. A row already stored in version 0 is only acknowledged (and
        reported as skipped); a newer version (a screenshot step's, an import's) is always sent."""
        for batch in _chunks(rows, self.batch_size):
            ids = [r["id"] for r in batch]
            try:
                present = self.sink.existing(table, ids)
            except Exception:  # only for the report: the upload is idempotent anyway
                present = set()
            present -= {i for i in ids if versions.get(i, 0) > 0}
            if present:
                _Acks(self.writer).ack(table, dict.fromkeys(sorted(present), 0))
            uploader.upload(
                [
                    Record(table, r["id"], r, version=versions.get(r["id"], 0))
                    for r in batch
                    if r["id"] not in present
                ]
            )
            self.report.skipped[table] += len(present)
            self.progress(table, len(batch))

    def _object_bytes(self, path: str) -> bytes | None:
        """The object's bytes from the backup; None (recorded as failed) when missing or unreadable."""
        if path in self._missing:
            return None
        file = self.store.screenshot_file(path)
        error: dict[str, Any] | None = None
        if file is None:
            error = {"code": "missing", "message": "screenshot file is missing from the backup"}
        else:
            try:
                return file.read_bytes()
            except OSError as exc:  # removed since listed, permissions, I/O error: the other stages go on
                error = {
                    "code": "unreadable",
                    "message": f"cannot read the screenshot file: {exc.strerror or exc}",
                }
        self._missing.add(path)
        self.report.failed.append({"table": T_OBJECTS, "id": path, "error": error})
        _Acks(self.writer).reject(T_OBJECTS, path, error)
        return None


class _Acks:
    """The resync run's journal as the uploader's `Journal`."""

    def __init__(self, writer: JournalWriter) -> None:
        self.writer = writer

    def ack(self, table: str, versions: dict[str, int]) -> None:
        self.writer.append([ack_record(table, versions)])

    def reject(self, table: str, key: str, error: dict[str, Any]) -> None:
        self.writer.append([{"k": KIND_REJECT, "t": table, "id": key, "error": error, "at": now_iso()}])


def mark_abandoned(snap: BackupSnapshot, writer: JournalWriter) -> list[str]:
    """Mark tasks whose recorder died as interrupted (new task versions in `writer`'s journal,
    applied to `snap` too so that this run uploads them). Returns their ids."""
    marks = abandoned_tasks(snap)
    if not marks:
        return []
    writer.append([{"k": KIND_TASK, "v": version, "row": row} for row, version in marks])
    for row, version in marks:
        snap.tasks[row["task_id"]] = row
        snap.task_versions[row["task_id"]] = version
        log.warning(
            "stepsdk: task %r was left running by a process that is gone; marked interrupted", row["task_id"]
        )
    return [row["task_id"] for row, _ in marks]


def _chunks(rows: list[Any], n: int) -> list[list[Any]]:
    return [rows[i : i + n] for i in range(0, len(rows), n)]


def resync(
    backup_dir: str | Path | None = None,
    config: Config | None = None,
    *,
    dry_run: bool = False,
    batch_size: int = 200,
    progress: Progress | None = None,
) -> ResyncReport:
    """Upload what is pending in `backup_dir` (default from the environment). Raises ResyncError
    when it cannot run at all; otherwise returns a report (see `ResyncReport.ok`)."""
    config = config or Config.resolve(backup_dir=backup_dir)
    folder = Path(backup_dir) if backup_dir is not None else config.backup_dir
    return Resync(folder, config, batch_size, progress).run(dry_run=dry_run)

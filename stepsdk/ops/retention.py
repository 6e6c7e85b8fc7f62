"""Retention: delete old tasks with their steps, screenshot rows and screenshot objects.

Supabase: the SQL function ``public.stepsdk_delete_tasks_older_than`` deletes a batch of tasks
(rows cascade) in one transaction and returns the storage paths no remaining row references;
those objects are then removed through the Storage API. Content-addressed objects shared with a
newer task are therefore kept. Local backup: the same rule through ``stepsdk.store.backup``.
``sweep_orphans`` removes old objects no row references at all (after a failed removal or a
crash between an upload and its row).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from stepsdk.schema import BUCKET, parse_timestamp
from stepsdk.store.backup import (
    ARCHIVE_DIR,
    JOURNAL_DIR,
    KIND_SHOT,
    KIND_STEP,
    KIND_TASK,
    SCREENSHOT_DIR,
    STORAGE_PATH_RE,
    BackupStore,
    JournalInfo,
    iter_journal,
)
from stepsdk.store.index import INDEX_FILE, BackupIndex, Pruning

log = logging.getLogger(__name__)
STALE_TEMP_S = 3600.0  # a clean-up temp file older than this was left by a killed clean-up

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=36_500)
_DURATION = re.compile(r"([0-9]{1,9})([mhdw])")


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m`` or combinations (``1w3d``) → a positive timedelta.

    Raises ValueError with a message that says what is accepted.
    """
    if not isinstance(text, str):
        raise TypeError(f"duration must be a str, not {type(text).__name__}")
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit m (minutes), h (hours), "
            "d (days) or w (weeks), e.g. 30d, 12h, 2w, 90m"
        )
    try:
        total = timedelta()
        for number, unit in parts:
            total += timedelta(**{_UNITS[unit]: int(number)})
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None
    if total <= timedelta():
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    if total > MAX_DURATION:  # "now - age" must stay a valid date
        raise ValueError(f"invalid duration {text!r}: at most 100 years ({MAX_DURATION.days}d)")
    return total


def interval_literal(age: timedelta) -> str:
    """A PostgreSQL interval literal for ``age`` (whole seconds are plenty for retention)."""
    return f"{int(age.total_seconds())} seconds"


# --------------------------------------------------------------------------- reports


@dataclass
class CleanupReport:
    """What a cleanup deleted (or would delete, on a dry run)."""

    dry_run: bool
    cutoff: str = ""
    task_ids: list[str] = field(default_factory=list)
    objects_deleted: list[str] = field(default_factory=list)  # unreferenced objects removed (or to remove)
    objects_kept: list[str] = field(default_factory=list)  # referenced again by the time of removal
    objects_failed: list[str] = field(default_factory=list)  # removal failed: orphaned, listed for a retry
    orphans: list[str] = field(default_factory=list)  # objects no row references, older than the age
    freed: list[str] = field(default_factory=list)  # queued by the scheduled retention, removed now
    more_not_listed: bool = False  # dry run: more tasks exist than were listed
    kept: dict[str, str] = field(default_factory=dict)  # old task id -> why it had to stay
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.objects_failed and not self.problems and not self.kept

    def kept_summary(self) -> list[str]:
        """One line per reason: ``3 task(s) kept (a, b, c): <reason>``."""
        by_reason: dict[str, list[str]] = {}
        for tid, reason in sorted(self.kept.items()):
            by_reason.setdefault(reason, []).append(tid)
        lines = []
        for reason, ids in by_reason.items():
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            lines.append(f"{len(ids)} task(s) kept ({shown}): {reason}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "cutoff": self.cutoff,
            "tasks": len(self.task_ids),
            "task_ids": self.task_ids,
            "objects": len(self.objects_deleted),
            "object_paths": self.objects_deleted,
            "objects_kept": self.objects_kept,
            "objects_failed": self.objects_failed,
            "orphans": self.orphans,
            "freed": self.freed,
            "more_not_listed": self.more_not_listed,
            "kept": self.kept,
            "problems": self.problems,
        }


Advance = Callable[[int], None]


def _no_progress(n: int) -> None:
    del n


# --------------------------------------------------------------------------- Supabase

RPC = "stepsdk_delete_tasks_older_than"
MAX_BATCH = 10_000  # the SQL function's own upper bound
REMOVE_CHUNK = 100  # object keys per Storage remove call / per "still referenced?" check
DELETE_RPC = "stepsdk_delete_tasks"
DELETE_CHUNK = 1000  # task ids per stepsdk_delete_tasks call (one transaction each)
FREED_TABLE = "stepsdk_freed_objects"  # objects the scheduled retention freed, for removal


class SupabaseRetention:
    """Deletes through the SQL function (rows, one transaction per batch), then the objects."""

    def __init__(self, client: Any, bucket: str = BUCKET) -> None:
        self.client = client
        self.bucket = bucket

    def count_older(self, age: timedelta) -> int:
        cutoff = (datetime.now(UTC) - age).isoformat()
        res = (
            self.client.table("tasks")
            .select("task_id", count="exact")
            .lt("started_at", cutoff)
            .limit(1)
            .execute()
        )
        return int(res.count or 0)

    def run(
        self, age: timedelta, *, dry_run: bool, batch_size: int, advance: Advance = _no_progress
    ) -> CleanupReport:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH}, got {batch_size}")
        report = CleanupReport(dry_run=dry_run)
        if dry_run:  # a dry run deletes nothing, so a second call would list the same batch
            res = self._call(age, True, MAX_BATCH)
            report.task_ids, report.objects_deleted = res["task_ids"], res["unreferenced_paths"]
            report.cutoff, report.more_not_listed = str(res["cutoff"]), bool(res["has_more"])
            advance(len(report.task_ids))
            return report
        while True:
            res = self._call(age, False, batch_size)
            report.cutoff = report.cutoff or str(res["cutoff"])
            report.task_ids += res["task_ids"]
            self._remove_objects(res["unreferenced_paths"], report)
            advance(len(res["task_ids"]))
            if not res["has_more"] or not res["task_ids"]:
                return report

    def _call(self, age: timedelta, dry_run: bool, limit: int) -> dict[str, Any]:
        params = {"max_age": interval_literal(age), "dry_run": dry_run, "batch_limit": limit}
        data = self.client.rpc(RPC, params).execute().data
        if not isinstance(data, dict) or not isinstance(data.get("task_ids"), list):
            raise RuntimeError(f"{RPC} returned an unexpected result: {str(data)[:200]}")
        return data

    def still_referenced(self, paths: list[str]) -> set[str]:
        """The paths some row points at (rows written since the batch was deleted may point at
        the same object again)."""
        return self._referenced("step_screenshots", "screenshot_path", paths) | self._referenced(
            "task_steps", "screenshot_path", paths
        )

    def _referenced(self, table: str, column: str, paths: list[str]) -> set[str]:
        # A response is capped (1000 rows) and one popular object can fill it: ask again for the
        # paths not seen yet until an answer is empty, so no referenced path is missed.
        found: set[str] = set()
        remaining = list(paths)
        while remaining:
            rows = self.client.table(table).select(column).in_(column, remaining).execute().data or []
            seen = {r[column] for r in rows}
            if not seen:
                return found
            found |= seen
            remaining = [p for p in remaining if p not in seen]
        return found

    def _remove_objects(self, paths: list[str], report: CleanupReport) -> None:
        for start in range(0, len(paths), REMOVE_CHUNK):
            chunk = paths[start : start + REMOVE_CHUNK]
            kept = self.still_referenced(chunk)
            report.objects_kept += sorted(kept)
            doomed = [p for p in chunk if p not in kept]
            if not doomed:
                continue
            try:
                self._remove(doomed)
            except Exception as exc:  # rows are gone already: report the orphans, go on
                log.debug("could not remove %d screenshot objects", len(doomed), exc_info=True)
                report.objects_failed += doomed
                report.problems.append(
                    f"removing {len(doomed)} object(s) failed: {type(exc).__name__}: {exc}"
                )
            else:
                report.objects_deleted += doomed

    def sweep_orphans(self, age: timedelta, report: CleanupReport, *, dry_run: bool) -> None:
        """Objects with a content-addressed key that no row references and that are older than
        ``age`` (younger ones may belong to a step being written): left behind by a failed
        removal or a crash between an upload and its row. Removed unless ``dry_run``."""
        cutoff = datetime.now(UTC) - age
        bucket = self.client.storage.from_(self.bucket)
        folders = [
            item["name"] for item in self._list(bucket, "") if item.get("id") is None
        ]  # no id: a folder
        old = [
            f"{folder}/{item['name']}"
            for folder in folders
            for item in self._list(bucket, folder)
            if item.get("id") and STORAGE_PATH_RE.match(f"{folder}/{item['name']}") and _older(item, cutoff)
        ]
        for start in range(0, len(old), REMOVE_CHUNK):
            chunk = old[start : start + REMOVE_CHUNK]
            referenced = self.still_referenced(chunk)
            orphans = [p for p in chunk if p not in referenced]
            if orphans and not dry_run:
                self._remove(orphans)
            report.orphans += orphans

    @staticmethod
    def _list(bucket: Any, prefix: str, page: int = 1000) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            items = bucket.list(
                prefix, {"limit": page, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
            )
            yield from items
            if not items:
                return
            offset += len(items)

    @retry(
        retry=retry_if_exception_type(httpx.TransportError),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    def _remove(self, paths: list[str]) -> None:
        self.client.storage.from_(self.bucket).remove(paths)

    def delete_ids(
        self, task_ids: list[str], *, dry_run: bool, advance: Advance = _no_progress
    ) -> CleanupReport:
        """Delete the given tasks through ``stepsdk_delete_tasks`` (rows, one transaction per
        chunk), then the objects no other task references. Unknown ids are left out."""
        report = CleanupReport(dry_run=dry_run)
        for start in range(0, len(task_ids), DELETE_CHUNK):
            chunk = task_ids[start : start + DELETE_CHUNK]
            data = self.client.rpc(DELETE_RPC, {"task_ids": chunk, "dry_run": dry_run}).execute().data
            if not isinstance(data, dict) or not isinstance(data.get("task_ids"), list):
                raise RuntimeError(f"{DELETE_RPC} returned an unexpected result: {str(data)[:200]}")
            report.task_ids += data["task_ids"]
            if dry_run:
                report.objects_deleted += data["unreferenced_paths"]
            else:
                self._remove_objects(data["unreferenced_paths"], report)
            advance(len(data["task_ids"]))
        return report

    def remove_freed(self, report: CleanupReport, *, dry_run: bool) -> None:
        """Remove the objects the scheduled retention (pg_cron, ``stepsdk_run_retention``) freed
        and queued in ``stepsdk_freed_objects``; a key referenced again is only dequeued."""
        while True:
            rows = (
                self.client.table(FREED_TABLE)
                .select("screenshot_path")
                .order("screenshot_path")
                .limit(REMOVE_CHUNK)
                .execute()
                .data
                or []
            )
            paths = [r["screenshot_path"] for r in rows]
            if dry_run:
                report.freed += paths
                return
            if not paths:
                return
            before = len(report.objects_failed)
            self._remove_objects(paths, report)
            failed = set(report.objects_failed[before:])
            done = [p for p in paths if p not in failed]
            report.freed += [p for p in done if p not in report.objects_kept]
            if done:
                self.client.table(FREED_TABLE).delete().in_("screenshot_path", done).execute()
            if failed:  # keep them queued for the next run; do not spin on them now
                return


# --------------------------------------------------------------------------- local backup


@dataclass(frozen=True)
class TaskChoice:
    """Which tasks a local clean-up deletes: the given ids the backup knows (by a task row, a step
    or a screenshot row), else the task rows started before ``started_before`` (naive timestamps
    are UTC; an unparseable start never matches) and/or whose agent is ``agent``."""

    task_ids: tuple[str, ...] = ()
    started_before: datetime | None = None
    agent: str | None = None

    def __post_init__(self) -> None:
        if bool(self.task_ids) == (self.started_before is not None or self.agent is not None):
            raise ValueError("choose tasks by id, or by start and/or agent")


@dataclass(frozen=True)
class _Line:
    raw: bytes
    task_id: str | None
    corrupt: bool


@dataclass
class _JournalPlan:
    path: Path
    keep: list[bytes]
    tmp: str | None = None  # the kept lines, written and fsynced, not renamed over the journal yet


class BackupRetention:
    """Deletes old tasks from a backup folder: their records are removed from the journals
    (each rewritten to a temp file and renamed: atomic), then the screenshot files no remaining
    row references. Journals of a writer that is still running are never rewritten; journals with
    corrupt lines not yet quarantined (``stepsdk resync`` does it) are left alone too.

    It plans from the backup's index (``index.sqlite3``, refreshed first; built when missing):
    which tasks, which of them wait for an upload, which journals hold them (only those are read
    and rewritten) and which screenshot files no other task uses. A folder where the index cannot
    be written (read-only media, a full disk) is planned from a temporary index, removed after."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.store = BackupStore(self.root)
        self._pruning: Pruning | None = None  # the index following the journals being rewritten

    def run(
        self, age: timedelta, *, dry_run: bool, keep_pending: bool = False, advance: Advance = _no_progress
    ) -> CleanupReport:
        """``keep_pending``: spare tasks not fully uploaded yet (when Supabase is their real home,
        deleting them here would lose them)."""
        cutoff = datetime.now(UTC) - age
        return self.run_selected(
            TaskChoice(started_before=cutoff),
            cutoff=cutoff.isoformat(),
            dry_run=dry_run,
            keep_pending=keep_pending,
            advance=advance,
        )

    def run_selected(
        self,
        choose: TaskChoice,
        *,
        dry_run: bool,
        cutoff: str = "",
        keep_pending: bool = False,
        advance: Advance = _no_progress,
    ) -> CleanupReport:
        """Delete the tasks ``choose`` names (``stepsdk delete``; ``run`` picks by age), by the
        same rules: whole tasks, shared screenshot files kept, running writers spared."""
        report = CleanupReport(dry_run=dry_run, cutoff=cutoff)
        if not self.root.is_dir():
            if self.root.exists():
                report.problems.append(f"{self.root} is not a folder")
            return report
        with self._index() as index:
            with index.reading():
                doomed = _chosen(index, choose)
                if keep_pending:
                    pending = index.pending_task_ids(doomed)
                    report.kept.update(
                        (
                            tid,
                            "not uploaded yet: run 'stepsdk resync' first, or pass "
                            "--include-pending to delete anyway",
                        )
                        for tid in pending
                    )
                    doomed -= pending
                journals, blocked = self._journals(index, doomed)
                report.kept.update(blocked)
                # A task spread over several journals is deleted everywhere or nowhere.
                doomed -= set(blocked)
                starts = index.task_starts(doomed)
                report.task_ids = sorted(doomed, key=lambda t: (str(starts.get(t)), t))
                report.objects_deleted = index.unreferenced_paths(doomed)
                writers = [self._info(row) for row in index.open_journals()]
            if dry_run:
                return report
            plans = self._plan(journals, doomed)
            self._delete(index, plans, doomed, writers, report, advance)
        return report

    def _delete(
        self,
        index: BackupIndex,
        plans: list[_JournalPlan],
        doomed: set[str],
        writers: list[JournalInfo],
        report: CleanupReport,
        advance: Advance,
    ) -> None:
        """Rewrite the journals (the index pruned in step), then delete the files no row uses."""
        self._sweep_stale_temp_files()
        moved = []
        try:
            for plan in plans:
                self._prepare(plan)
            with index.pruning(doomed) as self._pruning:
                for plan in plans:
                    if not self._rewrite(plan):
                        moved.append(plan.path.name)
                    advance(1)
                if moved and self._pruning is not None:
                    self._pruning.give_up()
        finally:
            self._pruning = None
            for plan in plans:  # an error midway: no temp file left behind
                if plan.tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(plan.tmp)
        if moved:
            # `stepsdk resync` archived a journal meanwhile: its records are still there, so
            # their screenshots may still be referenced. Delete no file this time.
            report.problems.append(
                f"journal(s) {', '.join(moved)} moved during cleanup (resync?): run cleanup again"
            )
            report.objects_deleted = []
            return
        if any(info.writer_alive for info in writers):
            # A running tracker may have recorded a step with one of these screens meanwhile
            # (content addressing reuses the file): look again just before deleting.
            still = index.referenced_paths(report.objects_deleted)
            report.objects_kept += sorted(still)
            report.objects_deleted = [p for p in report.objects_deleted if p not in still]
        for screenshot_path in report.objects_deleted:
            file = self.store.screenshot_file(screenshot_path)
            if file is not None:
                file.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _index(self) -> Iterator[BackupIndex]:
        """The folder's index, refreshed; a temporary one when it cannot be written there."""
        index = BackupIndex(self.root)
        try:
            index.refresh()
        except (sqlite3.Error, OSError) as exc:
            index.close()
            log.warning(
                "stepsdk cleanup: cannot use the index of %s (%s): building a temporary one", self.root, exc
            )
        else:
            try:
                yield index
            finally:
                index.close()
            return
        with tempfile.TemporaryDirectory(prefix="stepsdk-cleanup-") as scratch:
            index = BackupIndex(self.root, Path(scratch) / INDEX_FILE)
            try:
                index.refresh()
                yield index
            finally:
                index.close()

    def _info(self, row: dict[str, Any]) -> JournalInfo:
        folder = ARCHIVE_DIR if row["archived"] else JOURNAL_DIR
        return JournalInfo(
            self.root / folder / row["name"],
            bool(row["archived"]),
            closed=bool(row["closed"]),
            pid=row["pid"],
            host=row["host"],
        )

    def _journals(self, index: BackupIndex, doomed: set[str]) -> tuple[list[JournalInfo], dict[str, str]]:
        """The journals holding the doomed tasks that can be rewritten, and the tasks that must
        stay (with why): those in a journal of a running writer or with unquarantined corrupt lines."""
        blocked: dict[str, str] = {}
        free: list[tuple[JournalInfo, list[str]]] = []
        for row in index.task_journals(doomed):
            info = self._info(row)
            if info.writer_alive:
                blocked.update((t, f"its writer {info.path.name} is still running") for t in row["task_ids"])
            elif row["damaged"]:  # a torn last line of a running writer is not (checked just above)
                blocked.update(
                    (t, f"{info.path.name} has corrupt lines: run 'stepsdk resync' first")
                    for t in row["task_ids"]
                )
            else:
                free.append((info, row["task_ids"]))
        return [info for info, ids in free if set(ids) - set(blocked)], blocked

    def _plan(self, journals: list[JournalInfo], doomed: set[str]) -> list[_JournalPlan]:
        """The kept lines of each journal holding doomed tasks (only those journals are read)."""
        plans = []
        for info in journals:
            path = info.path
            if not path.exists() and (self.root / ARCHIVE_DIR / path.name).exists():
                path = self.root / ARCHIVE_DIR / path.name  # archived since the index saw it
            try:
                lines = [
                    _Line(raw, _record_task_id(record) if record else None, record is None)
                    for _offset, record, _problem, raw in iter_journal(path)
                ]
            except FileNotFoundError:
                continue
            if any(line.task_id in doomed for line in lines):
                # Any corrupt line left here is quarantined (copied to quarantine/ already): drop it.
                keep = [line.raw for line in lines if not line.corrupt and line.task_id not in doomed]
                plans.append(_JournalPlan(path, keep))
        return plans

    def sweep_orphans(self, age: timedelta, report: CleanupReport, *, dry_run: bool) -> None:
        """Screenshot files no row references, last written more than ``age`` ago."""
        cutoff = (datetime.now(UTC) - age).timestamp()
        referenced = self._referenced()
        folder = self.root / SCREENSHOT_DIR
        # .webp and .enc (the regex checks)
        for file in sorted(folder.glob("*/*.*")) if folder.is_dir() else []:
            key = f"{file.parent.name}/{file.name}"
            if not STORAGE_PATH_RE.match(key) or key in referenced:
                continue
            with contextlib.suppress(FileNotFoundError):
                if file.stat().st_mtime >= cutoff:
                    continue
                if not dry_run:
                    file.unlink()
                report.orphans.append(key)

    def _referenced(self) -> set[str]:
        """Every screenshot object a row points at (from the index: no merge of every journal)."""
        if not self.root.is_dir():
            return set()
        with self._index() as index:
            return index.screenshot_paths()

    def _sweep_stale_temp_files(self) -> None:
        """Remove the kept-lines files of a clean-up killed before its renames (an hour old:
        never those of a clean-up running now). They are never read as journals; only disk."""
        cutoff = datetime.now(UTC).timestamp() - STALE_TEMP_S
        for folder in (self.root / JOURNAL_DIR, self.root / ARCHIVE_DIR):
            for path in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        log.info("stepsdk cleanup: removed %s, left by an interrupted clean-up", path.name)

    @staticmethod
    def _prepare(plan: _JournalPlan) -> None:
        """Write the kept lines to a temp file next to the journal (fsynced): done before the
        index is locked, so the lock is held only for the renames."""
        fd, tmp = tempfile.mkstemp(dir=plan.path.parent, prefix=f".{plan.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.writelines(plan.keep)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        plan.tmp = tmp

    def _rewrite(self, plan: _JournalPlan) -> bool:
        """Replace the journal by its kept lines (atomic). False when it is no longer there."""
        if plan.tmp is None:
            self._prepare(plan)
        tmp, plan.tmp = str(plan.tmp), None
        try:
            if not plan.path.exists():  # archived meanwhile: do not bring it back
                os.unlink(tmp)
                return False
            old = os.stat(plan.path)
            os.replace(tmp, plan.path)
            if self._pruning is not None:
                self._pruning.replaced(plan.path, old, plan.keep)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return True


def _older(item: dict[str, Any], cutoff: datetime) -> bool:
    """Whether a Storage listing item was created and last updated before ``cutoff``."""
    stamps = [
        parse for key in ("created_at", "updated_at") if (parse := parse_timestamp(item.get(key))) is not None
    ]
    return bool(stamps) and max(stamps) < cutoff


def _record_task_id(record: dict[str, Any]) -> str | None:
    row = record.get("row")
    if record.get("k") in (KIND_TASK, KIND_STEP, KIND_SHOT) and isinstance(row, dict):
        return row.get("task_id")
    return None


def _chosen(index: BackupIndex, choose: TaskChoice) -> set[str]:
    """The tasks ``choose`` names, from the index (as of its last refresh)."""
    if choose.task_ids:
        return index.known_task_ids(choose.task_ids)
    before = choose.started_before
    # the index's epochs narrow it down; the start itself decides, parsed as everywhere else
    starts = index.tasks_started(
        before=None if before is None else before.timestamp() + 1.0, agent=choose.agent
    )
    if before is None:
        return set(starts)
    return {tid for tid, started in starts.items() if _started_before({"started_at": started}, before)}


def _started_before(task: dict[str, Any], cutoff: datetime) -> bool:
    """Naive timestamps are UTC (stepsdk.schema), as PostgreSQL reads them on Supabase."""
    started = parse_timestamp(task.get("started_at"))
    return started is not None and started < cutoff  # unparseable: never delete on a guess

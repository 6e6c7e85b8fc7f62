"""Journal stage: one thread that turns steps into rows and appends them to the backup journal
(write-ahead: a step is durable once its line is written), then hands the records to the upload
stage (through `Progress`) and screenshots to the screenshot stage (through its bounded queue).

    caller --inbox (SimpleQueue)--> journal stage --records--> Progress.pending --> upload stage
                                          \\--ShotJob (bounded queue)--> screenshot stage
"""

from __future__ import annotations

import contextlib
import logging
import queue
import traceback
from collections.abc import Callable
from typing import Any

from stepsdk.backend.uploader import T_SHOTS, T_STEPS, T_TASKS, Record
from stepsdk.model import Step, Task
from stepsdk.recording.progress import Progress
from stepsdk.recording.rows import RowMaker
from stepsdk.recording.stage import Stage
from stepsdk.store.backup import (
    KIND_REJECT,
    KIND_SHOT,
    KIND_STEP,
    KIND_TASK,
    JournalWriter,
    ack_record,
    encode_record,
    now_iso,
)

log = logging.getLogger("stepsdk")

BATCH = 256  # records one journal write takes at most (also the crash bound's second term)
_KIND = {T_TASKS: KIND_TASK, T_STEPS: KIND_STEP, T_SHOTS: KIND_SHOT}


class ShotJob:
    """A screenshot step waiting for its final version; `state` is owned by the screenshot
    stage's lock: queued -> encoding -> done, or abandoned at a close that ran out of time."""

    __slots__ = ("row", "state", "step")

    def __init__(self, step: Step, row: dict[str, Any]) -> None:
        self.step = step
        self.row = row  # version 0 of the step row (never mutated: version 1 is a copy)
        self.state = "queued"


def record_line(r: Record) -> bytes:
    """The journal line of a record (backup/README.md). Never raises: a value JSON refuses (one
    the sanitizer let through) costs only that value, then only that row, never its neighbours."""
    rec: dict[str, Any] = {"k": _KIND[r.table], "row": r.row}
    if r.table == T_TASKS or r.version:
        rec["v"] = r.version
    try:
        return encode_record(rec)
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("stepsdk: could not encode %s %s: %s", r.table, r.key, str(exc)[:200])
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
    r.row = {k: v if _plain(v) else None for k, v in r.row.items()}
    for col in ("step_data", "metadata"):
        if col in r.row:
            r.row[col] = {"_error": "could not be encoded", "record_error": reason}
    rec["row"] = r.row
    try:
        return encode_record(rec)
    except (TypeError, ValueError, RecursionError):  # not even the scalars: keep the row's identity
        keep = (
            "id",
            "task_id",
            "step_number",
            "step_type",
            "screenshot_path",
            "step_id",
            "status",
            "started_at",
            "created_at",
        )
        r.row = {
            k: r.row[k]
            for k in keep
            if k in r.row
            and isinstance(r.row[k], str | int)
            and not (isinstance(r.row[k], int) and abs(r.row[k]) > 2**53)
        }
        r.row["metadata"] = {"record_error": reason}
        rec["row"] = r.row
        return encode_record(rec)


def _plain(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return abs(value) <= 2**63
    return isinstance(value, float)


class Journal:
    """The tracker's journal writer as the uploader's `Journal` (acks and rejections), and the
    one place that appends records. Failures are counted, never raised into a stage."""

    def __init__(self, writer: JournalWriter, progress: Progress) -> None:
        self.writer = writer
        self.progress = progress

    def append(self, records: list[Record]) -> bool:
        """Append records; sets each one's offset. False when the backup refused the write."""
        lines = [record_line(r) for r in records]
        try:
            before = self.writer.recreated
            start = self.writer.append_encoded(b"".join(lines)) if lines else 0
            if self.writer.recreated != before:
                self._recreated()
        except ValueError as exc:  # closed: a write that outlived close() (should not happen)
            if not self.writer.closed:
                raise
            with self.progress.cond:
                self.progress.lost_reasons["written after the tracker closed"] += len(records)
            log.debug("stepsdk: %d records after close: %s", len(records), exc)
            return False
        except OSError as exc:
            self.progress.count("backup_errors")
            self.progress.note_error(
                f"backup write failed: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            )
            log.warning("stepsdk: backup write failed: %s", getattr(exc, "strerror", None) or exc)
            return False
        off = start
        for r, line in zip(records, lines, strict=True):
            r.offset = off
            off += len(line)
        return True

    def _recreated(self) -> None:
        """The journal vanished (folder deleted): what was only on disk is gone with it."""
        p = self.progress
        with p.cond:
            p.lost_reasons["backup journal deleted while in use (journal recreated)"] += 1
            p.last_error = "the backup journal was deleted while in use; a new one was started"
            # Steps whose only copy was that file: every step so far in local mode; in remote
            # mode those waiting on disk only (not uploaded, not in memory).
            lost = (p.journaled - p.uploaded - p.rejected) if not p.remote else p.disk_only
            if lost:
                p.journaled -= lost
                p.dropped += lost
                p.lost_reasons["steps deleted with the backup folder"] += lost
            p.disk_only = 0
            p.backlog_offset = None

    def ack(self, table: str, versions: dict[str, int]) -> None:
        self._meta(ack_record(table, versions))

    def reject(self, table: str, key: str, error: dict[str, Any]) -> None:
        self._meta({"k": KIND_REJECT, "t": table, "id": key, "error": error, "at": now_iso()})

    def _meta(self, rec: dict[str, Any]) -> None:
        try:
            self.writer.append([rec])
        except ValueError:  # closed: an upload that outlived close(); resync re-sends it (idempotent)
            log.debug("stepsdk: ack after close dropped (resync re-sends idempotently)")
        except OSError as exc:
            self.progress.count("backup_errors")
            self.progress.note_error(f"could not write upload acks: {exc.strerror or exc}")


class JournalStage(Stage):
    """One thread: inbox -> rows -> journal -> Progress (+ screenshot jobs)."""

    thread_name = "stepsdk-journal"

    def __init__(
        self,
        rows: RowMaker,
        journal: Journal,
        progress: Progress,
        dispatch_shot: Callable[[ShotJob, bool], None],
    ) -> None:
        self.rows = rows
        self.journal = journal
        self.progress = progress
        self.dispatch_shot = dispatch_shot
        self.inbox: queue.SimpleQueue[Step | Task | Record | None] = queue.SimpleQueue()
        super().__init__()

    def stop(self) -> None:
        self.inbox.put(None)

    def _loop(self) -> None:
        while True:
            first = self.inbox.get()
            if first is None:
                return
            batch: list[Step | Task | Record] = [first]
            stop = False
            with contextlib.suppress(queue.Empty):
                while len(batch) < BATCH:
                    nxt = self.inbox.get_nowait()
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
            try:
                self.write(batch, block=True)
            except Exception as exc:  # a bug here must not kill the thread
                self.progress.note_error(f"journal stage: {type(exc).__name__}: {exc}")
                log.warning("stepsdk: journal stage error\n%s", traceback.format_exc())
            if stop:
                return

    def drain(self) -> list[Step | Task | Record]:
        """What is still queued (used after the thread stopped or could not)."""
        out: list[Step | Task | Record] = []
        with contextlib.suppress(queue.Empty):
            while True:
                obj = self.inbox.get_nowait()
                if obj is not None:
                    out.append(obj)
        return out

    def write(self, batch: list[Step | Task | Record], block: bool = False) -> None:
        """Rows -> journal -> hand over -> screenshots (`block`: wait for room in the screenshot
        queue; else, on the caller's thread, encode inline when it is full). Each object is
        converted on its own: one that fails never costs its neighbours."""
        records: list[Record] = []
        jobs: list[ShotJob] = []
        degraded = 0
        for obj in batch:
            if isinstance(obj, Record):  # a ready record (a task row marked abandoned)
                records.append(obj)
            elif isinstance(obj, Task):
                try:
                    records.append(Record(T_TASKS, obj.task_id, self.rows.task_row(obj), version=obj.version))
                except Exception as exc:  # never expected (validated at the call): say so, go on
                    self.progress.note_error(f"task row could not be made: {type(exc).__name__}: {exc}")
                    log.warning("stepsdk: task row could not be made\n%s", traceback.format_exc())
            else:
                row, problem = self.rows.step_row(obj)
                degraded += problem is not None
                pending = row["metadata"].get("screenshot_pending") is True and obj.screenshot is not None
                if pending:
                    jobs.append(ShotJob(obj, row))
                records.append(Record(T_STEPS, row["id"], row, final=not pending))
        ok = self.journal.append(records)
        self.progress.hand_over(records, journaled=ok, degraded=degraded)
        for job in jobs:
            self.dispatch_shot(job, block)

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
import threading
import traceback
from collections.abc import Callable
from typing import Any

from stepsdk._backup import (
    KIND_ACK,
    KIND_REJECT,
    KIND_SHOT,
    KIND_STEP,
    KIND_TASK,
    JournalWriter,
    encode_record,
    now_iso,
)
from stepsdk._model import Step, Task
from stepsdk.backend.uploader import T_SHOTS, T_STEPS, T_TASKS, Record
from stepsdk.recording.progress import Progress
from stepsdk.recording.rows import RowMaker

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
    """The journal line of a record (backup/README.md)."""
    rec: dict[str, Any] = {"k": _KIND[r.table], "row": r.row}
    if r.table == T_TASKS or r.version:
        rec["v"] = r.version
    try:
        return encode_record(rec)
    except (TypeError, ValueError) as exc:  # a value the sanitizer let through: keep the record
        log.warning("stepsdk: could not encode %s %s: %s", r.table, r.key, exc)
        r.row = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else None) for k, v in r.row.items()}
        for col in ("step_data", "metadata"):
            if col in r.row:
                r.row[col] = {"_error": "could not be encoded"}
        rec["row"] = r.row
        return encode_record(rec)


class Journal:
    """The tracker's journal writer as the uploader's `Journal` (acks and rejections), and the
    one place that appends records. Failures are counted, never raised into a stage."""

    def __init__(self, writer: JournalWriter, progress: Progress) -> None:
        self.writer = writer
        self.progress = progress
        self._deleted = 0  # steps already counted as lost with a deleted journal

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
            self.progress.note_error(f"backup write failed: {type(exc).__name__}: "
                                     f"{getattr(exc, 'strerror', None) or exc}")
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
            if not p.remote:  # local mode: the backup was the only copy of every step written so far
                lost = p.journaled - self._deleted
                self._deleted = p.journaled
                p.dropped += lost
                p.lost_reasons["steps deleted with the backup folder"] += lost
            if p.backlog_offset is not None:  # records waiting on disk only: lost with the file
                p.backlog_offset = None
                p.lost_reasons["records on disk only, deleted with the journal"] += 1

    def ack(self, table: str, versions: dict[str, int]) -> None:
        if table == T_TASKS:
            rec: dict[str, Any] = {"k": KIND_ACK, "t": table, "v": versions, "at": now_iso()}
        else:
            rec = {"k": KIND_ACK, "t": table, "ids": list(versions), "at": now_iso()}
            newer = {k: v for k, v in versions.items() if v}
            if newer:
                rec["v"] = newer
        self._meta(rec)

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


class JournalStage:
    """One thread: inbox -> rows -> journal -> Progress (+ screenshot jobs)."""

    def __init__(self, rows: RowMaker, journal: Journal, progress: Progress,
                 dispatch_shot: Callable[[ShotJob, bool], None]) -> None:
        self.rows = rows
        self.journal = journal
        self.progress = progress
        self.dispatch_shot = dispatch_shot
        self.inbox: queue.SimpleQueue[Step | Task | Record | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="stepsdk-journal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.inbox.put(None)

    def join(self, timeout: float) -> bool:
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

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

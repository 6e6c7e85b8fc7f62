"""The embedded index of a backup folder: a SQLite database (``<dir>/index.sqlite3``, WAL mode)
derived from the journals, so readers answer with index queries instead of merging every
journal in memory.

It is a cache, never a source of truth: it can be deleted at any time and is rebuilt from the
journals on the next read. It remembers, per journal, how far it has applied it (byte offset,
plus the offset and CRC of the last applied record and the file's inode) and applies only new
records on :meth:`BackupIndex.refresh`. A journal is identified by its file name and the CRC of
its first line (the writer's ``open`` record), so a journal that resync moves from ``journal/`` to
``archive/`` keeps its progress, while a later journal of the same name is a new one. A journal
that disappeared or was rewritten behind its back makes the index start over; local retention
(``stepsdk cleanup --local``, ``stepsdk delete``) rewrites journals inside
:meth:`BackupIndex.pruning`, which deletes the tasks' rows and moves the journals' progress in
the same index transaction instead.

Statistics: per-task summaries, and per step type, UTC day and agent the step counts
(``type_days``) and counts per duration bucket (``type_hist``), kept by triggers on ``steps``,
so period statistics read counts, and an exact percentile reads one bucket's steps.

Concurrency: any number of processes read and refresh the same index. Refreshing takes SQLite's
write lock (``BEGIN IMMEDIATE``) one batch at a time and re-reads the progress inside that
transaction, so two refreshers never apply a batch twice and readers (WAL) are never blocked.
A batch is one transaction: a SIGKILL mid-refresh loses at most the uncommitted batch, whose
records are applied again by the next refresh (applying is idempotent in any case). An answer
of several statements reads them in one read transaction (:meth:`BackupIndex.upload_state`), so
another process's commit between two of them cannot mix two states.

Merge rules are those of :meth:`stepsdk.store.backup.BackupStore.read` (the highest ``v`` wins; equal
``v``: the record applied later, where ``BackupStore.read`` takes the later in file order: two
journals holding one row at one version with other contents, or two refusals of one key, can
disagree). Upload bookkeeping (acks, refusals, and the confirmations an archived journal's
records give, kept per task so that a clean-up takes them along) answers ``stepsdk status`` and
the operations page (:meth:`BackupIndex.upload_state`); resync still merges the journals
(``BackupStore.read()``) for its exactly-once accounting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stepsdk.schema import parse_timestamp as parse_ts
from stepsdk.store.backup import (
    ARCHIVE_DIR,
    JOURNAL_DIR,
    KIND_ACK,
    KIND_CLOSE,
    KIND_OPEN,
    KIND_QUARANTINED,
    KIND_REJECT,
    KIND_SHOT,
    KIND_STEP,
    KIND_TASK,
    SUFFIX,
    T_OBJECTS,
    T_SHOTS,
    T_STEPS,
    T_TASKS,
    JournalInfo,
    iter_journal,
)
from stepsdk.store.export_format import upgrade_screenshot_row
from stepsdk.store.upload_state import UploadState

log = logging.getLogger("stepsdk.index")

INDEX_FILE = "index.sqlite3"
SCHEMA_VERSION = "11"
# One transaction applies at most this many lines / bytes of a journal: memory stays bounded
# (the batch's rows in Python, SQLite's dirty pages) whatever the size of the backup.
BATCH_LINES = 5_000
BATCH_BYTES = 4 << 20
# SQLite page cache while applying records (KiB; a few batches of dirty index pages, so they are
# not spilled and written to the WAL again and again), and while answering (per connection: a
# server has one per worker thread; the OS page cache is shared by all of them).
APPLY_CACHE_KIB = 32_768
READ_CACHE_KIB = 2_000
CLOSED_RECHECK = 1.0  # seconds between two looks at journals whose writer closed...
CLOSED_CACHE_MIN = 256  # ...when there are at least this many (fewer cost less than a millisecond)
_WS = " \t\r\n"
Row = dict[str, Any]

# Error groups: the same failure with other numbers, coordinates or ids is one group. The same
# rules, in the same order, are ``public.stepsdk_error_group`` in
# supabase/migrations/20261130001200_stepsdk_index_search.sql.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_RE = re.compile(r"[0-9a-fA-F]{16,}")
_NUM_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def error_group(message: Any) -> str | None:
    """The normalized message errors are grouped by: trimmed, ids → ``<id>``, numbers (so also
    coordinates) → ``<n>``, first 200 characters; empty → None."""
    if not isinstance(message, str):
        return None
    text = message.strip(_WS)[:1000]
    if not text:
        return None
    text = _NUM_RE.sub("<n>", _HEX_RE.sub("<id>", _UUID_RE.sub("<id>", text)))
    return text[:200]


def snippet(text: str, needle: str, context: int = 40) -> str:
    """``text`` around the first case-insensitive occurrence of ``needle`` (… where cut).
    The same rule as ``public.stepsdk_search``'s snippet."""
    pos = text.lower().find(needle.lower())
    pos = max(pos, 0)
    start = max(pos - context, 0)
    end = pos + len(needle) + context
    return ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont (linear interpolation) over already-filtered values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = fraction * (len(ordered) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


class _Percentile:
    """SQLite aggregate ``percentile_cont(value, fraction)`` (nulls ignored)."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: Any, fraction: float) -> None:
        self.fraction = fraction
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        return percentile_cont(self.values, self.fraction)


def _epoch(value: Any) -> float | None:
    ts = parse_ts(value)
    return ts.timestamp() if ts else None


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


_SCHEMA = """
create table if not exists meta(key text primary key, value text);
create table if not exists journals(
    jkey text primary key, name text not null, archived integer not null, inode integer,
    offset integer not null default 0, last_start integer, last_crc text,
    pid integer, host text, closed integer not null default 0, acked_to integer not null default 0);
create table if not exists tasks(
    task_id text primary key, v integer not null, rec text not null,
    title text, agent text, status text, started_at text, finished_at text,
    started_epoch real, finished_epoch real, duration_ms real, day text, title_fold text, task_id_fold text, agent_fold text,
    acked integer not null default -1);
create index if not exists tasks_day on tasks(day, agent);
create table if not exists steps(
    id text primary key, task_id text not null, step_number integer not null, v integer not null,
    rec text not null, step_type text, success integer not null, duration_ms real,
    created_at text, created_epoch real, error_type text, err_group text,
    agent text, task_known integer not null default 0, day text, dbucket integer,
    strict_fail integer not null default 0, category text, path text, acked integer not null default -1,
    has_usage integer not null default 0, prompt_tokens integer, completion_tokens integer, total_tokens integer);
create index if not exists steps_task on steps(task_id, step_number, id);
create index if not exists steps_slow on steps(duration_ms desc, id) where duration_ms is not null;
create index if not exists steps_failed on steps(created_epoch, agent, error_type, err_group, task_id) where success = 0;
create index if not exists steps_categories on steps(strict_fail, task_known, category, task_id, created_epoch)
    where success = 0;
create index if not exists steps_type_period on steps(step_type, created_epoch, task_known, agent, success, duration_ms);
create index if not exists steps_failed_recent on steps(created_epoch desc, id) where strict_fail = 1 and task_known = 1;
create index if not exists steps_failed_category on steps(category, created_epoch desc, id)
    where strict_fail = 1 and task_known = 1;
create table if not exists step_types(step_type text primary key);
create index if not exists steps_dur on steps(step_type, dbucket, duration_ms, day, agent)
    where duration_ms is not null and task_known = 1;
create table if not exists type_days(
    step_type text not null, day text not null, agent text not null, steps integer not null,
    failed integer not null, dur_n integer not null, dur_sum real not null,
    primary key (step_type, day, agent)) without rowid;
create table if not exists type_hist(
    step_type text not null, day text not null, agent text not null, bucket integer not null, n integer not null,
    primary key (step_type, day, agent, bucket)) without rowid;
create trigger if not exists steps_agg_insert after insert on steps
when new.task_known = 1 and new.step_type is not null begin
    {add}
end;
create trigger if not exists steps_agg_delete after delete on steps
when old.task_known = 1 and old.step_type is not null begin
    {sub}
end;
create trigger if not exists steps_agg_update_old after update of step_type, agent, task_known, duration_ms, day,
    success, dbucket on steps
when old.task_known = 1 and old.step_type is not null and ({changed}) begin
    {sub}
end;
create trigger if not exists steps_agg_update_new after update of step_type, agent, task_known, duration_ms, day,
    success, dbucket on steps
when new.task_known = 1 and new.step_type is not null and ({changed}) begin
    {add}
end;
create index if not exists steps_agent_period on steps(agent, created_epoch, task_known, step_type, success, duration_ms);
create table if not exists usage_tasks(
    task_id text primary key, steps integer not null, prompt_tokens integer not null,
    completion_tokens integer not null, total_tokens integer not null) without rowid;
create index if not exists usage_tasks_total on usage_tasks(total_tokens desc, task_id) where steps > 0;
create table if not exists usage_days(
    day text not null, task_id text not null, steps integer not null, prompt_tokens integer not null,
    completion_tokens integer not null, total_tokens integer not null,
    primary key (day, task_id)) without rowid;
create trigger if not exists steps_usage_insert after insert on steps when new.has_usage = 1 begin
    {usage_add}
end;
create trigger if not exists steps_usage_delete after delete on steps when old.has_usage = 1 begin
    {usage_sub}
end;
create trigger if not exists steps_usage_update_old after update of task_id, day, has_usage, prompt_tokens,
    completion_tokens, total_tokens on steps
when old.has_usage = 1 and ({usage_changed}) begin
    {usage_sub}
end;
create trigger if not exists steps_usage_update_new after update of task_id, day, has_usage, prompt_tokens,
    completion_tokens, total_tokens on steps
when new.has_usage = 1 and ({usage_changed}) begin
    {usage_add}
end;
create table if not exists shots(
    id text primary key, task_id text not null, step_id text, created_at text, rec text not null,
    v integer not null, path text not null, acked integer not null default -1);
create index if not exists shots_task on shots(task_id, step_id);
-- screenshot objects by path: which tasks still point at one (local retention)
create index if not exists shots_path on shots(path, task_id);
create index if not exists steps_path on steps(path, task_id) where path is not null;
create table if not exists summary(
    task_id text primary key, title text, agent text, status text, started_at text, finished_at text,
    duration_ms real, total_steps integer, successful_steps integer, failed_steps integer,
    success_rate real, total_duration_ms real, avg_step_duration_ms real, p50_step_duration_ms real,
    p95_step_duration_ms real, screenshots_count integer, last_step_at text,
    started_epoch real, finished_epoch real, title_fold text, task_id_fold text, agent_fold text, day text);
create index if not exists summary_day on summary(day, agent, status, duration_ms, total_steps, failed_steps);
create index if not exists summary_started on summary(started_epoch, task_id);
create index if not exists summary_finished on summary(finished_epoch, task_id);
create index if not exists summary_title on summary(title_fold, task_id);
create index if not exists summary_agent on summary(agent, started_epoch);
create index if not exists summary_status on summary(status, started_epoch);
create index if not exists summary_total on summary(total_steps, task_id);
create index if not exists summary_failed on summary(failed_steps, task_id);
create index if not exists summary_rate on summary(success_rate, task_id);
create index if not exists summary_duration on summary(duration_ms, task_id);
create index if not exists summary_total_desc on summary(total_steps desc, task_id);
create index if not exists summary_failed_desc on summary(failed_steps desc, task_id);
create index if not exists summary_rate_desc on summary(success_rate desc, task_id);
create index if not exists summary_duration_desc on summary(duration_ms desc, task_id);
create table if not exists problems(
    jkey text not null, name text not null, offset integer not null, problem text not null,
    primary key (jkey, offset));
create table if not exists acks(tbl text not null, key text not null, v integer not null, av integer,
    primary key (tbl, key)) without rowid;
create table if not exists held(tbl text not null, key text not null, task_id text not null, v integer not null,
    primary key (tbl, key, task_id)) without rowid;
create index if not exists held_task on held(task_id);
create table if not exists rejects(tbl text not null, key text not null, error text not null, at text not null,
    primary key (tbl, key)) without rowid;
create table if not exists journal_tasks(jkey text not null, task_id text not null,
    primary key (jkey, task_id)) without rowid;
create index if not exists journal_tasks_task on journal_tasks(task_id);
create table if not exists pending(tbl text primary key, n integer not null);
insert or ignore into pending values ('tasks', 0), ('task_steps', 0), ('step_screenshots', 0);
{pending_triggers}
create index if not exists steps_pending_paths on steps(path) where v > acked and path is not null;
create index if not exists shots_pending_paths on shots(path) where v > acked;
create index if not exists steps_pending_created on steps(created_epoch) where v > acked;
create index if not exists tasks_pending_started on tasks(started_epoch) where v > acked;
create table if not exists quarantined(name text not null, offset integer not null, primary key (name, offset));
create table if not exists docs(
    docid integer primary key, task_id text not null, step_id text, step_number integer, field text not null);
create index if not exists docs_task on docs(task_id);
create index if not exists docs_step on docs(step_id);
create virtual table if not exists docs_text using fts5(text, tokenize = 'trigram');
create temp table if not exists touched_tasks(task_id text primary key);
create temp table if not exists touched_steps(id text primary key);
create temp table if not exists touched_acks(tbl text not null, key text not null, primary key (tbl, key));
create temp table if not exists new_docs(
    n integer primary key, task_id text, step_id text, step_number integer, field text, started_sec integer);
"""

_AGG_KEY = "new.step_type, coalesce(new.day, ''), coalesce(new.agent, '')"
_AGG_ADD = f"""insert into type_days values ({_AGG_KEY}, 1, 1 - new.success, new.duration_ms is not null,
        coalesce(new.duration_ms, 0.0))
        on conflict do update set steps = steps + 1, failed = failed + excluded.failed,
        dur_n = dur_n + excluded.dur_n, dur_sum = dur_sum + excluded.dur_sum;
    insert into type_hist select {_AGG_KEY}, new.dbucket, 1 where new.duration_ms is not null
        on conflict do update set n = n + 1;"""
_AGG_SUB = f"""update type_days set steps = steps - 1, failed = failed - (1 - old.success),
        dur_n = dur_n - (old.duration_ms is not null), dur_sum = dur_sum - coalesce(old.duration_ms, 0.0)
        where (step_type, day, agent) = ({_AGG_KEY.replace("new.", "old.")});
    update type_hist set n = n - 1 where old.duration_ms is not null
        and (step_type, day, agent, bucket) = ({_AGG_KEY.replace("new.", "old.")}, old.dbucket);"""
_AGG_CHANGED = " or ".join(
    f"old.{c} is not new.{c}"
    for c in ("step_type", "agent", "task_known", "duration_ms", "day", "success", "dbucket")
)
# Rows not uploaded in their newest version (``v > acked``), counted per table by triggers so that
# ``stepsdk status`` reads three numbers instead of comparing every row with its confirmation.
_PENDING_TRIGGERS = "".join(
    f"""create trigger if not exists {t}_pending_insert after insert on {t} when new.v > new.acked begin
    update pending set n = n + 1 where tbl = '{name}';
end;
create trigger if not exists {t}_pending_delete after delete on {t} when old.v > old.acked begin
    update pending set n = n - 1 where tbl = '{name}';
end;
create trigger if not exists {t}_pending_update after update of v, acked on {t}
when (old.v > old.acked) <> (new.v > new.acked) begin
    update pending set n = n + (new.v > new.acked) - (old.v > old.acked) where tbl = '{name}';
end;
"""
    for t, name in (("tasks", T_TASKS), ("steps", T_STEPS), ("shots", T_SHOTS))
)
_SCHEMA = (
    _SCHEMA.replace("{add}", _AGG_ADD)
    .replace("{sub}", _AGG_SUB)
    .replace("{changed}", _AGG_CHANGED)
    .replace("{pending_triggers}", _PENDING_TRIGGERS)
)
# Token usage per task (``usage_tasks``) and per UTC day of the step and task (``usage_days``) of
# the steps whose usage is not null, kept by triggers like the day counts: the viewer's usage
# pages read sums, not steps. Tokens are the step's integer counters (0 when missing or not
# integers), as ``stepsdk.ops.stats.tokens``.
_USAGE_SUMS = "1, {o}.prompt_tokens, {o}.completion_tokens, {o}.total_tokens"
_USAGE_ADD = f"""insert into usage_tasks values (new.task_id, {_USAGE_SUMS.format(o="new")})
        on conflict do update set steps = steps + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        total_tokens = total_tokens + excluded.total_tokens;
    insert into usage_days select new.day, new.task_id, {_USAGE_SUMS.format(o="new")} where new.day is not null
        on conflict do update set steps = steps + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        total_tokens = total_tokens + excluded.total_tokens;"""
_USAGE_SUB = """update usage_tasks set steps = steps - 1, prompt_tokens = prompt_tokens - old.prompt_tokens,
        completion_tokens = completion_tokens - old.completion_tokens, total_tokens = total_tokens - old.total_tokens
        where task_id = old.task_id;
    delete from usage_tasks where task_id = old.task_id and steps <= 0;
    update usage_days set steps = steps - 1, prompt_tokens = prompt_tokens - old.prompt_tokens,
        completion_tokens = completion_tokens - old.completion_tokens, total_tokens = total_tokens - old.total_tokens
        where day = old.day and task_id = old.task_id;
    delete from usage_days where day = old.day and task_id = old.task_id and steps <= 0;"""
_USAGE_CHANGED = " or ".join(
    f"old.{c} is not new.{c}"
    for c in ("task_id", "day", "has_usage", "prompt_tokens", "completion_tokens", "total_tokens")
)
_SCHEMA = (
    _SCHEMA.replace("{usage_add}", _USAGE_ADD)
    .replace("{usage_sub}", _USAGE_SUB)
    .replace("{usage_changed}", _USAGE_CHANGED)
)


def _statements(script: str) -> Iterator[str]:
    """The statements of a script (a trigger's body has semicolons of its own)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(_WS + ";"):
                yield pending
            pending = ""


_DATA_TABLES = (
    "journals",
    "tasks",
    "steps",
    "shots",
    "summary",
    "problems",
    "quarantined",
    "acks",
    "held",
    "rejects",
    "journal_tasks",
    "pending",
    "docs",
    "docs_text",
    "step_types",
    "type_days",
    "type_hist",
    "usage_tasks",
    "usage_days",
)

# Text fields searched across tasks: (field name, table, SQL expression).
SEARCH_TASK_FIELDS = ("title", "result", "error_message")
SEARCH_STEP_FIELDS = ("thinking", "error_message")
_STARTED_SEC = "max(0, min(cast(coalesce(t.started_epoch, 0) as integer), 2147483647))"


@dataclass
class _Torn:
    name: str
    offset: int


def _head_crc(path: Path) -> str | None:
    """The CRC prefix of a journal's first complete line (its identity), or None if none yet.
    Of any first line: a corrupt one shorter than a CRC, or one longer than 64 KiB, is one too
    (the journal's other records are read as ``BackupStore.read`` reads them)."""
    try:
        with open(path, "rb") as fh:
            first = line = fh.readline(1 << 16)
            while not line.endswith(b"\n"):
                line = fh.readline(1 << 16)
                if not line:
                    return None
    except OSError:
        return None
    return first[:8].decode("ascii", "replace")


def _file_crc_at(path: Path, start: int) -> str | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(8).decode("ascii", "replace")
    except OSError:
        return None


@dataclass
class Pruning:
    """What a cleanup did to the journals while :meth:`BackupIndex.pruning` held the index."""

    journals: list[tuple[Path, os.stat_result, list[bytes]]] = dataclasses.field(default_factory=list)
    gave_up: bool = False

    def replaced(self, path: Path, old: os.stat_result, kept: list[bytes]) -> None:
        """``path`` (whose ``stat`` was ``old``) was renamed over by a file of the ``kept`` lines."""
        self.journals.append((Path(path), old, kept))

    def give_up(self) -> None:
        """The rewrite stopped halfway: leave the index to start over from the journals."""
        self.gave_up = True


class BackupIndex:
    """The index of one backup folder. Thread-safe; one instance per process is enough.

    Every read method calls :meth:`refresh` first unless ``refresh=False`` is passed to the
    constructor's user (the viewer calls it once per request through :meth:`connection`).
    """

    def __init__(self, root: str | os.PathLike[str], path: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        self.path = Path(path) if path is not None else self.root / INDEX_FILE
        self._lock = threading.Lock()
        self._local = threading.local()
        self._signature: tuple = ()
        self._heads: dict[tuple[str, int, int], str] = {}
        self._torn: dict[str, _Torn] = {}
        #: journal files whose name UTF-8 cannot hold (copied from another system): not indexed,
        #: reported by problems() (SQLite stores text as UTF-8)
        self._unnamed: set[str] = set()
        self._ready = False
        self._generation: int | None = None
        self._closed_stats: dict[tuple[str, str], os.stat_result] = {}
        self._closed_checked = 0.0
        #: changes whenever a refresh saw the journals change (answers cached under an older one are stale)
        self.version = 0
        self._quick: tuple | None = None

    # -- connections --------------------------------------------------------------------------
    @property
    def _in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    def _connect(self) -> sqlite3.Connection:
        if not self._in_memory:  # created 0600 before SQLite opens it (it may hold thinking text)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Only when it does not exist: closing a descriptor of a file drops every POSIX lock
            # this process holds on it, those of SQLite's connections too (another thread's, or
            # another index object's): another process then takes the database for unused,
            # resets its WAL index under them, and the index is corrupt.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("pragma busy_timeout = 60000")
        # Switching to WAL needs a moment alone with the file, and SQLite does not wait for it
        # (no busy handler there): two processes opening a new index at once retry briefly.
        for attempt in range(100):
            try:
                conn.execute("pragma journal_mode = wal")
                break
            except sqlite3.OperationalError:
                if attempt == 99:
                    raise
                time.sleep(0.05)
        conn.execute("pragma synchronous = normal")
        conn.execute(f"pragma cache_size = -{READ_CACHE_KIB}")
        conn.execute("pragma mmap_size = 0")  # no mapping of the (large) file into the process
        # temporary files (a big statement's statement journal, large sorts) on disk, not in the
        # process: one FTS5 segment merge inside an insert can touch hundreds of MB of pages
        conn.execute("pragma temp_store = file")
        conn.create_aggregate("percentile_cont", 2, _Percentile)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (created on first use, schema ensured)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and not self._in_memory and not self.path.exists():
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            conn = None
            with self._lock:
                self._signature, self._ready = (), False
        if conn is None:
            conn = self._connect()
            self._ensure_schema(conn)
            self._local.conn = conn
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("begin immediate")
        try:
            conn.execute("create table if not exists meta(key text primary key, value text)")
            found = conn.execute("select value from meta where key = 'schema'").fetchone()
            if found is not None and found[0] != SCHEMA_VERSION:
                for table in (*_DATA_TABLES, "meta"):
                    conn.execute(f"drop table if exists {table}")
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            conn.execute("insert or replace into meta(key, value) values ('schema', ?)", (SCHEMA_VERSION,))
            conn.execute("insert or ignore into meta(key, value) values ('generation', '0')")
            conn.execute("insert or ignore into meta(key, value) values ('docseq', '0')")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        if not self._in_memory:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.chmod(f"{self.path}{suffix}", 0o600)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- refresh ------------------------------------------------------------------------------
    def _journal_files(self) -> tuple[list[tuple[str, str, bool, os.stat_result]], tuple]:
        """Every journal with its ``stat``, and a signature that changes when any of them does.

        When there are many journals whose writer closed, those are stat'ed at most once per
        :data:`CLOSED_RECHECK` seconds (a closed writer appends again only after ``reopen()``, for
        steps recorded after ``close()``): a folder of thousands of finished runs costs two folder
        ``stat`` calls and one per running writer per request. A file created, removed or
        renamed into a folder (new run, archive, rewrite) changes the folder and is seen at once."""
        now = time.monotonic()
        recheck = (
            now - self._closed_checked >= CLOSED_RECHECK or len(self._closed_stats) < CLOSED_CACHE_MIN
        )  # few files: stat them all, always
        mtimes = []
        for sub in (JOURNAL_DIR, ARCHIVE_DIR):
            try:
                mtimes.append(os.stat(os.path.join(self.root, sub)).st_mtime_ns)
            except (FileNotFoundError, NotADirectoryError):
                mtimes.append(None)
        if not recheck and self._quick is not None and self._quick[0] == mtimes:
            _, closed, closed_sig, open_paths = self._quick
            opened = []
            for name, path, archived in open_paths:
                with contextlib.suppress(OSError):
                    opened.append((name, path, archived, os.stat(path)))
            return closed + opened, (
                closed_sig,
                tuple((n, a, st.st_ino, st.st_size, st.st_mtime_ns) for n, _, a, st in opened),
            )
        self._closed_checked = now
        out = []
        for (sub, archived), folder_mtime in zip(
            ((JOURNAL_DIR, False), (ARCHIVE_DIR, True)), mtimes, strict=True
        ):
            if folder_mtime is None:
                continue
            folder = os.path.join(self.root, sub)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(SUFFIX))
                for name in names:
                    if not _utf8(name):
                        self._unnamed.add(os.path.join(sub, name))
                        continue
                    with contextlib.suppress(OSError):
                        st = os.stat(os.path.join(folder, name))
                        if stat.S_ISREG(st.st_mode):
                            out.append((name, os.path.join(folder, name), archived, st))
        closed, opened, signature = self._split(out)
        self._quick = (mtimes, closed, signature[0], [(n, p, a) for n, p, a, _ in opened])
        return out, signature

    def _split(self, files: list[tuple[str, str, bool, os.stat_result]]) -> tuple[list, list, tuple]:
        """Journals of closed writers, the others, and the signature of both (as the quick look
        computes it, so a look after the closed ones changed does not refresh again for nothing)."""
        closed = [f for f in files if ((ARCHIVE_DIR if f[2] else JOURNAL_DIR), f[0]) in self._closed_stats]
        opened = [
            f for f in files if ((ARCHIVE_DIR if f[2] else JOURNAL_DIR), f[0]) not in self._closed_stats
        ]
        closed_sig = tuple((n, a, st.st_ino, st.st_size, st.st_mtime_ns) for n, _, a, st in closed)
        return (
            closed,
            opened,
            (closed_sig, tuple((n, a, st.st_ino, st.st_size, st.st_mtime_ns) for n, _, a, st in opened)),
        )

    def _remember_closed(
        self, conn: sqlite3.Connection, files: list[tuple[str, str, bool, os.stat_result]]
    ) -> None:
        done = {
            (r[0], r[1])
            for r in conn.execute("select name, archived from journals where closed = 1 or archived = 1")
        }
        torn = {t.name for t in self._torn.values()}
        closed = {
            (ARCHIVE_DIR if a else JOURNAL_DIR, n): st
            for n, _, a, st in files
            if (n, int(a)) in done and n not in torn
        }
        if closed.keys() != self._closed_stats.keys():
            self._quick = None  # which journals are closed changed: sort them again at the next look
        self._closed_stats = closed

    def refresh(self) -> sqlite3.Connection:
        """Apply what the journals gained since the last refresh; returns this thread's connection."""
        conn = self.connection()
        files, signature = self._journal_files()
        generation = int(conn.execute("select value from meta where key = 'generation'").fetchone()[0])
        if self._ready and generation == self._generation and signature == self._signature:
            # kept, so the next look compares the closed journals' part (the same object while
            # nothing changed, see _journal_files) by identity, not thousands of tuples per request
            self._signature = signature
            return conn
        with self._lock:
            self._refresh(conn, files)
            self._remember_closed(conn, files)
            self._signature, self._ready = self._split(files)[2], True
            self.version += 1
            self._generation = int(
                conn.execute("select value from meta where key = 'generation'").fetchone()[0]
            )
        return conn

    def _refresh(self, conn: sqlite3.Connection, files: list[tuple[str, str, bool, os.stat_result]]) -> None:
        present: list[tuple[str, str, Path, bool, int]] = []
        torn: dict[str, _Torn] = {}
        sizes = {}
        for name, path_str, archived, st in files:
            path = Path(path_str)
            sizes[(name, archived)] = st.st_size
            head_key = (name, st.st_ino, st.st_size if st.st_size < 64 else 64)
            head = self._heads.get(head_key) or _head_crc(path)
            if head is None:
                if st.st_size:
                    torn[name] = _Torn(name, 0)
                continue
            self._heads[head_key] = head
            present.append((f"{name}#{head}", name, path, archived, st.st_ino))
        conn.execute("begin immediate")
        try:
            if self._must_restart(conn, present):
                log.info("backup index %s: a journal was removed or rewritten: rebuilding", self.path)
                # dropped, not emptied: a delete would run the statistics triggers once per step
                for table in _DATA_TABLES:
                    conn.execute(f"drop table if exists {table}")
                for statement in _statements(_SCHEMA):
                    conn.execute(statement)
                conn.execute("update meta set value = cast(value as integer) + 1 where key = 'generation'")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        # journals applied to their end already (most, in a folder of finished runs) need no
        # write transaction of their own
        done = {
            (r[0], r[1], r[2], r[3])
            for r in conn.execute(
                # an archived journal is done once read again as uploaded (see _apply_journal)
                "select jkey, name, archived, offset from journals where not archived or acked_to >= offset"
            )
        }
        conn.execute(f"pragma cache_size = -{APPLY_CACHE_KIB}")
        try:
            for jkey, name, path, archived, inode in present:
                if (jkey, name, int(archived), sizes[(name, archived)]) in done:
                    continue
                # up to the size listed: a journal that keeps growing never holds a refresh forever
                end = self._apply_journal(conn, jkey, name, path, archived, inode, sizes[(name, archived)])
                if end is not None:
                    torn[jkey] = _Torn(name, end)
        finally:
            conn.execute(f"pragma cache_size = -{READ_CACHE_KIB}")  # gives the pages back
        self._torn = torn

    @staticmethod
    def _must_restart(conn: sqlite3.Connection, present: list[tuple[str, str, Path, bool, int]]) -> bool:
        known = {r["jkey"]: r for r in conn.execute("select * from journals")}
        seen = set()
        for jkey, _name, path, _archived, inode in present:
            seen.add(jkey)
            state = known.get(jkey)
            if state is None or not state["offset"]:
                continue
            if state["inode"] != inode:
                return True
            if (
                state["last_start"] is not None
                and _file_crc_at(path, state["last_start"]) != state["last_crc"]
            ):
                return True
        return bool(set(known) - seen)

    def _apply_journal(
        self,
        conn: sqlite3.Connection,
        jkey: str,
        name: str,
        path: Path,
        archived: bool,
        inode: int,
        size: int,
    ) -> int | None:
        """Apply the new records of one journal, a batch per transaction. Returns the offset of a
        torn last line (None when the journal ends with a complete line).

        A journal applied while in journal/ and archived since is read once more up to where it
        was applied (``acked_to`` follows that pass batch by batch), for its records count as
        uploaded now; new records of an archived journal count as uploaded as they are applied."""
        while True:
            conn.execute("begin immediate")
            try:
                state = conn.execute(
                    "select offset, last_start, last_crc, acked_to from journals where jkey = ?", (jkey,)
                ).fetchone()
                if state is None:
                    conn.execute(
                        "insert into journals(jkey, name, archived, inode) values (?, ?, ?, ?)",
                        (jkey, name, int(archived), inode),
                    )
                    offset, last_start, last_crc, acked_to = 0, None, None, 0
                else:
                    offset, last_start, last_crc, acked_to = state
                    conn.execute(
                        "update journals set name = ?, archived = ? where jkey = ?",
                        (name, int(archived), jkey),
                    )
                if archived and acked_to < offset:
                    acked_to = self._ack_pass(conn, jkey, name, path, acked_to, offset)
                    conn.execute("update journals set acked_to = ? where jkey = ?", (acked_to, jkey))
                    conn.execute("commit")
                    continue
                if offset >= size:
                    conn.execute("commit")
                    return None
                batch = _Batch(conn, jkey, name, archived)
                torn_at = None
                try:
                    lines, full = _read_batch(path, offset, size)
                except FileNotFoundError:  # moved to archive/ meanwhile: the next refresh reads it there
                    lines, full = [], False
                for line_offset, record, problem, raw, after in lines:
                    if not raw.endswith(b"\n") and record is None and problem and "no newline" in problem:
                        torn_at, full = line_offset, False
                        break
                    if record is None:
                        batch.problem(line_offset, problem or "corrupt")
                    else:
                        batch.record(record, _body(raw, record))
                        last_start, last_crc = line_offset, raw[:8].decode("ascii", "replace")
                    offset = after
                batch.finish()
                conn.execute(
                    "update journals set offset = ?, last_start = ?, last_crc = ?, inode = ?, acked_to = ? "
                    "where jkey = ?",
                    (offset, last_start, last_crc, inode, offset if archived else acked_to, jkey),
                )
                conn.execute("commit")
            except BaseException:
                conn.execute("rollback")
                raise
            if not full:
                return torn_at

    @staticmethod
    def _ack_pass(conn: sqlite3.Connection, jkey: str, name: str, path: Path, start: int, end: int) -> int:
        """One batch of an archived journal's records from ``start`` (before ``end``) as uploads;
        returns where it stopped. A journal gone meanwhile: the next refresh starts over anyway."""
        batch = _Batch(conn, jkey, name, archived=True, acks_only=True)
        try:
            lines, _ = _read_batch(path, start, end)
        except FileNotFoundError:
            return end
        for _offset, record, _problem, _raw, _after in lines:
            if record is not None:
                batch.record(record, "")
        batch.finish()
        position = lines[-1][4] if lines else end
        return position if position < end else end

    # -- pruning (stepsdk cleanup --local, stepsdk delete) -------------------------------------
    @contextlib.contextmanager
    def pruning(self, task_ids: Iterable[str]) -> Iterator[Pruning]:
        """Keep the index in step while journals are rewritten without the records of ``task_ids``.

        Inside the block the index's write lock is held (other refreshers wait; do not use this
        index there); the caller renames each rewritten journal over the old one and reports it
        (:meth:`Pruning.replaced`). At the end of the block, in the same transaction, the tasks'
        rows are deleted and each journal's progress is moved to its new file, so the index stays
        valid without reading the journals again. Crash-safe: a crash after a rename but before
        the commit leaves the old progress (inode, last record CRC), which no longer matches the
        file, so the next refresh starts over from the journals; so do an exception in the block
        and :meth:`Pruning.give_up` (the rewrite stopped halfway)."""
        # No refresh first: a journal the index had not applied to its end starts it over (see
        # _move_progress), which is correct; a refresh here could be a whole build, and local
        # retention also runs on a tracker's background thread.
        conn = self.connection()
        with self._lock:
            conn.execute("begin immediate")
            try:
                pruning = Pruning()
                yield pruning
                if pruning.gave_up:
                    conn.execute("rollback")
                else:
                    for path, old, kept in pruning.journals:
                        self._move_progress(conn, path, old, kept)
                    self._delete_tasks(conn, set(task_ids))
                    conn.execute("commit")
            except BaseException:
                conn.execute("rollback")
                raise
            finally:
                self._signature, self._ready = (), False  # look at the journals again at the next read

    @staticmethod
    def _move_progress(conn: sqlite3.Connection, path: Path, old: os.stat_result, kept: list[bytes]) -> None:
        archived = int(path.parent.name == ARCHIVE_DIR)
        state = conn.execute(
            "select jkey, offset, acked_to from journals where name = ? and archived = ? and inode = ?",
            (path.name, archived, old.st_ino),
        ).fetchone()
        if state is None or state["offset"] != old.st_size:
            return  # the index had not applied all of it: it will see the new file and start over
        try:
            new = os.stat(path)
        except OSError:
            return
        head = kept[0][:8].decode("ascii", "replace") if kept and kept[0].endswith(b"\n") else None
        conn.execute("delete from problems where jkey = ?", (state["jkey"],))  # offsets moved; only
        # quarantined corrupt lines can be there (cleanup leaves journals with others alone) and
        # the rewrite dropped them
        if head is None or new.st_size != sum(len(line) for line in kept):
            conn.execute("delete from journals where jkey = ?", (state["jkey"],))
            conn.execute("delete from journal_tasks where jkey = ?", (state["jkey"],))
            return
        conn.execute(
            "update journals set jkey = ?, inode = ?, offset = ?, last_start = ?, last_crc = ?, acked_to = ? "
            "where jkey = ?",
            (
                f"{path.name}#{head}",
                new.st_ino,
                new.st_size,
                new.st_size - len(kept[-1]),
                kept[-1][:8].decode("ascii", "replace"),
                new.st_size if state["acked_to"] >= state["offset"] else 0,
                state["jkey"],
            ),
        )
        conn.execute(
            "update journal_tasks set jkey = ? where jkey = ?", (f"{path.name}#{head}", state["jkey"])
        )

    @staticmethod
    def _delete_tasks(conn: sqlite3.Connection, task_ids: set[str]) -> None:
        if not task_ids:
            return
        conn.execute("delete from touched_tasks")
        conn.executemany("insert or ignore into touched_tasks values (?)", ((t,) for t in task_ids))
        old = conn.execute(
            "select d.docid from touched_tasks x cross join docs d on d.task_id = x.task_id"
        ).fetchall()
        conn.executemany("delete from docs_text where rowid = ?", old)  # one by one: see _search_docs
        conn.executemany("delete from docs where docid = ?", old)
        # ack and reject records stay in the journals, and so do their confirmations and refusals;
        # those the tasks' own records gave (in archived journals) go with them
        conn.execute("delete from touched_acks")
        conn.execute(
            "insert or ignore into touched_acks select tbl, key from held "
            "where task_id in (select task_id from touched_tasks)"
        )
        conn.execute("delete from held where task_id in (select task_id from touched_tasks)")
        conn.execute(
            "delete from acks where av is null and (tbl, key) in (select tbl, key from touched_acks) "
            "and not exists (select 1 from held h where (h.tbl, h.key) = (acks.tbl, acks.key))"
        )
        conn.execute(
            "update acks set v = (select max(coalesce(acks.av, max(h.v)), coalesce(max(h.v), acks.av)) "
            "from held h where (h.tbl, h.key) = (acks.tbl, acks.key)) "
            "where (tbl, key) in (select tbl, key from touched_acks)"
        )
        for table, (rows, key) in _ACKED_ROWS.items():  # rows of other tasks (keys they share)
            conn.execute(
                f"update {rows} set acked = max(-1, coalesce((select a.v from acks a where a.tbl = '{table}' "
                f"and a.key = {rows}.{key}), -1)) where {key} in "
                f"(select key from touched_acks where tbl = '{table}')"
            )
        for table in (
            "steps",
            "shots",
            "summary",
            "tasks",
            "journal_tasks",
        ):  # steps: triggers update day counts
            conn.execute(f"delete from {table} where task_id in (select task_id from touched_tasks)")
        conn.execute("delete from touched_tasks")

    # -- reading ------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Records skipped (as ``BackupStore.read().problems`` words them), quarantined ones left out."""
        return self._problems(self.refresh())

    def _problems(self, conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute(
            "select p.name, p.offset, p.problem from problems p join journals j on j.jkey = p.jkey "
            "where not exists (select 1 from quarantined q where q.name = p.name and q.offset = p.offset) "
            "order by j.archived, p.name, p.offset"
        ).fetchall()
        out = [f"{r[0]} at byte {r[1]}: {r[2]}; record skipped" for r in rows]
        out += [
            f"{os.path.basename(path)!a}: the file name is not valid UTF-8, so the index cannot "
            "read this journal (rename the file)"
            for path in sorted(self._unnamed)
            if os.path.exists(os.path.join(self.root, path))
        ]
        torn_lines = sorted(self._torn.items())
        writers = {  # only for torn tails (usually none): every page asks, over thousands of journals
            r["jkey"]: r
            for r in (
                conn.execute("select jkey, name, pid, host, closed, archived from journals")
                if torn_lines
                else ()
            )
        }
        for jkey, torn in torn_lines:
            state = writers.get(jkey)
            if state is not None and _writer_alive(self.root, state):
                continue
            if conn.execute(  # copied to quarantine/ by resync: handled, as BackupStore.read says
                "select 1 from quarantined where name = ? and offset = ?", (torn.name, torn.offset)
            ).fetchone():
                continue
            out.append(
                f"{torn.name} at byte {torn.offset}: incomplete record (no newline: torn write); "
                "record skipped"
            )
        return out

    def tasks(self) -> list[Row]:
        """Every task row (the newest version of each)."""
        conn = self.refresh()
        return [load_row(r[0]) for r in conn.execute("select rec from tasks order by task_id")]

    def task(self, task_id: str) -> Row | None:
        row = self.refresh().execute("select rec from tasks where task_id = ?", (task_id,)).fetchone()
        return load_row(row[0]) if row else None

    def steps(self, task_id: str, offset: int = 0, limit: int = -1) -> list[Row]:
        """A task's steps in step_number order (all, or ``limit`` from ``offset``)."""
        conn = self.refresh()
        return [
            load_row(r[0])
            for r in conn.execute(
                "select rec from steps where task_id = ? order by step_number, id limit ? offset ?",
                (task_id, limit, offset),
            )
        ]

    def step_count(self, task_id: str) -> int:
        return int(
            self.refresh().execute("select count(*) from steps where task_id = ?", (task_id,)).fetchone()[0]
        )

    def screenshots(self, task_id: str) -> list[Row]:
        conn = self.refresh()
        return [load_row(r[0]) for r in conn.execute("select rec from shots where task_id = ?", (task_id,))]

    def screenshot_paths(self) -> set[str]:
        """Every screenshot object a step or screenshot row points at."""
        conn = self.refresh()
        paths = {
            r[0]
            for r in conn.execute(
                # a stepsdk 0.1 journal's screenshot row names the key storage_path
                "select coalesce(json_extract(rec, '$.row.screenshot_path'), json_extract(rec, '$.row.storage_path')) "
                "from shots union "
                "select json_extract(rec, '$.row.screenshot_path') from steps "
                "where json_extract(rec, '$.row.screenshot_path') is not null"
            )
            if isinstance(r[0], str)
        }
        return paths

    def upload_state(self) -> UploadState:
        """What is not uploaded yet, what Supabase refused, the last upload (see
        :class:`stepsdk.store.upload_state.UploadState`; equal to ``UploadState.from_snapshot``)."""
        conn = self.refresh()
        # one read transaction: every figure from the same state (another process's refresh may
        # commit between two of these queries)
        conn.execute("begin")
        try:
            return self._upload_state(conn)
        finally:
            conn.execute("commit")

    def _upload_state(self, conn: sqlite3.Connection) -> UploadState:
        objects = sorted(  # in Python: a key stored as bytes (see _key) sorts as its text
            _unkey(r[0])
            for r in conn.execute(
                # pending rows only (partial indexes): the screenshot objects they need, at the
                # newest version that needs each, not confirmed at that version
                "select n.path from (select path, v from shots where v > acked "
                "union all select path, v from steps where v > acked and path is not null) n "
                "group by n.path having max(n.v) > "
                "coalesce((select a.v from acks a where a.tbl = 'objects' and a.key = n.path), -1)"
            )
        )
        pending = {r[0]: int(r[1]) for r in conn.execute("select tbl, n from pending")}
        pending[T_OBJECTS] = len(objects)
        # a refusal stays shown until its key is uploaded in its newest version (as in BackupStore.read)
        rejected = []
        for r in conn.execute("select tbl, key, error, at from rejects"):
            table, key = _unkey(r[0]), _unkey(r[1])
            rows = _ACKED_ROWS.get(table)
            version = (
                conn.execute(f"select v from {rows[0]} where {rows[1]} = ?", (r[1],)).fetchone()
                if rows is not None
                else None
            )
            done = conn.execute("select v from acks where tbl = ? and key = ?", (r[0], r[1])).fetchone()
            if done is not None and done[0] >= (version[0] if version else 0):
                continue
            rejected.append({"table": table, "id": key, "error": json.loads(r[2]), "at": json.loads(r[3])})
        rejected.sort(key=lambda r: (r["table"], r["id"]))  # see objects
        last = conn.execute("select value from meta where key = 'last_upload_at'").fetchone()
        return UploadState(
            pending=pending,
            pending_objects=objects,
            rejected=rejected,
            last_upload_at=_unkey(last[0]) if last else None,
            tasks=int(conn.execute("select count(*) from tasks").fetchone()[0]),
            problems=self._problems(conn),
        )

    def storage_figures(self) -> Row:
        """Tasks, steps, screenshot rows, distinct screenshot objects and their bytes (the
        largest ``file_size`` a row gives each), the oldest and newest task start."""
        conn = self.refresh()
        objects, size = conn.execute(
            "select count(*), coalesce(sum(b), 0) from (select path, "
            "max(coalesce(cast(json_extract(rec, '$.row.file_size') as integer), 0)) as b from shots group by path)"
        ).fetchone()
        ends = [
            parse_ts(r[0])
            for r in conn.execute(
                "select * from (select started_at from tasks where started_epoch is not null "
                "order by started_epoch, task_id limit 1) union all "
                "select * from (select started_at from tasks where started_epoch is not null "
                "order by started_epoch desc, task_id limit 1)"
            )
        ]
        counts = self.counts()
        return {
            "tasks": counts["tasks"],
            "steps": counts["steps"],
            "screenshots": counts["shots"],
            "objects": int(objects),
            "bytes": int(size),
            "oldest_task_at": ends[0].isoformat() if ends and ends[0] else None,
            "newest_task_at": ends[-1].isoformat() if ends and ends[-1] else None,
        }

    def counts(self) -> dict[str, int]:
        conn = self.refresh()
        return {
            t: int(conn.execute(f"select count(*) from {t}").fetchone()[0])
            for t in ("tasks", "steps", "shots")
        }

    # -- local retention (stepsdk cleanup --local, stepsdk delete) ------------------------------
    # The methods below answer as of the last refresh, without refreshing: call them inside
    # :meth:`reading`, so a clean-up plans from one state of the index.
    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Refresh, then hold one read transaction: every query inside sees the same state (WAL:
        recording processes and other refreshers go on meanwhile)."""
        conn = self.refresh()
        conn.execute("begin")
        try:
            yield conn
        finally:
            conn.execute("commit")

    def known_task_ids(self, task_ids: Iterable[str]) -> set[str]:
        """Those of ``task_ids`` with any row: a task row, a step or a screenshot row."""
        ids = _json_list(task_ids)
        return {
            r[0]
            for r in self.connection().execute(
                "select value from json_each(?) x where exists (select 1 from tasks t where t.task_id = x.value) "
                "or exists (select 1 from steps s where s.task_id = x.value) "
                "or exists (select 1 from shots h where h.task_id = x.value)",
                (ids,),
            )
        }

    def task_starts(self, task_ids: Iterable[str]) -> dict[str, str | None]:
        """``task_id -> started_at`` (as stored) of those of ``task_ids`` that have a task row."""
        return dict(
            self.connection().execute(
                "select t.task_id, t.started_at from json_each(?) x join tasks t on t.task_id = x.value",
                (_json_list(task_ids),),
            )
        )

    def tasks_started(
        self, *, before: float | None = None, agent: str | None = None
    ) -> dict[str, str | None]:
        """``task_id -> started_at`` of the tasks with a parsable start before the epoch ``before``
        (when given) and whose agent is the text ``agent`` (when given)."""
        where, params = ["1"], []
        if before is not None:
            where.append("s.started_epoch < ?")
            params.append(before)
        if agent is not None:
            where.append("s.agent = ? and json_type(t.rec, '$.row.agent') = 'text'")
            params.append(agent)
        return dict(
            self.connection().execute(
                "select s.task_id, s.started_at from summary s join tasks t on t.task_id = s.task_id "
                f"where {' and '.join(where)}",
                params,
            )
        )

    def pending_task_ids(self, task_ids: Iterable[str]) -> set[str]:
        """Those of ``task_ids`` with a task row, step or screenshot row not uploaded in its newest
        version yet (``v > acked``: the rows :meth:`upload_state` counts as pending)."""
        return {
            r[0]
            for r in self.connection().execute(
                """with x(task_id) as (select value from json_each(?))
                   select task_id from tasks where task_id in x and v > acked
                   union select task_id from steps where task_id in x and v > acked
                   union select task_id from shots where task_id in x and v > acked""",
                (_json_list(task_ids),),
            )
        }

    def task_journals(self, task_ids: Iterable[str]) -> list[Row]:
        """The journals holding records of ``task_ids``: ``name``, ``archived``, ``closed``, ``pid``,
        ``host`` (of its ``open`` record), ``task_ids`` (those of the given it holds), ``damaged``
        (a corrupt line or a torn last line not quarantined, as ``BackupStore.read()`` counts them;
        a torn tail whatever its writer: whether that writer is alive is the caller's to check)."""
        rows = [
            dict(r)
            for r in self.connection().execute(
                """select j.jkey, j.name, j.archived, j.closed, j.pid, j.host,
                          exists (select 1 from problems p where p.jkey = j.jkey and not exists
                                  (select 1 from quarantined q where q.name = p.name and q.offset = p.offset))
                          as damaged,
                          json_group_array(jt.task_id) as task_ids
                   from json_each(?) x join journal_tasks jt on jt.task_id = x.value
                   join journals j on j.jkey = jt.jkey
                   group by j.jkey order by j.archived, j.name""",
                (_json_list(task_ids),),
            )
        ]
        conn = self.connection()
        for row in rows:
            row["task_ids"] = json.loads(row["task_ids"])
            torn = self._torn.get(row["jkey"])
            if torn is not None and not row["damaged"]:
                row["damaged"] = not conn.execute(
                    "select 1 from quarantined where name = ? and offset = ?", (torn.name, torn.offset)
                ).fetchone()
            row["damaged"] = bool(row["damaged"])
        return rows

    def open_journals(self) -> list[Row]:
        """The journals whose writer has not closed them (``name``, ``pid``, ``host``): those that
        may still grow."""
        return [
            dict(r)
            for r in self.connection().execute(
                "select name, archived, closed, pid, host from journals "
                "where not closed and not archived and pid is not null order by name"
            )
        ]

    def unreferenced_paths(self, task_ids: Iterable[str]) -> list[str]:
        """The screenshot objects rows of ``task_ids`` point at and no row of any other task does
        (sorted): what deleting these tasks frees."""
        return [
            r[0]
            for r in self.connection().execute(
                """with x(task_id) as (select value from json_each(?)),
                   p(path) as (select s.path from steps s where s.task_id in x and s.path is not null
                               union select h.path from shots h where h.task_id in x)
                   select p.path from p
                   where not exists (select 1 from steps s where s.path = p.path and s.task_id not in x)
                   and not exists (select 1 from shots h where h.path = p.path and h.task_id not in x)
                   order by p.path""",
                (_json_list(task_ids),),
            )
        ]

    def referenced_paths(self, paths: Iterable[str]) -> set[str]:
        """Those of ``paths`` a step or screenshot row points at (refreshes first)."""
        return {
            r[0]
            for r in self.refresh().execute(
                "select value from json_each(?) x where exists (select 1 from steps s where s.path = x.value) "
                "or exists (select 1 from shots h where h.path = x.value)",
                (_json_list(paths),),
            )
        }


def _json_list(values: Iterable[str]) -> str:
    """Values for SQL's ``json_each(?)`` (a set of any size as one parameter)."""
    return json.dumps(list(values))


def _body(raw: bytes, record: Row) -> str:
    """A record's JSON as stored (``rec``): its line's own text, unless that is not plain UTF-8
    (``json.loads`` also reads UTF-16, UTF-32 and a UTF-8 BOM): then the record written again."""
    body = raw[9:-1]
    if json.detect_encoding(body) == "utf-8":
        return body.decode("utf-8", "replace")
    return json.dumps(record)


_BIG_RE = re.compile(r"\((\d+) bytes\)$")


def _read_batch(
    path: Path, start: int, end: int
) -> tuple[list[tuple[int, Row | None, str | None, bytes, int]], bool]:
    """The lines of one batch of a journal from ``start`` (before ``end``): at most
    :data:`BATCH_LINES` lines / :data:`BATCH_BYTES` bytes, each as ``iter_journal`` gives it plus
    the offset after it; and whether the batch stopped at that limit (more may follow)."""
    out: list[tuple[int, Row | None, str | None, bytes, int]] = []
    size_read = 0
    lines = iter_journal(path, start, end)
    try:
        for line_offset, record, problem, raw in lines:
            out.append((line_offset, record, problem, raw, line_offset + _line_size(raw, problem)))
            size_read += len(raw)
            if len(out) >= BATCH_LINES or size_read >= BATCH_BYTES:
                return out, True
    finally:
        lines.close()
    return out, False


def _line_size(raw: bytes, problem: str | None) -> int:
    """Bytes the line takes in the file (``iter_journal`` cuts an oversized line's raw to 200)."""
    big = _BIG_RE.search(problem or "") if problem and problem.startswith("record larger") else None
    return int(big.group(1)) if big else len(raw)


def _writer_alive(root: Path, state: sqlite3.Row) -> bool:
    """As ``BackupStore.read`` tells it: the journal's lease first (a writer on another host or
    in another pid namespace sharing the folder, a reused pid), then the pid."""
    folder = ARCHIVE_DIR if state["archived"] else JOURNAL_DIR
    return JournalInfo(
        path=root / folder / state["name"],
        archived=bool(state["archived"]),
        closed=bool(state["closed"]),
        pid=state["pid"],
        host=state["host"],
    ).writer_alive


def _fold(value: Any) -> str | None:
    return _storable(value.casefold()) if isinstance(value, str) else None


def _text(value: Any) -> str | None:
    """A display column's text (a lone surrogate becomes U+FFFD: the record keeps it, escaped)."""
    if value is None:
        return None
    return _storable(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _storable(text: str) -> str:
    """Text SQLite can take: UTF-8 cannot encode a lone surrogate (sqlite3 raises for it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _key(text: str) -> str | bytes:
    """A key compared and given back exactly (ack and refusal keys, screenshot paths): one with a
    lone surrogate is stored as the bytes of its ``surrogatepass`` encoding (a BLOB, equal only to
    itself); :func:`_unkey` reads either back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
    return text


def _unkey(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


def _int64(value: int) -> int:
    """A version as SQLite stores it (an absurd one outside 64 bits is clamped, never fatal)."""
    return max(-(1 << 63), min(value, (1 << 63) - 1))


# The index table and key column of the rows each uploaded table's confirmations are about.
_ACKED_ROWS = {T_TASKS: ("tasks", "task_id"), T_STEPS: ("steps", "id"), T_SHOTS: ("shots", "id")}


class _Acks:
    """Upload confirmations gathered by one batch: (table, key) -> the newest version confirmed.
    An ``ack`` record confirms its ids (version 0 unless its ``v`` map names a higher one; tasks:
    the ``v`` map), and every record of an archived journal confirms its own version (resync
    archives a journal once all of it is uploaded): the rules of ``BackupStore.read()``."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], int] = {}  # by ack records
        # by archived records, per the task of the record (a clean-up of the task removes them)
        self.holds: dict[tuple[str, str, str], int] = {}
        self.last_at: str | None = None

    def add(self, table: str, key: str, version: Any) -> None:
        if isinstance(version, int) and version > self.versions.get((table, key), -(1 << 63) - 1):
            self.versions[(table, key)] = _int64(version)

    def held(self, rec: Row) -> None:
        """A data record of an archived journal."""
        kind, row, version = rec["k"], rec["row"], _int64(rec.get("v", 0))
        if kind == KIND_STEP:
            keys: tuple[tuple[str, str], ...] = ((T_STEPS, row["id"]),)
        elif kind == KIND_TASK:
            keys = ((T_TASKS, row["task_id"]),)
        else:
            keys = ((T_SHOTS, row["id"]), (T_OBJECTS, row["screenshot_path"]))
        for table, key in keys:
            if version > self.holds.get((table, key, row["task_id"]), -(1 << 63) - 1):
                self.holds[(table, key, row["task_id"])] = version

    def ack(self, rec: Row) -> None:
        table, versions = rec["t"], rec.get("v")
        if table == T_TASKS:
            for key, version in (versions or {}).items():
                self.add(table, key, version)
        else:
            versions = versions if isinstance(versions, dict) else {}
            # a table without versioned rows here: any ack of an id settles it (BackupStore.is_acked)
            versioned = table in (T_STEPS, T_SHOTS, T_OBJECTS)
            for key in rec.get("ids") or ():
                if isinstance(key, str):
                    self.add(table, key, versions.get(key, 0) if versioned else 0)
        at = rec.get("at")
        if isinstance(at, str) and (self.last_at is None or at > self.last_at):
            self.last_at = at

    def write(self, conn: sqlite3.Connection) -> None:
        """``acks.v``: the newest version confirmed either way; ``av``: by ack records."""
        conn.executemany(
            "insert into acks(tbl, key, v, av) values (?, ?, ?, ?) "
            "on conflict do update set v = max(v, excluded.v), av = max(coalesce(av, excluded.av), excluded.av)",
            ((_key(t), _key(k), v, v) for (t, k), v in self.versions.items()),
        )
        conn.executemany(
            "insert into held(tbl, key, task_id, v) values (?, ?, ?, ?) "
            "on conflict do update set v = excluded.v where excluded.v > held.v",
            ((_key(t), _key(k), task_id, v) for (t, k, task_id), v in self.holds.items()),
        )
        newest = dict(self.versions)
        for (table, key, _task_id), version in self.holds.items():
            if version > newest.get((table, key), -(1 << 63) - 1):
                newest[(table, key)] = version
        conn.executemany(
            "insert into acks(tbl, key, v) values (?, ?, ?) "
            "on conflict do update set v = excluded.v where excluded.v > acks.v",
            ((_key(t), _key(k), v) for (t, k), v in newest.items()),
        )
        for table, (rows, column) in _ACKED_ROWS.items():  # rows already in the index
            conn.executemany(
                f"update {rows} set acked = ? where {column} = ? and acked < ?",
                ((v, _key(k), v) for (t, k), v in newest.items() if t == table),
            )
        if self.last_at is not None:  # compared here: the newest as Python orders str
            last = conn.execute("select value from meta where key = 'last_upload_at'").fetchone()
            if last is None or self.last_at > _unkey(last[0]):
                conn.execute(
                    "insert or replace into meta(key, value) values ('last_upload_at', ?)",
                    (_key(self.last_at),),
                )


class _Batch:
    """The records of one transaction; summaries and search rows of what they touched are
    recomputed at :meth:`finish`. ``archived``: the journal is in archive/ (its records count as
    uploaded); ``acks_only``: a journal applied before it was archived is read again for that."""

    def __init__(
        self, conn: sqlite3.Connection, jkey: str, name: str, archived: bool = False, acks_only: bool = False
    ) -> None:
        self.conn, self.jkey, self.name = conn, jkey, name
        self.archived, self.acks_only = archived, acks_only
        self.tasks: list[tuple] = []
        self.steps: list[tuple] = []
        self.shots: list[tuple] = []
        self.problems: list[tuple] = []
        self.quarantined: list[tuple] = []
        self.rejects: dict[tuple[str, str], tuple] = {}
        self.acks = _Acks()
        self.touched_tasks: set[str] = set()
        self.touched_steps: set[str] = set()

    def problem(self, offset: int, problem: str) -> None:
        if not self.acks_only:
            self.problems.append((self.jkey, self.name, offset, problem))

    def record(self, rec: Row, body: str) -> None:
        kind = rec["k"]
        if self.archived and kind in (KIND_STEP, KIND_TASK, KIND_SHOT):
            self.acks.held(rec)
        if self.acks_only:
            return
        if kind == KIND_STEP:
            row = rec["row"]
            self.steps.append(_step_values(row, rec.get("v", 0), body))
            self.touched_tasks.add(row["task_id"])
            self.touched_steps.add(row["id"])
        elif kind == KIND_TASK:
            row = rec["row"]
            self.tasks.append(_task_values(row, rec["v"], body))
            self.touched_tasks.add(row["task_id"])
        elif kind == KIND_SHOT:
            row = rec["row"]
            self.shots.append(
                (
                    row["id"],
                    row["task_id"],
                    row.get("step_id"),
                    _text(row.get("created_at")),
                    body,
                    _int64(rec.get("v", 0)),
                    _key(row["screenshot_path"]),
                )
            )
            self.touched_tasks.add(row["task_id"])
        elif kind == KIND_ACK:
            self.acks.ack(rec)
        elif kind == KIND_REJECT:
            # error and at as written, whatever their JSON type (as BackupStore.read keeps them)
            self.rejects[(rec["t"], str(rec.get("id")))] = (
                _key(rec["t"]),
                _key(str(rec.get("id"))),
                json.dumps(rec.get("error")),
                json.dumps(rec.get("at")),
            )
        elif kind == KIND_QUARANTINED:
            with contextlib.suppress(TypeError, ValueError):
                self.quarantined.append((_key(str(rec.get("file"))), int(rec.get("offset", -1))))
        elif kind == KIND_OPEN:
            pid = rec.get("pid")
            self.conn.execute(
                "update journals set pid = ?, host = ? where jkey = ?",
                (pid if isinstance(pid, int) else None, _text(rec.get("host")), self.jkey),
            )
        elif kind == KIND_CLOSE:
            self.conn.execute("update journals set closed = 1 where jkey = ?", (self.jkey,))

    def finish(self) -> None:
        c = self.conn
        self.acks.write(c)
        if self.acks_only:
            return
        c.executemany(
            "insert or replace into rejects(tbl, key, error, at) values (?, ?, ?, ?)", self.rejects.values()
        )
        c.executemany(
            "insert or ignore into journal_tasks(jkey, task_id) values (?, ?)",
            ((self.jkey, t) for t in self.touched_tasks),
        )
        c.executemany(
            "insert into tasks(task_id, v, rec, title, agent, status, started_at, finished_at, started_epoch, "
            "finished_epoch, duration_ms, day, title_fold, task_id_fold, agent_fold) "
            "values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "on conflict(task_id) do update set v = excluded.v, rec = excluded.rec, title = excluded.title, "
            "agent = excluded.agent, status = excluded.status, started_at = excluded.started_at, "
            "finished_at = excluded.finished_at, started_epoch = excluded.started_epoch, "
            "finished_epoch = excluded.finished_epoch, "
            "duration_ms = excluded.duration_ms, day = excluded.day, title_fold = excluded.title_fold, "
            "task_id_fold = excluded.task_id_fold, agent_fold = excluded.agent_fold where excluded.v >= tasks.v",
            self.tasks,
        )
        c.executemany(
            "insert into steps(id, task_id, step_number, v, rec, step_type, success, duration_ms, created_at, "
            "created_epoch, error_type, err_group, day, dbucket, strict_fail, category, path, "
            "has_usage, prompt_tokens, completion_tokens, total_tokens) "
            "values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "on conflict(id) do update set task_id = excluded.task_id, step_number = excluded.step_number, "
            "v = excluded.v, rec = excluded.rec, step_type = excluded.step_type, success = excluded.success, "
            "duration_ms = excluded.duration_ms, created_at = excluded.created_at, "
            "created_epoch = excluded.created_epoch, error_type = excluded.error_type, "
            "err_group = excluded.err_group, day = excluded.day, dbucket = excluded.dbucket, "
            "strict_fail = excluded.strict_fail, category = excluded.category, path = excluded.path, "
            "has_usage = excluded.has_usage, prompt_tokens = excluded.prompt_tokens, "
            "completion_tokens = excluded.completion_tokens, total_tokens = excluded.total_tokens "
            "where excluded.v >= steps.v",
            self.steps,
        )
        c.executemany(
            "insert into shots(id, task_id, step_id, created_at, rec, v, path) values (?,?,?,?,?,?,?) "
            "on conflict(id) do update set task_id = excluded.task_id, step_id = excluded.step_id, "
            "created_at = excluded.created_at, rec = excluded.rec, v = excluded.v, path = excluded.path "
            "where excluded.v >= shots.v",
            self.shots,
        )
        c.executemany(
            "insert or ignore into problems(jkey, name, offset, problem) values (?,?,?,?)", self.problems
        )
        c.executemany("insert or ignore into quarantined(name, offset) values (?,?)", self.quarantined)
        if not self.touched_tasks:
            return
        c.execute("delete from touched_tasks")
        c.execute("delete from touched_steps")
        c.executemany("insert or ignore into touched_tasks values (?)", ((t,) for t in self.touched_tasks))
        c.executemany("insert or ignore into touched_steps values (?)", ((s,) for s in self.touched_steps))
        self._known_tasks()
        self._acked_rows()
        c.execute(
            "insert or ignore into step_types select distinct s.step_type from touched_steps x "
            "cross join steps s on s.id = x.id where s.step_type is not null"
        )
        self._summaries()
        self._search_docs()

    def _summaries(self) -> None:
        c = self.conn
        c.execute("delete from summary where task_id in (select task_id from touched_tasks)")
        c.execute("""
            insert into summary
            select t.task_id, t.title, t.agent, t.status, t.started_at, t.finished_at, t.duration_ms,
                   coalesce(st.total, 0), coalesce(st.ok, 0), coalesce(st.total, 0) - coalesce(st.ok, 0),
                   case when st.total > 0 then st.ok * 1.0 / st.total end,
                   coalesce(st.total_duration, 0.0), st.avg_duration, st.p50, st.p95,
                   coalesce(sc.n, 0),
                   (select s2.created_at from steps s2 where s2.task_id = t.task_id and s2.created_epoch is not null
                    order by s2.created_epoch desc limit 1),
                   t.started_epoch, t.finished_epoch,
                   t.title_fold, t.task_id_fold, t.agent_fold, t.day
            from touched_tasks x
            cross join tasks t on t.task_id = x.task_id
            left join (
                select s.task_id, count(*) as total, sum(s.success) as ok, sum(s.duration_ms) as total_duration,
                       avg(s.duration_ms) as avg_duration, percentile_cont(s.duration_ms, 0.5) as p50,
                       percentile_cont(s.duration_ms, 0.95) as p95
                from steps s where s.task_id in (select task_id from touched_tasks) group by s.task_id
            ) st on st.task_id = t.task_id
            left join (
                select task_id, count(*) as n from shots where task_id in (select task_id from touched_tasks)
                group by task_id
            ) sc on sc.task_id = t.task_id""")

    def _search_docs(self) -> None:
        """Search rows (fts5, trigram) of touched tasks and steps. A row's id is the task's start
        second in the high 32 bits and a sequence in the low ones, so a search walks the matches
        newest task first and stops at its limit instead of sorting every match."""
        c = self.conn
        # a task whose start time changed (or that arrived after its steps): its steps' rows move with it
        c.execute(f"""insert or ignore into touched_steps
                      select s.id from touched_tasks x cross join tasks t on t.task_id = x.task_id
                      cross join steps s on s.task_id = t.task_id
                      where (select d.docid >> 32 from docs d where d.task_id = t.task_id and d.step_id is not null
                             limit 1) <> {_STARTED_SEC}""")
        old = c.execute(
            "select d.docid from touched_tasks x cross join docs d on d.task_id = x.task_id "
            "where d.step_id is null union all "
            "select d.docid from touched_steps x cross join docs d on d.step_id = x.id"
        ).fetchall()
        if old:  # one rowid at a time: fts5 answers "rowid in (...)" with a scan of the whole table
            c.executemany("delete from docs_text where rowid = ?", old)
            c.executemany("delete from docs where docid = ?", old)
        c.execute("delete from new_docs")
        for field in SEARCH_TASK_FIELDS:
            c.execute(f"""insert into new_docs(task_id, step_id, step_number, field, started_sec)
                          select t.task_id, null, null, '{field}', {_STARTED_SEC} from touched_tasks x
                          cross join tasks t on t.task_id = x.task_id
                          where coalesce(json_extract(t.rec, '$.row.{field}'), '') <> ''""")
        for field in SEARCH_STEP_FIELDS:
            c.execute(f"""insert into new_docs(task_id, step_id, step_number, field, started_sec)
                          select s.task_id, s.id, s.step_number, '{field}', {_STARTED_SEC} from touched_steps x
                          cross join steps s on s.id = x.id left join tasks t on t.task_id = s.task_id
                          where coalesce(json_extract(s.rec, '$.row.{field}'), '') <> ''""")
        seq = int(c.execute("select value from meta where key = 'docseq'").fetchone()[0])
        docid = "(nd.started_sec << 32) + ((? + nd.n) & 4294967295)"
        c.execute(
            f"insert into docs(docid, task_id, step_id, step_number, field) "
            f"select {docid}, nd.task_id, nd.step_id, nd.step_number, nd.field from new_docs nd",
            (seq,),
        )
        c.execute(
            f"""insert into docs_text(rowid, text)
                      select {docid}, cast(json_extract(coalesce(s.rec, t.rec), '$.row.' || nd.field) as text)
                      from new_docs nd left join steps s on s.id = nd.step_id
                      left join tasks t on nd.step_id is null and t.task_id = nd.task_id""",
            (seq,),
        )
        c.execute(
            "update meta set value = ? where key = 'docseq'",
            (seq + c.execute("select coalesce(max(n), 0) from new_docs").fetchone()[0],),
        )

    def _acked_rows(self) -> None:
        """Rows new to the index take the confirmation their key already has (an ack can come
        before the row, in another journal)."""
        for table, (rows, key) in _ACKED_ROWS.items():
            touched = (
                "select id from touched_steps" if rows == "steps" else "select task_id from touched_tasks"
            )
            column = "id" if rows == "steps" else "task_id"
            acked = f"(select a.v from acks a where a.tbl = '{table}' and a.key = {rows}.{key})"
            self.conn.execute(
                f"update {rows} set acked = {acked} where {column} in ({touched}) and {acked} > acked"
            )

    def _known_tasks(self) -> None:
        """Steps carry their task's agent (and whether the task row exists), so the statistics
        filter and group steps from one covering index, without a join per step."""
        self.conn.execute("""update steps set agent = (select t.agent from tasks t where t.task_id = steps.task_id),
                                              task_known = exists (select 1 from tasks t where t.task_id = steps.task_id)
                             where task_id in (select task_id from touched_tasks)
                             and (task_known is not exists (select 1 from tasks t where t.task_id = steps.task_id)
                                  or agent is not (select t.agent from tasks t where t.task_id = steps.task_id))""")


def _task_values(row: Row, version: int, body: str) -> tuple:
    ts, fin = parse_ts(row.get("started_at")), parse_ts(row.get("finished_at"))
    start, end = (ts.timestamp() if ts else None), (fin.timestamp() if fin else None)
    duration = (fin - ts).total_seconds() * 1000.0 if ts is not None and fin is not None else None
    day = ts.astimezone(UTC).date().isoformat() if ts else None
    return (
        row["task_id"],
        _int64(version),
        body,
        _text(row.get("title")),
        _text(row.get("agent")),
        _text(row.get("status")),
        _text(row.get("started_at")),
        _text(row.get("finished_at")),
        start,
        end,
        duration,
        day,
        _fold(row.get("title")),
        _fold(row["task_id"]),
        _fold(row.get("agent")),
    )


def _step_values(row: Row, version: int, body: str) -> tuple:
    duration = row.get("duration_ms")
    duration = (
        float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else None
    )
    success = 1 if row.get("success", True) else 0
    created = parse_ts(row.get("created_at"))
    return (
        row["id"],
        row["task_id"],
        row["step_number"],
        _int64(version),
        body,
        _text(row.get("step_type")),
        success,
        duration,
        _text(row.get("created_at")),
        created.timestamp() if created else None,
        _text(row.get("error_type")),
        _text(error_group(row.get("error_message"))) if not success else None,
        created.astimezone(UTC).date().isoformat() if created else None,
        duration_bucket(duration),
        # error categories count the steps whose success is false itself (not missing or null)
        1 if row.get("success") is False else 0,
        _text(row.get("error_category")),
        _key(row["screenshot_path"]) if row.get("screenshot_path") else None,
        *_usage_values(row.get("usage")),
    )


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _usage_values(usage: Any) -> tuple[int, ...]:
    """(has usage, prompt, completion, total tokens) of a step: a usage that is not null counts;
    a counter that is missing or not an integer is 0 (``stepsdk.ops.stats.tokens``)."""
    if usage is None:
        return (0, 0, 0, 0)
    out = [1]
    for key in _USAGE_KEYS:
        value = usage.get(key) if isinstance(usage, dict) else None
        counter = isinstance(value, int) and not isinstance(value, bool)
        out.append(_int64(value) if counter else 0)
    return tuple(out)


def duration_bucket(duration: float | None) -> int | None:
    """A coarse, monotonic bucket of a duration (8 per doubling): the statistics count steps per
    bucket and day (``type_hist``), so an exact percentile reads the steps of one bucket only."""
    if duration is None:
        return None
    if not math.isfinite(duration):
        return 1 << 20 if duration > 0 else -(1 << 20)  # NaN sorts last, as in PostgreSQL
    scaled = math.floor(math.log2(1.0 + abs(duration)) * 8)
    return scaled if duration >= 0 else -1 - scaled


def load_row(rec: str) -> Row:
    """The row of a stored journal record (a stepsdk 0.1 screenshot row with its key renamed)."""
    row: Row = json.loads(rec)["row"]
    return upgrade_screenshot_row(row)


def iter_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values, strict=True))

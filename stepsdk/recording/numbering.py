"""Step numbers that never collide, for a task recorded by several trackers over time.

The rule (README, "Reusing a task id"): a tracker started with a `task_id` that this backup
folder has seen before *resumes* the task: its step numbers continue after the last number any
earlier tracker of that task handed out, and the task keeps its original start. Trackers of the
same task at the same time (a forked child, two processes) get disjoint numbers.

How: a small counter file per task in `<backup>/numbers/` (named by a hash of the task id, so
task ids never become file names) holds the next free number. A tracker reserves numbers in
blocks of `BLOCK` under an exclusive POSIX record lock (`lockf`: per process, so a forked child
never inherits it) plus a per-file thread lock, so the agent's thread touches the file once per
256 steps (~20-50 µs), and gives back the unused tail of its block when it closes (a resumed run
then continues right after the last step, without a gap). `stepsdk import` moves the counter past
the steps it brings in.

Generated task ids (the default) are new by construction: they count from 1 in memory, lock-free,
and never touch the file, until the process forks: then the counter moves to the file first, so
that parent and child reserve disjoint blocks.

When the folder cannot be used (read-only, deleted), numbering goes on in memory from the last
known number: it never raises into the agent.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepsdk.store.backup import private_dir

log = logging.getLogger("stepsdk")

NUMBERS_DIR = "numbers"
BLOCK = 256
RECORD_BYTES = 512  # the file holds one JSON object padded to this size (rewritten in place)
_live: weakref.WeakSet[StepNumbers] = weakref.WeakSet()
_file_locks: dict[str, threading.Lock] = {}  # one per counter file: threads of this process
_file_locks_guard = threading.Lock()


def counter_path(root: str | os.PathLike[str], task_id: str) -> Path:
    return Path(root) / NUMBERS_DIR / (hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:40] + ".json")


def _file_lock(path: Path) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks.setdefault(str(path), threading.Lock())


class StepNumbers:
    """Hands out step numbers for one tracker (thread-safe)."""

    def __init__(self, root: str | os.PathLike[str], task_id: str, shared: bool, started_at: float) -> None:
        self.task_id = task_id
        self.shared = shared
        self.path = counter_path(root, task_id)
        self._lock = threading.RLock()
        self._next = 1
        self._end = 1  # block is [_next, _end); empty forces a reservation
        self.first_started_at = started_at  # the task's original start (resumed tasks keep it)
        self._counter: itertools.count[int] | None = None
        if shared:
            existed = self.path.exists()
            state = update_counter(
                self.path, self.task_id, lambda st: {**st, "started_at": st.get("started_at", started_at)}
            )
            if existed and state is not None and "next" not in state:
                # The counter was lost (a crash mid-write, a damaged disk): the backup knows the
                # last number. Rare, so a full read is fine here.
                last = _last_step_number(self.path.parent.parent, task_id)
                state = update_counter(
                    self.path, self.task_id, lambda st: {**st, "next": max(int(st.get("next", 1)), last + 1)}
                )
            if state is not None:
                self.first_started_at = float(state.get("started_at", started_at))
                self._next = self._end = int(state.get("next", 1))
        else:  # a new id: plain counting, no lock (itertools.count is atomic in CPython)
            self._counter = itertools.count(1)
            self.next = self._counter.__next__  # type: ignore[method-assign]
        _live.add(self)

    def next(self) -> int:
        with self._lock:
            if self._next >= self._end:
                self._reserve()
            n = self._next
            self._next += 1
            return n

    def _reserve(self) -> None:
        start = self._next
        state = update_counter(
            self.path, self.task_id, lambda st: {**st, "next": max(int(st.get("next", 1)), start) + BLOCK}
        )
        if state is None:  # the file cannot be used: go on in memory
            self._end = self._next + BLOCK
            return
        self._end = int(state["next"])
        self._next = self._end - BLOCK

    def release(self) -> None:
        """Give back the unused tail of the block (if nobody reserved after it)."""
        if not self.shared:
            return
        with self._lock:
            mine_end, used_to = self._end, self._next

            def give_back(st: dict[str, Any]) -> dict[str, Any]:
                return {**st, "next": used_to} if int(st.get("next", 1)) == mine_end else st

            update_counter(self.path, self.task_id, give_back)
            self._end = self._next

    # ------------------------------------------------------------------ fork
    def before_fork(self) -> None:
        """A counter in memory moves to the file, its current block reserved for the parent."""
        if self.shared or self._counter is None:
            return
        current = int(repr(self._counter)[6:-1])  # "count(N)": N is the next number
        state = update_counter(
            self.path, self.task_id, lambda st: {**st, "next": max(int(st.get("next", 1)), current) + BLOCK}
        )
        if state is None:
            return
        self.shared = True
        self._next, self._end = current, int(state["next"])
        del self.next  # back to the method: from now on numbers come from blocks

    def after_fork_in_child(self) -> None:
        """The block belongs to the parent: reserve a new one on next use."""
        self._lock = threading.RLock()
        self._end = self._next


def update_counter(
    path: Path, task_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any] | None:
    """Read-modify-write a counter file under the per-file thread lock and an exclusive POSIX
    record lock; None when the file cannot be used."""
    try:
        import fcntl
    except ImportError:  # not POSIX: numbering stays per tracker
        return None
    with _file_lock(path):
        try:
            private_dir(path.parent)  # 0700 for the backup folder too, when this creates it
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.debug("step numbers of %r: counter file unusable (%s)", task_id, exc)
            return None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, RECORD_BYTES, 0)
            try:
                state = json.loads(raw) if raw.strip() else {}
                if not isinstance(state, dict) or not isinstance(state.get("next", 1), int):
                    state = {}
            except ValueError:
                state = {}
            new = change({**state, "task_id": task_id})
            data = json.dumps(new, ensure_ascii=True).encode()
            if len(data) < RECORD_BYTES:  # rewritten in place, never truncated: no moment empty
                os.pwrite(fd, data.ljust(RECORD_BYTES), 0)
            else:
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
            return new
        except OSError as exc:
            log.debug("step numbers of %r: counter file unusable (%s)", task_id, exc)
            return None
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # also releases the record lock


def _last_step_number(root: Path, task_id: str) -> int:
    from stepsdk.store.backup import BackupStore

    try:
        steps = BackupStore(root).read().steps.get(task_id, [])
    except Exception as exc:  # only a best effort: never into the agent
        log.debug("step numbers of %r: backup unreadable (%s)", task_id, exc)
        return 0
    return max((s["step_number"] for s in steps), default=0)


def seed_counter(root: str | os.PathLike[str], task_id: str, next_number: int) -> None:
    """Make sure the task's next step number is at least `next_number` (used by import)."""
    update_counter(
        counter_path(root, task_id),
        task_id,
        lambda st: {**st, "next": max(int(st.get("next", 1)), next_number)},
    )


def _before_fork() -> None:
    for numbers in list(_live):
        with contextlib.suppress(Exception):
            numbers.before_fork()
    _file_locks_guard.acquire()
    for lock in list(_file_locks.values()):
        lock.acquire()


def _after_fork_in_parent() -> None:
    for lock in list(_file_locks.values()):
        lock.release()
    _file_locks_guard.release()


def _after_fork_in_child() -> None:
    for lock in list(_file_locks.values()):
        lock.release()
    _file_locks_guard.release()
    for numbers in list(_live):
        numbers.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )

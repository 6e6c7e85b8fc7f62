"""Step numbers that never collide, for a task recorded by several trackers over time.

The rule (README, "Reusing a task id"): a tracker started with a `task_id` that this backup
folder has seen before *resumes* the task: its step numbers continue after the last number any
earlier tracker of that task handed out, and the task keeps its original start. Trackers of the
same task at the same time (a forked child, two processes) get disjoint numbers.

How: a small counter file per task in `<backup>/numbers/` (named by a hash of the task id, so
task ids never become file names) holds the next free number. A tracker reserves numbers in
blocks of `BLOCK` under an exclusive `flock`, so the agent's thread touches the file once per
`BLOCK` (256) steps (~20 µs), and gives back the unused tail of its block when it closes (a resumed
run then continues right after the last step, without a gap). A forked child drops the block it
inherited and reserves its own. Generated task ids (the default) are new by construction: they
count from 1 in memory and never touch the file.

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
from pathlib import Path
from typing import Any

from stepsdk._backup import private_dir

log = logging.getLogger("stepsdk")

NUMBERS_DIR = "numbers"
BLOCK = 256
_live: weakref.WeakSet[StepNumbers] = weakref.WeakSet()


def counter_path(root: str | os.PathLike[str], task_id: str) -> Path:
    return Path(root) / NUMBERS_DIR / (hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:40] + ".json")


class StepNumbers:
    """Hands out step numbers for one tracker (thread-safe)."""

    def __init__(self, root: str | os.PathLike[str], task_id: str, shared: bool, started_at: float) -> None:
        self.task_id = task_id
        self.shared = shared
        self.path = counter_path(root, task_id)
        self._lock = threading.RLock()  # re-entrant: a SIGTERM handler may close mid-`next()`
        self._next = 1
        self._end = 1  # block is [_next, _end); empty forces a reservation
        self.first_started_at = started_at  # the task's original start (resumed tasks keep it)
        self.resumed = False
        if shared:
            state = self._update(lambda st: {**st, "started_at": st.get("started_at", started_at)})
            if state is not None:
                self.first_started_at = float(state.get("started_at", started_at))
                self.resumed = int(state.get("next", 1)) > 1
                self._next = self._end = int(state.get("next", 1))
            _live.add(self)
        else:  # a new id: plain counting, no lock (itertools.count is atomic in CPython)
            self.next = itertools.count(1).__next__  # type: ignore[method-assign]

    def next(self) -> int:
        with self._lock:
            if self._next >= self._end:
                self._reserve()
            n = self._next
            self._next += 1
            return n

    def _reserve(self) -> None:
        start = self._next
        state = self._update(lambda st: {**st, "next": max(int(st.get("next", 1)), start) + BLOCK})
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
                if int(st.get("next", 1)) == mine_end:
                    return {**st, "next": used_to}
                return st

            self._update(give_back)
            self._end = self._next

    def after_fork(self) -> None:
        """In a forked child: the block belongs to the parent; reserve a new one on next use."""
        self._lock = threading.RLock()
        self._end = self._next

    def _update(self, change: Any) -> dict[str, Any] | None:
        """Read-modify-write the counter file under an exclusive lock; None when unusable."""
        try:
            import fcntl
        except ImportError:  # not POSIX: numbering stays per tracker
            return None
        try:
            private_dir(self.path.parent)  # 0700 for the backup folder too, when this creates it
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.debug("step numbers of %r: counter file unusable (%s)", self.task_id, exc)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 4096, 0)
            try:
                state = json.loads(raw) if raw.strip() else {}
                if not isinstance(state, dict) or not isinstance(state.get("next", 1), int):
                    state = {}
            except ValueError:
                state = {}
            new = change({**state, "task_id": self.task_id})
            data = json.dumps(new, ensure_ascii=True).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            return new
        except OSError as exc:
            log.debug("step numbers of %r: counter file unusable (%s)", self.task_id, exc)
            return None
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # also releases the lock


def _after_fork() -> None:
    for numbers in list(_live):
        numbers.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

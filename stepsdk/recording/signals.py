"""SIGTERM ends a run cleanly: every live tracker marks its task `interrupted` (with the signal
in `metadata.interrupted`) and flushes within the exit bound, then the process ends as it would
have without stepsdk (an earlier handler is called; the default action is re-raised).

Installed once per process, from the main thread, by the first tracker created with
`handle_signals=True` (the default; `STEPSDK_HANDLE_SIGNALS=0` or `handle_signals=False` opt
out for agents that manage signals themselves). SIGKILL cannot be caught: a killed run is found
later from its backup (`stepsdk/recording/abandoned.py`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("stepsdk")

EXIT_BOUND = 1.8  # seconds all trackers together get to finish at a SIGTERM
_trackers: weakref.WeakSet[Any] = weakref.WeakSet()
_installed: dict[int, Any] = {}
_lock = threading.Lock()


def enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("STEPSDK_HANDLE_SIGNALS", "1").strip().lower() not in ("0", "false", "no", "off")


def watch(tracker: Any) -> None:
    """Register a tracker (weakly) and install the handler once, when on the main thread.

    A program that ignores SIGTERM (SIG_IGN) keeps it ignored. Python can only install signal
    handlers from the main thread: a first tracker made on another thread says so, once."""
    _trackers.add(tracker)
    with _lock:
        if signal.SIGTERM in _installed:
            return
        if threading.current_thread() is not threading.main_thread():
            if "warned" not in _installed:
                _installed["warned"] = True
                log.warning(
                    "stepsdk: tracker made off the main thread: SIGTERM is not handled by stepsdk "
                    "(make the first tracker on the main thread, or call finish() from your handler)"
                )
            return
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if previous == signal.SIG_IGN:
                _installed[signal.SIGTERM] = previous  # ignored on purpose: leave it so
                return
            _installed[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError) as exc:  # not the main interpreter, or an odd platform
            log.debug("stepsdk: SIGTERM handler not installed: %s", exc)


def unwatch(tracker: Any) -> None:
    _trackers.discard(tracker)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Runs on the main thread, between two bytecodes of whatever it was doing, which may hold a
    lock of stepsdk's (a step written on the caller's thread, a step-number reservation). So the
    work runs on a thread of its own and is waited for with a bound: it can never deadlock the
    process. In the rare case it cannot finish in time, the journal is left open and the task is
    found abandoned later (stepsdk/recording/abandoned.py)."""
    name = signal.Signals(signum).name
    previous: Callable[[int, FrameType | None], Any] | int | None = _installed.get(signum)
    # A handler of the program's own may let it go on: then mark and flush, but keep recording.
    ending = not callable(previous)
    trackers = list(_trackers)
    if trackers:
        log.warning("stepsdk: %s received; marking %d task(s) interrupted and flushing", name, len(trackers))

    def work() -> None:
        share = EXIT_BOUND / max(1, len(trackers))
        for tracker in trackers:
            try:
                tracker._interrupted_by(name, share, close=ending)
            except Exception:  # whatever happens, the process must still end as it would have
                log.exception("stepsdk: finishing a task at %s failed", name)

    worker = threading.Thread(target=work, name="stepsdk-sigterm", daemon=True)
    worker.start()
    worker.join(EXIT_BOUND + 0.2)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # the default action: end the process by the same signal
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

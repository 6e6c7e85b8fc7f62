"""What every pipeline stage has: one daemon thread, `start()`, `join(timeout)`, `alive`."""

from __future__ import annotations

import threading


class Stage:
    """Base of the journal, screenshot and upload stages: subclasses implement `_loop`."""

    thread_name = "stepsdk-stage"

    def __init__(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    def _loop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds; True when the thread has ended."""
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

"""Time in tests, the way a loaded CI machine cannot break it: a machine under load runs late,
never early.

- Waiting for something that will happen: `wait_for(pred)` (`until(pred)` on an event loop)
  polls until it is true and returns at once when it is, so its generous deadline (`WAIT`) costs nothing when things are fast. Give
  `flush()`/`close()` the same `WAIT` when the test needs them to complete (they too return as
  soon as they are done).
- A time bound the product states (a close budget, an exit bound): assert the product's own
  constant plus `LOAD_SLACK`, the lateness a loaded machine may add to a deadline the product
  keeps. How fast the product is on a quiet machine is a benchmark (benchmarks/), not a test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

WAIT = 60.0  # seconds: the deadline of a wait for something that is expected to happen
LOAD_SLACK = 3.0  # seconds a loaded machine may add to one of the product's time bounds


def wait_for(pred: Callable[[], object], timeout: float = WAIT, interval: float = 0.02) -> bool:
    """Poll `pred` until it is true (True) or `timeout` seconds have passed (its last answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


async def until(pred: Callable[[], object], timeout: float = WAIT, interval: float = 0.02) -> bool:
    """`wait_for` on an event loop (the loop keeps running while it waits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(interval)
    return bool(pred())

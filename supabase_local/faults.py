"""Fault injection for chaos tests: precise, seeded, thread-safe.

Rules match ``"<METHOD> <path>"`` with shell globs (``"POST /rest/v1/task_steps"``,
``"* /storage/v1/object/*"``); the path excludes the query string. Rules are consulted in the
order they were added; the first one that still has shots left decides. Every injected fault
is counted in ``injected`` (by kind) so tests can assert exactly what happened.

Kinds: ``"500"``/``"503"``/``"429"`` (any status string: an error response), ``"reset"``
(TCP RST, no response), ``"hang"`` (no response for ``seconds``; then the connection is
dropped, or with ``then="process"`` the request is served late), ``"commit_then_fail"`` (the
request is executed and committed, the client gets a 500).
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

STATUS_KINDS = frozenset({"500", "502", "503", "504", "429"})
OTHER_KINDS = frozenset({"reset", "hang", "commit_then_fail"})


@dataclass(frozen=True)
class Action:
    """What the gateway must do to one request."""

    kind: str  # "status" | "reset" | "hang" | "commit_then_fail"
    status: int = 500
    retry_after: int | None = None
    seconds: float = 0.0
    then: str = "drop"  # for hang: "drop" the connection or "process" the request late


@dataclass
class _Rule:
    route: str
    remaining: int | None  # None: until cleared
    make: Callable[[], Action | None]


def _check_route(route: str) -> str:
    if not isinstance(route, str) or " " not in route:
        raise ValueError(f"route must look like 'METHOD /path' (globs allowed), got {route!r}")
    return route


def _check_n(n: int | None) -> int | None:
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    return n


def _check_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"status must be an int 400..599, got {status!r}")
    return status


def _check_seconds(seconds: float, name: str = "seconds") -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 3600:
        raise ValueError(f"{name} must be a number of seconds in (0, 3600], got {seconds!r}")
    return float(seconds)


def _kind_action(kind: str, *, retry_after: int, seconds: float) -> Action:
    if kind in OTHER_KINDS:
        return Action(kind=kind, seconds=seconds)
    status = int(kind)
    return Action(kind="status", status=status, retry_after=retry_after if status == 429 else None)


@dataclass
class FaultInjector:
    """Shared by the gateway's threads and the test that drives it."""

    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _injected: Counter[str] = field(default_factory=Counter)
    _seen: Counter[str] = field(default_factory=Counter)
    _wake: threading.Event = field(default_factory=threading.Event)
    _outage_hooks: tuple[Callable[[], None], Callable[[], None]] | None = None
    _outage: bool = False

    # ----- configuring -------------------------------------------------------------
    def fail_next(
        self, route: str = "* *", n: int = 1, status: int = 500, retry_after: int | None = None
    ) -> None:
        """The next ``n`` matching requests get ``status`` (429 carries ``Retry-After``)."""
        _check_status(status)
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError(f"retry_after must be an int >= 0, got {retry_after!r}")
        ra = retry_after if retry_after is not None else (1 if status == 429 else None)
        self._add(route, _check_n(n), lambda: Action(kind="status", status=status, retry_after=ra))

    def reset_next(self, route: str = "* *", n: int = 1) -> None:
        """The next ``n`` matching connections are reset (RST) without any response."""
        self._add(route, _check_n(n), lambda: Action(kind="reset"))

    def hang_next(self, route: str = "* *", n: int = 1, seconds: float = 30.0, then: str = "drop") -> None:
        """The next ``n`` matching requests get no answer for ``seconds`` (a client timeout)."""
        if then not in ("drop", "process"):
            raise ValueError("then must be 'drop' or 'process'")
        secs = _check_seconds(seconds)
        self._add(route, _check_n(n), lambda: Action(kind="hang", seconds=secs, then=then))

    def commit_then_fail_next(self, route: str = "* *", n: int = 1, status: int = 500) -> None:
        """The next ``n`` matching requests are executed and committed, then answered ``status``."""
        _check_status(status)
        self._add(route, _check_n(n), lambda: Action(kind="commit_then_fail", status=status))

    def fail_fraction(
        self,
        route: str,
        fraction: float,
        kinds: Sequence[str] = ("500",),
        seed: int = 0,
        n: int | None = None,
        retry_after: int = 1,
        hang_seconds: float = 30.0,
    ) -> None:
        """Each matching request fails with probability ``fraction`` (seeded), kind drawn from ``kinds``.

        ``n`` bounds the number of *injected* faults (None: until cleared).
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be a number within [0, 1], got {fraction!r}")
        if isinstance(kinds, str):
            raise ValueError("kinds must be a sequence of kinds, e.g. ('500', 'reset'), not a string")
        hang_seconds = _check_seconds(hang_seconds, "hang_seconds")
        bad = [k for k in kinds if k not in STATUS_KINDS | OTHER_KINDS]
        if bad or not kinds:
            raise ValueError(f"unknown fault kinds {bad!r}; use {sorted(STATUS_KINDS | OTHER_KINDS)}")
        rng = random.Random(seed)
        kinds = tuple(kinds)

        def make() -> Action | None:
            if rng.random() >= fraction:
                return None
            return _kind_action(rng.choice(kinds), retry_after=retry_after, seconds=hang_seconds)

        self._add(route, _check_n(n), make)

    def clear(self) -> None:
        """Drop every rule, zero the counters, release hung requests, end an outage."""
        with self._lock:
            self._rules.clear()
            self._injected.clear()
            self._seen.clear()
            self._wake.set()
            self._wake = threading.Event()
        if self._outage:
            self.end_outage()

    # ----- outage ------------------------------------------------------------------
    def start_outage(self) -> None:
        """Close the listening socket (connection refused) and cut open connections."""
        with self._lock:
            if self._outage:
                return
            self._outage = True
            self._injected["outage"] += 1
        if self._outage_hooks:
            self._outage_hooks[0]()

    def end_outage(self) -> None:
        with self._lock:
            if not self._outage:
                return
            self._outage = False
        if self._outage_hooks:
            self._outage_hooks[1]()

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.start_outage()
        try:
            yield
        finally:
            self.end_outage()

    @property
    def in_outage(self) -> bool:
        return self._outage

    # ----- observing ---------------------------------------------------------------
    @property
    def injected(self) -> dict[str, int]:
        """Injected faults by kind ("500", "503", "429", "reset", "hang", "commit_then_fail", "outage")."""
        with self._lock:
            return dict(self._injected)

    def requests(self, route: str = "* *") -> int:
        """How many requests matching ``route`` reached the gateway since the last clear()."""
        with self._lock:
            return sum(c for key, c in self._seen.items() if fnmatch.fnmatchcase(key, route))

    def pending(self) -> int:
        """Shots left in bounded rules (unbounded rules count as 1)."""
        with self._lock:
            return sum(1 if r.remaining is None else r.remaining for r in self._rules)

    # ----- used by the gateway ------------------------------------------------------
    def decide(self, method: str, path: str) -> Action | None:
        key = f"{method} {path}"
        with self._lock:
            self._seen[key] += 1
            for rule in self._rules:
                if rule.remaining == 0 or not fnmatch.fnmatchcase(key, rule.route):
                    continue
                action = rule.make()
                if action is None:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                self._injected[str(action.status) if action.kind == "status" else action.kind] += 1
                return action
        return None

    def wait_hang(self, seconds: float) -> None:
        """Sleep for a hang; clear() wakes every hung request at once."""
        self._wake.wait(seconds)

    def bind_outage(self, start: Callable[[], None], end: Callable[[], None]) -> None:
        self._outage_hooks = (start, end)

    def _add(self, route: str, n: int | None, make: Callable[[], Action | None]) -> None:
        rule = _Rule(route=_check_route(route), remaining=n, make=make)
        with self._lock:
            self._rules.append(rule)

    def apply_command(self, cmd: dict[str, object]) -> dict[str, object]:
        """The HTTP control surface (``POST /_faults``) for tests driving a subprocess stack."""
        op = cmd.get("op")
        args = {k: v for k, v in cmd.items() if k != "op"}
        simple = {
            "fail_next": self.fail_next,
            "reset_next": self.reset_next,
            "hang_next": self.hang_next,
            "commit_then_fail_next": self.commit_then_fail_next,
            "fail_fraction": self.fail_fraction,
        }
        if op in simple:
            simple[str(op)](**args)  # type: ignore[arg-type]
        elif op == "clear":
            self.clear()
        elif op == "outage":
            seconds = float(args.get("seconds", 0))  # type: ignore[arg-type]
            if not 0 < seconds <= 300:
                raise ValueError("outage over HTTP needs 0 < seconds <= 300 (nobody could end it)")
            # Start just after this response is written: the outage also cuts open connections.
            threading.Timer(0.05, self.start_outage).start()
            threading.Timer(0.05 + seconds, self.end_outage).start()
        elif op != "status":
            raise ValueError(f"unknown op {op!r}")
        return {"injected": self.injected, "pending": self.pending(), "outage": self.in_outage}

"""Error classification, the tenacity retry policy, and the circuit breaker.

`postgrest.APIError` carries no HTTP status, so errors are classified by their `code`
(SQLSTATE, PGRST code, or the HTTP status as a string for non-JSON bodies) and by httpx
exception types. Three outcomes:

- TRANSIENT: retry with backoff (connection errors, timeouts, 5xx, 429, SQLSTATE 08/53/40/57/XX).
- REJECTED: this data is refused (constraint, bad value, unknown column, 413/415 object): split
  the batch, keep the refused record in the backup with the server's error.
- FATAL: the request can never work as configured (bad key, missing table/bucket, RLS denial):
  nothing is rejected; the records stay pending and the breaker opens until it is fixed.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported on first use: `import stepsdk` stays light (tenacity pulls in ~25 ms)
    import tenacity

log = logging.getLogger("stepsdk")

T = TypeVar("T")


class ErrorClass(enum.Enum):
    TRANSIENT = "transient"
    REJECTED = "rejected"
    FATAL = "fatal"


_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "40", "57", "XX", "55")
_FATAL_CODES = {
    "42501",
    "42P01",
    "42883",
    "PGRST106",
    "PGRST205",
    "PGRST202",
    "PGRST301",
    "PGRST302",
    "PGRST303",
    "28000",
    "28P01",
    "25006",
}


class ThrottledError(Exception):
    """Raised by the sink when the server answered 429 with a Retry-After delay."""

    def __init__(self, retry_after: float, message: str = "throttled (429)") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(Exception):
    """Raised by the sink for any 5xx/408 answer: the real HTTP status, which APIError loses."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


def _status_from_code(code: str) -> int | None:
    return int(code) if code.isdigit() and len(code) == 3 else None


def _client_errors() -> tuple[Any, Any, Any]:
    # Imported on first use: local mode never needs the HTTP stack (it costs ~0.5 s to import).
    import httpx
    from postgrest.exceptions import APIError
    from storage3.exceptions import StorageApiError

    return httpx, APIError, StorageApiError


def classify(exc: BaseException) -> ErrorClass:
    """Transient, rejected or fatal; anything unknown counts as transient (never lose data)."""
    from stepsdk.backend.sink import BackendMisconfigured, BackendUnavailable, RowRejected

    if isinstance(exc, RowRejected):
        return ErrorClass.REJECTED
    if isinstance(exc, BackendMisconfigured):
        return ErrorClass.FATAL
    if isinstance(exc, BackendUnavailable):
        return ErrorClass.TRANSIENT
    if isinstance(exc, (UnicodeError, TypeError, ValueError)) and not _is_client_error(exc):
        # A row this process cannot encode (a lone surrogate, a value JSON refuses): a local
        # problem of this row, never a network failure (it must not open the breaker).
        return ErrorClass.REJECTED
    httpx, APIError, StorageApiError = _client_errors()
    if isinstance(exc, (httpx.TransportError, ThrottledError, ServerError, TimeoutError, ConnectionError)):
        return ErrorClass.TRANSIENT
    if isinstance(exc, APIError):
        return _classify_code(str(exc.code or ""))
    if isinstance(exc, StorageApiError):
        status = _status_from_code(str(exc.status)) if exc.status is not None else None
        if status is None or status >= 500 or status in (408, 429):
            return ErrorClass.TRANSIENT
        if status in (401, 403, 404):
            return ErrorClass.FATAL  # bad key, RLS, missing bucket: fixing config fixes all
        return ErrorClass.REJECTED  # 400 invalid key, 409, 413 too large, 415 mime type
    if isinstance(exc, httpx.HTTPStatusError):
        return _classify_code(str(exc.response.status_code))
    return ErrorClass.TRANSIENT


_KEY_REJECTED_CODES = frozenset({"PGRST301", "PGRST302", "PGRST303", "42501", "401", "403"})


def key_rejected(exc: BaseException) -> bool:
    """Whether the backend refused the key itself (wrong, revoked, not a service key): a
    configuration error, not an outage. The Supabase edge answers a bad apikey with only
    ``{"message": "Invalid API key"}`` (no code)."""
    _, APIError, _ = _client_errors()
    return isinstance(exc, APIError) and (
        str(exc.code) in _KEY_REJECTED_CODES or "api key" in str(exc.message).lower()
    )


def _is_client_error(exc: BaseException) -> bool:
    httpx, APIError, StorageApiError = _client_errors()
    return isinstance(exc, (httpx.HTTPError, httpx.InvalidURL, APIError, StorageApiError))


def _classify_code(code: str) -> ErrorClass:
    if code in _FATAL_CODES:
        return ErrorClass.FATAL
    status = _status_from_code(code)
    if status is not None:  # non-JSON body: the code is the HTTP status
        if status >= 500 or status in (408, 429):
            return ErrorClass.TRANSIENT
        if status in (401, 403, 404, 405, 406):
            return ErrorClass.FATAL
        return ErrorClass.REJECTED
    if code.startswith("PGRST"):
        return ErrorClass.REJECTED if code in ("PGRST100", "PGRST102", "PGRST204") else ErrorClass.FATAL
    if code.startswith(_TRANSIENT_SQLSTATE_PREFIXES) or code in ("", "P0002"):
        return ErrorClass.TRANSIENT
    return ErrorClass.REJECTED  # 22xxx data, 23xxx constraints, P0001 raise, 42703 ...


def describe(exc: BaseException) -> dict[str, Any]:
    """The server's error as a dict for the backup and stats (no request headers, no keys)."""
    from stepsdk.backend.sink import RowRejected

    if isinstance(exc, RowRejected):
        return {"code": exc.code, "message": _short(exc.message)}
    _, APIError, StorageApiError = _client_errors()
    if isinstance(exc, APIError):
        return {"code": exc.code, "message": exc.message, "details": exc.details, "hint": exc.hint}
    if isinstance(exc, StorageApiError):
        return {"code": exc.code, "message": exc.message, "status": str(exc.status)}
    if isinstance(exc, ServerError):
        return {"code": str(exc.status), "message": _short(exc.text)}
    return {"code": type(exc).__name__, "message": _short(str(exc))}


def _short(text: str) -> str:
    return text if len(text) <= 300 else text[:300] + "…"


def one_line(exc: BaseException) -> str:
    info = describe(exc)
    return f"{info.get('code')}: {info.get('message')}"


class RetryPolicy:
    """Exponential backoff with full jitter, Retry-After honoured, bounded total time."""

    def __init__(
        self,
        max_time: float,
        initial: float = 0.1,
        max_wait: float = 4.0,
        should_stop: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """`clock` and `sleep` are injectable so that tests of retries need no real waiting."""
        self.max_time = max_time
        self.initial = initial
        self.max_wait = max_wait
        self.should_stop = should_stop or (lambda: False)
        self.clock = clock
        self.sleep = sleep

    def call(self, fn: Callable[[], T], on_retry: Callable[[BaseException], None] | None = None) -> T:
        """Run fn, retrying transient errors; the last error is re-raised as is."""
        import tenacity

        start = self.clock()
        elapsed = lambda: self.clock() - start  # noqa: E731
        full_jitter = tenacity.wait_random_exponential(multiplier=self.initial, max=self.max_wait)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            backoff = full_jitter(state)
            if isinstance(exc, ThrottledError):
                backoff = max(backoff, min(exc.retry_after, self.max_wait * 2))
            remaining = self.max_time - elapsed()
            return max(0.0, min(backoff, remaining))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if on_retry is not None and exc is not None:
                on_retry(exc)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: classify(e) is ErrorClass.TRANSIENT),
            wait=wait,
            stop=lambda state: self.should_stop() or elapsed() >= self.max_time,
            before_sleep=before_sleep,
            reraise=True,
            sleep=self.sleep or _interruptible_sleep(self.should_stop),
        )
        return retrying(fn)


def _interruptible_sleep(should_stop: Callable[[], bool]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not should_stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    return sleep


class CircuitBreaker:
    """Closed (send), open (don't; probe at `next_probe`), with the probe interval doubling.

    Logs one WARNING when the backend goes down and one INFO when it comes back.
    """

    def __init__(
        self,
        probe_min: float,
        probe_max: float,
        name: str = "backend",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock  # injectable: tests move time instead of waiting
        self.probe_min = probe_min
        self.probe_max = probe_max
        self.name = name
        self._lock = threading.Lock()
        self.open = False
        self.interval = probe_min
        self.next_probe = 0.0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        with self._lock:
            return not self.open or self.clock() >= self.next_probe

    def seconds_to_probe(self) -> float:
        with self._lock:
            return 0.0 if not self.open else max(0.0, self.next_probe - self.clock())

    def failure(self, reason: str, where: str = "") -> None:
        with self._lock:
            if not self.open:
                self.open = True
                self.opened_at = time.time()
                self.interval = self.probe_min
                log.warning(
                    "stepsdk: %s unreachable (%s); steps are kept in the local backup%s, "
                    "probing every %.0f-%.0f s",
                    self.name,
                    reason,
                    where,
                    self.probe_min,
                    self.probe_max,
                )
            else:
                self.interval = min(self.probe_max, self.interval * 2)
            self.next_probe = self.clock() + self.interval * random.uniform(0.8, 1.0)

    def success(self, backlog: int = 0) -> None:
        with self._lock:
            if self.open:
                down = time.time() - (self.opened_at or time.time())
                log.info(
                    "stepsdk: %s reachable again after %.1f s; uploading the backlog (%d in memory)",
                    self.name,
                    down,
                    backlog,
                )
            self.open = False
            self.interval = self.probe_min

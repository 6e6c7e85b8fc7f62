"""Error classification (APIError carries no HTTP status), retry policy bounds, circuit breaker."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from postgrest.exceptions import APIError
from storage3.exceptions import StorageApiError

from stepsdk.backend.retry import CircuitBreaker, ErrorClass, RetryPolicy, ThrottledError, classify, describe
from tests.timing import LOAD_SLACK

T, R, F = ErrorClass.TRANSIENT, ErrorClass.REJECTED, ErrorClass.FATAL


def api(code: str | None) -> APIError:
    return APIError({"code": code, "message": "m", "details": None, "hint": None})


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), T),
        (httpx.ReadTimeout("slow"), T),
        (httpx.RemoteProtocolError("reset"), T),
        (ThrottledError(1.0), T),
        (api("08006"), T),
        (api("53300"), T),
        (api("40001"), T),
        (api("57014"), T),
        (api("XX000"), T),
        (api("500"), T),
        (api("502"), T),
        (api("503"), T),
        (api("429"), T),
        (api(None), T),
        (api("23505"), R),
        (api("23503"), R),
        (api("23514"), R),
        (api("22P02"), R),
        (api("PGRST204"), R),
        (api("P0001"), R),
        (api("42703"), R),
        (api("400"), R),
        (api("413"), R),
        (api("42501"), F),
        (api("PGRST301"), F),
        (api("PGRST303"), F),
        (api("PGRST205"), F),
        (api("42P01"), F),
        (api("401"), F),
        (api("403"), F),
        (api("404"), F),
        (StorageApiError("x", "InternalError", 500), T),
        (StorageApiError("x", "Payload too large", "413"), R),
        (StorageApiError("x", "invalid_mime_type", "415"), R),
        (StorageApiError("x", "Unauthorized", "403"), F),
        (StorageApiError("x", "Bucket not found", "404"), F),
        (RuntimeError("unknown"), T),
    ],
)
def test_classify(exc: BaseException, expected: ErrorClass) -> None:
    assert classify(exc) is expected


def test_describe_keeps_server_fields_only() -> None:
    assert describe(api("23505")) == {"code": "23505", "message": "m", "details": None, "hint": None}
    assert describe(httpx.ConnectError("refused"))["code"] == "ConnectError"


def test_retry_bounded_in_time_and_reraises_last_error() -> None:
    calls = 0

    def always_down() -> None:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("down")

    start = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        RetryPolicy(max_time=0.5, initial=0.02, max_wait=0.1).call(always_down)
    assert time.monotonic() - start < 0.5 + LOAD_SLACK and calls >= 3  # gives up after max_time


def test_no_retry_on_rejected() -> None:
    calls = 0

    def bad_row() -> None:
        nonlocal calls
        calls += 1
        raise api("23514")

    with pytest.raises(APIError):
        RetryPolicy(max_time=5).call(bad_row)
    assert calls == 1


def test_retry_after_honoured_and_success_returned() -> None:
    attempts: list[float] = []

    def throttled_once() -> str:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise ThrottledError(0.3)
        return "ok"

    assert RetryPolicy(max_time=5, initial=0.01).call(throttled_once) == "ok"
    assert attempts[1] - attempts[0] >= 0.29


def test_breaker_opens_backs_off_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stepsdk")
    now = [1000.0]  # the breaker's clock: moved, not waited for
    b = CircuitBreaker(probe_min=0.1, probe_max=0.4, clock=lambda: now[0])
    assert b.allow()
    b.failure("ConnectError: refused")
    assert b.open and not b.allow() and 0 < b.seconds_to_probe() <= 0.1
    b.failure("again")
    b.failure("again")
    assert b.interval == 0.4
    now[0] += 0.45
    assert b.allow()
    b.success()
    assert not b.open and b.allow()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "reachable again" in r.getMessage()]
    assert len(warnings) == 1 and len(infos) == 1


def test_server_error_is_transient_whatever_the_body() -> None:
    from stepsdk.backend.retry import ServerError

    exc = ServerError(503, '{"code":"WEIRD","message":"x"}')
    assert classify(exc) is T and describe(exc)["code"] == "503"

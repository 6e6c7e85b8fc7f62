"""HTTP API calls as steps: the httpx transport wrappers against a real local HTTP server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepsdk import StepTracker
from stepsdk.integrations.httpx_hooks import (
    TrackedAsyncTransport,
    TrackedTransport,
    tracked_async_client,
    tracked_client,
)
from tests.integrations.conftest import SMALL_PNG, ApiServer, backup_steps
from tests.timing import WAIT

pytestmark = pytest.mark.usefixtures("local_env")


@pytest.fixture
def tracker(tmp_path: Path) -> Any:
    t = StepTracker(title="api agent", agent="test", backup_dir=tmp_path)
    yield t
    t.close()


def _steps(tracker: Any, tmp_path: Path) -> list[dict[str, Any]]:
    tracker.flush(WAIT)
    return backup_steps(tmp_path, tracker.task_id)


def test_sync_call_recorded_with_secrets_redacted(
    tracker: Any, tmp_path: Path, api_server: ApiServer
) -> None:
    with tracked_client(tracker, cookies={"sid": "cookie-secret-4"}) as client:
        response = client.get(
            f"{api_server.url}/json",
            params={"q": "weather", "api_key": "qs-secret-1"},
            headers={
                "Authorization": "Bearer hdr-secret-2",
                "X-Api-Key": "hdr-secret-3",
                "Accept": "application/json",
            },
        )
    assert response.status_code == 200 and response.json()["items"] == [1, 2, 3]  # body untouched
    (step,) = _steps(tracker, tmp_path)
    data = step["step_data"]
    assert step["step_type"] == "action" and step["success"] is True
    assert data["kind"] == "http" and data["method"] == "GET"
    assert data["url"] == f"{api_server.url}/json?q=weather&api_key=[REDACTED:apikey]"
    headers = data["request"]["headers"]
    assert (headers["authorization"], headers["x-api-key"], headers["cookie"]) == (
        "[REDACTED:authorization]",
        "[REDACTED:apikey]",
        "[REDACTED:cookie]",
    )
    assert headers["accept"] == "application/json"
    assert data["response"]["status_code"] == 200
    assert data["response"]["headers"]["set-cookie"] == "[REDACTED:cookie]"
    assert data["response"]["body"]["json"] == {"items": [1, 2, 3], "access_token": "[REDACTED:accesstoken]"}
    assert step["action_result"] == {"status_code": 200, "reason": "OK"}
    assert step["duration_ms"] > 0 and 0 < step["metadata"]["time_to_headers_ms"] <= step["duration_ms"]
    for secret in (
        "qs-secret-1",
        "hdr-secret-2",
        "hdr-secret-3",
        "cookie-secret-4",
        "cookie-secret-value",
        "tok-in-response",
    ):
        assert secret not in repr(step)


def test_bodies_json_form_binary_gzip_and_truncation(
    tracker: Any, tmp_path: Path, api_server: ApiServer
) -> None:
    with tracked_client(tracker, max_body_bytes=1000) as client:
        client.post(f"{api_server.url}/echo", json={"user": "ann", "password": "pw-secret"})
        client.post(f"{api_server.url}/echo", data={"q": "x", "token": "form-secret"})
        png = client.get(f"{api_server.url}/png")
        big = client.get(f"{api_server.url}/big")
        zipped = client.get(f"{api_server.url}/gzip")
        client.post(f"{api_server.url}/echo", files={"upload": ("a.bin", b"\x00" * 64)})
    assert png.content == SMALL_PNG and len(big.text) == 100_000 and zipped.json() == {"zipped": True}
    posted_json, posted_form, got_png, got_big, got_gzip, multipart = _steps(tracker, tmp_path)
    assert posted_json["step_data"]["request"]["body"]["json"] == {
        "user": "ann",
        "password": "[REDACTED:password]",
    }
    assert posted_json["step_data"]["response"]["status_code"] == 201
    assert posted_form["step_data"]["request"]["body"]["form"] == {"q": "x", "token": "[REDACTED:token]"}
    assert got_png["step_data"]["response"]["body"] == {
        "content_type": "image/png",
        "size": len(SMALL_PNG),
        "binary": True,
    }
    body = got_big["step_data"]["response"]["body"]
    assert body["size"] == 100_000 and body["truncated"] is True and len(body["text"]) == 1000
    assert got_gzip["step_data"]["response"]["body"]["json"] == {"zipped": True}
    upload = multipart["step_data"]["request"]["body"]  # a streamed upload: its size, not its bytes
    assert upload["streamed"] is True and upload["size"] > 64
    assert multipart["step_data"]["response"]["body"]["content_type"] == "multipart/form-data"
    assert "form-secret" not in repr(posted_form) and "pw-secret" not in repr(posted_json)


def test_http_error_statuses_are_failed_steps(tracker: Any, tmp_path: Path, api_server: ApiServer) -> None:
    with tracked_client(tracker) as client:
        assert client.get(f"{api_server.url}/missing").status_code == 404
        assert client.get(f"{api_server.url}/boom").status_code == 503
        assert client.get(f"{api_server.url}/redirect", follow_redirects=True).status_code == 200
    missing, boom, redirect, target = _steps(tracker, tmp_path)
    assert missing["success"] is False and missing["error_type"] == "HTTPStatusError"
    assert missing["error_message"] == "HTTP 404 Not Found"
    assert missing["step_data"]["response"]["body"]["text"] == "no such thing"
    assert boom["success"] is False and boom["error_message"] == "HTTP 503 Service Unavailable"
    assert redirect["success"] is True and redirect["action_result"]["status_code"] == 302  # 3xx is a success
    assert target["step_data"]["url"].endswith("/json")


def test_connection_refused_and_timeouts_recorded_and_reraised(
    tracker: Any, tmp_path: Path, api_server: ApiServer, refused_url: str
) -> None:
    with tracked_client(tracker, timeout=0.3) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(refused_url)
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{api_server.url}/slow")
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{api_server.url}/slowbody")  # headers arrive, the body stalls
    refused, slow, slowbody = _steps(tracker, tmp_path)
    assert refused["success"] is False and refused["error_type"] == "ConnectError"
    assert "response" not in refused["step_data"] and refused["stack_trace"]
    assert slow["error_type"] == "ReadTimeout" and slow["duration_ms"] >= 250
    assert slowbody["error_type"] == "ReadTimeout"
    assert slowbody["step_data"]["response"]["status_code"] == 200  # the headers were seen
    assert slowbody["step_data"]["response"]["body"]["text"] == "first part;"


async def test_async_client_same_recording(
    tracker: Any, tmp_path: Path, api_server: ApiServer, refused_url: str
) -> None:
    async with tracked_async_client(tracker, timeout=0.3) as client:
        response = await client.get(
            f"{api_server.url}/json", headers={"Authorization": "Bearer async-secret"}
        )
        assert response.json()["items"] == [1, 2, 3]
        async with client.stream("GET", f"{api_server.url}/big") as streamed:
            received = b"".join([chunk async for chunk in streamed.aiter_bytes()])
        assert len(received) == 100_000
        with pytest.raises(httpx.ConnectError):
            await client.get(refused_url)
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{api_server.url}/slow")
    ok, big, refused, slow = _steps(tracker, tmp_path)
    assert ok["step_data"]["request"]["headers"]["authorization"] == "[REDACTED:authorization]"
    assert ok["step_data"]["response"]["body"]["json"]["items"] == [1, 2, 3]
    assert big["step_data"]["response"]["body"]["size"] == 100_000
    assert refused["error_type"] == "ConnectError" and slow["error_type"] == "ReadTimeout"
    assert "async-secret" not in repr(ok)


def test_wrapping_an_explicit_transport_and_a_tracker_callable(tmp_path: Path, api_server: ApiServer) -> None:
    current: dict[str, Any] = {"t": None}
    transport = TrackedTransport(lambda: current["t"], httpx.HTTPTransport(retries=0))
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{api_server.url}/json").status_code == 200  # no tracker yet: not recorded
        current["t"] = StepTracker(title="late", backup_dir=tmp_path)
        try:
            assert client.get(f"{api_server.url}/missing").status_code == 404
            steps = _steps(current["t"], tmp_path)
        finally:
            current["t"].close()
    assert [s["action_result"]["status_code"] for s in steps] == [404]


def test_recording_failure_never_reaches_the_agent(
    api_server: ApiServer, refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenTracker:
        def record_step(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("tracker exploded")

    with caplog.at_level(logging.WARNING), tracked_client(BrokenTracker()) as client:
        assert client.get(f"{api_server.url}/json").json()["items"] == [1, 2, 3]
        with pytest.raises(httpx.ConnectError):  # the agent still sees its own error, not ours
            client.get(refused_url)
    failures = [r for r in caplog.records if "recording http call failed" in r.getMessage()]
    assert len(failures) == 2 and all("tracker exploded" in str(r.exc_info[1]) for r in failures)


def test_bad_arguments_raise_at_the_call(tracker: Any) -> None:
    with pytest.raises(TypeError, match="tracker must be"):
        TrackedTransport(object())
    with pytest.raises(TypeError, match="httpx.BaseTransport"):
        TrackedTransport(tracker, httpx.AsyncHTTPTransport())
    with pytest.raises(TypeError, match="httpx.AsyncBaseTransport"):
        TrackedAsyncTransport(tracker, httpx.HTTPTransport())
    with pytest.raises(ValueError, match="max_body_bytes"):
        tracked_client(tracker, max_body_bytes=-1)


@pytest.mark.parametrize(
    ("content_type", "data", "expected"),
    [
        ("application/json", b'{"broken": ', {"text": '{"broken": '}),  # invalid JSON: shown as text
        ("text/plain; charset=no-such-charset", b"caf\xc3\xa9", {"text": "café"}),  # unknown charset: UTF-8
        ("text/plain; charset=latin-1", b"caf\xe9", {"text": "café"}),
        ("", b"plain words", {"text": "plain words"}),  # no type: sniffed as text
        ("", b"\x00\x01\x02\xff", {"binary": True}),  # no type: sniffed as binary
        (
            "application/x-www-form-urlencoded",
            b"a=1&password=p%40ss&a=2",
            {"form": {"a": "2", "password": "[REDACTED:password]"}},
        ),
        ("application/vnd.api+json", b'{"token": "t"}', {"json": {"token": "[REDACTED:token]"}}),
    ],
)
def test_hostile_and_odd_bodies_get_a_safe_summary(
    content_type: str, data: bytes, expected: dict[str, Any]
) -> None:
    from stepsdk.integrations.httpx_hooks import body_summary

    headers = httpx.Headers({"content-type": content_type} if content_type else {})
    summary = body_summary(data, headers, len(data), 1000)
    assert summary is not None and summary["size"] == len(data)
    for key, value in expected.items():
        assert summary[key] == value


def test_undecodable_encodings_are_named_not_guessed() -> None:
    from stepsdk.integrations.httpx_hooks import body_summary

    broken = body_summary(b"not gzip at all", httpx.Headers({"content-encoding": "gzip"}), 15, 1000)
    assert broken == {"content_type": None, "size": 15, "encoding": "gzip (not decodable)"}
    brotli = body_summary(b"\x8b\x00", httpx.Headers({"content-encoding": "br"}), 2, 1000)
    assert brotli["encoding"] == "br (not decoded)"


def test_mounted_and_proxied_transports_are_recorded_too(
    tracker: Any, tmp_path: Path, api_server: ApiServer
) -> None:
    host = api_server.url.removeprefix("http://")
    mounts = {f"http://{host}": httpx.HTTPTransport(retries=0)}
    # proxy= goes to the inner transport: the loopback "proxy" is the API server itself, which
    # answers absolute-form request lines like any origin server.
    with (
        tracked_client(tracker, mounts=mounts) as mounted,
        tracked_client(tracker, proxy=api_server.url) as proxied,
    ):
        assert mounted.get(f"{api_server.url}/json").status_code == 200
        assert proxied.get("http://example.invalid/json").status_code == 200
    first, second = _steps(tracker, tmp_path)
    assert first["step_data"]["url"] == f"{api_server.url}/json"
    assert second["step_data"]["url"] == "http://example.invalid/json"
    assert second["step_data"]["response"]["body"]["json"]["items"] == [1, 2, 3]

"""Record every HTTP call an agent makes with ``httpx`` as one ``action`` step.

A transport wrapper (not event hooks: a transport also sees connection errors and timeouts)::

    client = tracked_client(tracker)                     # an httpx.Client
    client = httpx.Client(transport=TrackedTransport(tracker, httpx.HTTPTransport(retries=1)))
    aclient = tracked_async_client(tracker)              # an httpx.AsyncClient

Each request/response becomes a step with ``step_data = {"kind": "http", "method", "url",
"request": {"headers", "body"}, "response": {"status_code", "reason", "http_version", "headers",
"body"}}``, ``action_result = {"status_code", "reason"}``, ``duration_ms`` (request sent → body
read and closed; ``metadata.time_to_headers_ms`` until the headers), ``success`` = status < 400.
Secret headers (Authorization, Cookie, Set-Cookie, X-Api-Key, apikey, ...) and secret-looking
query parameters are replaced by ``[REDACTED:<rule>]``; bodies are decoded (JSON/text/form, secret keys
redacted) up to ``max_body_bytes`` and binary bodies summarized by type and size. An exception
(``ConnectError``, ``ReadTimeout``...) is recorded as a failed step with its type and stack, then
re-raised unchanged. The response body streams through untouched; the step is recorded when the
response is closed (httpx does that for you unless you use ``client.stream()`` without closing).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from stepsdk.integrations._common import (
    TrackerSource,
    check_tracker_source,
    guarded,
    redact_url,
    redacted_name,
    resolve_tracker,
    summarize,
    truncate,
)
from stepsdk.integrations._usage import TAIL_BYTES, usage_in_bytes
from stepsdk.model import StepType
from stepsdk.recording.step_names import http_step_name

__all__ = ["TrackedAsyncTransport", "TrackedTransport", "tracked_async_client", "tracked_client"]

_log = logging.getLogger("stepsdk.integrations.httpx")

DEFAULT_MAX_BODY_BYTES = 16 * 1024
_TEXT_TYPES = ("text/", "application/xml", "application/javascript", "application/x-ndjson")
# Arguments of httpx.Client that configure its default transport (they must go to our inner transport).
_TRANSPORT_ARGS = ("verify", "cert", "trust_env", "http1", "http2", "limits", "proxy")


def _check_limit(max_body_bytes: object, where: str) -> int:
    if not isinstance(max_body_bytes, int) or isinstance(max_body_bytes, bool) or max_body_bytes < 0:
        raise ValueError(f"{where}: max_body_bytes must be an int >= 0, got {max_body_bytes!r}")
    return max_body_bytes


def redact_headers(headers: httpx.Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        # authorization, proxy-authorization, (set-)cookie, x-api-key, apikey ... are all secret names
        shown = redacted_name(key) or truncate(value, 500)
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out


def body_summary(data: bytes, headers: httpx.Headers, size: int | None, limit: int) -> dict[str, Any] | None:
    """Decoded (JSON / text / form) or summarized (binary) view of the first ``limit`` bytes."""
    if size == 0 or (not data and size is None):
        return None
    content_type = headers.get("content-type", "")
    mime = content_type.split(";")[0].strip().lower()
    out: dict[str, Any] = {"content_type": mime or None, "size": size}
    captured_all = size is not None and len(data) >= size
    data, note = _decode_content_encoding(data, headers.get("content-encoding", ""), limit)
    if note:
        out["encoding"] = note
        return out
    truncated = not captured_all or len(data) > limit
    data = data[:limit]
    if truncated:
        out["truncated"] = True
    if mime == "application/json" or mime.endswith("+json"):
        out.update(_json_or_text(data, truncated))
    elif mime == "application/x-www-form-urlencoded":
        out["form"] = summarize(dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True)))
    elif mime.startswith(_TEXT_TYPES) or not mime and _looks_text(data):
        out["text"] = data.decode(_charset(content_type), "replace")
    else:
        out["binary"] = True
    return out


def _json_or_text(data: bytes, truncated: bool) -> dict[str, Any]:
    """``{"json": value}`` when the (complete) body parses, else ``{"text": ...}``."""
    text = data.decode("utf-8", "replace")
    if not truncated:
        try:
            return {"json": summarize(json.loads(text))}
        except ValueError:
            pass
    return {"text": text}


def _looks_text(data: bytes) -> bool:
    try:
        data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data[:512]


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
                return value.strip('"')
            except LookupError:
                break
    return "utf-8"


def _decode_content_encoding(data: bytes, encoding: str, limit: int) -> tuple[bytes, str | None]:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data, None
    if encoding in ("gzip", "deflate"):
        try:  # wbits 47: zlib or gzip header, auto-detected; a truncated prefix still decodes
            return zlib.decompressobj(47).decompress(data, limit + 1), None
        except zlib.error:
            return b"", f"{encoding} (not decodable)"
    return b"", f"{encoding} (not decoded)"


@dataclass
class _Call:
    """One request in flight: what to record once the response is closed or the call failed."""

    tracker: Any
    request: httpx.Request
    limit: int
    started: float = field(default_factory=time.perf_counter)
    headers_at: float | None = None
    response: httpx.Response | None = None
    body: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)  # the last TAIL_BYTES: where a reply's usage is
    size: int = 0
    done: bool = False

    def received(self, response: httpx.Response) -> None:
        self.headers_at, self.response = time.perf_counter(), response

    def chunk(self, data: bytes) -> None:
        self.size += len(data)
        room = self.limit + 1 - len(self.body)
        if room > 0:
            self.body += data[:room]
        self.tail += data[-TAIL_BYTES:]
        if len(self.tail) > TAIL_BYTES:
            del self.tail[:-TAIL_BYTES]

    def finish(self, exc: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        with guarded("http call"):
            self._record(exc)

    def _record(self, exc: BaseException | None) -> None:
        elapsed = (time.perf_counter() - self.started) * 1000.0
        data: dict[str, Any] = {
            "kind": "http",
            "method": self.request.method,
            "url": redact_url(str(self.request.url)),
            "request": {"headers": redact_headers(self.request.headers), "body": self._request_body()},
        }
        kwargs: dict[str, Any] = {"duration_ms": elapsed, "success": exc is None}
        response = self.response
        if response is not None:
            data["response"] = self._response_data(response)
            kwargs["action_result"] = {"status_code": response.status_code, "reason": response.reason_phrase}
            kwargs["metadata"] = {"time_to_headers_ms": (self.headers_at - self.started) * 1000.0}
            usage = self._usage(response)
            if usage:
                kwargs["usage"] = usage
            if exc is None and response.status_code >= 400:
                kwargs.update(success=False, error_type="HTTPStatusError")
                kwargs["error_message"] = f"HTTP {response.status_code} {response.reason_phrase}"
        if exc is not None:  # record_step fills error_type and stack_trace
            kwargs["error"] = exc
            kwargs["error_message"] = truncate(str(exc) or type(exc).__name__)
        status = response.status_code if response is not None else None
        kwargs["name"] = http_step_name(
            self.request.method, data["url"], status, type(exc).__name__ if exc is not None else None
        )
        self.tracker.record_step(StepType.ACTION, data, **kwargs)

    def _usage(self, response: httpx.Response) -> dict[str, int] | None:
        """Token usage of an OpenAI-style reply (JSON body or event stream), else None."""
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (mime in ("application/json", "text/event-stream") or mime.endswith("+json")):
            return None
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return usage_in_bytes(bytes(self.tail))
        if self.size <= self.limit:  # compressed: only a body captured whole can be decoded
            data, note = _decode_content_encoding(bytes(self.body), encoding, max(self.limit, 1) * 64)
            return usage_in_bytes(data) if note is None else None
        return None

    def _request_body(self) -> dict[str, Any] | None:
        try:
            content = self.request.content
        except httpx.RequestNotRead:  # a streamed upload (generator, file): size only, if declared
            length = self.request.headers.get("content-length")
            return {"streamed": True, "size": int(length) if length and length.isdigit() else None}
        return body_summary(content[: self.limit + 1], self.request.headers, len(content), self.limit)

    def _response_data(self, response: httpx.Response) -> dict[str, Any]:
        return {
            "status_code": response.status_code,
            "reason": response.reason_phrase,
            "http_version": response.extensions.get("http_version", b"").decode("ascii", "replace") or None,
            "headers": redact_headers(response.headers),
            "body": body_summary(bytes(self.body), response.headers, self.size, self.limit),
        }


class _TeeStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, call: _Call) -> None:
        self._inner, self._call = inner, call

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                with guarded("http body chunk"):
                    self._call.chunk(chunk)
                yield chunk
        except Exception as exc:
            self._call.finish(exc)
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._call.finish()


class _AsyncTeeStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, call: _Call) -> None:
        self._inner, self._call = inner, call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                with guarded("http body chunk"):
                    self._call.chunk(chunk)
                yield chunk
        except Exception as exc:
            self._call.finish(exc)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._call.finish()


class TrackedTransport(httpx.BaseTransport):
    """Wraps a sync transport (default ``httpx.HTTPTransport()``); records each call as a step."""

    def __init__(
        self,
        tracker: TrackerSource,
        transport: httpx.BaseTransport | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        check_tracker_source(tracker, "TrackedTransport")
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(
                f"TrackedTransport: transport must be an httpx.BaseTransport, got {type(transport).__name__}"
            )
        self._source, self._limit = tracker, _check_limit(max_body_bytes, "TrackedTransport")
        self._transport = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = _start_call(self._source, request, self._limit)
        if call is None:
            return self._transport.handle_request(request)
        try:
            response = self._transport.handle_request(request)
        except Exception as exc:
            call.finish(exc)
            raise
        call.received(response)
        response.stream = _TeeStream(response.stream, call)  # type: ignore[arg-type]
        return response

    def close(self) -> None:
        self._transport.close()


class TrackedAsyncTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport (default ``httpx.AsyncHTTPTransport()``); records each call as a step."""

    def __init__(
        self,
        tracker: TrackerSource,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        check_tracker_source(tracker, "TrackedAsyncTransport")
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                f"TrackedAsyncTransport: transport must be an httpx.AsyncBaseTransport, got {type(transport).__name__}"
            )
        self._source, self._limit = tracker, _check_limit(max_body_bytes, "TrackedAsyncTransport")
        self._transport = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = _start_call(self._source, request, self._limit)
        if call is None:
            return await self._transport.handle_async_request(request)
        try:
            response = await self._transport.handle_async_request(request)
        except Exception as exc:
            call.finish(exc)
            raise
        call.received(response)
        response.stream = _AsyncTeeStream(response.stream, call)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


def _start_call(source: TrackerSource, request: httpx.Request, limit: int) -> _Call | None:
    tracker = None
    with guarded("http tracker lookup"):
        tracker = resolve_tracker(source)
    return _Call(tracker, request, limit) if tracker is not None else None


def _split_transport_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in _TRANSPORT_ARGS if k in kwargs}


def tracked_client(
    tracker: TrackerSource, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, **client_kwargs: Any
) -> httpx.Client:
    """An ``httpx.Client`` whose calls are all recorded: its transport (``transport=`` or one built
    from ``verify``/``cert``/``http2``/``limits``/``proxy``...) and every ``mounts=`` transport."""
    inner = client_kwargs.pop("transport", None)
    transport_args = _split_transport_args(client_kwargs)
    if inner is None:
        inner = httpx.HTTPTransport(**transport_args)
    if client_kwargs.get("mounts"):
        client_kwargs["mounts"] = {
            pattern: None if t is None else TrackedTransport(tracker, t, max_body_bytes=max_body_bytes)
            for pattern, t in client_kwargs["mounts"].items()
        }
    return httpx.Client(
        transport=TrackedTransport(tracker, inner, max_body_bytes=max_body_bytes), **client_kwargs
    )


def tracked_async_client(
    tracker: TrackerSource, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, **client_kwargs: Any
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose calls are all recorded (same rules as ``tracked_client``)."""
    inner = client_kwargs.pop("transport", None)
    transport_args = _split_transport_args(client_kwargs)
    if inner is None:
        inner = httpx.AsyncHTTPTransport(**transport_args)
    if client_kwargs.get("mounts"):
        client_kwargs["mounts"] = {
            pattern: None if t is None else TrackedAsyncTransport(tracker, t, max_body_bytes=max_body_bytes)
            for pattern, t in client_kwargs["mounts"].items()
        }
    transport = TrackedAsyncTransport(tracker, inner, max_body_bytes=max_body_bytes)
    return httpx.AsyncClient(transport=transport, **client_kwargs)

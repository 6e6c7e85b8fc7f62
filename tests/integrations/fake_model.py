"""A local OpenAI-compatible chat-completions server with scripted replies (streamed as SSE).

Each POST to ``/v1/chat/completions`` takes the next scripted reply:
  ``str``                 streamed as content chunks, then a stop chunk and ``data: [DONE]``
  ``ModelFailure(code)``  answered with that HTTP status and an OpenAI-style error body
When the script runs out, the server answers ``finish(message="script exhausted")``.
Requests are kept (``server.requests``: the parsed JSON bodies) for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ModelFailure:
    status: int = 500
    message: str = "the model server fell over"


class FakeModelServer:
    def __init__(self) -> None:
        self.replies: deque[str | ModelFailure] = deque()
        self.requests: list[dict[str, Any]] = []
        # token usage to report: None sends none (like many servers); else streams end with a usage
        # chunk and a non-streamed request ("stream": false) gets a chat.completion with it
        self.usage: dict[str, int] | None = None
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-model", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def script(self, *replies: str | ModelFailure) -> None:
        with self._lock:
            self.replies.clear()
            self.replies.extend(replies)
            self.requests.clear()

    def next_reply(self, body: dict[str, Any]) -> str | ModelFailure:
        with self._lock:
            self.requests.append(body)
            return self.replies.popleft() if self.replies else 'finish(message="script exhausted")'

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    owner: FakeModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._send(404, "application/json", b'{"error": {"message": "not found"}}')
            return
        reply = self.owner.next_reply(body)
        if isinstance(reply, ModelFailure):
            error = {"error": {"message": reply.message, "type": "server_error", "code": reply.status}}
            self._send(reply.status, "application/json", json.dumps(error).encode())
            return
        model, usage = body.get("model", "fake"), self.owner.usage
        if body.get("stream") is False:
            self._send(200, "application/json", json.dumps(_completion(reply, model, usage)).encode())
            return
        self._send(200, "text/event-stream", _sse(reply, model, usage))

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _completion(content: str, model: str, usage: dict[str, int] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def _sse(content: str, model: str, usage: dict[str, int] | None = None) -> bytes:
    created = int(time.time())
    size = max(7, len(content) // 200)  # small chunks like a real model; fewer for huge replies
    pieces = [content[i : i + size] for i in range(0, len(content), size)]
    events = [_chunk(model, created, {"role": "assistant", "content": ""}, None)]
    events += [_chunk(model, created, {"content": p}, None) for p in pieces]
    events.append(_chunk(model, created, {}, "stop"))
    if usage is not None:  # as OpenAI with stream_options.include_usage, vLLM, SGLang...: no choices
        events.append({**_chunk(model, created, {}, None), "choices": [], "usage": usage})
    lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def _chunk(model: str, created: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }

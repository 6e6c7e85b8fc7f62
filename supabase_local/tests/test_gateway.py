"""The gateway survives hostile HTTP: it answers clearly and keeps serving."""

from __future__ import annotations

import socket

import httpx


def _raw(stack, payload: bytes) -> bytes:
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _healthy(stack) -> bool:
    r = httpx.get(f"{stack.url}/rest/v1/tasks", headers={"apikey": stack.secret_key})
    return r.status_code == 200


def test_garbage_and_broken_framing_get_400_and_the_gateway_keeps_serving(stack):
    assert _raw(stack, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    reply = _raw(stack, b"POST /rest/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    reply = _raw(stack, b"POST /rest/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    reply = _raw(
        stack, b"POST /rest/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400")
    reply = _raw(stack, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")  # over the request-line limit
    assert reply.startswith(b"HTTP/1.1 414")
    # a body shorter than announced, though valid JSON: the client hung up, nothing is executed
    reply = _raw(
        stack,
        b"POST /rest/v1/tasks HTTP/1.1\r\nHost: x\r\napikey: "
        + stack.secret_key.encode()
        + b'\r\nContent-Length: 100\r\n\r\n{"task_id": "cut"}',
    )
    assert reply == b""
    assert stack.sql("select count(*) as n from tasks")[0]["n"] == 0
    assert stack.faults.requests() == 0
    assert _healthy(stack)


def test_chunked_bodies_are_accepted(stack):
    body = b'{"task_id":"chunky"}'
    payload = (
        b"POST /rest/v1/tasks HTTP/1.1\r\nHost: x\r\napikey: "
        + stack.secret_key.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + f"{len(body):x}".encode()
        + b"\r\n"
        + body
        + b"\r\n0\r\n\r\n"
    )
    assert _raw(stack, payload).startswith(b"HTTP/1.1 201")
    assert stack.sql("select task_id from tasks") == [{"task_id": "chunky"}]


def test_unknown_routes_are_404(stack):
    r = httpx.get(f"{stack.url}/auth/v1/user", headers={"apikey": stack.anon_key})
    assert r.status_code == 404 and r.json()["message"] == "no Route matched with those values"
    r = httpx.get(f"{stack.url}/rest/v1/a/b", headers={"apikey": stack.anon_key})
    assert r.status_code == 404 and r.json()["code"] == "PGRST125"
    r = httpx.get(f"{stack.url}/storage/v1/nothing", headers={"Authorization": f"Bearer {stack.anon_key}"})
    assert r.status_code == 400 and r.json()["statusCode"] == "404"


def test_keep_alive_serves_many_requests_on_one_connection(stack):
    with httpx.Client(headers={"apikey": stack.secret_key}) as client:
        for i in range(20):
            assert client.post(f"{stack.url}/rest/v1/tasks", json={"task_id": f"k{i}"}).status_code == 201
    assert stack.faults.requests("POST /rest/v1/tasks") == 20
    assert stack.sql("select count(*) as n from tasks")[0]["n"] == 20

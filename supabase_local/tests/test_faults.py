"""Fault injection of the local stack: each kind does exactly what it says, and is counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from postgrest import APIError
from storage3.exceptions import StorageApiError


def _post_task(
    stack, task_id: str, client: httpx.Client | None = None, timeout: float = 5.0
) -> httpx.Response:
    c = client or httpx
    return c.post(
        f"{stack.url}/rest/v1/tasks",
        json={"task_id": task_id},
        timeout=timeout,
        headers={"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"},
    )


def _concurrently(worker: Callable[[int], list], n: int) -> list:
    """worker(0) … worker(n - 1) on n threads at once; everything they return, in one list."""
    with ThreadPoolExecutor(n) as pool:
        return [item for items in pool.map(worker, range(n), timeout=30) for item in items]


def _count(stack) -> int:
    return stack.sql("select count(*) as n from tasks")[0]["n"]


def test_fail_next_n_then_recover(stack):
    stack.faults.fail_next("POST /rest/v1/tasks", n=2, status=503)
    assert [_post_task(stack, f"t{i}").status_code for i in range(3)] == [503, 503, 201]
    assert stack.faults.injected == {"503": 2}
    assert _count(stack) == 1  # failed requests never reached the database
    assert stack.faults.requests("POST /rest/v1/tasks") == 3


def test_fail_next_surfaces_through_the_client(stack):
    stack.faults.fail_next("POST /rest/v1/tasks", n=1, status=500)
    with pytest.raises(APIError) as e:
        stack.client().table("tasks").insert({"task_id": "t1"}).execute()
    assert e.value.code == "500"  # a non-JSON body: the client reports the HTTP status
    stack.faults.fail_next("* /storage/v1/object/*", n=1, status=503)
    with pytest.raises(StorageApiError) as e:
        stack.client().storage.from_("step-screenshots").upload(
            "a/b.webp", b"RIFF", {"content-type": "image/webp"}
        )
    assert e.value.status == 503


def test_429_carries_retry_after(stack):
    stack.faults.fail_next("* /rest/v1/*", status=429, retry_after=7)
    r = _post_task(stack, "t1")
    assert (r.status_code, r.headers["retry-after"]) == (429, "7")
    assert (
        r.headers["content-type"].startswith("text/plain")
        and r.text == "injected fault: 429 Too Many Requests"
    )


def test_routes_match_method_and_path_globs(stack):
    stack.faults.fail_next("GET /rest/v1/tasks", n=5)
    assert _post_task(stack, "t1").status_code == 201  # other method: untouched
    stack.faults.fail_next("* /storage/v1/*", n=5)
    assert _post_task(stack, "t2").status_code == 201  # other prefix: untouched
    assert stack.faults.injected == {}
    with pytest.raises(ValueError):
        stack.faults.fail_next("/rest/v1/tasks")  # no method part
    with pytest.raises(ValueError):
        stack.faults.fail_next("* *", n=0)
    with pytest.raises(ValueError):
        stack.faults.fail_fraction("* *", 1.5)
    with pytest.raises(ValueError):
        stack.faults.fail_fraction("* *", 0.5, kinds=["boom"])
    for bad_call in (
        lambda: stack.faults.fail_next("* *", status=200),
        lambda: stack.faults.fail_next("* *", status="503"),
        lambda: stack.faults.fail_next("* *", status=429, retry_after=-1),
        lambda: stack.faults.hang_next("* *", seconds="long"),
        lambda: stack.faults.hang_next("* *", seconds=0),
        lambda: stack.faults.hang_next("* *", then="later"),
        lambda: stack.faults.commit_then_fail_next("* *", status=99),
        lambda: stack.faults.fail_fraction("* *", "half"),
        lambda: stack.faults.fail_fraction("* *", 0.5, kinds="500"),
    ):
        with pytest.raises(ValueError):
            bad_call()
    assert stack.faults.pending() == 10  # only the two valid rules above (5 shots each) were added


def test_fail_fraction_is_seeded_and_bounded(stack):
    client = httpx.Client()

    def run(seed: int) -> list[int]:
        stack.faults.clear()
        stack.sql("delete from tasks")
        stack.faults.fail_fraction("POST /rest/v1/tasks", 0.5, kinds=["500", "503"], seed=seed)
        return [_post_task(stack, f"t{i}", client).status_code for i in range(20)]

    a, b = run(7), run(7)
    assert a == b and set(a) == {201, 500, 503}
    assert stack.faults.injected.get("500", 0) + stack.faults.injected.get("503", 0) == a.count(
        500
    ) + a.count(503)
    assert _count(stack) == a.count(201)
    stack.faults.clear()
    stack.faults.fail_fraction("POST /rest/v1/tasks", 1.0, n=3)
    codes = [_post_task(stack, f"u{i}", client).status_code for i in range(5)]
    assert codes == [500, 500, 500, 201, 201]
    client.close()


def test_hang_times_the_client_out_and_drops_the_request(stack):
    stack.faults.hang_next("POST /rest/v1/tasks", seconds=1.5)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        _post_task(stack, "t1", timeout=0.3)
    waited = time.monotonic() - started
    assert waited < 1.4  # the client gave up before the hang ended
    time.sleep(1.5 - waited + 0.3)  # past the hang: the request was dropped, not served late
    assert _count(stack) == 0
    assert stack.faults.injected == {"hang": 1}
    assert _post_task(stack, "t1").status_code == 201


def test_hang_then_process_serves_the_request_late(stack):
    stack.faults.hang_next("POST /rest/v1/tasks", seconds=0.5, then="process")
    with pytest.raises(httpx.ReadTimeout):
        _post_task(stack, "t1", timeout=0.2)
    deadline = time.monotonic() + 30  # a wait, not a bound: returns as soon as the row is there
    while _count(stack) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _count(stack) == 1  # the client gave up, the server committed anyway


def test_clear_releases_hung_requests(stack):
    stack.faults.hang_next("POST /rest/v1/tasks", seconds=30, then="process")
    result: dict[str, int] = {}
    t = threading.Thread(
        target=lambda: result.setdefault("s", _post_task(stack, "t1", timeout=10).status_code)
    )
    started = time.monotonic()
    t.start()
    deadline = time.monotonic() + 30
    while stack.faults.injected != {"hang": 1}:  # the request reached the hang rule
        assert time.monotonic() < deadline, "the request never reached the hang"
        time.sleep(0.02)
    time.sleep(0.2)  # ...and waits in it (counted a moment before it starts waiting)
    stack.faults.clear()
    t.join(30)
    assert result == {"s": 201} and time.monotonic() - started < 10  # released, not after the 30 s hang


def test_reset_sends_rst_without_response(stack):
    stack.faults.reset_next("POST /rest/v1/tasks")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _post_task(stack, "t1")
    assert _count(stack) == 0 and stack.faults.injected == {"reset": 1}
    with pytest.raises(httpx.HTTPError):  # the client sees a transport error, not an HTTP one
        stack.faults.reset_next("* /storage/v1/*")
        stack.client().storage.list_buckets()
    assert _post_task(stack, "t1").status_code == 201


def test_commit_then_fail_commits_and_answers_500(stack):
    stack.faults.commit_then_fail_next("POST /rest/v1/tasks")
    r = _post_task(stack, "t1")
    assert r.status_code == 500
    assert _count(stack) == 1  # written, though the client was told it failed
    r = _post_task(stack, "t1")  # a naive retry now hits the duplicate
    assert r.status_code == 409
    assert stack.faults.injected == {"commit_then_fail": 1}


def test_outage_refuses_connections_and_cuts_keepalive(stack):
    with httpx.Client() as client:
        assert _post_task(stack, "t0", client=client).status_code == 201  # a pooled keep-alive connection
        with stack.faults.outage():
            assert stack.faults.in_outage
            with pytest.raises(httpx.TransportError):
                _post_task(stack, "t1", client=client)
            with pytest.raises(httpx.ConnectError):
                _post_task(stack, "t2")
            port = int(stack.url.rsplit(":", 1)[1])
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert _post_task(stack, "t3", client=client).status_code == 201
    assert sorted(r["task_id"] for r in stack.sql("select task_id from tasks")) == ["t0", "t3"]
    assert stack.faults.injected == {"outage": 1}
    stack.faults.start_outage()
    with pytest.raises(httpx.ConnectError):
        _post_task(stack, "t4")
    stack.faults.end_outage()
    assert _post_task(stack, "t4").status_code == 201


def test_faults_are_exact_under_concurrency(stack):
    stack.faults.fail_next("POST /rest/v1/tasks", n=7, status=503)

    def worker(k: int) -> list[int]:
        with httpx.Client() as client:
            return [_post_task(stack, f"w{k}-{i}", client).status_code for i in range(5)]

    codes = _concurrently(worker, 6)
    assert codes.count(503) == 7 and codes.count(201) == 23
    assert _count(stack) == 23 and stack.faults.injected == {"503": 7}


def test_http_control_endpoint(stack):
    auth = {"Authorization": f"Bearer {stack.service_role_key}"}
    r = httpx.post(
        f"{stack.url}/_faults",
        json={"op": "fail_next", "route": "POST /rest/v1/tasks", "n": 1, "status": 502},
        headers=auth,
    )
    assert r.status_code == 200 and r.json()["pending"] == 1
    assert _post_task(stack, "t1").status_code == 502
    assert httpx.get(f"{stack.url}/_faults", headers=auth).json()["injected"] == {"502": 1}
    assert (
        httpx.post(
            f"{stack.url}/_faults",
            json={"op": "clear"},
            headers={"Authorization": f"Bearer {stack.anon_key}"},
        ).status_code
        == 401
    )
    assert httpx.post(f"{stack.url}/_faults", json={"op": "explode"}, headers=auth).status_code == 400
    assert httpx.post(f"{stack.url}/_faults", json={"op": "outage"}, headers=auth).status_code == 400
    assert (
        httpx.post(f"{stack.url}/_faults", json={"op": "outage", "seconds": 3.0}, headers=auth).status_code
        == 200
    )
    deadline = time.monotonic() + 3.0
    while True:  # the outage starts ~50 ms after the answer
        try:
            _post_task(stack, "probe")
        # Connections caught by the closing listener are dropped or reset unanswered; after
        # that they are refused. Any of these means the outage has begun.
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline, "the outage did not start"
        time.sleep(0.02)
    assert stack.faults.in_outage
    deadline = time.monotonic() + 30.0
    while True:  # …and ends by itself
        try:
            assert _post_task(stack, "t2").status_code == 201
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the outage did not end"
            time.sleep(0.05)
    assert not stack.faults.in_outage


def test_mixed_chaos_accounts_for_every_request(stack):
    """Every request either failed before the database, or committed (201 or commit_then_fail)."""
    # no "hang" here: telling a hang from a slow answer needs client timeouts, flaky on a busy machine
    stack.faults.fail_fraction(
        "* /rest/v1/*", 0.3, kinds=("500", "503", "429", "reset", "commit_then_fail"), seed=1
    )

    def worker(k: int) -> list[object]:
        got: list[object] = []
        with httpx.Client(timeout=20, headers={"apikey": stack.secret_key}) as client:
            for i in range(25):
                try:
                    got.append(
                        client.post(f"{stack.url}/rest/v1/tasks", json={"task_id": f"c{k}-{i}"}).status_code
                    )
                except httpx.HTTPError as e:
                    got.append(type(e).__name__)
        return got

    outcomes = _concurrently(worker, 4)
    injected = stack.faults.injected
    assert len(outcomes) == 100 and sum(injected.values()) == 100 - outcomes.count(201)
    assert outcomes.count(201) + injected.get("commit_then_fail", 0) == _count(stack)
    assert outcomes.count(429) == injected.get("429", 0) and outcomes.count(503) == injected.get("503", 0)

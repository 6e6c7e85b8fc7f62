"""The JSON API and the screenshot proxy over HTTP (httpx against the app), both sources."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from nicegui.testing import User

from stepsdk.viewer.data.base import DataSource
from tests.viewer import dataset
from tests.viewer.conftest import backup_viewer


async def get(user: User, url: str, status: int = 200) -> dict:
    response = await user.http_client.get(url)
    assert response.status_code == status, (url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), url
    return response.json()


async def test_list_tasks_filters_and_pagination(viewer: User) -> None:
    body = await get(viewer, "/api/tasks?per_page=4&page=2&sort=task_id&order=asc")
    assert [t["task_id"] for t in body["tasks"]] == ["task-ok", "task-running"]
    assert body["pagination"] == {"page": 2, "per_page": 4, "total": 6, "pages": 2}
    body = await get(viewer, "/api/tasks?status=failed")
    assert [t["task_id"] for t in body["tasks"]] == ["task-fail"] and body["tasks"][0]["failed_steps"] == 3
    body = await get(viewer, "/api/tasks?search=%25&agent=shop-agent")
    assert body["tasks"] == [] and body["pagination"]["total"] == 0
    body = await get(viewer, "/api/tasks?started_from=" + dataset.NOW.isoformat().replace("+", "%2B"))
    assert body["pagination"]["total"] == 0


BAD_QUERIES = [
    "per_page=101",
    "per_page=0",
    "page=0",
    "page=abc",
    "status=exploded",
    "sort=password",
    "order=sideways",
    "started_from=yesterday",
    "started_from=2026-01-01T00:00:00",
    "search=" + "x" * 600,
]


async def test_list_tasks_bad_params(viewer: User) -> None:
    for query in BAD_QUERIES:
        body = await get(viewer, f"/api/tasks?{query}", 422)
        assert "detail" in body, query


STATISTICS_KEYS = [
    "total_steps",
    "successful_steps",
    "failed_steps",
    "success_rate",
    "total_duration_ms",
    "average_step_duration_ms",
    "screenshots_count",
]


async def test_task_steps_report_screenshots(viewer: User, data: dataset.Dataset) -> None:
    task = await get(viewer, "/api/tasks/task-fail")
    assert (
        task["task_id"] == "task-fail"
        and task["total_steps"] == 5
        and task["title"].startswith("Checkout <script>")
    )
    # GET /api/tasks/{task_id}/steps -> {"data": {"steps": [...], "pagination": {page, per_page, total, pages}}}
    body = await get(viewer, "/api/tasks/task-long/steps?page=3&per_page=50")
    assert list(body) == ["data"] and list(body["data"]) == ["steps", "pagination"]
    assert [s["step_number"] for s in body["data"]["steps"]] == list(range(101, 121))
    assert list(body["data"]["pagination"].items()) == [
        ("page", 3),
        ("per_page", 50),
        ("total", 120),
        ("pages", 3),
    ]
    expected = {s["id"]: s for s in data.steps_of("task-long")}
    for step in body["data"]["steps"]:
        for column, value in expected[step["id"]].items():
            assert step[column] == value or column.endswith("_at"), (column, step[column], value)
    default = (await get(viewer, "/api/tasks/task-long/steps"))["data"]
    assert len(default["steps"]) == 20 and default["pagination"] == {
        "page": 1,
        "per_page": 20,
        "total": 120,
        "pages": 6,
    }
    limited = (await get(viewer, "/api/tasks/task-long/steps?page=2&per_page=10&limit=3"))["data"]
    assert [s["step_number"] for s in limited["steps"]] == [11, 12, 13]
    assert limited["pagination"] == {"page": 2, "per_page": 10, "total": 120, "pages": 12}
    assert (await get(viewer, "/api/tasks/task-long/steps?page=9"))["data"]["steps"] == []
    assert (await get(viewer, "/api/tasks/task-empty/steps"))["data"]["pagination"]["total"] == 0
    for bad in ("per_page=101", "per_page=0", "limit=0", "limit=101", "limit=x"):
        await get(viewer, f"/api/tasks/task-long/steps?{bad}", 422)
    # GET /api/tasks/{task_id}/report -> {"data": {"task", "steps", "screenshots", "statistics": {...}}}
    report = await get(viewer, "/api/tasks/task-ok/report")
    assert list(report) == ["data"] and list(report["data"]) == ["task", "steps", "screenshots", "statistics"]
    report = report["data"]
    assert list(report["statistics"]) == STATISTICS_KEYS
    assert report["statistics"] == {
        "total_steps": 4,
        "successful_steps": 4,
        "failed_steps": 0,
        "success_rate": 1.0,
        "total_duration_ms": 1660.5,
        "average_step_duration_ms": 415.125,
        "screenshots_count": 2,
    }
    assert (
        report["task"]["task_id"] == "task-ok" and report["task"]["title"] == "Open settings and enable wifi"
    )
    assert [s["step_number"] for s in report["steps"]] == [1, 2, 3, 4] and len(report["screenshots"]) == 2
    failed = (await get(viewer, "/api/tasks/task-fail/report"))["data"]["statistics"]
    assert (failed["total_steps"], failed["successful_steps"], failed["failed_steps"]) == (5, 2, 3)
    assert failed["success_rate"] == pytest.approx(0.4) and failed["total_duration_ms"] == 8300.0
    assert (
        failed["average_step_duration_ms"] == pytest.approx(8300.0 / 4) and failed["screenshots_count"] == 1
    )
    # GET /api/tasks/{task_id}/screenshots -> {"data": {"screenshots": [...]}}
    body = await get(viewer, "/api/tasks/task-ok/screenshots")
    assert list(body) == ["data"] and list(body["data"]) == ["screenshots"]
    shots = body["data"]["screenshots"]
    assert {s["screenshot_path"] for s in shots} == {
        r["screenshot_path"] for r in data.screenshots if r["task_id"] == "task-ok"
    }
    for shot in shots:
        image = await viewer.http_client.get(shot["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/webp"
        assert image.content == data.objects[shot["screenshot_path"]]
        # GET /api/steps/{step_id}/screenshot -> the step's image itself
        by_step = await viewer.http_client.get(f"/api/steps/{shot['step_id']}/screenshot")
        assert by_step.status_code == 200 and by_step.headers["content-type"] == "image/webp"
        assert by_step.content == data.objects[shot["screenshot_path"]]


async def test_step_screenshot_unknown_or_without_image(viewer: User, data: dataset.Dataset) -> None:
    thinking = data.steps_of("task-ok")[0]
    for step_id in (thinking["id"], "00000000-0000-0000-0000-000000000000", "not-a-uuid", "..%2F..%2Fetc"):
        body = await get(viewer, f"/api/steps/{step_id}/screenshot", 404)
        assert body["detail"] in ("step not found or without a screenshot", "no such API route"), step_id
    placeholder = await viewer.http_client.get(f"/api/steps/{thinking['id']}/screenshot?fallback=true")
    assert placeholder.status_code == 200 and placeholder.headers["content-type"].startswith("image/svg+xml")
    missing = data.steps_of("task-broken")[0]  # its object was never stored
    assert (await get(viewer, f"/api/steps/{missing['id']}/screenshot", 404))[
        "detail"
    ] == "screenshot not found"


HOSTILE_IDS = ["nope", "x" * 5000, "..%2F..%2Fetc%2Fpasswd", "%3Cscript%3E", "%E2%80%AE%F0%9F%98%80"]


async def test_unknown_ids_are_404_json(viewer: User) -> None:
    for task_id in HOSTILE_IDS:
        for suffix in ("", "/steps", "/report", "/screenshots"):
            assert (await get(viewer, f"/api/tasks/{task_id}{suffix}", 404))["detail"] == "task not found"
    assert (await get(viewer, "/api/nothing/here", 404))["detail"]


async def test_stats(viewer: User) -> None:
    body = await get(viewer, "/api/stats?days=7")
    assert len(body["days"]) == 7 and sum(d["tasks"] for d in body["days"]) == 6
    # finished tasks' wall times: 100, 2000, 5400, 9100, 120000 ms
    assert body["durations"]["min_task_duration_ms"] == pytest.approx(100.0)
    assert body["durations"]["max_task_duration_ms"] == pytest.approx(120_000.0)
    assert body["durations"]["avg_task_duration_ms"] == pytest.approx(
        (100 + 2000 + 5400 + 9100 + 120_000) / 5
    )
    assert (
        body["top_errors"][0]["error_type"] == "AssertionError"
        and body["slowest_steps"][0]["duration_ms"] == 4000
    )
    # failed steps per error category (the data set's steps predate categories: all uncategorized)
    assert body["error_categories"] == [
        {**body["error_categories"][0], "error_category": None, "failed_steps": 6, "tasks_affected": 2}
    ]
    for bad in ("days=0", "days=99999", "days=x"):
        await get(viewer, f"/api/stats?{bad}", 422)


async def test_screenshot_proxy_refuses_what_it_should(viewer: User) -> None:
    missing = f"/media/screenshots/{dataset.BROKEN_SHA[:2]}/{dataset.BROKEN_SHA}.webp"
    assert (await get(viewer, missing, 404))["detail"] == "screenshot not found"
    placeholder = await viewer.http_client.get(missing + "?fallback=true")
    assert placeholder.status_code == 200 and placeholder.headers["content-type"].startswith("image/svg+xml")
    for bad in ("../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a%5Cb.webp", "x" * 3000):
        response = await viewer.http_client.get(f"/media/screenshots/{bad}")
        assert response.status_code == 404, bad
        assert b"root:" not in response.content


async def test_openapi_lists_the_routes(viewer: User) -> None:
    paths = (await get(viewer, "/openapi.json"))["paths"]
    for path in (
        "/api/tasks",
        "/api/tasks/{task_id}",
        "/api/tasks/{task_id}/steps",
        "/api/tasks/{task_id}/report",
        "/api/tasks/{task_id}/screenshots",
        "/api/steps/{step_id}/screenshot",
        "/api/stats",
        "/media/screenshots/{screenshot_path}",
    ):
        assert path in paths, path
    doc = await get(viewer, "/openapi.json")
    params = {p["name"]: p for p in paths["/api/tasks/{task_id}/steps"]["get"]["parameters"]}
    assert params["per_page"]["schema"]["default"] == 20 and params["per_page"]["schema"]["maximum"] == 100
    assert {"page", "limit"} <= set(params)
    schemas = doc["components"]["schemas"]
    assert list(schemas["ReportStatistics"]["properties"]) == STATISTICS_KEYS
    assert list(schemas["Pagination"]["properties"]) == ["page", "per_page", "total", "pages"]
    assert list(schemas["Report"]["properties"]) == ["task", "steps", "screenshots", "statistics"]
    ok = paths["/api/tasks/{task_id}/report"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert ok == {"$ref": "#/components/schemas/ReportResponse"}


@pytest.mark.parametrize("source", ["supabase"], indirect=True)
async def test_service_key_never_served(viewer: User, stack, source: DataSource) -> None:
    urls = [
        "/",
        "/tasks/task-ok",
        "/tasks/task-fail",
        "/stats",
        "/compare?a=task-ok&b=task-fail",
        "/api/tasks",
        "/api/tasks/task-ok/report",
        "/api/tasks/task-ok/screenshots",
        "/api/stats",
        "/openapi.json",
    ]
    for url in urls:
        text = (await viewer.http_client.get(url)).text
        assert stack.service_role_key not in text and "eyJ" not in text, url
    for path in ("/", "/tasks/task-ok", "/stats"):  # and in the live page content sent over the socket
        await viewer.open(path)
        from tests.viewer.test_pages import labels

        assert not any(stack.service_role_key in t for t in labels(viewer))
    with stack.faults.outage():
        for url in urls[5:9]:
            response = await viewer.http_client.get(url)
            assert response.status_code == 503 and "unreachable" in response.json()["detail"], url
            assert stack.service_role_key not in response.text
        shot = await viewer.http_client.get(f"/media/screenshots/{next(iter(dataset.build().objects))}")
        assert shot.status_code == 503


@pytest.mark.parametrize("source", ["supabase"], indirect=True)
async def test_an_unreachable_backend_is_503_on_every_json_route(
    viewer: User, stack, source: DataSource
) -> None:
    """One exception handler (viewer/api.py) answers a SourceUnavailable (a
    stepsdk.BackendUnavailableError) with 503 {"detail": ...} on every JSON route."""
    from stepsdk.errors import BackendUnavailableError
    from stepsdk.viewer.data.base import SourceUnavailable

    assert issubclass(SourceUnavailable, BackendUnavailableError)
    urls = [
        "/api/tasks",
        "/api/tasks/task-ok",
        "/api/tasks/task-ok/steps",
        "/api/tasks/task-ok/report",
        "/api/tasks/task-ok/screenshots",
        "/api/stats",
        "/api/search?q=wifi",
        "/api/usage",
        "/api/tasks/task-ok/usage",
        "/api/errors",
    ]
    with stack.faults.outage():
        for url in urls:
            response = await viewer.http_client.get(url)
            assert response.status_code == 503, url
            assert list(response.json()) == ["detail"] and "unreachable" in response.json()["detail"], url
    assert (await viewer.http_client.get("/api/tasks/task-ok/usage")).status_code == 200


async def test_no_script_url_in_served_html(viewer: User) -> None:
    html = (await viewer.http_client.get("/tasks/task-fail?step=2")).text
    # user text travels as JSON data for Vue's text rendering, never as live markup
    assert "<script>window.__xss" not in html
    assert not re.search(r"<img src=x onerror", html)


SLASH_IDS = ["a", "a/steps", "a/report", "b/c/d", "50%2F off", "q?x#y"]


@pytest.fixture
async def slash_viewer(tmp_path) -> AsyncIterator[User]:
    """Task ids that contain ``/`` (and ``%``, ``?``, ``#``) next to the id they would clash with."""
    b = dataset._Builder()
    for i, task_id in enumerate(SLASH_IDS):
        task = dataset._task(task_id, f"title {i}", "success", timedelta(hours=i + 1), 100.0)
        b.ds.tasks.append(task)
        for number in range(1, i + 2):  # i + 1 steps: tells the tasks apart
            b.step(task, number, "action", 10.0)
    async with backup_viewer(tmp_path / "backup", b.ds) as user:
        yield user


async def test_task_ids_with_slashes_are_one_encoded_segment(slash_viewer: User) -> None:
    for i, task_id in enumerate(SLASH_IDS):
        path = "/api/tasks/" + quote(task_id, safe="")
        assert (await get(slash_viewer, path))["task_id"] == task_id
        body = (await get(slash_viewer, path + "/steps"))["data"]
        assert body["pagination"]["total"] == i + 1 and {s["task_id"] for s in body["steps"]} == {task_id}
        assert (await get(slash_viewer, path + "/report"))["data"]["task"]["task_id"] == task_id
        assert (await get(slash_viewer, path + "/screenshots"))["data"]["screenshots"] == []
    # "a/steps" encoded is the task "a/steps", not task "a"'s steps
    assert (await get(slash_viewer, "/api/tasks/a%2Fsteps"))["title"] == "title 1"
    assert "steps" in (await get(slash_viewer, "/api/tasks/a/steps"))["data"]
    # an unencoded "/" in an id is not guessed at: a 404 that says how to ask
    body = await get(slash_viewer, "/api/tasks/b/c/d", 404)
    assert "URL-encode" in body["detail"]
    assert (await get(slash_viewer, "/api/tasks/a%252Fsteps", 404))[
        "detail"
    ] == "task not found"  # "a%2Fsteps"


async def test_task_page_with_slashes_in_the_id(slash_viewer: User) -> None:
    await slash_viewer.open("/tasks/" + quote("a/steps", safe=""))
    await slash_viewer.should_see("title 1")
    await slash_viewer.should_see("Step 1 of 2")
    await slash_viewer.open("/tasks/a")
    await slash_viewer.should_see("title 0")
    await slash_viewer.should_see("Step 1 of 1")
    await slash_viewer.open("/tasks/" + quote("b/c/d", safe="") + "?step=3")
    await slash_viewer.should_see("Step 3 of 4")


async def test_list_tasks_metadata_filter_and_column(viewer: User) -> None:
    body = await get(viewer, "/api/tasks?meta=model=gpt-4o")
    assert [t["task_id"] for t in body["tasks"]] == ["task-ok"]
    assert body["tasks"][0]["metadata"] == {"model": "gpt-4o", "device": "pixel-7", "attempt": 2}
    body = await get(viewer, "/api/tasks?meta=device=pixel-7&sort=task_id&order=asc")
    assert [t["task_id"] for t in body["tasks"]] == ["task-fail", "task-ok"] and body["pagination"][
        "total"
    ] == 2
    body = await get(viewer, "/api/tasks?meta=device=pixel-7&meta=model=claude")
    assert [t["task_id"] for t in body["tasks"]] == ["task-fail"]
    body = await get(viewer, "/api/tasks?meta=attempt=2")  # non-text values compare as their JSON text
    assert [t["task_id"] for t in body["tasks"]] == ["task-ok"]
    assert (await get(viewer, "/api/tasks?meta=model=nope"))["tasks"] == []
    for bad in ("meta=model", "meta=bad%20key=1", "meta=a.b=1"):
        assert "detail" in await get(viewer, f"/api/tasks?{bad}", 422), bad


async def test_foreign_host_header_is_refused(viewer: User) -> None:
    """DNS rebinding: a page on another site re-pointed at 127.0.0.1 sends its own Host."""
    for host in ("rebind.attacker.example", "rebind.attacker.example:8080", "127.0.0.1.attacker.example"):
        response = await viewer.http_client.get("/api/tasks", headers={"Host": host})
        assert response.status_code == 421 and "task-ok" not in response.text, host
        page = await viewer.http_client.get("/tasks/task-ok", headers={"Host": host})
        assert page.status_code == 421, host
    for host in ("test", "127.0.0.1:8080", "localhost:8080", "[::1]:8080"):
        assert (await viewer.http_client.get("/api/tasks", headers={"Host": host})).status_code == 200, host


async def test_a_nul_in_agent_or_search_is_422_not_an_outage(viewer: User) -> None:
    """PostgreSQL text holds no NUL: Supabase refused these and the viewer answered 503 (backend
    unavailable) for what is a bad parameter; the backup source answered 200. Both say 422."""
    for url in (
        "/api/tasks?agent=%00",
        "/api/tasks?search=a%00b",
        "/api/stats?agent=%00",
        "/api/search?q=wifi&agent=a%00",
    ):
        body = await get(viewer, url, 422)
        assert "detail" in body, url

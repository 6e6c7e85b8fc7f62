"""Viewer operations: GET /api/storage (both sources, and an unreachable backend), the
authenticated clean-up endpoint (only with a key that may delete), and the task page's delete
button with its confirmation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from nicegui.testing import User

from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import DataSource
from stepsdk.viewer.data.supabase_source import SupabaseSource
from stepsdk.viewer.secret_key import is_secret_key
from tests.viewer import dataset
from tests.viewer.conftest import viewer_user

TOKEN = "a-viewer-token-of-some-length"


def _expected_figures(ds: dataset.Dataset) -> dict:
    sizes: dict[str, int] = {}
    for r in ds.screenshots:
        sizes[r["screenshot_path"]] = max(sizes.get(r["screenshot_path"], 0), r["file_size"])
    starts = [datetime.fromisoformat(t["started_at"]) for t in ds.tasks]
    return {
        "tasks": len(ds.tasks),
        "steps": len(ds.steps),
        "screenshots": len(ds.screenshots),
        "objects": len(sizes),
        "bytes": sum(sizes.values()),
        "oldest": min(starts),
        "newest": max(starts),
    }


async def test_storage_figures_and_health(viewer: User, source: DataSource, data: dataset.Dataset) -> None:
    response = await viewer.http_client.get("/api/storage")
    assert response.status_code == 200
    body = response.json()
    want = _expected_figures(data)
    assert {k: body[k] for k in ("tasks", "steps", "screenshots", "objects", "bytes")} == {
        k: want[k] for k in ("tasks", "steps", "screenshots", "objects", "bytes")
    }
    assert datetime.fromisoformat(body["oldest_task_at"]) == want["oldest"]
    assert datetime.fromisoformat(body["newest_task_at"]) == want["newest"]
    assert body["health"]["ok"] is True and body["health"]["latency_ms"] >= 0
    assert body["backend"] == ("backup" if isinstance(source, BackupSource) else "supabase")
    assert body["can_delete"] is True  # the backup folder, or the service role key
    if isinstance(source, BackupSource):
        assert body["health"]["problems"] == 0 and body["health"]["pending"]["tasks"] == len(data.tasks)


async def test_storage_health_when_supabase_is_unreachable(supabase_stack) -> None:
    source = SupabaseSource("http://127.0.0.1:9", supabase_stack.service_role_key, timeout=2)
    async with viewer_user(source) as user:
        response = await user.http_client.get("/api/storage")
    body = response.json()
    assert response.status_code == 200 and body["health"]["ok"] is False and body["tasks"] is None
    assert "Connect" in body["health"]["error"] and supabase_stack.service_role_key not in response.text


def _older_than_a_day(ds: dataset.Dataset) -> list[str]:
    cutoff = dataset.NOW - timedelta(days=1, minutes=-5)  # a little margin for the test's own run time
    return sorted(t["task_id"] for t in ds.tasks if datetime.fromisoformat(t["started_at"]) < cutoff)


async def test_cleanup_endpoint_needs_the_token(
    viewer: User, source: DataSource, data: dataset.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SUPABASE_URL", "SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    url, body = "/api/storage/cleanup", {"older_than": "1d", "dry_run": True}
    assert url in (await viewer.http_client.get("/openapi.json")).json()["paths"]  # documented
    monkeypatch.delenv("STEPSDK_VIEWER_TOKEN", raising=False)
    off = await viewer.http_client.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert off.status_code == 403 and "STEPSDK_VIEWER_TOKEN" in off.json()["detail"]
    monkeypatch.setenv("STEPSDK_VIEWER_TOKEN", TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}):
        assert (await viewer.http_client.post(url, json=body, headers=headers)).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = await viewer.http_client.post(url, json={"older_than": "soon"}, headers=auth)
    assert bad.status_code == 422 and "invalid duration" in bad.json()["detail"]

    doomed = _older_than_a_day(data)
    assert doomed  # the data set has tasks older than a day
    dry = (await viewer.http_client.post(url, json=body, headers=auth)).json()
    assert dry["dry_run"] and sorted(dry["task_ids"]) == doomed
    assert all(source.get_task(t) is not None for t in doomed)
    done = (
        await viewer.http_client.post(url, json={"older_than": "1d", "dry_run": False}, headers=auth)
    ).json()
    assert sorted(done["task_ids"]) == doomed and not done["dry_run"]
    assert all(source.get_task(t) is None for t in doomed)
    assert source.get_task("task-ok") is not None
    figures = (await viewer.http_client.get("/api/storage")).json()
    assert figures["tasks"] == len(data.tasks) - len(doomed)


async def test_read_only_viewer_offers_no_delete(stack, data: dataset.Dataset, _supabase_clients) -> None:
    writer, _ = _supabase_clients
    dataset.write_supabase(writer, data)
    owner = str(uuid.uuid4())
    stack.sql("insert into auth.users (id) values (%s)", (owner,))
    stack.sql("update public.tasks set owner_id = %s where task_id = 'task-ok'", (owner,))
    source = SupabaseSource(stack.url, stack.anon_key, access_token=stack.user_token(owner), timeout=5)
    assert source.can_delete is False and not is_secret_key(stack.anon_key)
    async with viewer_user(source) as user:
        response = await user.http_client.post(
            "/api/storage/cleanup",
            json={"older_than": "1d", "dry_run": False},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code in (404, 405)  # no such route on this viewer
        paths = (await user.http_client.get("/openapi.json")).json()["paths"]
        assert "/api/storage" in paths and "/api/storage/cleanup" not in paths
        figures = (await user.http_client.get("/api/storage")).json()
        assert figures["tasks"] == 1 and figures["can_delete"] is False  # row-level security: own task only
        await user.open("/tasks/task-ok")
        await user.should_see("Open settings and enable wifi")
        await user.should_not_see(marker="delete-task")
    assert stack.sql("select count(*) as n from public.tasks")[0]["n"] == len(data.tasks)


def test_secret_key_recognition(supabase_stack) -> None:
    assert is_secret_key(supabase_stack.service_role_key) and is_secret_key(supabase_stack.secret_key)
    assert not is_secret_key(supabase_stack.anon_key) and not is_secret_key(supabase_stack.publishable_key)
    assert not is_secret_key("not.a.jwt") and not is_secret_key("")


async def test_delete_button_asks_then_deletes(
    viewer: User, source: DataSource, data: dataset.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    await viewer.open("/tasks/task-fail")
    await viewer.should_see(marker="delete-task")
    viewer.find(marker="delete-task").click()
    await viewer.should_see("Delete this task?")
    viewer.find(marker="cancel-delete").click()
    assert source.get_task("task-fail") is not None  # cancelled: nothing happened

    viewer.find(marker="delete-task").click()
    viewer.find(marker="confirm-delete").click()
    await viewer.should_see("Deleted task task-fail")  # the delete runs off the event loop
    assert source.get_task("task-fail") is None
    assert source.get_task("task-ok") is not None
    await viewer.should_see(f"{len(data.tasks) - 1} tasks")  # back on the list page


def test_delete_refused_without_the_right_key(stack) -> None:
    from stepsdk.viewer import operations

    source = SupabaseSource(stack.url, stack.anon_key, timeout=5)
    with pytest.raises(PermissionError):
        operations.delete_task(source, "task-ok")
    assert operations.can_delete(BackupSource(Path("/nonexistent"))) is True

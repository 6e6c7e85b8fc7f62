"""Token usage, error categories and active alerts in the viewer: the two sources agree, the
JSON API answers them, and the /usage and /errors pages and the alert banner show them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nicegui.testing import User

from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import DataSource
from tests.viewer import dataset
from tests.viewer.conftest import viewer_user
from tests.viewer.test_pages import labels

U1 = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
U2 = {"prompt_tokens": 3_000_000, "completion_tokens": 1_000_000, "total_tokens": 4_000_000}


def _ops_dataset() -> dataset.Dataset:
    b = dataset._Builder()
    heavy = dataset._task(
        "t-heavy", "Many tokens", "failed", timedelta(hours=2), 9000.0, metadata={"model": "big-model"}
    )
    light = dataset._task("t-light", "Few tokens", "success", timedelta(hours=3), 1000.0)
    none = dataset._task("t-none", "No usage", "failed", timedelta(days=2), 500.0)
    b.ds.tasks = [heavy, light, none]
    b.step(heavy, 1, "thinking", 100.0, usage=U2, name="plan")
    b.step(
        heavy,
        2,
        "action",
        5000.0,
        success=False,
        error_type="TimeoutError",
        error_message="tap timed out",
        error_category="timeout",
        usage=U1,
    )
    b.step(
        heavy,
        3,
        "action",
        4000.0,
        success=False,
        error_type="TimeoutError",
        error_message="tap timed out",
        error_category="timeout",
    )
    b.step(light, 1, "action", 50.0, usage=U1)
    b.step(
        none,
        1,
        "action",
        10.0,
        success=False,
        error_type="PermissionError",
        error_message="denied",
        error_category="auth",
    )
    b.step(
        none, 2, "action", 10.0, success=False, error_type="ValueError", error_message="old row, no category"
    )
    return b.ds


@pytest.fixture
def ops_data() -> dataset.Dataset:
    return _ops_dataset()


@pytest.fixture(params=["backup", "supabase"])
def ops_source(request: pytest.FixtureRequest, tmp_path: Path, ops_data: dataset.Dataset) -> DataSource:
    if request.param == "backup":
        dataset.write_backup(tmp_path / "backup", ops_data)
        return BackupSource(tmp_path / "backup")
    request.getfixturevalue("stack")
    writer, source = request.getfixturevalue("_supabase_clients")
    dataset.write_supabase(writer, ops_data)
    return source


@pytest.fixture
async def ops_viewer(
    ops_source: DataSource, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[User]:
    monkeypatch.setenv("STEPSDK_PRICE_PROMPT_PER_M", "0.5")
    monkeypatch.setenv("STEPSDK_PRICE_COMPLETION_PER_M", "2")
    monkeypatch.delenv("STEPSDK_PRICES", raising=False)
    monkeypatch.setenv("STEPSDK_ALERTS_STATE", str(tmp_path / "alerts.state.json"))
    async with viewer_user(ops_source) as user:
        yield user


def _stamp(value: object) -> object:
    if isinstance(value, str) and len(value) > 18 and value[4] == "-" and "T" in value:
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()
    return value


def test_sources_agree_on_usage_and_categories(
    tmp_path: Path, ops_data: dataset.Dataset, request: pytest.FixtureRequest
) -> None:
    dataset.write_backup(tmp_path / "b", ops_data)
    local = BackupSource(tmp_path / "b")
    request.getfixturevalue("stack")
    writer, remote = request.getfixturevalue("_supabase_clients")
    dataset.write_supabase(writer, ops_data)

    def norm(rows: list[dict]) -> list[dict]:
        return [{k: _stamp(v) for k, v in r.items()} for r in rows]

    for call in (
        lambda s: s.tasks_by_usage(10),
        lambda s: s.daily_usage(3),
        lambda s: s.error_categories(),
        lambda s: s.failed_steps(None, 10),
        lambda s: s.failed_steps("timeout", 10),
        lambda s: s.failed_steps("none", 10),
        lambda s: [s.task_usage("t-heavy")],
    ):
        assert norm(call(local)) == norm(call(remote))
    heavy = local.task_usage("t-heavy")
    assert (
        heavy["model"],
        heavy["steps_with_usage"],
        heavy["prompt_tokens"],
        heavy["completion_tokens"],
        heavy["total_tokens"],
    ) == ("big-model", 2, 3_001_000, 1_000_200, 4_001_200)
    assert [r["task_id"] for r in local.tasks_by_usage(10)] == ["t-heavy", "t-light"]
    assert [
        (r["error_category"], r["failed_steps"], r["tasks_affected"]) for r in local.error_categories()
    ] == [("timeout", 2, 1), ("auth", 1, 1), (None, 1, 1)]
    assert [s["error_message"] for s in local.failed_steps("none", 10)] == ["old row, no category"]
    assert local.task_usage("nope") is None and remote.task_usage("nope") is None
    with pytest.raises(ValueError):
        local.failed_steps("exploded", 10)


async def test_usage_api_with_prices(ops_viewer: User) -> None:
    body = (await ops_viewer.http_client.get("/api/usage?days=3")).json()["data"]
    assert body["currency"] == "USD" and len(body["days"]) == 3
    assert body["totals"]["total_tokens"] == 4_002_400  # every usage is from the last 3 hours
    assert [(t["task_id"], t["total_tokens"]) for t in body["tasks"]] == [
        ("t-heavy", 4_001_200),
        ("t-light", 1200),
    ]
    # 3,001,000 prompt x 0.5 + 1,000,200 completion x 2 per million
    assert body["tasks"][0]["cost"] == pytest.approx(1.5005 + 2.0004)
    one = (await ops_viewer.http_client.get("/api/tasks/t-light/usage")).json()["data"]
    assert (one["prompt_tokens"], one["cost"]) == (1000, pytest.approx(0.0009))
    assert (await ops_viewer.http_client.get("/api/tasks/nope/usage")).status_code == 404


async def test_errors_api_filters_by_category(ops_viewer: User) -> None:
    body = (await ops_viewer.http_client.get("/api/errors?category=timeout")).json()["data"]
    assert [s["step_number"] for s in body["steps"]] == [3, 2] and {
        s["task_title"] for s in body["steps"]
    } == {"Many tokens"}
    assert {c["error_category"]: c["failed_steps"] for c in body["categories"]} == {
        "timeout": 2,
        "auth": 1,
        None: 1,
    }
    assert len((await ops_viewer.http_client.get("/api/errors")).json()["data"]["steps"]) == 4
    assert (await ops_viewer.http_client.get("/api/errors?category=exploded")).status_code == 422


async def test_usage_and_errors_pages(ops_viewer: User) -> None:
    await ops_viewer.open("/usage")
    await ops_viewer.should_see("Token usage")
    # 3,002,000 prompt x 0.5 + 1,000,400 completion x 2 per million
    assert "4,002,400" in labels(ops_viewer) and "3.5018 USD" in labels(ops_viewer)
    await ops_viewer.should_see(marker="usage-tasks")
    await ops_viewer.open("/errors?category=timeout")
    await ops_viewer.should_see("Latest failed steps: timeout")
    table = ops_viewer.find(marker="failed-steps").elements.pop()
    assert [r["task_id"] for r in table.rows] == ["t-heavy", "t-heavy"]
    assert all(r["error"] == "TimeoutError: tap timed out" for r in table.rows)
    await ops_viewer.open("/errors?category=none")
    table = ops_viewer.find(marker="failed-steps").elements.pop()
    assert [r["error"] for r in table.rows] == ["ValueError: old row, no category"]
    await ops_viewer.open("/errors")
    assert len(ops_viewer.find(marker="failed-steps").elements.pop().rows) == 4


async def test_alert_banner_shows_active_alerts(ops_viewer: User, tmp_path: Path) -> None:
    await ops_viewer.open("/")
    await ops_viewer.should_not_see(marker="alerts")
    assert (await ops_viewer.http_client.get("/api/alerts")).json()["data"] == {
        "checked_at": None,
        "active": [],
    }
    state = {
        "version": 1,
        "checked_at": "2026-11-30T01:00:00+00:00",
        "active": {
            "uploads stuck": {
                "rule": "uploads stuck",
                "kind": "upload_backlog",
                "since": "2026-11-30T00:40:00+00:00",
                "summary": "12 item(s) of ./backup not uploaded, the oldest for 45 min",
            }
        },
    }
    (tmp_path / "alerts.state.json").write_text(json.dumps(state))
    for page in ("/", "/stats", "/usage"):
        await ops_viewer.open(page)
        await ops_viewer.should_see("1 active alert(s)")
        await ops_viewer.should_see(
            "uploads stuck: 12 item(s) of ./backup not uploaded, the oldest for 45 min"
            " (since 2026-11-30 00:40:00 UTC)"
        )
    [alert] = (await ops_viewer.http_client.get("/api/alerts")).json()["data"]["active"]
    assert (alert["key"], alert["kind"]) == ("uploads stuck", "upload_backlog")

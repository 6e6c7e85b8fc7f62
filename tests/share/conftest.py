"""Fixtures of the sharing tests: a backup folder holding a phone run (and a failed one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.share import phone_run
from tests.share.phoenix_server import PhoenixServer

_phoenix: list[PhoenixServer] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Boot Phoenix now, in the background, when a test will need it, and run those tests last:
    Phoenix starts while the rest of the suite runs (see phoenix_server.py)."""
    wanted = [
        i for i in items if i.get_closest_marker("phoenix") and "phoenix" in getattr(i, "fixturenames", ())
    ]
    if wanted and not _phoenix:
        _phoenix.append(PhoenixServer())
        items[:] = [i for i in items if i not in wanted] + wanted


def pytest_sessionfinish() -> None:
    while _phoenix:
        _phoenix.pop().stop()


@pytest.fixture(scope="session")
def phoenix() -> str:
    """The URL of a running Phoenix server (started at collection, stopped at the session's end)."""
    if not _phoenix:
        _phoenix.append(PhoenixServer())
    return _phoenix[0].wait_ready()


@pytest.fixture
def run() -> dict[str, Any]:
    return phone_run.build()


@pytest.fixture
def backup(tmp_path: Path, run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp/backup`` with the phone run and a failed run; the CLI reads it (no Supabase)."""
    root = tmp_path / "backup"
    failed = phone_run.build(steps=3, task_id="phone-run-failed", status="failed")
    phone_run.write_backup(root, run, failed)
    for name in ("SUPABASE_URL", "SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(root))
    return root

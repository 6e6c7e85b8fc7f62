"""Fixtures of the sharing tests: a backup folder holding a phone run (and a failed one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.share import phone_run


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

"""``stepsdk view`` / ``python -m stepsdk.viewer`` arguments, and the Supabase source with a user's token."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from stepsdk.cli import main
from stepsdk.viewer.app import source_from_args
from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import Sort, TaskFilters
from stepsdk.viewer.data.supabase_source import SupabaseSource
from tests.viewer import dataset


def test_view_command_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["view", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--backup-dir", "--supabase-url", "--host", "--port"):
        assert option in out
    assert "127.0.0.1" in out


def test_bad_arguments_get_a_clear_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["view", "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err
    for name in ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY"):
        monkeypatch.delenv(name, raising=False)
    # configuration missing or rejected: 78, as every command (README, exit statuses)
    assert main(["view", "--supabase-url", "http://127.0.0.1:9"]) == 78
    assert "SUPABASE_SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "k")
    assert main(["view", "--supabase-url", "ftp://example"]) == 78
    assert "http(s) URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the two sources exclude each other
        main(["view", "--backup-dir", "x", "--supabase-url", "http://x"])


def test_python_dash_m_viewer_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stepsdk.viewer", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--backup-dir" in result.stdout


def test_viewer_folder_has_one_import_name() -> None:
    """viewer/ is the package stepsdk.viewer (setup.py); with the repository root on sys.path it could
    also be imported as `viewer`, a second copy of every module: it refuses, naming the right one."""
    repo = Path(__file__).resolve().parents[2]
    old_name = "viewer"  # in a variable: scripts/viewer_imports.py leaves it alone
    result = subprocess.run(
        [sys.executable, "-m", old_name, "--help"], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "the viewer is the package stepsdk.viewer" in result.stderr
    assert "--backup-dir" not in result.stdout


def test_default_source_is_the_backup_folder(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(tmp_path))
    source = source_from_args()
    assert isinstance(source, BackupSource) and str(tmp_path) in source.description


def test_user_token_sees_only_own_tasks(stack) -> None:
    dataset.write_supabase(stack.client(), dataset.build())
    owner = str(uuid.uuid4())
    stack.sql("update public.tasks set owner_id = %s where task_id = 'task-ok'", (owner,))
    source = SupabaseSource(stack.url, stack.anon_key, access_token=stack.user_token(owner))
    rows, total = source.list_tasks(TaskFilters(), Sort(), 1, 100)
    assert [r["task_id"] for r in rows] == ["task-ok"] and total == 1
    assert source.get_task("task-fail") is None
    assert source.get_task_stats("task-ok")["total_steps"] == 4
    path = next(r["screenshot_path"] for r in source.get_screenshots("task-ok"))
    assert source.screenshot_bytes(path)  # storage RLS lets the owner read it
    assert stack.anon_key not in source.description


def test_programming_mistakes_raise_at_the_call() -> None:
    from stepsdk.viewer.app import create_app

    with pytest.raises(TypeError, match="DataSource"):
        create_app("backup")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        SupabaseSource("localhost:54321", "key")
    with pytest.raises(ValueError, match="key"):
        SupabaseSource("http://127.0.0.1:1", "")


def test_the_cli_does_not_import_nicegui_until_serving() -> None:
    code = "import sys, stepsdk.cli as c; c.build_parser(); print('nicegui' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_source_description_hides_credentials_in_the_url() -> None:
    source = SupabaseSource("https://admin:hunter2@db.example.com:8443/", "key")
    assert source.description == "supabase: https://db.example.com:8443"

"""``stepsdk view run.zip``: an export browsed as is (a temporary backup copy, never imported),
served by the real viewer process; and the CLI's checks of the sharing formats."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.share.view_export import export_as_backup
from stepsdk.viewer.data.backup_source import BackupSource
from tests.share import phone_run

REPO = Path(__file__).resolve().parents[2]


def _zip(tmp_path: Path) -> Path:
    out = tmp_path / "run.zip"
    assert main(["export", phone_run.TASK_ID, "--with-screenshots", "-o", str(out)]) == Exit.OK
    return out


def test_export_as_backup_is_temporary_and_complete(
    backup: Path, run: dict[str, Any], tmp_path: Path
) -> None:
    with export_as_backup(_zip(tmp_path)) as (folder, tasks):
        assert tasks == 1
        source = BackupSource(folder)
        task = source.get_task(phone_run.TASK_ID)
        assert task is not None and task["total_steps"] == len(run["steps"])
        path = run["steps"][0]["screenshot_path"]
        assert source.screenshot_bytes(path) == run["objects"][path]
    assert not folder.exists()


def test_view_serves_an_export_zip(backup: Path, run: dict[str, Any], tmp_path: Path) -> None:
    archive = _zip(tmp_path)

    def files() -> list[str]:  # the index (index.sqlite3*) is a derived cache: its WAL files come and go
        return sorted(p.name for p in backup.rglob("*") if not p.name.startswith("index.sqlite3"))

    before = files()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("stepsdk")), "view", str(archive), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/tasks/{phone_run.TASK_ID}/report", timeout=2)
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the viewer did not start"
            time.sleep(0.2)
        report = answer.json()["data"]  # the documented envelope (issue #14)
        assert report["task"]["task_id"] == phone_run.TASK_ID and len(report["steps"]) == len(run["steps"])
        shot = httpx.get(f"http://127.0.0.1:{port}/media/screenshots/{report['steps'][0]['screenshot_path']}")
        assert shot.status_code == 200 and shot.content[8:12] == b"WEBP"
    finally:
        proc.terminate()
        proc.wait(15)
    assert files() == before  # the real backup was not touched


def test_view_refuses_a_file_that_is_not_an_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["view", str(bad), "--port", "1"]) == 65
    assert "not a valid export" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing.zip")]) == 66


def test_sharing_format_argument_checks(
    backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--format", "html", "-o", str(tmp_path / "r.html")]) == Exit.USAGE  # 2 tasks match
    assert main(["export", phone_run.TASK_ID, "--format", "html"]) == Exit.USAGE  # no -o
    assert (
        main(
            [
                "export",
                phone_run.TASK_ID,
                "--format",
                "gif",
                "--with-screenshots",
                "-o",
                str(tmp_path / "a.gif"),
            ]
        )
        == Exit.USAGE
    )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["export", "--format", "trajectories", "-o", str(tmp_path / "full")]) == Exit.USAGE
    assert (
        main(
            [
                "export",
                phone_run.TASK_ID,
                "--format",
                "mp4",
                "-o",
                str(tmp_path),
            ]
        )
        == Exit.USAGE
    )
    assert main(["export", "nope", "--format", "html", "-o", str(tmp_path / "n.html")]) == Exit.NO_INPUT
    err = capsys.readouterr().err
    assert "takes one task; 2 matched" in err and "give it with -o" in err and "not empty" in err
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob("*.gif"))

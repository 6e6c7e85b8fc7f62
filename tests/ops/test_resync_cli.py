"""`stepsdk resync` and `stepsdk status`: idempotent upload of the backup, clear messages, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stepsdk import StepTracker
from stepsdk.config import Config
from stepsdk.ops.resync import Resync
from stepsdk.store.backup import BackupStore, JournalWriter


def _record_local(folder: Path, n: int, task_id: str = "offline") -> StepTracker:
    t = StepTracker(task_id=task_id, backup_dir=folder, supabase_url="", supabase_key="")
    for i in range(n):
        t.record_step("action", {"i": i})
    t.finish("success")
    t.close()
    return t


CLI = [sys.executable, "-c", "import sys; from stepsdk.cli import main; sys.exit(main(sys.argv[1:]))"]


def _cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SUPABASE_URL", "SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY")
    }
    return subprocess.run([*CLI, *args], env=base | env, capture_output=True, text=True, timeout=timeout)


def _run(
    args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess[str]:
    """The CLI in-process (same code path as the console script, without a 3 s interpreter start)."""
    from stepsdk.cli import main

    for k in ("SUPABASE_URL", "SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def _env(stack: Any) -> dict[str, str]:
    return {"SUPABASE_URL": stack.url, "SUPABASE_SECRET_KEY": stack.service_role_key}


def _count(stack: Any) -> int:
    return stack.sql("select count(*) as n from public.task_steps")[0]["n"]


def test_resync_skips_what_is_already_present(stack: Any, tmp_path: Path) -> None:
    _record_local(tmp_path, 100)
    rows = BackupStore(tmp_path).read()
    stack.client().table("tasks").upsert(rows.tasks["offline"]).execute()
    stack.client().table("task_steps").upsert(rows.steps["offline"][:40]).execute()
    config = Config.resolve(stack.url, stack.service_role_key, tmp_path)
    report = Resync(tmp_path, config, batch_size=30).run()
    assert report.ok and report.uploaded["task_steps"] == 60 and report.skipped["task_steps"] == 40
    assert _count(stack) == 100
    assert BackupStore(tmp_path).read().pending_steps() == []


def test_resync_rejected_rows_reported_rest_uploaded(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_local(tmp_path, 20)
    # A hand-edited backup: one row the schema refuses (step_number 0), one unknown step type.
    w = JournalWriter(tmp_path)
    w.append(
        [
            {
                "k": "step",
                "row": {
                    **BackupStore(tmp_path).read().steps["offline"][0],
                    "id": "11111111-1111-4111-8111-111111111111",
                    "step_number": 0,
                },
            },
            {
                "k": "step",
                "row": {
                    **BackupStore(tmp_path).read().steps["offline"][0],
                    "id": "22222222-2222-4222-8222-222222222222",
                    "step_number": 99,
                    "step_type": "dance",
                },
            },
        ]
    )
    w.close()
    res = _run(["resync", "--backup-dir", str(tmp_path)], _env(stack), monkeypatch, capsys)
    assert res.returncode == 1, res.stderr
    assert (
        "could not upload: 2" in res.stdout and "23514" in res.stdout and "Traceback" not in res.stderr
    )  # report: stdout
    assert _count(stack) == 20
    status = _run(["status", "--backup-dir", str(tmp_path), "--json"], _env(stack), monkeypatch, capsys)
    info = json.loads(status.stdout)
    assert info["backend"]["reachable"] is True and info["pending"]["task_steps"] == 2
    assert {r["id"] for r in info["rejected"]} == {
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
    }
    assert all(r["error"]["code"] == "23514" for r in info["rejected"])
    assert info["last_upload_at"] is not None
    assert stack.service_role_key not in status.stdout + status.stderr


def test_resync_quarantines_corrupt_records_and_goes_on(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    t = _record_local(tmp_path, 30)
    lines = t.journal_path.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"i":', b'"j":')  # CRC no longer matches
    t.journal_path.write_bytes(b"".join(lines))
    res = _run(["resync", "--backup-dir", str(tmp_path), "--json"], _env(stack), monkeypatch, capsys)
    out = json.loads(res.stdout)
    assert res.returncode == 0, res.stderr
    assert out["quarantined"] == 1 and out["uploaded"]["task_steps"] == 29 and out["ok"]
    assert _count(stack) == 29
    assert (tmp_path / "quarantine" / t.journal_path.name).exists()
    assert BackupStore(tmp_path).read().problems == []


def test_dry_run_counts_without_uploading(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_local(tmp_path, 12)
    res = _run(
        ["resync", "--backup-dir", str(tmp_path), "--dry-run", "--json"], _env(stack), monkeypatch, capsys
    )
    assert res.returncode == 0 and json.loads(res.stdout)["remaining"]["task_steps"] == 12
    assert _count(stack) == 0


def test_clear_errors_without_traceback(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_local(tmp_path, 3)

    def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return _run(args, env, monkeypatch, capsys)

    no_key = _cli(["resync", "--backup-dir", str(tmp_path)], {})
    assert no_key.returncode == 78 and "SUPABASE_SECRET_KEY" in no_key.stderr
    down = _cli(
        ["resync", "--backup-dir", str(tmp_path)],
        {"SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_SECRET_KEY": "k" * 20},
    )
    assert down.returncode == 69 and "not usable" in down.stderr and "k" * 20 not in down.stderr
    missing = _cli(["resync", "--backup-dir", str(tmp_path / "nope")], _env(stack))
    assert missing.returncode == 66 and "does not exist" in missing.stderr
    (tmp_path / "afile").write_text("x")
    not_dir = _cli(["status", "--backup-dir", str(tmp_path / "afile")], _env(stack))
    assert not_dir.returncode == 66 and "not a folder" in not_dir.stderr
    bad_key = _cli(
        ["status", "--backup-dir", str(tmp_path)],
        {"SUPABASE_URL": stack.url, "SUPABASE_SECRET_KEY": "wrong-key-123456"},
    )
    assert (
        bad_key.returncode == 78
        and "NOT reachable" in bad_key.stdout
        and "wrong-key" not in bad_key.stdout + bad_key.stderr
    )
    for res in (no_key, down, missing, not_dir, bad_key):
        assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_resync_killed_midway_loses_and_duplicates_nothing(stack: Any, tmp_path: Path) -> None:
    n = 1000
    _record_local(tmp_path, n)
    env = _env(stack)
    base = {k: v for k, v in os.environ.items() if k not in env}
    proc = subprocess.Popen(
        [*CLI, "resync", "--backup-dir", str(tmp_path), "--batch-size", "10"],
        env=base | env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while _count(stack) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    partial = _count(stack)
    assert 0 < partial < n, partial
    report = Resync(tmp_path, Config.resolve(stack.url, stack.service_role_key, tmp_path)).run()
    assert report.ok, report
    # exactly the rows that were missing get uploaded; confirmed-but-unacked ones are skipped
    assert report.uploaded["task_steps"] == n - partial
    assert _count(stack) == n
    assert stack.sql("select count(distinct step_number) as n from public.task_steps")[0]["n"] == n
    assert BackupStore(tmp_path).read().pending_steps() == []


def test_resync_sends_a_newer_step_version_even_when_the_id_is_stored(stack: Any, tmp_path: Path) -> None:
    """A crash-cut screenshot step (version 0, stored) gets its screenshot later (version 1)."""
    from tests.fixtures_images import png_bytes, small_screen

    with StepTracker(task_id="v2", backup_dir=tmp_path, supabase_url="", supabase_key="") as t:
        step = t.record_step("action", {"a": 1}, screenshot=png_bytes(small_screen()))
    final = BackupStore(tmp_path).read().steps["v2"][0]
    assert final["screenshot_path"]
    version0 = final | {"screenshot_path": None, "metadata": {"screenshot_pending": True}}
    config = Config.resolve(stack.url, stack.service_role_key, tmp_path)
    stack.client().table("tasks").upsert(BackupStore(tmp_path).read().tasks["v2"]).execute()
    stack.client().table("task_steps").upsert(version0).execute()  # what an earlier upload stored
    report = Resync(tmp_path, config).run()
    assert report.ok and report.uploaded["task_steps"] == 1 and report.skipped["task_steps"] == 0
    db = stack.sql("select screenshot_path, metadata from public.task_steps where id = %s", (step.id,))
    assert db == [{"screenshot_path": final["screenshot_path"], "metadata": {}}]
    assert BackupStore(tmp_path).read().pending_steps() == []


def test_resync_with_a_rejected_key_is_a_configuration_error(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: 78 when the configuration is missing or rejected (as `stepsdk status` exits), 69
    only when the backend cannot be reached; a wrong key used to be 69 'not usable'."""
    _record_local(tmp_path, 1)
    bad_key = _run(
        ["resync", "--backup-dir", str(tmp_path)],
        {"SUPABASE_URL": stack.url, "SUPABASE_SECRET_KEY": "wrong-key-123456"},
        monkeypatch,
        capsys,
    )
    assert bad_key.returncode == 78, bad_key.stderr
    assert "wrong-key" not in bad_key.stdout + bad_key.stderr and "Traceback" not in bad_key.stderr

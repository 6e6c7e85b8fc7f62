"""``stepsdk demo``: the demo task lands complete in the backup or in Supabase; the viewer serves it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepsdk.integrations.demo_agent import RESULT, STEP_COUNT, TASK_TITLE
from tests.integrations.conftest import backup_steps, backup_task

pytestmark = pytest.mark.usefixtures("local_env")

STEPSDK = [str(Path(sys.executable).with_name("stepsdk"))]  # the installed console script
_TASK_LINE = re.compile(r"Recorded demo task (\S+) \((\d+) steps\) into (.+)")


def _env(**extra: str) -> dict[str, str]:
    # PYTEST_* too: NiceGUI switches to its screen-test mode when it sees PYTEST_CURRENT_TEST.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "STEPSDK_", "PYTEST_"))}
    return {**env, **extra}


def _check_story(task: dict[str, Any], steps: list[dict[str, Any]]) -> None:
    assert (task["title"], task["status"], task["result"]) == (TASK_TITLE, "success", RESULT)
    assert [s["step_number"] for s in steps] == list(range(1, STEP_COUNT + 1))
    assert 6 <= STEP_COUNT <= 10
    types = [s["step_type"] for s in steps]
    assert types[0] == "thinking" and "validation" in types and types.count("action") >= 6
    failed = [s for s in steps if not s["success"]]
    assert len(failed) == 1 and failed[0]["error_type"] == "ActionFailed"
    retry = steps[failed[0]["step_number"]]  # the step right after the failure retries it
    assert retry["success"] and retry["step_data"]["retry_of_step"] == failed[0]["step_number"]
    assert retry["step_data"]["action"] == failed[0]["step_data"]["action"]
    for step in steps:
        assert step["thinking"] and step["screenshot_path"] and step["duration_ms"] > 0
    taps = [s for s in steps if (s["step_data"].get("action") or {}).get("action") == "Tap"]
    assert taps and all({"x", "y"} <= set(s["step_data"]["point"]) for s in taps)


def test_demo_records_into_the_backup(tmp_path: Path) -> None:
    done = subprocess.run(
        [*STEPSDK, "demo", "--no-view", "--pace", "0.01", "--backup-dir", str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    match = _TASK_LINE.search(done.stdout)
    assert match, done.stdout
    task_id, count, where = match.groups()
    assert int(count) == STEP_COUNT and where == f"the local backup in {tmp_path.resolve()}"
    steps = backup_steps(tmp_path, task_id)
    _check_story(backup_task(tmp_path, task_id), steps)
    for step in steps:  # every screenshot object is really there, as WebP
        stored = (tmp_path / "screenshots" / step["screenshot_path"]).read_bytes()
        assert stored[:4] == b"RIFF" and stored[8:12] == b"WEBP"


def test_demo_records_into_supabase_when_configured(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stepsdk.cli import main

    monkeypatch.setenv("SUPABASE_URL", stack.url)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", stack.service_role_key)
    assert main(["demo", "--no-view", "--pace", "0.01", "--backup-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    match = _TASK_LINE.search(out)
    assert match and match.group(3) == f"Supabase at {stack.url.rstrip('/')}", out
    assert stack.service_role_key not in out
    task_id = match.group(1)
    (task,) = stack.sql("select * from public.tasks where task_id = %s", (task_id,))
    steps = stack.sql("select * from public.task_steps where task_id = %s order by step_number", (task_id,))
    _check_story(task, steps)
    shots = stack.sql("select screenshot_path from public.step_screenshots where task_id = %s", (task_id,))
    assert len(shots) == STEP_COUNT
    objects = stack.sql("select name from storage.objects where bucket_id = 'step-screenshots'")
    assert {s["screenshot_path"] for s in shots} <= {o["name"] for o in objects}


def test_bad_options_get_a_clear_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stepsdk.cli import main

    for argv, message in (
        (["demo", "--port", "70000"], "port must be 1-65535"),
        (["demo", "--pace", "fast"], "not a number: 'fast'"),
        (["demo", "--pace", "11"], "pace must be between 0 and 10"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2 and message in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["demo", "--backup-dir", str(tmp_path), "--port", str(busy.getsockname()[1])]) == 2
    assert "is already in use; choose another --port" in capsys.readouterr().err
    assert not (tmp_path / "journal").exists()  # checked before recording anything
    monkeypatch.setenv("SUPABASE_URL", "ftp://nope")
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "k" * 20)
    assert main(["demo", "--no-view", "--backup-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "supabase_url must be an http(s) URL" in err and "Traceback" not in err and "k" * 20 not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_starts_the_viewer_on_the_task(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*STEPSDK, "demo", "--pace", "0", "--backup-dir", str(tmp_path), "--port", str(port)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        match = _TASK_LINE.search(lines[0])
        assert match, lines
        task_id = match.group(1)
        assert f"http://127.0.0.1:{port}/tasks/{task_id}" in lines[1]
        page = _get_when_up(f"http://127.0.0.1:{port}/tasks/{task_id}", proc)
        assert page.status_code == 200 and TASK_TITLE in page.text
        api = httpx.get(f"http://127.0.0.1:{port}/api/tasks/{task_id}", timeout=10)
        assert api.status_code == 200 and task_id in api.text and TASK_TITLE in api.text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own child's process group only
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _get_when_up(url: str, proc: subprocess.Popen[str], deadline: float = 60.0) -> httpx.Response:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the viewer exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            return httpx.get(url, timeout=10)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"the viewer did not answer on {url} within {deadline}s")

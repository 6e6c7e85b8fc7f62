"""OTLP export proven against a receiver nobody here wrote: a real Arize Phoenix server (from
``.venv-phoenix``, created by ``./dev.sh setup``) on 127.0.0.1, read back through its own REST
API: one trace per task, the task as root, one child span per step, GenAI attributes, the
screenshot as a Storage path (never inline bytes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.share.otlp import _TaskIds
from tests.share import phone_run

pytestmark = pytest.mark.phoenix
REPO = Path(__file__).resolve().parents[2]
PHOENIX = REPO / ".venv-phoenix" / "bin" / "phoenix"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix() -> Iterator[str]:
    assert PHOENIX.exists(), f"{PHOENIX} is missing: run ./dev.sh setup (it installs arize-phoenix there)"
    work = tempfile.mkdtemp(prefix="phoenix-")
    port, grpc = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env.update({"PHOENIX_WORKING_DIR": work, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
                "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_TELEMETRY_ENABLED": "false"})
    log = open(Path(work) / "phoenix.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(PHOENIX), "serve"], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (Path(work) / "phoenix.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/v1/projects", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "phoenix did not start in 90 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _spans(url: str, project: str, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20  # Phoenix ingests in the background
    while True:
        answer = httpx.get(f"{url}/v1/projects/{project}/spans", params={"limit": 1000}, timeout=5)
        spans = answer.json().get("data", []) if answer.status_code == 200 else []
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def test_phoenix_receives_the_run_as_a_trace(phoenix: str, backup: Path, run: dict[str, Any],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", phone_run.TASK_ID, "--format", "otlp", "--endpoint", phoenix, "--json"]) == Exit.OK
    summary = json.loads(capsys.readouterr().out)
    steps = run["steps"]
    assert summary["traces"] == 1 and summary["spans"] == len(steps) + 1
    spans = _spans(phoenix, "stepsdk", len(steps) + 1)
    assert len(spans) == len(steps) + 1, [s["name"] for s in spans]
    roots = [s for s in spans if s["parent_id"] is None]
    assert len(roots) == 1
    root = roots[0]
    assert root["name"] == "invoke_agent phone-agent" and root["span_kind"] == "AGENT"
    assert root["context"]["trace_id"] == f"{_TaskIds(phone_run.TASK_ID).generate_trace_id():032x}"
    attrs = root["attributes"]
    assert attrs["gen_ai.operation.name"] == "invoke_agent" and attrs["gen_ai.agent.name"] == "phone-agent"
    assert attrs["gen_ai.conversation.id"] == phone_run.TASK_ID and attrs["stepsdk.task.steps"] == len(steps)
    assert attrs["gen_ai.request.model"] == "autoglm-phone-9b"
    children = sorted((s for s in spans if s is not root), key=lambda s: s["attributes"]["stepsdk.step.number"])
    assert all(s["parent_id"] == root["context"]["span_id"] for s in children)
    assert all(s["context"]["trace_id"] == root["context"]["trace_id"] for s in children)
    for span, step in zip(children, steps, strict=True):
        a = span["attributes"]
        action = step["step_data"]["action"].get("action") or step["step_data"]["action"]["type"]
        assert span["name"] == f"execute_tool {action}" and span["span_kind"] == "TOOL"
        assert a["gen_ai.operation.name"] == "execute_tool" and a["gen_ai.tool.name"] == action
        assert a["stepsdk.step.id"] == step["id"]
        assert a["gen_ai.usage.input_tokens"] == step["usage"]["prompt_tokens"]
        assert a["stepsdk.screenshot.storage_path"] == step["screenshot_path"]
        assert "base64" not in json.dumps(a) and len(json.dumps(a)) < 8000  # a link, not the image
        assert a["input.value"] == step["thinking"]
        # the recorded timing, not the export's
        assert span["start_time"].startswith(step["started_at"][:19])
        if step["success"]:
            assert span["status_code"] == "OK"
        else:
            assert span["status_code"] == "ERROR" and span["status_message"] == step["error_message"]
            assert a["error.type"] == step["error_type"] and a["stepsdk.error.category"] == "device"
    tap = children[1]["attributes"]
    assert json.loads(tap["gen_ai.tool.call.arguments"]) == step_action(steps[1])


def step_action(step: dict[str, Any]) -> dict[str, Any]:
    return step["step_data"]["action"]


def test_an_unreachable_receiver_is_a_clear_error(backup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()  # nothing listens there
    status = main(["export", phone_run.TASK_ID, "--format", "otlp", "--endpoint", f"http://127.0.0.1:{port}",
                   "--otlp-timeout", "1"])
    assert status == Exit.UNAVAILABLE
    assert "did not accept the trace" in capsys.readouterr().err
    assert main(["export", phone_run.TASK_ID, "--format", "otlp"]) == Exit.USAGE
    assert main(["export", phone_run.TASK_ID, "--format", "otlp", "--endpoint", "ftp://x"]) == Exit.USAGE

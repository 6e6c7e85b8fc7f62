"""OTLP export proven against a receiver nobody here wrote: a real Arize Phoenix server (from
``.venv-phoenix``, created by ``./dev.sh setup``) on 127.0.0.1, read back through its own REST
API: one trace per task, the task as root, one child span per step, GenAI attributes, the
screenshot as a Storage path (never inline bytes)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.share.otlp import _TaskIds
from tests.share import phone_run
from tests.share.phoenix_server import free_port
from tests.timing import WAIT

pytestmark = pytest.mark.phoenix


def _spans(url: str, project: str, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT  # Phoenix ingests in the background
    while True:
        # a generous timeout: Phoenix (a server of its own, with its database) answers slowly on a loaded machine
        answer = httpx.get(f"{url}/v1/projects/{project}/spans", params={"limit": 1000}, timeout=WAIT)
        spans = answer.json().get("data", []) if answer.status_code == 200 else []
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def test_phoenix_receives_the_run_as_a_trace(
    phoenix: str, backup: Path, run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    export = ["export", phone_run.TASK_ID, "--format", "otlp", "--endpoint", phoenix, "--json"]
    assert main([*export, "--otlp-timeout", str(WAIT)]) == Exit.OK  # Phoenix is slow on a loaded machine
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
    children = sorted(
        (s for s in spans if s is not root), key=lambda s: s["attributes"]["stepsdk.step.number"]
    )
    assert all(s["parent_id"] == root["context"]["span_id"] for s in children)
    assert all(s["context"]["trace_id"] == root["context"]["trace_id"] for s in children)
    for span, step in zip(children, steps, strict=True):
        a = span["attributes"]
        action = step["step_data"]["action"].get("action") or step["step_data"]["action"]["type"]
        assert span["name"] == f"execute_tool {action}" and span["span_kind"] == "TOOL"
        assert a["gen_ai.operation.name"] == "execute_tool" and a["gen_ai.tool.name"] == action
        assert a["stepsdk.step.id"] == step["id"]
        assert a["gen_ai.usage.input_tokens"] == step["usage"]["prompt_tokens"]
        assert a["stepsdk.screenshot.path"] == step["screenshot_path"]
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
    port = free_port()  # nothing listens there
    status = main(
        [
            "export",
            phone_run.TASK_ID,
            "--format",
            "otlp",
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--otlp-timeout",
            "1",
        ]
    )
    assert status == Exit.UNAVAILABLE
    assert "did not accept the trace" in capsys.readouterr().err
    assert main(["export", phone_run.TASK_ID, "--format", "otlp"]) == Exit.USAGE
    assert main(["export", phone_run.TASK_ID, "--format", "otlp", "--endpoint", "ftp://x"]) == Exit.USAGE

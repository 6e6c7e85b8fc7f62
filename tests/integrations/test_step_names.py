"""Every step has a name: HTTP calls, @tracked_step functions and blocks, PhoneAgent actions, and
the label the viewer derives for steps recorded without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from stepsdk import StepTracker, StepType
from stepsdk.integrations.functions import tracked_step
from stepsdk.integrations.httpx_hooks import tracked_client
from stepsdk.integrations.phone_agent import track_phone_agent
from stepsdk.recording.step_names import http_step_name, phone_action_name, step_label
from tests.integrations.conftest import ApiServer, backup_steps, make_agent
from tests.integrations.fake_model import FakeModelServer
from tests.timing import WAIT

pytestmark = pytest.mark.usefixtures("local_env")
LAUNCH = '<think>Open Settings.</think>\n<answer>do(action="Launch", app="Settings")'
TAP = '<think>Tap the Wi-Fi row.</think>\n<answer>do(action="Tap", element=[500,300])'
FINISH = '<think>Done.</think>\n<answer>finish(message="Wi-Fi is on")'


@pytest.fixture
def tracker(tmp_path: Path) -> Any:
    t = StepTracker(title="names", agent="test", backup_dir=tmp_path)
    yield t
    t.close()


def _names(tracker: Any, tmp_path: Path) -> list[str | None]:
    tracker.flush(WAIT)
    return [s.get("name") for s in backup_steps(tmp_path, tracker.task_id)]


def test_http_steps_are_named_method_path_status(tracker: Any, tmp_path: Path, api_server: ApiServer) -> None:
    with tracked_client(tracker) as client:
        client.get(f"{api_server.url}/v1/forecast", params={"city": "Paris", "api_key": "secret-1"})
        client.get(f"{api_server.url}/missing")
        client.post(f"{api_server.url}/echo", json={"a": 1})
        with pytest.raises(httpx.ConnectError):
            client.get("http://127.0.0.1:9/down")
    names = _names(tracker, tmp_path)
    assert names == [
        "GET /v1/forecast → 200",
        "GET /missing → 404",
        "POST /echo → 201",
        "GET /down → ConnectError",
    ]
    assert not any("secret-1" in n for n in names)  # the query string is never part of the name


def test_tracked_step_names_function_and_explicit(tracker: Any, tmp_path: Path) -> None:
    @tracked_step(tracker)
    def open_settings() -> bool:
        return True

    @tracked_step(tracker, StepType.VALIDATION, name="check wifi")
    def check() -> bool:
        return True

    open_settings()
    check()
    with tracked_step(tracker, name="login block"):
        pass
    assert _names(tracker, tmp_path) == [
        "test_tracked_step_names_function_and_explicit.<locals>.open_settings",
        "check wifi",
        "login block",
    ]


def test_phone_agent_steps_are_named_by_their_action(
    fake_device: Any, model: FakeModelServer, tmp_path: Path
) -> None:
    agent = make_agent(model)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(LAUNCH, TAP, FINISH)
    assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"
    names = [s.get("name") for s in backup_steps(tmp_path, tracking.last_task_id)]
    assert names == ["Launch Settings", "Tap", "Finish"]
    tracking.detach()


@pytest.mark.parametrize(
    ("step", "label"),
    [
        ({"name": "  my\nname  "}, "my name"),
        (
            {
                "step_data": {
                    "kind": "http",
                    "method": "get",
                    "url": "https://api.x/v1/forecast?key=[REDACTED]",
                    "response": {"status_code": 404},
                }
            },
            "GET /v1/forecast → 404",
        ),
        (
            {
                "step_data": {"kind": "http", "method": "GET", "url": "https://api.x/"},
                "error_type": "ReadTimeout",
            },
            "GET / → ReadTimeout",
        ),
        ({"step_data": {"kind": "function", "function": "search"}}, "search"),
        ({"step_data": {"action": {"type": "do", "action": "Launch", "app": "微信"}}}, "Launch 微信"),
        ({"step_data": {"action": {"type": "finish", "message": "done"}}}, "Finish"),
        ({"step_data": {"action": "swipe"}}, "swipe"),
        ({"step_data": {"kind": "confirmation"}}, "Confirmation"),
        ({"step_data": {"plan": ["x"]}}, ""),
        ({"step_data": None, "name": None}, ""),
    ],
)
def test_viewer_fallback_label(step: dict[str, Any], label: str) -> None:
    assert step_label(step) == label


def test_names_are_bounded() -> None:
    assert len(http_step_name("GET", "https://x/" + "a" * 500, 200)) <= 200
    assert len(phone_action_name({"action": "Launch", "app": "b" * 500})) == 200
    assert phone_action_name(None) == "" and phone_action_name({"type": "do"}) == ""

"""The real Open-AutoGLM PhoneAgent loop, offline (fake adb + fake model server), recorded by stepsdk.

What the agent did is checked against what was stored, step by step: in the local Supabase stack
(rows read back with SQL, screenshot objects downloaded from Storage) or in the local backup.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from stepsdk.integrations.phone_agent import PhoneAgentTracking, strip_model_tags, track_phone_agent
from tests.integrations.conftest import (
    SCREEN_SIZE,
    FakeDevice,
    backup_steps,
    backup_task,
    make_agent,
)
from tests.integrations.fake_model import FakeModelServer, ModelFailure
from tests.timing import LOAD_SLACK

pytestmark = pytest.mark.usefixtures("local_env")

LAUNCH = '<think>The home screen is open. I should open Settings.</think>\n<answer>do(action="Launch", app="Settings")'
TAP = '<think>Tap the Wi-Fi row.</think>\n<answer>do(action="Tap", element=[500,300])'
TAP_CONFIRM = (
    '<think>This needs approval.</think>\n<answer>do(action="Tap", element=[200,800], message="Pay 5 EUR")'
)
TAKEOVER = '<think>A login wall; a human must log in.</think>\n<answer>do(action="Take_over", message="Please log in")'
FINISH = '<think>Wi-Fi is on now.</think>\n<answer>finish(message="Wi-Fi is on")'
MALFORMED = "<think>Hmm.</think>\n<answer>I would tap somewhere around the middle"


def _stack_tracking(agent: Any, stack: Any, backup: Path) -> PhoneAgentTracking:
    return track_phone_agent(
        agent,
        supabase_url=stack.url,
        supabase_key=stack.service_role_key,
        backup_dir=backup,
        agent_name="test-phone",
    )


def _task(stack: Any, task_id: str) -> dict[str, Any]:
    (row,) = stack.sql("select * from public.tasks where task_id = %s", (task_id,))
    return row


def _steps(stack: Any, task_id: str) -> list[dict[str, Any]]:
    return stack.sql("select * from public.task_steps where task_id = %s order by step_number", (task_id,))


def _mean_colour(image_bytes: bytes) -> list[float]:
    return ImageStat.Stat(Image.open(io.BytesIO(image_bytes)).convert("RGB")).mean


def test_run_is_recorded_step_by_step_in_supabase(
    fake_device: FakeDevice, model: FakeModelServer, stack: Any, tmp_path: Path
) -> None:
    approvals: list[str] = []
    takeovers: list[str] = []
    model.script(LAUNCH, TAP, TAP_CONFIRM, TAKEOVER, FINISH)
    agent = make_agent(
        model, confirmation_callback=lambda m: approvals.append(m) or True, takeover_callback=takeovers.append
    )
    tracking = _stack_tracking(agent, stack, tmp_path)

    assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"
    assert approvals == ["Pay 5 EUR"] and takeovers == ["Please log in"]

    task = _task(stack, tracking.last_task_id)
    assert (task["title"], task["agent"], task["status"], task["result"]) == (
        "Turn on Wi-Fi",
        "test-phone",
        "success",
        "Wi-Fi is on",
    )
    assert task["finished_at"] is not None and task["metadata"]["max_steps"] == 10
    steps = _steps(stack, tracking.last_task_id)
    kinds = [
        (s["step_type"], (s["step_data"].get("action") or {}).get("action") or s["step_data"].get("kind"))
        for s in steps
    ]
    assert kinds == [
        ("action", "Launch"),
        ("action", "Tap"),
        ("validation", "confirmation"),
        ("action", "Tap"),
        ("validation", "takeover"),
        ("action", "Take_over"),
        ("action", None),
    ]
    actions = [s for s in steps if s["step_type"] == "action"]
    replies = [LAUNCH, TAP, TAP_CONFIRM, TAKEOVER, FINISH]
    for number, (step, reply) in enumerate(zip(actions, replies, strict=True), start=1):
        assert step["success"] is True and step["error_type"] is None
        assert step["step_data"]["agent_step"] == number
        assert step["thinking"] == strip_model_tags(reply.split("do(")[0].split("finish(")[0])
        assert "<think>" not in step["thinking"] and "<answer>" not in step["thinking"]
        timing = step["step_data"]["model_timing"]
        assert 0 < timing["time_to_first_token"] <= timing["total_time"]
        assert step["duration_ms"] > 0 and step["action_result"]["success"] is True
    assert [s["step_data"]["current_app"] for s in actions] == ["System Home"] + [
        "AndroidSystemSettings"
    ] * 4  # the agent's own name
    tap = actions[1]["step_data"]
    assert tap["action"] == {"type": "do", "action": "Tap", "element": [500, 300]}
    assert tap["point"] == {"x": 135, "y": 180} and tap["screen"] == {"width": 270, "height": 600}
    assert actions[-1]["step_data"]["action"] == {"type": "finish", "message": "Wi-Fi is on"}
    assert actions[-1]["action_result"] == {
        "success": True,
        "should_finish": True,
        "message": "Wi-Fi is on",
        "requires_confirmation": False,
    }
    confirmation, takeover = (s for s in steps if s["step_type"] == "validation")
    assert (
        confirmation["step_data"]["approved"] is True and confirmation["step_data"]["message"] == "Pay 5 EUR"
    )
    assert confirmation["step_data"]["agent_step"] == 3
    assert takeover["step_data"]["message"] == "Please log in"

    # Every action step has the screenshot the model saw, stored once, as WebP, in the bucket.
    shots = stack.sql("select * from public.step_screenshots where task_id = %s", (tracking.last_task_id,))
    by_step = {str(s["step_id"]): s for s in shots}
    assert len(shots) == len(actions)
    bucket = stack.client().storage.from_("step-screenshots")
    for index, step in enumerate(actions):
        shot = by_step[str(step["id"])]
        assert shot["screenshot_path"] == step["screenshot_path"] and shot["screenshot_path"].endswith(
            ".webp"
        )
        stored = bucket.download(shot["screenshot_path"])
        assert stored[:4] == b"RIFF" and stored[8:12] == b"WEBP" and len(stored) == shot["file_size"]
        assert Image.open(io.BytesIO(stored)).size == SCREEN_SIZE
        # The k-th model call saw the k-th fake screen (each one has its own colours).
        expected = _mean_colour(fake_device.screen_png(index))
        assert _mean_colour(stored) == pytest.approx(expected, abs=3)
    tracking.detach()


def test_malformed_reply_is_a_failed_step_and_model_error_fails_the_task(
    fake_device: FakeDevice, model: FakeModelServer, stack: Any, tmp_path: Path
) -> None:
    agent = make_agent(model)
    tracking = _stack_tracking(agent, stack, tmp_path)

    model.script(LAUNCH, MALFORMED)
    message = agent.run("Open settings")
    assert message == "I would tap somewhere around the middle"  # the agent calls it a finish
    parse_task = tracking.last_task_id
    task = _task(stack, parse_task)
    assert task["status"] == "failed" and "not a valid action" in task["error_message"]
    launch, bad = _steps(stack, parse_task)
    assert launch["success"] is True
    assert bad["step_type"] == "error" and bad["success"] is False
    assert bad["error_type"] == "ActionParseError"
    assert bad["step_data"]["raw_action"] == "I would tap somewhere around the middle"
    assert bad["thinking"] == "Hmm." and bad["screenshot_path"]

    fake_device.reset()
    model.script(LAUNCH, ModelFailure(500, "GPU on fire"))
    message = agent.run("Open settings again")
    assert message.startswith("Model error:") and "GPU on fire" in message
    error_task = tracking.last_task_id
    assert error_task != parse_task and tracking.task_ids == [parse_task, error_task]
    task = _task(stack, error_task)
    assert task["status"] == "failed" and task["error_message"] == message
    launch, failed = _steps(stack, error_task)
    assert failed["step_type"] == "error" and failed["success"] is False
    assert failed["error_type"] == "InternalServerError" and "GPU on fire" in failed["error_message"]
    assert "request" in failed["stack_trace"] and failed["screenshot_path"]  # what the model was sent
    tracking.detach()


def test_missing_adb_fails_the_task_with_its_stack_trace(
    fake_device: FakeDevice,
    model: FakeModelServer,
    stack: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no adb anywhere
    agent = make_agent(model)
    tracking = _stack_tracking(agent, stack, tmp_path / "backup")
    with pytest.raises(FileNotFoundError):
        agent.run("Turn on Wi-Fi")
    task = _task(stack, tracking.last_task_id)
    assert task["status"] == "failed" and task["error_message"].startswith("FileNotFoundError")
    (step,) = _steps(stack, tracking.last_task_id)
    assert step["step_type"] == "error" and step["error_type"] == "FileNotFoundError"
    assert "get_current_app" in step["stack_trace"] and step["success"] is False
    assert model.requests == []  # the agent never reached the model
    tracking.detach()


def _normalised_calls(device: FakeDevice) -> list[list[str]]:
    # `adb pull` writes to a fresh random temp file each time; everything else must match exactly.
    return [c[:2] + ["<tmp>"] if c[:1] == ["pull"] else c for c in device.calls()]


def test_tracking_changes_nothing_the_agent_does(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    script = (LAUNCH, TAP, TAP_CONFIRM, MALFORMED)
    runs = []
    for tracked in (False, True):
        fake_device.reset()
        model.script(*script)
        agent = make_agent(model)
        tracking = track_phone_agent(agent, backup_dir=tmp_path) if tracked else None
        result = agent.run("Turn on Wi-Fi")
        runs.append(
            (result, _normalised_calls(fake_device), list(model.requests), agent.context, agent.step_count)
        )
        if tracking:
            tracking.detach()
    assert runs[0] == runs[1]
    assert len(runs[1][2]) == 4  # same model calls, with the same messages and images


def test_max_steps_is_interrupted_and_manual_steps_are_one_task(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    agent = make_agent(model, max_steps=2)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(LAUNCH, TAP, TAP)
    assert agent.run("Scroll forever") == "Max steps reached"
    task = backup_task(tmp_path, tracking.last_task_id)
    assert task["status"] == "interrupted" and task["result"] == "Max steps reached"
    assert "max_steps=2" in task["error_message"]
    assert len(backup_steps(tmp_path, tracking.last_task_id)) == 2

    fake_device.reset()
    agent.reset()
    model.script(LAUNCH, FINISH)
    first = agent.step("Turn on Wi-Fi")
    second = agent.step()
    assert not first.finished and second.finished
    task = backup_task(tmp_path, tracking.last_task_id)
    assert (
        task["status"] == "success" and task["title"] == "Turn on Wi-Fi" and task["result"] == "Wi-Fi is on"
    )
    assert [s["step_data"]["agent_step"] for s in backup_steps(tmp_path, tracking.last_task_id)] == [1, 2]

    agent.reset()
    model.script(LAUNCH)
    agent.step("Abandoned task")
    agent.reset()  # the manual task ends honestly
    assert backup_task(tmp_path, tracking.last_task_id)["status"] == "interrupted"
    tracking.detach()


def test_long_task_text_and_extra_metadata(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    agent = make_agent(model)
    tracking = track_phone_agent(agent, backup_dir=tmp_path, metadata={"device": "pixel-test"})
    model.script(FINISH)
    long_task = "Turn on Wi-Fi. " * 400  # 6,000 chars: over the 2,000-char title limit
    assert agent.run(long_task) == "Wi-Fi is on"
    task = backup_task(tmp_path, tracking.last_task_id)
    assert (
        task["status"] == "success" and len(task["title"]) <= 2000 and task["title"].endswith("…[truncated]")
    )
    assert task["description"] == long_task
    assert task["metadata"]["device"] == "pixel-test" and task["metadata"]["integration"] == "phone_agent"
    tracking.detach()


def test_detach_restores_the_instance_and_never_touches_the_class(
    model: FakeModelServer, tmp_path: Path
) -> None:
    from phone_agent import PhoneAgent

    agent, other = make_agent(model), make_agent(model)
    class_run = PhoneAgent.run
    with track_phone_agent(agent, backup_dir=tmp_path) as tracking:
        assert "run" in vars(agent) and "request" in vars(agent.model_client)
        assert PhoneAgent.run is class_run and "run" not in vars(other)
        assert "request" not in vars(other.model_client) and "execute" not in vars(other.action_handler)
        with pytest.raises(ValueError, match="already tracked"):
            track_phone_agent(agent, backup_dir=tmp_path)
    assert not tracking.attached
    for obj, name in (
        (agent, "run"),
        (agent, "step"),
        (agent, "_execute_step"),
        (agent.model_client, "request"),
        (agent.action_handler, "execute"),
    ):
        assert name not in vars(obj), name
    assert agent.action_handler.confirmation_callback.__name__ == "<lambda>"  # the caller's own again
    track_phone_agent(agent, backup_dir=tmp_path).detach()  # attachable again after detach


def test_bad_arguments_raise_at_the_call(model: FakeModelServer, tmp_path: Path) -> None:
    agent = make_agent(model)
    with pytest.raises(TypeError, match="expected a PhoneAgent"):
        track_phone_agent(object())
    with pytest.raises(TypeError, match="invalid StepTracker argument"):
        track_phone_agent(agent, backup_dir=tmp_path, no_such_option=1)
    with pytest.raises(ValueError, match="set per run"):
        track_phone_agent(agent, title="fixed")
    with pytest.raises(ValueError, match="either tracker_factory"):
        track_phone_agent(agent, lambda **kw: None, backup_dir=tmp_path)
    with pytest.raises(TypeError, match="agent_name"):
        track_phone_agent(agent, agent_name=42)
    with pytest.raises(ValueError, match="flush_timeout"):
        track_phone_agent(agent, flush_timeout=-1)
    with pytest.raises(TypeError, match="metadata must be a mapping"):
        track_phone_agent(agent, metadata=["not", "a", "dict"])
    assert "run" not in vars(agent)  # nothing attached by a refused call


def test_a_broken_tracker_never_reaches_the_agent(
    fake_device: FakeDevice, model: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        task_id = "broken"

        def record_step(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("disk on fire")

        def finish(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("still on fire")

        def close(self, timeout: float = 5.0) -> None:
            raise OSError("gone")

    agent = make_agent(model)
    tracking = track_phone_agent(agent, lambda **kwargs: Broken())
    model.script(LAUNCH, TAP_CONFIRM, FINISH)
    with caplog.at_level(logging.WARNING, logger="stepsdk.integrations"):
        assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"
    assert "disk on fire" in caplog.text and "gone" in caplog.text
    tracking.detach()

    def failing_factory(**kwargs: Any) -> Any:
        raise RuntimeError("no tracker today")

    fake_device.reset()
    model.script(LAUNCH, FINISH)
    with track_phone_agent(agent, failing_factory):
        assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"


def test_ios_phone_agent_is_recorded_the_same_way(
    fake_wda: Any, model: FakeModelServer, tmp_path: Path
) -> None:
    import json

    from phone_agent.agent_ios import IOSAgentConfig, IOSPhoneAgent
    from phone_agent.model import ModelConfig

    agent = IOSPhoneAgent(
        model_config=ModelConfig(base_url=model.base_url, api_key="sk-test", lang="en"),
        agent_config=IOSAgentConfig(wda_url=fake_wda.url, lang="en", verbose=False),
        confirmation_callback=lambda m: True,
        takeover_callback=lambda m: None,
    )
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script('<think>Let the page settle.</think><answer>do(action="Wait", duration="0 seconds")', FINISH)
    assert agent.run("Check the Settings app") == "Wi-Fi is on"
    task = backup_task(tmp_path, tracking.last_task_id)
    assert task["status"] == "success" and task["agent"] == "open-autoglm/IOSPhoneAgent"
    steps = backup_steps(tmp_path, tracking.last_task_id)
    assert [s["step_data"]["action"].get("action", "finish") for s in steps] == ["Wait", "finish"]
    assert [s["thinking"] for s in steps] == ["Let the page settle.", "Wi-Fi is on now."]
    for step, request in zip(steps, model.requests, strict=True):
        text = request["messages"][-1]["content"][-1]["text"]  # what the model was told
        told = json.loads(text[text.rindex('{"current_app"') :])["current_app"]
        assert step["step_data"]["current_app"] == told and step["screenshot_path"]
    assert ("GET", "/screenshot") in fake_wda.calls
    tracking.detach()


def test_ctrl_c_in_a_confirmation_interrupts_the_task(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    def ctrl_c(message: str) -> bool:
        raise KeyboardInterrupt

    agent = make_agent(model, confirmation_callback=ctrl_c)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(TAP_CONFIRM)
    with pytest.raises(KeyboardInterrupt):
        agent.run("Pay the bill")
    task = backup_task(tmp_path, tracking.last_task_id)
    assert task["status"] == "interrupted" and task["error_message"].startswith("KeyboardInterrupt")
    validation, error = backup_steps(tmp_path, tracking.last_task_id)
    assert validation["step_type"] == "validation" and validation["error_type"] == "KeyboardInterrupt"
    assert validation["step_data"]["message"] == "Pay 5 EUR" and validation["success"] is False
    assert error["step_type"] == "error" and error["error_type"] == "KeyboardInterrupt"
    assert error["step_data"]["action"]["action"] == "Tap" and error["thinking"] == "This needs approval."
    tracking.detach()


def test_supabase_outage_never_stalls_the_agent_and_loses_nothing(
    fake_device: FakeDevice,
    model: FakeModelServer,
    stack: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from stepsdk.cli import main

    agent = make_agent(model)
    tracking = track_phone_agent(
        agent,
        supabase_url=stack.url,
        supabase_key=stack.service_role_key,
        backup_dir=tmp_path,
        flush_timeout=0.2,
    )
    model.script(LAUNCH, TAP, FINISH)
    assert agent.run("Warm up: imports, first connections") == "Wi-Fi is on"
    fake_device.reset()
    model.script(LAUNCH, TAP, FINISH)
    started = time.perf_counter()
    assert make_agent(model).run("The same run, untracked") == "Wi-Fi is on"
    untracked = time.perf_counter() - started
    fake_device.reset()
    model.script(LAUNCH, TAP, FINISH)
    with stack.faults.outage():
        started = time.perf_counter()
        assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"
        down = time.perf_counter() - started
    print(f"3-step run: untracked {untracked:.2f} s, tracked with Supabase down {down:.2f} s")
    # finish() and close() at the end of the run are bounded by flush_timeout (0.2 s) each; a stall
    # on the unreachable backend would take its retries (8 s) or request timeout (10 s)
    assert down < untracked + 2 * 0.2 + LOAD_SLACK
    task_id = tracking.last_task_id
    assert (
        stack.sql("select count(*) as n from public.task_steps where task_id = %s", (task_id,))[0]["n"] == 0
    )
    assert backup_task(tmp_path, task_id)["status"] == "success"  # safe in the backup meanwhile
    assert len(backup_steps(tmp_path, task_id)) == 3

    monkeypatch.setenv("SUPABASE_URL", stack.url)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", stack.service_role_key)
    assert main(["resync", "--backup-dir", str(tmp_path)]) == 0
    assert _task(stack, task_id)["status"] == "success"
    steps = _steps(stack, task_id)
    assert [s["step_number"] for s in steps] == [1, 2, 3] and all(s["screenshot_path"] for s in steps)
    shots = stack.sql("select count(*) as n from public.step_screenshots where task_id = %s", (task_id,))
    assert shots[0]["n"] == 3
    tracking.detach()


@pytest.mark.parametrize(
    "messages",
    [
        None,
        "not a list",
        [],
        [{"role": "system", "content": "only a system prompt"}],
        [{"role": "user", "content": None}],
        [
            {
                "role": "user",
                "content": [None, 42, {"type": "image_url"}, {"type": "image_url", "image_url": {"url": 7}}],
            }
        ],
        [{"role": "user", "content": [{"type": "text", "text": '{"current_app": '}]}],  # broken JSON
        [{"role": "user", "content": [{"type": "text", "text": '{"current_app": ["not", "a", "name"]}'}]}],
    ],
)
def test_odd_model_messages_give_no_screen_and_no_crash(messages: Any) -> None:
    from stepsdk.integrations.phone_agent import _screen_from_messages

    assert _screen_from_messages(messages) == (None, None)


def test_huge_and_binary_model_replies_are_bounded(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    agent = make_agent(model)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    junk = "\x00\ud7ff garbage " * 2_000  # 22 KB with NULs: not an action
    model.script(f"<think>{'long thought ' * 2_000}</think><answer>{junk}")  # 26 KB of thinking
    message = agent.run("Do something")
    (step,) = backup_steps(tmp_path, tracking.last_task_id)
    assert step["error_type"] == "ActionParseError" and step["success"] is False
    assert len(step["step_data"]["raw_action"]) < 2_100 and "\x00" not in step["step_data"]["raw_action"]
    assert (
        step["thinking"].startswith("long thought") and len(step["thinking"]) < 21_000
    )  # cut by the tracker
    assert message.startswith("\x00")  # the agent's own return value is untouched
    assert backup_task(tmp_path, tracking.last_task_id)["status"] == "failed"
    tracking.detach()


def test_a_subclass_whose_run_calls_step_is_still_one_task(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    from phone_agent import PhoneAgent

    class SteppingAgent(PhoneAgent):
        def run(self, task: str) -> str:
            self.reset()
            result = self.step(task)
            while not result.finished:
                result = self.step()
            return result.message or "done"

    agent = make_agent(model)
    agent.__class__ = SteppingAgent  # same instance state, the subclass's run()
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(LAUNCH, TAP, FINISH)
    assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"
    assert len(tracking.task_ids) == 1
    task = backup_task(tmp_path, tracking.last_task_id)
    assert task["status"] == "success" and task["title"] == "Turn on Wi-Fi"
    assert len(backup_steps(tmp_path, tracking.last_task_id)) == 3
    tracking.detach()


def test_a_refused_confirmation_fails_the_task_honestly(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    agent = make_agent(model, confirmation_callback=lambda message: False)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(TAP_CONFIRM)
    assert agent.run("Pay the bill") == "User cancelled sensitive operation"
    task = backup_task(tmp_path, tracking.last_task_id)
    assert task["status"] == "failed" and task["error_message"] == "User cancelled sensitive operation"
    validation, action = backup_steps(tmp_path, tracking.last_task_id)
    assert validation["step_data"]["approved"] is False and validation["success"] is False
    assert action["success"] is False and action["error_type"] == "ActionFailed"
    assert action["action_result"]["should_finish"] is True
    assert ["shell", "input", "tap", "54", "480"] not in fake_device.calls()  # the tap really did not happen
    tracking.detach()


def test_an_agent_that_cannot_be_wrapped_is_left_untouched(model: FakeModelServer, tmp_path: Path) -> None:
    agent = make_agent(model)

    class SlottedHandler:  # attributes cannot be replaced on the instance
        __slots__ = ("confirmation_callback", "takeover_callback")

        def execute(self, action: Any, width: int, height: int) -> Any:
            return None

    agent.action_handler = SlottedHandler()
    with pytest.raises(TypeError, match="cannot wrap"):
        track_phone_agent(agent, backup_dir=tmp_path)
    for obj, name in ((agent, "run"), (agent, "step"), (agent, "reset"), (agent.model_client, "request")):
        assert name not in vars(obj), name  # everything wrapped before the failure was put back
    assert "_stepsdk_phone_tracking" not in vars(agent)

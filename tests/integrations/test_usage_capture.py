"""Token usage taken from model replies: the PhoneAgent's streamed replies (when the server sends
a usage chunk) and httpx-recorded OpenAI-style responses (JSON bodies and event streams), summed
by the SQL view ``task_usage`` in the local stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepsdk import StepTracker
from stepsdk.integrations import tracked_client
from stepsdk.integrations._usage import usage_in_bytes
from stepsdk.integrations.phone_agent import track_phone_agent
from tests.integrations.conftest import FakeDevice, backup_steps, make_agent
from tests.integrations.fake_model import FakeModelServer
from tests.timing import WAIT

pytestmark = pytest.mark.usefixtures("local_env")

LAUNCH = '<think>Open Settings.</think>\n<answer>do(action="Launch", app="Settings")'
FINISH = '<think>Done.</think>\n<answer>finish(message="Wi-Fi is on")'
USAGE = {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290}


def test_phone_agent_steps_carry_the_reply_usage_into_supabase(
    fake_device: FakeDevice, model: FakeModelServer, stack: Any, tmp_path: Path
) -> None:
    agent = make_agent(model)
    tracking = track_phone_agent(
        agent,
        supabase_url=stack.url,
        supabase_key=stack.service_role_key,
        backup_dir=tmp_path,
        agent_name="usage-phone",
    )
    model.usage = USAGE
    model.script(LAUNCH, FINISH)
    assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"
    tracking.detach()
    task_id = tracking.last_task_id
    rows = stack.sql(
        "select usage from public.task_steps where task_id = %s order by step_number", (task_id,)
    )
    assert [r["usage"] for r in rows] == [USAGE, USAGE]
    [summed] = stack.sql("select * from public.task_usage where task_id = %s", (task_id,))
    assert (
        summed["steps_with_usage"],
        summed["prompt_tokens"],
        summed["completion_tokens"],
        summed["total_tokens"],
        summed["model"],
    ) == (2, 2468, 112, 2580, "autoglm-phone-9b")
    # the wrapper was only there during each call: the openai client is as it was
    assert "create" not in vars(agent.model_client.client.chat.completions)


def test_phone_agent_without_usage_in_the_reply_records_none(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    agent = make_agent(model)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(LAUNCH, FINISH)
    agent.run("Turn on Wi-Fi")
    tracking.detach()
    assert [s.get("usage") for s in backup_steps(tmp_path, tracking.last_task_id)] == [None, None]


@pytest.mark.parametrize("stream", [False, True])
def test_httpx_recorded_openai_replies_carry_usage(
    model: FakeModelServer, tmp_path: Path, stream: bool
) -> None:
    model.usage = USAGE
    model.script("x" * 50_000, "short reply")  # the first body is far over max_body_bytes
    tracker = StepTracker(title="api agent", agent="test", backup_dir=tmp_path)
    with tracked_client(tracker, base_url=model.base_url, max_body_bytes=1000) as api:
        for _ in range(2):
            with api.stream(
                "POST",
                "/chat/completions",
                json={"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
            ) as r:
                r.read()
    model.usage = None
    with tracked_client(tracker, base_url=model.base_url) as api:
        api.post("/chat/completions", json={"model": "m", "stream": stream, "messages": []})
    tracker.flush(WAIT)
    steps = backup_steps(tmp_path, tracker.task_id)
    tracker.close()
    assert [s.get("usage") for s in steps] == [USAGE, USAGE, None]
    assert steps[0]["step_data"]["response"]["body"]["truncated"] is True  # found in the tail all the same


def test_usage_parsing_takes_the_last_valid_usage_and_nothing_else() -> None:
    sse = (
        b"".join(
            b"data: " + json.dumps(e).encode() + b"\n\n"
            for e in (
                {
                    "choices": [{"delta": {"content": '"usage": {"prompt_tokens": 1}'}}]
                },  # text, not a usage object
                {
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 7,
                        "completion_tokens": 2,
                        "total_tokens": 9,
                        "prompt_tokens_details": {"cached_tokens": 3},
                    },
                },
            )
        )
        + b"data: [DONE]\n\n"
    )
    assert usage_in_bytes(sse) == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    assert usage_in_bytes(b'{"usage": {"prompt_tokens": -1, "total_tokens": "9"}}') is None
    assert usage_in_bytes(b'{"usage": {"prompt_tokens": 3}}') == {"prompt_tokens": 3}
    assert usage_in_bytes(b'{"usage": {"prompt_tokens": 3') is None  # cut off
    assert usage_in_bytes(b'{"usage": null}') is None and usage_in_bytes(b"") is None

"""A PhoneAgent run with a sensitive screen (the device refuses the capture: ``Screenshot.is_sensitive``)
stores no pixels of it: the integration passes the device's flag, the screenshot stage withholds
(``redact``: a placeholder) or encrypts it (a key is configured)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stepsdk.integrations.phone_agent import track_phone_agent
from stepsdk.recording import sensitive as _sensitive
from stepsdk.store.backup import BackupStore
from tests.integrations.conftest import FakeDevice, make_agent
from tests.integrations.fake_model import FakeModelServer

pytestmark = pytest.mark.usefixtures("local_env")

TAP_CONFIRM = '<think>Pay now.</think>\n<answer>do(action="Tap", element=[200,800], message="Pay 5 EUR")'
FINISH = '<think>Paid.</think>\n<answer>finish(message="paid")'


@pytest.mark.parametrize("policy", ["redact", "encrypt"])
def test_sensitive_device_screen_is_never_stored(
    policy: str,
    fake_device: FakeDevice,
    model: FakeModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (_sensitive.ENV_KEY, _sensitive.ENV_KEY_FILE, _sensitive.ENV_POLICY):
        monkeypatch.delenv(name, raising=False)
    key = _sensitive.generate_key()
    if policy == "encrypt":
        monkeypatch.setenv(_sensitive.ENV_KEY, key)
    # step 1 sees a normal screen; approving the payment opens a screen the system blocks (step 2)
    agent = make_agent(model, confirmation_callback=lambda _m: fake_device.set_mode("sensitive") or True)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(TAP_CONFIRM, FINISH)
    assert agent.run("Pay the bill") == "paid"
    tracking.detach()

    snap = BackupStore(tmp_path).read()
    steps = {s["id"]: s for s in snap.steps[tracking.last_task_id]}
    shots = {
        steps[r["step_id"]]["step_data"]["agent_step"]: r for r in snap.screenshots[tracking.last_task_id]
    }
    assert sorted(shots) == [1, 2]
    normal, sensitive = shots[1], shots[2]
    assert "sensitive" not in normal["metadata"] and normal["screenshot_path"].endswith(".webp")
    assert sensitive["metadata"]["sensitive"] is True and sensitive["metadata"]["policy"] == policy
    objects = {
        p.relative_to(tmp_path / "screenshots").as_posix(): p.read_bytes()
        for p in (tmp_path / "screenshots").glob("*/*")
    }
    assert set(objects) == {normal["screenshot_path"], sensitive["screenshot_path"]}
    stored = objects[sensitive["screenshot_path"]]
    if policy == "redact":
        assert stored == _sensitive.placeholder()[0] and sensitive["metadata"]["withheld"] is True
    else:
        assert (
            sensitive["screenshot_path"].endswith(".enc")
            and b"RIFF" not in stored
            and b"\x89PNG" not in stored
        )
        with pytest.raises(Exception):  # noqa: B017 - not an image
            Image.open(io.BytesIO(stored)).load()
        with Image.open(io.BytesIO(_sensitive.decrypt(stored, _sensitive.parse_key(key)))) as im:
            assert im.format == "WEBP"  # the key holder gets the (black) fallback frame back
    with Image.open(io.BytesIO(objects[normal["screenshot_path"]])) as im:
        assert im.format == "WEBP" and im.width > 0


def test_the_screen_watch_passes_the_screenshot_through(
    fake_device: FakeDevice, model: FakeModelServer, tmp_path: Path
) -> None:
    from phone_agent.device_factory import get_device_factory

    agent = make_agent(model)
    tracking = track_phone_agent(agent, backup_dir=tmp_path)
    model.script(FINISH)
    agent.run("look")
    shot: Any = get_device_factory().get_screenshot()
    assert shot.is_sensitive is False and shot.base64_data  # unchanged values from the real function
    fake_device.set_mode("sensitive")
    assert get_device_factory().get_screenshot().is_sensitive is True
    tracking.detach()

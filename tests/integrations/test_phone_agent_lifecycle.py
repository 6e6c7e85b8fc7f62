"""The real PhoneAgent with phone-sized screens (1080x2400 PNG), recorded into the local Supabase
stack, 10 runs: every run ends cleanly, `finish()` never times out and every step and screenshot
arrives (issue #10: the run used to stall 5 s at its end when the last step carried a
screenshot, which shows as `finish()` timing out). How much time tracking adds to a run is
measured by benchmarks/bench_phone_overhead.py (a time, not a test assertion)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from stepsdk import StepTracker
from stepsdk.integrations.phone_agent import track_phone_agent
from tests.integrations.conftest import FakeDevice, make_agent
from tests.integrations.fake_model import FakeModelServer

pytestmark = pytest.mark.usefixtures("local_env")

LAUNCH = '<think>Open Settings.</think>\n<answer>do(action="Launch", app="Settings")'
TAP = '<think>Tap the Wi-Fi row.</think>\n<answer>do(action="Tap", element=[500,300])'
SWIPE = '<think>Scroll down.</think>\n<answer>do(action="Swipe", start=[500,800], end=[500,200])'
FINISH = '<think>Done.</think>\n<answer>finish(message="Wi-Fi is on")'
SCRIPT = (LAUNCH, TAP, SWIPE, TAP, FINISH)


def draw_phone_screens(state: Path) -> None:
    """1080x2400 PNG screens (photo-like bars and rows, ~100-400 KB each) into state/screens."""
    (state / "screens").mkdir()
    for i in range(6):
        img = Image.new("RGB", (1080, 2400), (235 - 15 * i, 240, 250))
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, 0, 1080, 180), fill=(20 + 30 * i, 90, 200))
        for row in range(16):
            y = 220 + row * 135
            draw.rectangle((40, y, 1040, y + 110), outline=(110, 110, 110), width=4)
            draw.ellipse((60, y + 15, 140, y + 95), fill=(200 - 10 * row, 120, 40 + 10 * i))
            draw.text((170, y + 45), f"Setting {row} on screen {i}", fill=(0, 0, 0))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        (state / "screens" / f"{i:03d}.png").write_bytes(buf.getvalue())
    (state / "current").write_text("com.android.launcher")


@pytest.fixture
def phone_device(
    fake_device: FakeDevice, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> FakeDevice:
    """The fake adb serving 1080x2400 PNG screens (draw_phone_screens)."""
    state = tmp_path_factory.mktemp("phone-state")
    draw_phone_screens(state)
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    return FakeDevice(state=state, bin_dir=fake_device.bin_dir)


def run_once(model: FakeModelServer, device: FakeDevice, tracked: dict[str, Any] | None) -> None:
    """One run of SCRIPT, tracked with these options (or not)."""
    device.reset()
    model.script(*SCRIPT)
    agent = make_agent(model)
    tracking = track_phone_agent(agent, **tracked) if tracked else None
    assert agent.run("Turn on Wi-Fi") == "Wi-Fi is on"
    if tracking is not None:
        tracking.detach()


def test_ten_tracked_phone_runs_end_cleanly(
    phone_device: FakeDevice,
    model: FakeModelServer,
    stack: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finishes: list[Any] = []
    real_finish = StepTracker.finish

    def spy(self: StepTracker, *args: Any, **kwargs: Any) -> Any:  # our own method, observed, not replaced
        result = real_finish(self, *args, **kwargs)
        finishes.append(result)
        return result

    monkeypatch.setattr(StepTracker, "finish", spy)
    for run in range(10):
        options = {
            "supabase_url": stack.url,
            "supabase_key": stack.service_role_key,
            "backup_dir": tmp_path / f"run{run}",
            "agent_name": f"phone-{run}",
        }
        run_once(model, phone_device, options)
        result = finishes[-1]
        assert not result.timed_out and result.ok and result.uploaded == 5, (run, result)
    runs = len(finishes)
    tasks = stack.sql("select task_id, status from public.tasks where agent like 'phone-%'")
    assert len(tasks) == runs >= 10 and {t["status"] for t in tasks} == {"success"}
    rows = stack.sql(
        "select s.screenshot_path, s.metadata from public.task_steps s "
        "join public.tasks t using (task_id) where t.agent like 'phone-%'"
    )
    assert len(rows) == 5 * runs and all(r["screenshot_path"] for r in rows)
    (count,) = stack.sql("select count(*) as n from public.step_screenshots")
    assert count["n"] == 5 * runs

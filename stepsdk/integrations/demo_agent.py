"""A simulated phone agent run ("Turn on Wi-Fi") recorded through the real ``StepTracker``.

Used by ``stepsdk demo``. The screens are drawn with Pillow (no binary assets); the steps use the
same ``step_data`` layout as the Open-AutoGLM integration (``phone_step_data``), so the viewer
shows a demo run exactly like a real one: thinking, screenshot, action with its tap point, model
timings, a failed tap and its retry, a validation, and the finish.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from stepsdk.integrations.phone_agent import phone_step_data
from stepsdk.model import StepType
from stepsdk.recording.step_names import phone_action_name

_log = logging.getLogger("stepsdk.demo")

SCREEN = (360, 800)
TASK_TITLE = "Turn on Wi-Fi and connect to HomeNetwork-5G"
AGENT_NAME = "demo/open-autoglm-phone-agent"
DEFAULT_PACE = 0.2  # the demo plays the ~16 s run in ~3 s
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts"))
_BLUE, _GREY, _INK, _BG = (26, 115, 232), (120, 120, 128), (25, 25, 28), (246, 246, 250)

_FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> _FontT:
    """DejaVu Sans when installed, else Pillow's scalable built-in font."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in _FONT_DIRS:
        if folder.is_dir():
            for candidate in folder.rglob(name):
                return ImageFont.truetype(str(candidate), size)
    return ImageFont.load_default(size=size)


# ---------------------------------------------------------------------------- screens
def _base(title: str | None, back: bool = True) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", SCREEN, _BG)
    draw = ImageDraw.Draw(im)
    draw.text((16, 8), "12:45", font=_font(14, True), fill=_INK)
    draw.rounded_rectangle((SCREEN[0] - 46, 10, SCREEN[0] - 18, 22), radius=3, outline=_INK, width=2)
    draw.rectangle((SCREEN[0] - 44, 12, SCREEN[0] - 28, 20), fill=_INK)
    if title:
        if back:
            draw.text((16, 44), "←", font=_font(22, True), fill=_INK)
        draw.text((52 if back else 16, 44), title, font=_font(24, True), fill=_INK)
    draw.rounded_rectangle(
        (SCREEN[0] // 2 - 50, SCREEN[1] - 16, SCREEN[0] // 2 + 50, SCREEN[1] - 10), radius=3, fill=_INK
    )
    return im, draw


def _row(
    draw: ImageDraw.ImageDraw, y: int, title: str, subtitle: str = "", toggle: bool | None = None
) -> None:
    draw.ellipse((18, y + 10, 50, y + 42), fill=(210, 225, 250))
    draw.text((66, y + 8), title, font=_font(17), fill=_INK)
    if subtitle:
        draw.text((66, y + 32), subtitle, font=_font(13), fill=_GREY)
    if toggle is not None:
        x = SCREEN[0] - 70
        draw.rounded_rectangle(
            (x, y + 16, x + 46, y + 40), radius=12, fill=_BLUE if toggle else (190, 190, 196)
        )
        knob = x + 24 if toggle else x + 2
        draw.ellipse((knob, y + 18, knob + 20, y + 38), fill="white")
    draw.line((66, y + 58, SCREEN[0] - 12, y + 58), fill=(225, 225, 230))


def home_screen() -> Image.Image:
    im = Image.new("RGB", SCREEN)
    draw = ImageDraw.Draw(im)
    for y in range(SCREEN[1]):  # a wallpaper gradient
        draw.line((0, y, SCREEN[0], y), fill=(40 + y // 8, 70 + y // 12, 140 + y // 10))
    draw.text((16, 8), "12:45", font=_font(14, True), fill="white")
    draw.text((24, 90), "Sunday, 22 November", font=_font(18), fill="white")
    apps = ["Phone", "Messages", "Chrome", "Camera", "Photos", "Maps", "Clock", "Settings"]
    for i, name in enumerate(apps):
        col, row = i % 4, i // 4
        x, y = 22 + col * 84, 560 + row * 96
        draw.rounded_rectangle((x, y, x + 56, y + 56), radius=16, fill=(250, 250, 252))
        draw.text((x + 28, y + 66), name, font=_font(12), fill="white", anchor="mt")
    return im


def settings_screen() -> Image.Image:
    im, draw = _base("Settings", back=False)
    draw.rounded_rectangle((16, 90, SCREEN[0] - 16, 130), radius=20, fill=(232, 232, 240))
    draw.text((40, 101), "Search settings", font=_font(15), fill=_GREY)
    rows = [
        ("Network & internet", "Mobile, Wi-Fi, hotspot"),
        ("Connected devices", "Bluetooth, pairing"),
        ("Apps", "Recent apps, default apps"),
        ("Notifications", "Notification history"),
        ("Battery", "72%"),
        ("Display", "Dark theme, font size"),
        ("Sound & vibration", "Volume, haptics"),
    ]
    for i, (title, sub) in enumerate(rows):
        _row(draw, 150 + i * 64, title, sub)
    return im


def network_screen(loading: bool = False) -> Image.Image:
    im, draw = _base("Network & internet")
    if loading:
        draw.arc((SCREEN[0] // 2 - 20, 300, SCREEN[0] // 2 + 20, 340), 30, 300, fill=_BLUE, width=4)
        draw.text((SCREEN[0] // 2, 356), "Loading…", font=_font(15), fill=_GREY, anchor="mt")
        return im
    rows = [
        ("Internet", "Wi-Fi is off"),
        ("SIMs", "Carrier"),
        ("Airplane mode", ""),
        ("Hotspot & tethering", "Off"),
    ]
    for i, (title, sub) in enumerate(rows):
        _row(draw, 100 + i * 64, title, sub, toggle=False if title == "Airplane mode" else None)
    return im


def internet_screen(wifi_on: bool, connected: bool = False) -> Image.Image:
    im, draw = _base("Internet")
    _row(draw, 100, "Wi-Fi", "On" if wifi_on else "Off", toggle=wifi_on)
    if not wifi_on:
        draw.text((24, 190), "Turn on Wi-Fi to see available networks", font=_font(14), fill=_GREY)
        return im
    networks = [
        ("HomeNetwork-5G", "Connected" if connected else "Saved"),
        ("Cafe_Guest", "Open"),
        ("Neighbors-2.4", "Secured"),
    ]
    for i, (name, status) in enumerate(networks):
        _row(draw, 180 + i * 64, name, status)
    return im


# ---------------------------------------------------------------------------- the story
@dataclass(frozen=True)
class _Scene:
    step_type: StepType
    screen: Callable[[], Image.Image]
    app: str
    thinking: str | None = None
    action: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    duration_ms: float = 1500.0
    timing: tuple[float, float, float] | None = None  # model seconds: first token, thinking end, total
    error: tuple[str, str] | None = None  # (error_type, error_message)
    data: dict[str, Any] = field(default_factory=dict)


def _ok(message: str | None = None, finish: bool = False) -> dict[str, Any]:
    return {"success": True, "should_finish": finish, "message": message, "requires_confirmation": False}


_SCENES: tuple[_Scene, ...] = (
    _Scene(
        StepType.THINKING,
        home_screen,
        "System Home",
        duration_ms=900,
        timing=(0.31, 0.88, 0.9),
        thinking="Plan: open Settings → Network & internet → Internet, switch Wi-Fi on, "
        "join HomeNetwork-5G, then check that it says Connected.",
        data={
            "plan": [
                "Launch Settings",
                "Open Network & internet",
                "Open Internet",
                "Turn on Wi-Fi",
                "Join HomeNetwork-5G",
                "Verify",
            ]
        },
    ),
    _Scene(
        StepType.ACTION,
        home_screen,
        "System Home",
        duration_ms=2140,
        timing=(0.42, 1.37, 1.52),
        thinking="The home screen is showing. The fastest way to Wi-Fi is the Settings app.",
        action={"_metadata": "do", "action": "Launch", "app": "Settings"},
        result=_ok(),
    ),
    _Scene(
        StepType.ACTION,
        settings_screen,
        "Settings",
        duration_ms=1870,
        timing=(0.39, 1.12, 1.30),
        thinking='Settings is open. Wi-Fi lives under "Network & internet", the first row.',
        action={"_metadata": "do", "action": "Tap", "element": [500, 218]},
        result=_ok(),
    ),
    _Scene(
        StepType.ACTION,
        lambda: network_screen(loading=True),
        "Settings",
        duration_ms=2630,
        timing=(0.45, 1.41, 1.58),
        thinking='I am on Network & internet. Tap "Internet" to reach the Wi-Fi switch.',
        action={"_metadata": "do", "action": "Tap", "element": [500, 165]},
        result={
            "success": False,
            "should_finish": False,
            "message": "Action failed: no element at (180, 132): screen still loading",
            "requires_confirmation": False,
        },
        error=("ActionFailed", "no element at (180, 132): the page was still loading"),
    ),
    _Scene(
        StepType.ACTION,
        network_screen,
        "Settings",
        duration_ms=2210,
        timing=(0.40, 1.25, 1.44),
        thinking='The page has finished loading now; the previous tap hit the spinner. Retry the tap on "Internet".',
        action={"_metadata": "do", "action": "Tap", "element": [500, 165]},
        result=_ok(),
        data={"retry_of_step": 4},
    ),
    _Scene(
        StepType.ACTION,
        lambda: internet_screen(wifi_on=False),
        "Settings",
        duration_ms=1980,
        timing=(0.37, 1.08, 1.27),
        thinking="Wi-Fi is off. Tap the switch on the Wi-Fi row to turn it on.",
        action={"_metadata": "do", "action": "Tap", "element": [860, 160]},
        result=_ok(),
    ),
    _Scene(
        StepType.ACTION,
        lambda: internet_screen(wifi_on=True),
        "Settings",
        duration_ms=2050,
        timing=(0.41, 1.19, 1.35),
        thinking="Wi-Fi is on and networks are listed. HomeNetwork-5G is saved: tap it to connect.",
        action={"_metadata": "do", "action": "Tap", "element": [500, 260]},
        result=_ok(),
    ),
    _Scene(
        StepType.VALIDATION,
        lambda: internet_screen(wifi_on=True, connected=True),
        "Settings",
        duration_ms=640,
        thinking="Check the outcome before finishing: the Wi-Fi switch must be on and HomeNetwork-5G connected.",
        data={
            "kind": "check",
            "expected": "Wi-Fi on, HomeNetwork-5G connected",
            "observed": "Wi-Fi on, HomeNetwork-5G connected",
            "passed": True,
        },
    ),
    _Scene(
        StepType.ACTION,
        lambda: internet_screen(wifi_on=True, connected=True),
        "Settings",
        duration_ms=1710,
        timing=(0.36, 0.97, 1.11),
        thinking="Wi-Fi is on and the phone is connected to HomeNetwork-5G. The task is done.",
        action={"_metadata": "finish", "message": "Wi-Fi is on and connected to HomeNetwork-5G"},
        result=_ok("Wi-Fi is on and connected to HomeNetwork-5G", finish=True),
    ),
)
_SCENE_NAMES = {StepType.THINKING: "Plan", StepType.VALIDATION: "Verify Wi-Fi"}
RESULT = "Wi-Fi is on and connected to HomeNetwork-5G"
STEP_COUNT = len(_SCENES)


def _record_scene(tracker: Any, number: int, scene: _Scene, screen: Image.Image, pace: float) -> None:
    # Play the step at `pace` x real time, so timestamps, durations and the task's length agree.
    started = time.perf_counter()
    time.sleep(scene.duration_ms / 1000.0 * pace)
    timing = None
    if scene.timing:
        keys = ("time_to_first_token", "time_to_thinking_end", "total_time")
        timing = {k: round(v * pace, 4) for k, v in zip(keys, scene.timing, strict=True)}
    data = phone_step_data(
        agent_step=number,
        action=scene.action,
        current_app=scene.app,
        screen=SCREEN if scene.action else None,
        model_timing=timing,
    )
    data.update(scene.data)
    kwargs: dict[str, Any] = {}
    if scene.error:
        kwargs = {"success": False, "error_type": scene.error[0], "error_message": scene.error[1]}
    tracker.record_step(
        scene.step_type,
        data,
        thinking=scene.thinking,
        action_result=scene.result,
        screenshot=screen,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        name=phone_action_name(scene.action) or _SCENE_NAMES.get(scene.step_type),
        **kwargs,
    )


@dataclass(frozen=True)
class DemoRun:
    task_id: str
    steps: int
    mode: str  # "supabase" or "local"
    destination: str  # the Supabase URL or the backup folder
    backup_dir: str = ""  # the local backup folder (where the run is when Supabase was unreachable)
    uploaded: bool = True  # False: meant for Supabase, but (some of it) is only in the backup


def record_demo(
    *,
    backup_dir: str | Path | None = None,
    supabase_url: str | None = None,
    supabase_key: str | None = None,
    pace: float = DEFAULT_PACE,
) -> DemoRun:
    """Record the demo task (flushed before returning). Supabase when configured, else the backup.

    ``pace`` scales the simulated run's timing: 1.0 is real time (about 16 s), 0 as fast as possible.
    """
    from stepsdk import StepTracker
    from stepsdk.config import Config

    if isinstance(pace, bool) or not isinstance(pace, int | float) or not 0 <= pace <= 10:
        raise ValueError(f"pace must be a number between 0 and 10, got {pace!r}")
    screens = [scene.screen() for scene in _SCENES]  # drawn first: drawing is not part of the run
    config = Config.resolve(supabase_url=supabase_url, supabase_key=supabase_key, backup_dir=backup_dir)
    tracker = StepTracker(
        title=TASK_TITLE,
        agent=AGENT_NAME,
        supabase_url=supabase_url,
        supabase_key=supabase_key,
        backup_dir=backup_dir,
        metadata={"demo": True, "device": "simulated 360x800 phone", "model": "autoglm-phone-9b (simulated)"},
    )
    try:
        for number, (scene, screen) in enumerate(zip(_SCENES, screens, strict=True), start=1):
            _record_scene(tracker, number, scene, screen, float(pace))
        flushed = tracker.finish("success", result=RESULT, timeout=10.0)
    finally:
        tracker.close()
    backup = str(config.backup_dir.resolve())
    destination = config.supabase_url if config.remote else backup
    # remote but not (all) uploaded: the run is in the local backup; say so rather than claim Supabase
    not_uploaded = config.remote and (flushed.uploaded < STEP_COUNT or not flushed.ok)
    return DemoRun(
        task_id=str(tracker.task_id),
        steps=STEP_COUNT,
        mode=config.mode,
        destination=destination or "",
        backup_dir=backup,
        uploaded=not not_uploaded,
    )

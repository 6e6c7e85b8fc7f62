"""Training-data export: step-level JSONL in the shape GUI-agent datasets use, images beside it.

``stepsdk export --format trajectories -o DIR`` writes::

    DIR/trajectories.jsonl     one record per action step (schema: trajectory.schema.json)
    DIR/images/<episode>/<step_number>.webp
    DIR/trajectory.schema.json the JSON Schema the records follow

Coordinates are **pixels of the device screen** (origin top-left, x to the right, y down), with
the same point normalized to [0, 1] (``x_norm = x / screen.width``). PhoneAgent's model speaks
0-1000 relative coordinates; they are converted exactly as PhoneAgent converts them for adb
(``int(v / 1000 * size)``), and ``x_norm = v / 1000``. The mapping to AndroidControl and
AITW action spaces is in ``docs/trajectories.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepsdk.store.export_format import TaskBundle, write_atomically

from .run import Fetch, image_size

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("trajectory.schema.json")
DATA_FILE = "trajectories.jsonl"
COORDINATES = "screen_px"

# PhoneAgent action name → our action type (AndroidControl-like names)
PHONE_ACTIONS = {
    "tap": "click",
    "double tap": "double_tap",
    "long press": "long_press",
    "swipe": "swipe",
    "type": "input_text",
    "type_name": "input_text",
    "launch": "open_app",
    "back": "navigate_back",
    "home": "navigate_home",
    "wait": "wait",
    "take_over": "take_over",
    "note": "other",
    "call_api": "other",
    "interact": "other",
    "finish": "status",
}
ACTION_TYPES = tuple(sorted(set(PHONE_ACTIONS.values()) | {"other"}))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        x, y = _num(value[0]), _num(value[1])
        return (x, y) if x is not None and y is not None else None
    if isinstance(value, dict):
        x, y = _num(value.get("x")), _num(value.get("y"))
        return (x, y) if x is not None and y is not None else None
    return None


def relative_to_pixels(point: tuple[float, float], width: int, height: int) -> tuple[int, int]:
    """PhoneAgent's 0-1000 relative point → screen pixels, as its adb handler computes them."""
    return int(point[0] / 1000 * width), int(point[1] / 1000 * height)


@dataclass(frozen=True)
class Screen:
    width: int
    height: int


def _point_fields(
    prefix: str, rel: tuple[float, float] | None, px: tuple[float, float] | None, screen: Screen | None
) -> dict[str, Any]:
    """``x``/``y`` pixels and ``x_norm``/``y_norm`` from a 0-1000 point or a pixel point."""
    if rel is not None:
        out: dict[str, Any] = {f"{prefix}x_norm": rel[0] / 1000, f"{prefix}y_norm": rel[1] / 1000}
        if screen is not None:
            x, y = relative_to_pixels(rel, screen.width, screen.height)
            out.update({f"{prefix}x": x, f"{prefix}y": y})
        return out
    if px is not None:
        out = {f"{prefix}x": round(px[0]), f"{prefix}y": round(px[1])}
        if screen is not None:
            out.update({f"{prefix}x_norm": px[0] / screen.width, f"{prefix}y_norm": px[1] / screen.height})
        return out
    return {}


def swipe_direction(start: tuple[float, float], end: tuple[float, float]) -> str:
    """The direction the finger moved (``up`` scrolls the content down)."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def convert_action(step_data: Any, screen: Screen | None) -> dict[str, Any] | None:
    """The step's action in our action space, or None when the step has no action."""
    if not isinstance(step_data, dict):
        return None
    action = step_data.get("action")
    if isinstance(action, str):  # flat layout: {"action": "tap", "x": .., "y": ..}
        action = {k: v for k, v in step_data.items() if k != "action"} | {"action": action}
    if not isinstance(action, dict):
        return None
    name = action.get("action")
    if not isinstance(name, str):
        name = "finish" if action.get("type") == "finish" else None
    if name is None:
        return None
    kind = PHONE_ACTIONS.get(name.strip().lower(), "other")
    out: dict[str, Any] = {"type": kind, "name": name[:60]}
    element = _pair(action.get("element"))
    pixels = _pair(step_data.get("point")) or _pair(action.get("point"))
    if pixels is None and _num(action.get("x")) is not None and _num(action.get("y")) is not None:
        pixels = (float(action["x"]), float(action["y"]))
    if kind in ("click", "double_tap", "long_press"):
        out.update(_point_fields("", element, None if element else pixels, screen))
        if "x" not in out and "x_norm" not in out:
            out["type"] = "other"  # a tap without a usable point
    elif kind == "swipe":
        start, end = _pair(action.get("start")), _pair(action.get("end"))
        if start is not None and end is not None:
            out.update(_point_fields("", start, None, screen))
            out.update(_point_fields("end_", end, None, screen))
            out["direction"] = swipe_direction(start, end)
        else:
            out["type"] = "other"
    elif kind == "input_text" and isinstance(action.get("text"), str):
        out["text"] = action["text"]
    elif kind == "open_app" and isinstance(action.get("app"), str):
        out["app_name"] = action["app"]
    elif kind == "wait":
        match = re.match(r"\s*(\d+(?:\.\d+)?)", str(action.get("duration", "")))
        if match:
            out["duration_s"] = float(match.group(1))
    if kind in ("status", "take_over", "other") and isinstance(action.get("message"), str):
        out["message"] = action["message"]
    if kind == "status":
        out["goal_status"] = "complete"
    return out


def _screen(step_data: Any, shot: dict[str, Any]) -> Screen | None:
    screen = step_data.get("screen") if isinstance(step_data, dict) else None
    for w, h in (
        ((screen or {}).get("width"), (screen or {}).get("height")),
        (
            (shot.get("metadata") or {}).get("original_width"),
            (shot.get("metadata") or {}).get("original_height"),
        ),
        ((shot.get("metadata") or {}).get("width"), (shot.get("metadata") or {}).get("height")),
    ):
        if isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) and w > 0 and h > 0:
            return Screen(w, h)
    return None


def episode_dir(task_id: str) -> str:
    """A file-name-safe, collision-free folder name for a task id."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id)[:60].strip(".") or "task"
    return f"{safe}-{hashlib.sha256(task_id.encode()).hexdigest()[:8]}"


@dataclass
class TrajectoryReport:
    episodes: int = 0
    records: int = 0
    images: int = 0
    missing: list[str] | None = None


def records(bundle: TaskBundle) -> list[dict[str, Any]]:
    """The JSONL records of one task (images referenced, not written)."""
    shots = {str(r.get("step_id")): r for r in bundle.screenshots}
    folder = episode_dir(bundle.task_id)
    out: list[dict[str, Any]] = []
    for step in bundle.steps:
        data = step.get("step_data")
        shot = shots.get(str(step.get("id"))) or {}
        meta = shot.get("metadata") if isinstance(shot.get("metadata"), dict) else {}
        shot = {**shot, "metadata": meta}
        screen = _screen(data, shot)
        action = convert_action(data, screen)
        if action is None:
            continue
        number = step.get("step_number")
        path = step.get("screenshot_path")
        out.append(
            {
                "schema_version": SCHEMA_VERSION,
                "episode_id": bundle.task_id,
                "goal": str(bundle.task.get("title") or bundle.task.get("description") or ""),
                "agent": bundle.task.get("agent"),
                "episode_success": bundle.task.get("status") == "success",
                "step_index": len(out),
                "step_number": number,
                "screenshot": f"images/{folder}/{number if isinstance(number, int) else len(out):05d}.webp"
                if isinstance(path, str) and path
                else None,
                "screenshot_path": path if isinstance(path, str) and path else None,
                "screen": {"width": screen.width, "height": screen.height} if screen else None,
                "coordinate_system": COORDINATES,
                "app": data.get("current_app")
                if isinstance(data, dict) and isinstance(data.get("current_app"), str)
                else None,
                "action": action,
                "raw_action": data.get("action") if isinstance(data, dict) else None,
                "reasoning": step.get("thinking") if isinstance(step.get("thinking"), str) else None,
                "success": step.get("success") is not False,
                "error_type": step.get("error_type"),
            }
        )
    return out


def write(bundles: Iterable[TaskBundle], target: Path, fetch: Fetch) -> TrajectoryReport:
    """Write the folder (the JSONL atomically, after its images)."""
    target = Path(target)
    (target / "images").mkdir(parents=True, exist_ok=True)
    report = TrajectoryReport(missing=[])
    lines: list[str] = []
    for bundle in bundles:
        recs = records(bundle)
        if not recs:
            continue
        report.episodes += 1
        for rec in recs:
            if rec["screenshot"]:
                data = fetch(rec["screenshot_path"])
                if data is None or image_size(data) is None:
                    report.missing.append(rec["screenshot_path"])  # type: ignore[union-attr]
                    rec["screenshot"] = None
                else:
                    file = target / rec["screenshot"]
                    file.parent.mkdir(parents=True, exist_ok=True)
                    file.write_bytes(data)
                    report.images += 1
            lines.append(json.dumps(rec, ensure_ascii=False, default=str))
        report.records += len(recs)
    body = ("\n".join(lines) + "\n" if lines else "").encode("utf-8")
    write_atomically(target / DATA_FILE, lambda fh: fh.write(body))
    (target / SCHEMA_FILE.name).write_bytes(SCHEMA_FILE.read_bytes())
    return report

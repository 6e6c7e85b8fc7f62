"""A recorded phone-agent run for the sharing tests and benchmarks: real WebP screenshots
(Pillow), ``step_data`` in the PhoneAgent integration's layout (``phone_step_data``: 0-1000
relative ``element``/``start``/``end`` and the screen size), written with the backup writer."""

from __future__ import annotations

import hashlib
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from stepsdk.integrations.phone_agent import phone_step_data
from stepsdk.store.backup import JournalWriter, write_screenshot

SCREEN = (360, 800)  # what the "device" reports; screenshots are stored at this size
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
TASK_ID = "phone-run-1"

# (action, thinking) cycled over the steps; None action: a thinking step without action
ACTIONS: list[tuple[dict[str, Any] | None, str]] = [
    ({"_metadata": "do", "action": "Launch", "app": "Settings"}, "Open Settings first."),
    ({"_metadata": "do", "action": "Tap", "element": [500, 218]}, "Tap Network & internet."),
    ({"_metadata": "do", "action": "Swipe", "start": [500, 800], "end": [500, 200]}, "Scroll down the list."),
    ({"_metadata": "do", "action": "Type", "text": "HomeNetwork-5G"}, "Type the network name."),
    ({"_metadata": "do", "action": "Long Press", "element": [250, 750]}, "Long press the row."),
    ({"_metadata": "do", "action": "Back"}, "Go back."),
]


def screen_image(number: int) -> bytes:
    """A pale screen, different per step (so frames can be told apart)."""
    img = Image.new("RGB", SCREEN, (235, 240 - number % 20, 230 + number % 25))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 40, 340, 90), fill=(255, 255, 255))
    draw.text((30, 55), f"screen {number}", fill=(0, 0, 0))
    out = io.BytesIO()
    img.save(out, "WEBP", quality=80)
    return out.getvalue()


def build(
    steps: int = 8,
    task_id: str = TASK_ID,
    status: str = "success",
    xss_step: int | None = 2,
    failed_step: int | None = 3,
) -> dict[str, Any]:
    """{"task": row, "steps": [...], "screenshots": [...], "objects": {path: bytes}}; the last step
    is ``finish``; every step has a screenshot."""
    started = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    task = {
        "task_id": task_id,
        "title": "Turn on Wi-Fi",
        "description": "phone run",
        "agent": "phone-agent",
        "status": status,
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(seconds=steps * 2)).isoformat(),
        "result": "done" if status == "success" else None,
        "error_message": None,
        "metadata": {"model": "autoglm-phone-9b", "device": "test"},
        "owner_id": None,
    }
    rows, shots, objects = [], [], {}
    for n in range(1, steps + 1):
        if n == steps:
            action, thinking = {"_metadata": "finish", "message": "Wi-Fi is on"}, "All done."
        else:
            action, thinking = ACTIONS[(n - 1) % len(ACTIONS)]
        if n == xss_step:
            thinking = f"{thinking} {XSS}"
        data = phone_step_data(agent_step=n, action=action, current_app="Settings", screen=SCREEN)
        image = screen_image(n)
        sha = hashlib.sha256(image).hexdigest()
        path = f"{sha[:2]}/{sha}.webp"
        objects[path] = image
        step_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{n}"))
        at = (started + timedelta(seconds=2 * n)).isoformat()
        failed = n == failed_step
        rows.append(
            {
                "id": step_id,
                "task_id": task_id,
                "step_number": n,
                "step_type": "action",
                "step_data": data,
                "thinking": thinking,
                "action_result": {"success": not failed},
                "screenshot_path": path,
                "duration_ms": 1500.0 + n,
                "success": not failed,
                "error_type": "ActionFailed" if failed else None,
                "error_message": "no element there" if failed else None,
                "stack_trace": None,
                "started_at": at,
                "metadata": {},
                "created_at": at,
                "name": f"step {n}",
                "usage": {"prompt_tokens": 1000 + n, "completion_tokens": 50, "total_tokens": 1050 + n},
                "error_category": "device" if failed else None,
            }
        )
        shots.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"shot/{step_id}")),
                "task_id": task_id,
                "step_id": step_id,
                "screenshot_path": path,
                "file_size": len(image),
                "file_hash": sha,
                "compressed": True,
                "metadata": {
                    "width": SCREEN[0],
                    "height": SCREEN[1],
                    "original_width": SCREEN[0],
                    "original_height": SCREEN[1],
                },
                "created_at": at,
            }
        )
    return {"task": task, "steps": rows, "screenshots": shots, "objects": objects}


def write_backup(root: Path, *runs: dict[str, Any]) -> None:
    writer = JournalWriter(root)
    records: list[dict[str, Any]] = []
    for run in runs:
        records.append({"k": "task", "v": 1, "row": run["task"]})
        records += [{"k": "step", "row": s} for s in run["steps"]]
        records += [{"k": "shot", "row": s} for s in run["screenshots"]]
    writer.append(records)
    writer.close()
    for run in runs:
        for path, data in run["objects"].items():
            write_screenshot(root, path, data)


def tap_pixel(step: dict[str, Any]) -> tuple[int, int] | None:
    """Where the step's tap is on the stored image (the integration's ``point``)."""
    point = step["step_data"].get("point")
    return (point["x"], point["y"]) if point else None

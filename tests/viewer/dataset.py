"""One small, deliberately nasty data set, written the same way to a backup folder and to the
local Supabase stack, so every viewer test can run against both sources.

Tasks: a successful run with tap/swipe screenshots, a failed run with errors, HTML/script text
and huge JSON, a running run, a task without steps, a task whose screenshots are missing or
broken, and a 120-step task (timeline pagination).
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from stepsdk.store.backup import JournalWriter, write_screenshot

Row = dict[str, Any]
NOW = datetime.now(UTC).replace(microsecond=0)
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss=2">'
HUGE = "x" * 120_000
BROKEN_SHA = "ab" + "c" * 62


def webp(color: tuple[int, int, int], size: tuple[int, int] = (270, 600), label: str = "") -> bytes:
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 40, size[0] - 20, 90), fill=(255, 255, 255))
    draw.text((30, 55), label or "stepsdk", fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "WEBP", quality=70)
    return out.getvalue()


def storage_key(data: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(data).hexdigest()
    return f"{sha[:2]}/{sha}.webp", sha


@dataclass
class Dataset:
    tasks: list[Row] = field(default_factory=list)
    steps: list[Row] = field(default_factory=list)
    screenshots: list[Row] = field(default_factory=list)
    objects: dict[str, bytes] = field(default_factory=dict)  # screenshot_path -> bytes

    def steps_of(self, task_id: str) -> list[Row]:
        return sorted((s for s in self.steps if s["task_id"] == task_id), key=lambda s: s["step_number"])


def _ts(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


def _task(
    task_id: str, title: str, status: str, started: timedelta, wall_ms: float | None, **extra: Any
) -> Row:
    return {
        "task_id": task_id,
        "title": title,
        "description": extra.pop("description", None),
        "agent": extra.pop("agent", "phone-agent"),
        "status": status,
        "started_at": _ts(started),
        "finished_at": _ts(started - timedelta(milliseconds=wall_ms)) if wall_ms is not None else None,
        "result": extra.pop("result", None),
        "error_message": extra.pop("error_message", None),
        "metadata": extra.pop("metadata", {}),
        "owner_id": None,
    }


class _Builder:
    def __init__(self) -> None:
        self.ds = Dataset()
        self.seq = 0

    def step(
        self,
        task: Row,
        number: int,
        step_type: str,
        duration: float | None,
        *,
        success: bool = True,
        image: bytes | None = None,
        shot_meta: Row | None = None,
        **extra: Any,
    ) -> Row:
        self.seq += 1
        started = datetime.fromisoformat(task["started_at"]) + timedelta(seconds=number)
        step = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task['task_id']}/{number}")),
            "task_id": task["task_id"],
            "step_number": number,
            "step_type": step_type,
            "step_data": extra.pop("step_data", {}),
            "thinking": extra.pop("thinking", None),
            "action_result": extra.pop("action_result", None),
            "screenshot_path": extra.pop("screenshot_path", None),
            "duration_ms": duration,
            "success": success,
            "error_type": extra.pop("error_type", None),
            "error_message": extra.pop("error_message", None),
            "stack_trace": extra.pop("stack_trace", None),
            "started_at": started.isoformat(),
            "metadata": {},
            "created_at": (started + timedelta(milliseconds=self.seq)).isoformat(),
            "name": extra.pop("name", None),
            "usage": extra.pop("usage", None),
            "error_category": extra.pop("error_category", None),
        }
        assert not extra, extra
        if image is not None:
            path, sha = storage_key(image)
            step["screenshot_path"] = path
            self.ds.objects[path] = image
            self.ds.screenshots.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"shot/{step['id']}")),
                    "task_id": task["task_id"],
                    "step_id": step["id"],
                    "screenshot_path": path,
                    "file_size": len(image),
                    "file_hash": sha,
                    "compressed": True,
                    "metadata": shot_meta
                    or {
                        "width": 270,
                        "height": 600,
                        "original_format": "PNG",
                        "original_width": 1080,
                        "original_height": 2400,
                    },
                    "created_at": step["created_at"],
                }
            )
        self.ds.steps.append(step)
        return step


def build() -> Dataset:
    b = _Builder()
    ok = _task(
        "task-ok",
        "Open settings and enable wifi",
        "success",
        timedelta(hours=1),
        5400.0,
        result="wifi enabled",
        description="A clean run",
        metadata={"model": "gpt-4o", "device": "pixel-7", "attempt": 2},
    )
    fail = _task(
        "task-fail",
        f"Checkout {XSS}",
        "failed",
        timedelta(days=1, hours=2),
        9100.0,
        agent="shop-agent",
        error_message="Element not found",
        metadata={"model": "claude", "device": "pixel-7"},
    )
    running = _task("task-running", "Still going", "running", timedelta(minutes=5), None)
    empty = _task("task-empty", "Nothing recorded", "interrupted", timedelta(days=3), 100.0)
    broken = _task("task-broken", "Broken screenshots", "success", timedelta(days=2), 2000.0)
    long = _task("task-long", "A long run", "success", timedelta(days=1), 120_000.0, agent="shop-agent")
    b.ds.tasks = [ok, fail, running, empty, broken, long]

    b.step(ok, 1, "thinking", 120.5, thinking="I should open Settings")
    b.step(
        ok,
        2,
        "action",
        800.0,
        image=webp((30, 120, 200), label="home"),
        step_data={
            "action": {"action": "Tap", "element": [500, 300], "type": "do"},
            "screen": {"width": 1080, "height": 2400},
            "point": {"x": 540, "y": 720},
        },
        action_result={"success": True, "message": None},
    )
    b.step(
        ok,
        3,
        "action",
        650.0,
        image=webp((40, 160, 90), label="settings"),
        step_data={"action": "swipe", "start": [500, 800], "end": [500, 200]},
    )
    b.step(ok, 4, "validation", 90.0, step_data={"check": "wifi on"}, action_result={"wifi": True})

    b.step(fail, 1, "thinking", 300.0, thinking=f"Plan: click buy {XSS}")
    b.step(
        fail,
        2,
        "action",
        1500.0,
        image=webp((200, 60, 60), label="cart"),
        step_data={"action": "tap", "x": 540, "y": 1200, "note": XSS},
        action_result={"blob": HUGE},
    )
    b.step(
        fail,
        3,
        "action",
        4000.0,
        success=False,
        error_type="TimeoutError",
        name="Tap Buy",
        error_message="  Element not found\n",
        stack_trace='Traceback (most recent call last):\n  File "agent.py"\nTimeoutError',
    )
    b.step(
        fail,
        4,
        "error",
        2500.0,
        success=False,
        error_type="TimeoutError",
        error_message="Element not found",
        stack_trace="Traceback\nTimeoutError",
    )
    b.step(
        fail,
        5,
        "action",
        None,
        success=False,
        error_type="ValueError",
        error_message="bad coordinates",
        name="Tap Pay",
        step_data={"action": "tap", "x": -5, "y": 99999},
    )

    b.step(running, 1, "screenshot", 210.0, image=webp((90, 90, 90), label="running"))
    b.step(running, 2, "thinking", 150.0, thinking="waiting for the page")

    b.step(broken, 1, "screenshot", 100.0, screenshot_path=f"{BROKEN_SHA[:2]}/{BROKEN_SHA}.webp")
    bad = b.step(broken, 2, "screenshot", 110.0, image=b"this is not an image at all")
    bad["step_data"] = {"note": "the stored object is not a valid image"}

    for n in range(1, 121):
        b.step(
            long,
            n,
            ("thinking", "action", "screenshot")[n % 3],
            float(10 + n),
            success=n % 40 != 0,
            error_type="AssertionError" if n % 40 == 0 else None,
            error_message="screen did not change" if n % 40 == 0 else None,
            step_data={"action": "tap", "x": n, "y": n} if n % 3 == 1 else {},
        )
    return b.ds


def write_backup(root: Path, ds: Dataset) -> None:
    writer = JournalWriter(root)
    records: list[Row] = [{"k": "task", "v": 1, "row": t} for t in ds.tasks]
    records += [{"k": "step", "row": s} for s in ds.steps]
    records += [{"k": "shot", "row": s} for s in ds.screenshots]
    writer.append(records)
    writer.close()
    for path, data in ds.objects.items():
        write_screenshot(root, path, data)


def write_supabase(client: Any, ds: Dataset) -> None:
    """Rows and objects through the official client (``stack.client()``)."""
    client.table("tasks").upsert(ds.tasks).execute()
    for i in range(0, len(ds.steps), 500):
        client.table("task_steps").upsert(ds.steps[i : i + 500]).execute()
    client.table("step_screenshots").upsert(ds.screenshots).execute()
    bucket = client.storage.from_("step-screenshots")
    for path, data in ds.objects.items():
        bucket.upload(path, data, {"content-type": "image/webp", "upsert": "true"})

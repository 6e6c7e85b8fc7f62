"""A task ready to share: its steps in order, each with its screenshot row, image bytes and the
action overlay (taps and swipes) in stored-image pixels.

The overlay reuses the viewer's parser of ``step_data`` (``stepsdk.viewer.pages._overlay``, plain Python,
no NiceGUI import), so a report, an animation and the viewer draw a tap at the same place.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from stepsdk.store.export_format import TaskBundle, is_safe_screenshot_path
from stepsdk.viewer.pages._overlay import Mark, action_marks

log = logging.getLogger("stepsdk.share")

Fetch = Callable[[str], bytes | None]


@dataclass
class SharedStep:
    row: dict[str, Any]
    shot: dict[str, Any] = field(default_factory=dict)  # its step_screenshots row, if any
    image: bytes | None = None  # the stored WebP
    size: tuple[int, int] | None = None  # of the stored image
    marks: list[Mark] = field(default_factory=list)  # in stored-image pixels

    @property
    def number(self) -> Any:
        return self.row.get("step_number")

    @property
    def failed(self) -> bool:
        return self.row.get("success") is False

    @property
    def screenshot_path(self) -> str | None:
        path = self.row.get("screenshot_path") or self.shot.get("screenshot_path")
        return path if isinstance(path, str) and path else None


@dataclass
class SharedRun:
    task: dict[str, Any]
    steps: list[SharedStep]
    missing: list[str] = field(default_factory=list)  # screenshot objects that could not be read

    @property
    def task_id(self) -> str:
        return str(self.task.get("task_id"))

    def with_images(self) -> list[SharedStep]:
        return [s for s in self.steps if s.image is not None and s.size is not None]


def action_name(step_data: Any) -> str:
    """``Tap``, ``Swipe``, ``finish``… as the viewer's timeline shows it ("" when none)."""
    if isinstance(step_data, dict):
        action = step_data.get("action")
        if isinstance(action, dict):
            action = action.get("action") or action.get("type")
        if isinstance(action, str):
            return action[:60]
    return ""


def _positive(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def shared_run(bundle: TaskBundle, fetch: Fetch, *, images: bool = True) -> SharedRun:
    """The bundle's steps with their images (read with ``fetch``) and overlay marks."""
    shots = {str(r.get("step_id")): r for r in bundle.screenshots}
    run = SharedRun(bundle.task, [])
    for row in bundle.steps:
        step = SharedStep(row, shots.get(str(row.get("id"))) or {})
        path = step.screenshot_path
        if images and path is not None:
            data = fetch(path) if is_safe_screenshot_path(path) else None
            size = image_size(data) if data is not None else None
            if size is None:
                run.missing.append(path)
            else:
                step.image, step.size = data, size
                meta = step.shot.get("metadata") if isinstance(step.shot.get("metadata"), dict) else {}
                step.marks = action_marks(
                    row.get("step_data"),
                    size[0],
                    size[1],
                    _positive(meta.get("original_width")),
                    _positive(meta.get("original_height")),
                )
        run.steps.append(step)
    return run


def shared_runs(bundles: Iterator[TaskBundle], fetch: Fetch, *, images: bool = True) -> Iterator[SharedRun]:
    for bundle in bundles:
        yield shared_run(bundle, fetch, images=images)


def statistics(run: SharedRun) -> dict[str, Any]:
    """What the report's header shows (computed from the rows, like the viewer's header)."""
    steps = [s.row for s in run.steps]
    failed = sum(1 for s in steps if s.get("success") is False)
    durations = [s["duration_ms"] for s in steps if isinstance(s.get("duration_ms"), int | float)]
    tokens = [s["usage"].get("total_tokens") for s in steps if isinstance(s.get("usage"), dict)]
    return {
        "steps": len(steps),
        "succeeded": len(steps) - failed,
        "failed": failed,
        "success_rate": (len(steps) - failed) / len(steps) if steps else None,
        "step_time_ms": sum(durations) if durations else None,
        "screenshots": sum(1 for s in run.steps if s.screenshot_path),
        "total_tokens": sum(t for t in tokens if isinstance(t, int)) if tokens else None,
    }

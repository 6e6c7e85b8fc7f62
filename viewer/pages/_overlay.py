"""Where an action touched the screen, drawn over its screenshot (SVG for ui.interactive_image).

Understood layouts of ``step_data`` (nested ``{"action": {...}}`` is searched too):
  * ``{"point": {"x": 540, "y": 720}}``: screen pixels (the phone integration adds it);
  * ``{"action": "tap", "x": 540, "y": 720}``: screen pixels;
  * ``{"action": "Tap", "element": [500, 300]}``: PhoneAgent's 0-1000 relative coordinates;
  * ``{"action": "Swipe", "start": [500, 800], "end": [500, 200]}``: 0-1000 relative;
  * ``{"action": "swipe", "x1":…, "y1":…, "x2":…, "y2":…}`` (or ``start_x``…): screen pixels.
Screen pixels are scaled to the stored image when the screenshot was downscaled. The SVG is
built from numbers only (never from step text), so step data cannot inject markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mark:
    kind: str  # "tap" or "swipe"
    points: tuple[tuple[float, float], ...]  # in stored-image pixels


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        x, y = _num(value[0]), _num(value[1])
        if x is not None and y is not None:
            return x, y
    if isinstance(value, dict):
        x, y = _num(value.get("x")), _num(value.get("y"))
        if x is not None and y is not None:
            return x, y
    return None


@dataclass(frozen=True)
class _Frame:
    width: float
    height: float
    scale_x: float  # stored pixels per screen pixel
    scale_y: float

    def pixels(self, p: tuple[float, float]) -> tuple[float, float]:
        return p[0] * self.scale_x, p[1] * self.scale_y

    def relative(self, p: tuple[float, float]) -> tuple[float, float]:
        return p[0] / 1000 * self.width, p[1] / 1000 * self.height

    def inside(self, p: tuple[float, float]) -> bool:
        return 0 <= p[0] <= self.width and 0 <= p[1] <= self.height


def action_marks(
    step_data: Any,
    width: float,
    height: float,
    screen_width: float | None = None,
    screen_height: float | None = None,
) -> list[Mark]:
    """Marks to draw on a ``width`` x ``height`` image of a ``screen_width`` x ``screen_height`` screen."""
    if not isinstance(step_data, dict) or width <= 0 or height <= 0:
        return []
    screen = step_data.get("screen") if isinstance(step_data.get("screen"), dict) else {}
    sw = screen_width or _num(screen.get("width")) or width
    sh = screen_height or _num(screen.get("height")) or height
    frame = _Frame(width, height, width / sw, height / sh)
    marks = _marks(step_data, frame, depth=0)
    return [m for m in marks if all(frame.inside(p) for p in m.points)]


def _marks(data: dict[str, Any], frame: _Frame, depth: int) -> list[Mark]:
    point = _pair(data.get("point"))
    if point is not None:
        return [Mark("tap", (frame.pixels(point),))]
    swipe = _swipe(data, frame)
    if swipe is not None:
        return [swipe]
    element = _pair(data.get("element"))
    if element is not None:
        return [Mark("tap", (frame.relative(element),))]
    x, y = _num(data.get("x")), _num(data.get("y"))
    if x is not None and y is not None:
        return [Mark("tap", (frame.pixels((x, y)),))]
    nested = data.get("action")
    if isinstance(nested, dict) and depth < 3:
        return _marks(nested, frame, depth + 1)
    return []


def _swipe(data: dict[str, Any], frame: _Frame) -> Mark | None:
    start, end = _pair(data.get("start")), _pair(data.get("end"))
    if start is not None and end is not None:
        return Mark("swipe", (frame.relative(start), frame.relative(end)))
    for a, b, c, d in (("x1", "y1", "x2", "y2"), ("start_x", "start_y", "end_x", "end_y")):
        vals = [_num(data.get(k)) for k in (a, b, c, d)]
        if all(v is not None for v in vals):
            x1, y1, x2, y2 = (float(v) for v in vals)  # type: ignore[arg-type]
            return Mark("swipe", (frame.pixels((x1, y1)), frame.pixels((x2, y2))))
    return None


def overlay_svg(marks: list[Mark], width: float, height: float) -> str:
    """SVG elements (for interactive_image ``content``) sized relative to the image."""
    r = max(width, height) * 0.025
    stroke = max(width, height) * 0.006
    parts = []
    for mark in marks:
        if mark.kind == "tap":
            x, y = mark.points[0]
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="rgba(239,68,68,0.35)" '
                f'stroke="#ef4444" stroke-width="{stroke:.1f}" />'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{stroke:.1f}" fill="#ef4444" />'
            )
        else:
            (x1, y1), (x2, y2) = mark.points
            parts.append(
                f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#3b82f6" '
                f'stroke-width="{stroke:.1f}" stroke-linecap="round" />'
                f'<circle cx="{x1:.1f}" cy="{y1:.1f}" r="{r * 0.6:.1f}" fill="rgba(59,130,246,0.4)" stroke="#3b82f6" />'
                f'<circle cx="{x2:.1f}" cy="{y2:.1f}" r="{r:.1f}" fill="none" stroke="#3b82f6" '
                f'stroke-width="{stroke:.1f}" />'
            )
    return "".join(parts)

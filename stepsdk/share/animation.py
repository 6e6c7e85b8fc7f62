"""Playback of a task as an animation: one frame per step that has a screenshot, in step order,
with the action overlay (tap circle, swipe arrow) and a caption (step number, action, ok/failed).

GIF and animated WebP are written with Pillow; MP4 (H.264) with ``imageio-ffmpeg``, an optional
extra (``pip install 'stepsdk[video]'``) that ships its ffmpeg binary inside the wheel.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from PIL import Image, ImageDraw, ImageFont

from stepsdk.errors import StepSDKError
from stepsdk.viewer.pages._overlay import Mark

from .run import SharedRun, SharedStep, action_name

log = logging.getLogger("stepsdk.share")

FORMATS = ("gif", "webp", "mp4")
DEFAULT_SECONDS = 1.0
MAX_WIDTH = 480  # wider frames are scaled down: an animation is for sharing (the report keeps full size)
TAP = (239, 68, 68)
SWIPE = (59, 130, 246)


class AnimationError(StepSDKError):
    """Nothing to animate, or the MP4 extra is missing (the message says what to do)."""


class NothingToAnimate(AnimationError):
    """The task has no screenshots."""


def caption(step: SharedStep) -> str:
    name = action_name(step.row.get("step_data")) or str(step.row.get("step_type") or "")
    return f"#{step.number} {name} · {'FAILED' if step.failed else 'ok'}"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def draw_marks(img: Image.Image, marks: list[Mark], scale: float = 1.0) -> None:
    """The viewer's overlay drawn with Pillow (same colours and proportions)."""
    w, h = img.size
    r = max(w, h) * 0.025
    stroke = max(2, round(max(w, h) * 0.006))
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for mark in marks:
        pts = [(x * scale, y * scale) for x, y in mark.points]
        if mark.kind == "tap":
            x, y = pts[0]
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(*TAP, 90), outline=(*TAP, 255), width=stroke)
            draw.ellipse((x - stroke, y - stroke, x + stroke, y + stroke), fill=(*TAP, 255))
        else:
            (x1, y1), (x2, y2) = pts
            draw.line((x1, y1, x2, y2), fill=(*SWIPE, 255), width=stroke)
            draw.ellipse(
                (x1 - r * 0.6, y1 - r * 0.6, x1 + r * 0.6, y1 + r * 0.6),
                fill=(*SWIPE, 100),
                outline=(*SWIPE, 255),
            )
            draw.ellipse((x2 - r, y2 - r, x2 + r, y2 + r), outline=(*SWIPE, 255), width=stroke)
    img.alpha_composite(layer)


def frame(step: SharedStep, size: tuple[int, int]) -> Image.Image:
    """The step's screenshot fitted into ``size`` (letterboxed), overlay drawn, caption below.
    The result is RGB, ``size[0]`` x (``size[1]`` + caption band)."""
    assert step.image is not None and step.size is not None
    with Image.open(io.BytesIO(step.image)) as src:
        shot = src.convert("RGBA")
    scale = min(size[0] / shot.width, size[1] / shot.height)
    if scale != 1.0:
        shot = shot.resize(
            (max(1, round(shot.width * scale)), max(1, round(shot.height * scale))), Image.Resampling.LANCZOS
        )
    draw_marks(shot, step.marks, scale)
    band = max(24, size[1] // 18)
    band += band % 2  # even frame sizes (H.264)
    canvas = Image.new("RGB", (size[0], size[1] + band), (17, 24, 39))
    canvas.paste(shot, ((size[0] - shot.width) // 2, (size[1] - shot.height) // 2), shot)
    draw = ImageDraw.Draw(canvas)
    color = (248, 113, 113) if step.failed else (255, 255, 255)
    draw.text((8, size[1] + band // 2), caption(step), fill=color, font=_font(int(band * 0.6)), anchor="lm")
    return canvas


def frame_size(run: SharedRun) -> tuple[int, int]:
    """The largest screenshot, scaled to at most MAX_WIDTH wide, rounded to even numbers (H.264)."""
    steps = run.with_images()
    if not steps:
        raise NothingToAnimate(f"task {run.task_id} has no screenshots to animate")
    w = max(s.size[0] for s in steps if s.size)
    h = max(s.size[1] for s in steps if s.size)
    if w > MAX_WIDTH:
        h, w = round(h * MAX_WIDTH / w), MAX_WIDTH
    return w - w % 2, h - h % 2


def frames(run: SharedRun) -> Iterator[Image.Image]:
    size = frame_size(run)
    for step in run.with_images():
        yield frame(step, size)


def write_pillow(run: SharedRun, out: IO[bytes], fmt: str, seconds: float = DEFAULT_SECONDS) -> int:
    """An animated GIF or WebP looping forever; returns the number of frames."""
    images = list(frames(run))
    ms = max(20, round(seconds * 1000))
    if fmt == "gif":
        images = [im.quantize(colors=256, method=Image.Quantize.FASTOCTREE) for im in images]
        images[0].save(
            out,
            "GIF",
            save_all=True,
            append_images=images[1:],
            duration=ms,
            loop=0,
            optimize=False,
            disposal=1,
        )
    elif fmt == "webp":
        images[0].save(
            out, "WEBP", save_all=True, append_images=images[1:], duration=ms, loop=0, quality=80, method=4
        )
    else:
        raise ValueError(f"unknown animation format {fmt!r}")
    return len(images)


def write_mp4(run: SharedRun, target: Path, seconds: float = DEFAULT_SECONDS) -> int:
    """An H.264 MP4 (yuv420p, plays everywhere) with one video frame per screenshot, shown
    ``seconds`` each; returns the number of frames."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise AnimationError(
            "MP4 needs the video extra: pip install 'stepsdk[video]' (imageio-ffmpeg)"
        ) from None
    size = frame_size(run)
    count = 0
    writer = None
    for image in frames(run):
        if writer is None:
            writer = imageio_ffmpeg.write_frames(
                str(target),
                image.size,
                fps=1.0 / max(0.02, seconds),
                codec="libx264",
                pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p",
                macro_block_size=2,
                quality=None,
                output_params=["-preset", "veryfast", "-crf", "26", "-movflags", "+faststart"],
                ffmpeg_log_level="error",
            )
            writer.send(None)  # start ffmpeg
        writer.send(image.tobytes())
        count += 1
    if writer is not None:
        writer.close()
    log.debug("mp4 of %s: %d frames of %s", run.task_id, count, size)
    return count

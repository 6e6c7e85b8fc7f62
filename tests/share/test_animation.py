"""GIF / animated WebP / MP4 of a phone run: one frame per screenshot step, the tap drawn where
the tap was, and the MP4 decodes with ffmpeg (frame count, size)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from PIL import Image

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from tests.share import phone_run

FRAME = (phone_run.SCREEN[0], phone_run.SCREEN[1] + 44)  # the screenshot and the caption band


def _export(fmt: str, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["export", phone_run.TASK_ID, "--format", fmt, "-o", str(out), "--json", *extra]) == Exit.OK
    return json.loads(capsys.readouterr().out)


def _is_red(pixel: tuple[int, ...]) -> bool:
    r, g, b = pixel[:3]
    return r > 190 and g < 110 and b < 110


def _count_red(img: Image.Image) -> int:
    r, g, b = (
        band.point(lambda v, t=t: 255 if t(v) else 0)
        for band, t in zip(
            img.split(), (lambda v: v > 190, lambda v: v < 110, lambda v: v < 110), strict=True
        )
    )
    both = Image.composite(r, Image.new("L", img.size), g)
    return Image.composite(both, Image.new("L", img.size), b).histogram()[255]


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_one_frame_per_screenshot_with_the_tap_drawn(
    fmt: str, backup: Path, run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"run.{fmt}"
    result = _export(fmt, out, capsys, "--seconds-per-frame", "0.5")
    steps = run["steps"]
    assert result["frames"] == len(steps) == 8
    with Image.open(out) as anim:
        assert anim.format == fmt.upper() and anim.n_frames == len(steps) and anim.is_animated
        taps = 0
        for index, step in enumerate(steps):
            anim.seek(index)
            frame = anim.convert("RGB")
            assert anim.info.get("duration") == 500  # --seconds-per-frame 0.5
            assert frame.size == FRAME
            tap = phone_run.tap_pixel(step)
            # the caption's text is drawn in the band below the screenshot
            band = frame.crop((0, phone_run.SCREEN[1], FRAME[0], FRAME[1]))
            assert band.getextrema() != ((17, 17), (24, 24), (39, 39))
            if tap is not None:  # Tap / Long Press: the overlay's centre dot is at the tap
                taps += 1
                assert _is_red(frame.getpixel(tap)), (index, tap, frame.getpixel(tap))
                assert not _is_red(frame.getpixel((tap[0], (tap[1] + 400) % phone_run.SCREEN[1])))
            else:
                reds = _count_red(frame.crop((0, 0, *phone_run.SCREEN)))
                assert reds == 0 or step["step_data"]["action"]["action"] == "Swipe"
        assert taps == 2  # Tap at step 2, Long Press at step 5


def test_mp4_decodes_with_one_frame_per_screenshot(
    backup: Path, run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.mp4"
    result = _export("mp4", out, capsys)
    assert result["frames"] == len(run["steps"])
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == FRAME
    frames = list(reader)
    assert len(frames) == len(run["steps"])
    assert all(len(f) == FRAME[0] * FRAME[1] * 3 for f in frames)
    # the tap of step 2 is red in the decoded video too (yuv420p keeps a 10 px dot red)
    tap = phone_run.tap_pixel(run["steps"][1])
    frame = Image.frombytes("RGB", FRAME, frames[1])
    assert _is_red(frame.getpixel(tap)), frame.getpixel(tap)


def test_animation_refuses_several_tasks_and_tasks_without_screenshots(
    backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--format", "gif", "-o", str(tmp_path / "a.gif")]) == Exit.USAGE
    assert "takes one task; 2 matched" in capsys.readouterr().err
    root = tmp_path / "noshots"
    bare = phone_run.build(steps=2, task_id="bare")
    bare["steps"] = [{**s, "screenshot_path": None} for s in bare["steps"]]
    bare["screenshots"], bare["objects"] = [], {}
    phone_run.write_backup(root, bare)
    assert (
        main(
            ["export", "bare", "--backup-dir", str(root), "--format", "webp", "-o", str(tmp_path / "b.webp")]
        )
        == Exit.NO_INPUT
    )
    assert "no screenshots to animate" in capsys.readouterr().err
    assert not (tmp_path / "b.webp").exists()

"""The task page's sharing buttons (HTML report, animated GIF), on both sources."""

from __future__ import annotations

import io
import re

from nicegui.testing import User
from PIL import Image

from tests.timing import WAIT


async def test_html_report_and_animation_buttons(viewer: User) -> None:
    await viewer.open("/tasks/task-ok")
    viewer.find("HTML report").click()
    page = (await viewer.download.next(timeout=WAIT)).text
    assert page.startswith("<!doctype html>") and "Open settings and enable wifi" in page
    assert len(re.findall(r'src="data:image/webp;base64,', page)) == 2  # both screenshots inside
    # the Tap at screen point (540, 720) of a 1080x2400 screen, on the 270x600 stored image
    assert '<circle cx="135.0" cy="180.0"' in page
    viewer.find("Animation").click()
    gif = (await viewer.download.next(timeout=WAIT)).content
    with Image.open(io.BytesIO(gif)) as anim:
        assert anim.format == "GIF" and anim.n_frames == 2


async def test_animation_button_without_screenshots(viewer: User) -> None:
    await viewer.open("/tasks/task-empty")
    viewer.find("Animation").click()
    await viewer.should_see("No screenshots to animate in this task")


async def test_html_report_of_a_task_with_broken_screenshots(viewer: User) -> None:
    """A missing object and a stored file that is not an image: the report says so, no <img>."""
    await viewer.open("/tasks/task-broken")
    viewer.find("HTML report").click()
    page = (await viewer.download.next(timeout=WAIT)).text
    assert page.count("was not available for this export") == 2
    assert "<img" not in page

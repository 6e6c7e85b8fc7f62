"""Where an action touched the screen: every supported layout, scaling, and junk that must not draw."""

from __future__ import annotations

import math

import pytest

from stepsdk.viewer.pages._overlay import Mark, action_marks, overlay_svg


def test_pixel_point_is_scaled_to_a_downscaled_screenshot() -> None:
    # a 1080x2400 screen stored as a 270x600 WebP: pixel coordinates shrink by 4
    marks = action_marks({"action": "tap", "x": 540, "y": 720}, 270, 600, 1080, 2400)
    assert marks == [Mark("tap", ((135.0, 180.0),))]


def test_phone_agent_relative_element_and_point_field() -> None:
    data = {"action": {"action": "Tap", "element": [500, 300], "type": "do"}}
    assert action_marks(data, 270, 600) == [Mark("tap", ((135.0, 180.0),))]
    # the integration's "point" (screen pixels) wins over the nested relative element
    data["point"] = {"x": 540, "y": 720}
    data["screen"] = {"width": 1080, "height": 2400}
    assert action_marks(data, 270, 600) == [Mark("tap", ((135.0, 180.0),))]


def test_swipes_relative_and_pixel() -> None:
    rel = action_marks({"action": "Swipe", "start": [500, 800], "end": [500, 200]}, 100, 1000)
    assert rel == [Mark("swipe", ((50.0, 800.0), (50.0, 200.0)))]
    px = action_marks({"action": "swipe", "x1": 10, "y1": 20, "x2": 30, "y2": 40}, 200, 200, 400, 400)
    assert px == [Mark("swipe", ((5.0, 10.0), (15.0, 20.0)))]
    named = action_marks({"start_x": 1, "start_y": 2, "end_x": 3, "end_y": 4}, 10, 10)
    assert named[0].kind == "swipe"


@pytest.mark.parametrize(
    "data",
    [
        None,
        "tap",
        [],
        {},
        {"x": True, "y": 1},
        {"x": "10", "y": "20"},
        {"x": math.nan, "y": 1},
        {"x": math.inf, "y": 1},
        {"element": [1, 2, 3]},
        {"element": ["a", "b"]},
        {"x": -5, "y": 10},
        {"x": 99999, "y": 10},
        {"action": {"action": {"action": {"action": {"x": 1, "y": 1}}}}},
    ],
)
def test_junk_draws_nothing(data: object) -> None:
    assert action_marks(data, 270, 600) == []


def test_zero_sized_image_draws_nothing() -> None:
    assert action_marks({"x": 1, "y": 1}, 0, 600) == []


def test_svg_is_built_from_numbers_only() -> None:
    svg = overlay_svg([Mark("tap", ((135.0, 180.0),)), Mark("swipe", ((1.0, 2.0), (3.0, 4.0)))], 270, 600)
    assert '<circle cx="135.0" cy="180.0"' in svg and "<line" in svg
    assert overlay_svg([], 270, 600) == ""

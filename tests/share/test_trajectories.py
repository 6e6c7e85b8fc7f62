"""``stepsdk export --format trajectories``: JSONL that validates against the documented JSON
Schema, images beside it, PhoneAgent's 0-1000 coordinates converted to screen pixels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.share import trajectories
from tests.share import phone_run

REPO = Path(__file__).resolve().parents[2]


def _schema() -> dict[str, Any]:
    schema = json.loads(trajectories.SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return schema


@pytest.mark.parametrize(
    ("element", "size", "pixels"),
    [
        ((500, 218), (360, 800), (180, 174)),
        ((0, 0), (1080, 2400), (0, 0)),
        ((999, 999), (1080, 2400), (1078, 2397)),
        ((333, 667), (1080, 2400), (359, 1600)),  # int() truncates, as PhoneAgent's adb handler does
    ],
)
def test_relative_coordinates_become_screen_pixels(
    element: tuple[int, int], size: tuple[int, int], pixels: tuple[int, int]
) -> None:
    assert trajectories.relative_to_pixels(element, *size) == pixels
    # the same numbers as the integration's "point" (what adb was told to tap)
    data = phone_run.phone_step_data(
        agent_step=1, action={"action": "Tap", "element": list(element)}, current_app=None, screen=size
    )
    assert (data["point"]["x"], data["point"]["y"]) == pixels
    action = trajectories.convert_action(data, trajectories.Screen(*size))
    assert action == {
        "type": "click",
        "name": "Tap",
        "x": pixels[0],
        "y": pixels[1],
        "x_norm": element[0] / 1000,
        "y_norm": element[1] / 1000,
    }


def test_export_round_trips_and_validates(
    backup: Path, run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dataset"
    assert main(["export", "--format", "trajectories", "-o", str(out), "--json"]) == Exit.OK
    summary = json.loads(capsys.readouterr().out)
    # successful runs only by default: the failed run is left out
    assert summary["episodes"] == 1 and summary["records"] == len(run["steps"]) == summary["images"]
    validator = Draft202012Validator(_schema())
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for rec in records:
        errors = [e.message for e in validator.iter_errors(rec)]
        assert not errors, (rec, errors)
    assert json.loads((out / "trajectory.schema.json").read_text()) == _schema()
    assert [r["step_index"] for r in records] == list(range(len(records)))
    assert {r["episode_id"] for r in records} == {phone_run.TASK_ID}
    by_number = {s["step_number"]: s for s in run["steps"]}
    for rec in records:
        step = by_number[rec["step_number"]]
        assert (out / rec["screenshot"]).read_bytes() == run["objects"][step["screenshot_path"]]
        assert rec["reasoning"] == step["thinking"] and rec["goal"] == "Turn on Wi-Fi"
        assert rec["screen"] == {"width": 360, "height": 800} and rec["coordinate_system"] == "screen_px"
        assert rec["raw_action"] == step["step_data"]["action"]
        assert rec["success"] is step["success"]
    actions = [r["action"] for r in records]
    assert actions[0] == {"type": "open_app", "name": "Launch", "app_name": "Settings"}
    assert actions[1] == {"type": "click", "name": "Tap", "x": 180, "y": 174, "x_norm": 0.5, "y_norm": 0.218}
    assert actions[2] == {
        "type": "swipe",
        "name": "Swipe",
        "x": 180,
        "y": 640,
        "x_norm": 0.5,
        "y_norm": 0.8,
        "end_x": 180,
        "end_y": 160,
        "end_x_norm": 0.5,
        "end_y_norm": 0.2,
        "direction": "up",
    }
    assert actions[3] == {"type": "input_text", "name": "Type", "text": "HomeNetwork-5G"}
    assert actions[4]["type"] == "long_press" and (actions[4]["x"], actions[4]["y"]) == (90, 600)
    assert actions[5] == {"type": "navigate_back", "name": "Back"}
    assert actions[-1] == {
        "type": "status",
        "name": "finish",
        "message": "Wi-Fi is on",
        "goal_status": "complete",
    }
    assert records[2]["success"] is False and records[2]["error_type"] == "ActionFailed"


def test_schema_rejects_what_it_should(tmp_path: Path) -> None:
    """The schema is not a rubber stamp: bad coordinates and unknown actions fail."""
    validator = Draft202012Validator(_schema())
    bundle = phone_run.build(steps=3)
    from stepsdk.store.export_format import TaskBundle

    rec = trajectories.records(TaskBundle(bundle["task"], bundle["steps"], bundle["screenshots"]))[1]
    assert validator.is_valid(rec)
    for broken in (
        {**rec, "action": {**rec["action"], "x_norm": 1.5}},
        {**rec, "action": {"type": "click", "name": "Tap"}},
        {**rec, "action": {**rec["action"], "type": "teleport"}},
        {**rec, "coordinate_system": "relative_1000"},
        {k: v for k, v in rec.items() if k != "goal"},
    ):
        assert not validator.is_valid(broken), broken


def test_docs_describe_the_schema_and_the_mapping() -> None:
    doc = (REPO / "docs" / "trajectories.md").read_text()
    for action_type in json.loads(trajectories.SCHEMA_FILE.read_text())["$defs"]["action"]["properties"][
        "type"
    ]["enum"]:
        assert f"`{action_type}`" in doc, action_type
    assert "AndroidControl" in doc and "AITW" in doc
    assert "stepsdk/share/trajectory.schema.json" in doc

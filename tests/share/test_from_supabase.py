"""The sharing formats read from Supabase (the local stack, the official client) like the backup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.share import otlp
from tests.cli_data import stack_env
from tests.share import phone_run


def _load(stack: Any, run: dict[str, Any]) -> None:
    client = stack.client()
    for path, data in run["objects"].items():
        client.storage.from_("step-screenshots").upload(
            path, data, {"content-type": "image/webp", "upsert": "true"}
        )
    client.table("tasks").upsert(run["task"]).execute()
    client.table("task_steps").upsert(run["steps"]).execute()
    client.table("step_screenshots").upsert(run["screenshots"]).execute()


def test_html_and_trajectories_from_supabase(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = phone_run.build()
    _load(stack, run)
    stack_env(monkeypatch, stack, tmp_path / "no-backup")
    out = tmp_path / "r.html"
    assert main(["export", phone_run.TASK_ID, "--format", "html", "-o", str(out), "--json"]) == Exit.OK
    assert json.loads(capsys.readouterr().out)["source"] == "supabase"
    assert out.read_text().count('src="data:image/webp;base64,') == len(run["steps"])
    assert main(["export", "--format", "trajectories", "-o", str(tmp_path / "ds"), "--json"]) == Exit.OK
    assert json.loads(capsys.readouterr().out)["images"] == len(run["steps"])
    # the OTLP span links the screenshot to its Storage object on this project
    span = otlp.step_span(run["steps"][0], run["task"], stack.url)
    assert span.attributes["stepsdk.screenshot.url"] == (
        f"{stack.url}/storage/v1/object/step-screenshots/{run['steps'][0]['screenshot_path']}"
    )
    # and that URL serves the image to a key holder
    answer = httpx.get(
        span.attributes["stepsdk.screenshot.url"],
        headers={"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"},
    )
    assert answer.status_code == 200 and answer.content == run["objects"][run["steps"][0]["screenshot_path"]]

"""The snippets of README.md and docs/integrations.md run as written (only the service addresses are swapped)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.conftest import ApiServer, FakeDevice, backup_steps
from tests.integrations.fake_model import FakeModelServer

ROOT = Path(__file__).parents[2]
_BLOCK = re.compile(r"<!-- test: (\w+) -->\n```python\n(.*?)```", re.DOTALL)

pytestmark = pytest.mark.usefixtures("local_env")


@pytest.fixture(params=["README.md", "docs/integrations.md"])
def doc(request: pytest.FixtureRequest) -> Path:
    return ROOT / request.param


def _snippet(doc: Path, name: str) -> str:
    blocks = dict(_BLOCK.findall(doc.read_text(encoding="utf-8")))
    assert name in blocks, f"{doc.name} has no '{name}' snippet"
    return blocks[name]


def _run(code: str, doc: Path, backup: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(backup))
    namespace: dict[str, Any] = {"__name__": "__doc_snippet__"}
    exec(compile(code, str(doc), "exec"), namespace)
    return namespace


def _journal_text(backup: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in (backup / "journal").glob("*.log"))


def test_phone_agent_snippet(
    doc: Path,
    fake_device: FakeDevice,
    model: FakeModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = _snippet(doc, "phone")
    assert "http://localhost:8000/v1" in code
    model.script(
        '<think>Open it.</think><answer>do(action="Launch", app="Settings")',
        '<think>Done.</think><answer>finish(message="Wi-Fi is on")',
    )
    ns = _run(code.replace("http://localhost:8000/v1", model.base_url), doc, tmp_path, monkeypatch)
    assert ns["result"] == "Wi-Fi is on" and not ns["tracking"].attached
    steps = backup_steps(tmp_path, ns["tracking"].last_task_id)
    assert [s["step_data"]["action"]["action"] for s in steps[:1]] == ["Launch"] and len(steps) == 2


def test_httpx_snippet(
    doc: Path, api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _snippet(doc, "http")
    ns = _run(code.replace("https://api.example.com", api_server.url), doc, tmp_path, monkeypatch)
    steps = backup_steps(tmp_path, ns["tracker"].task_id)
    assert [(s["step_data"]["method"], s["success"]) for s in steps] == [
        ("GET", True),
        ("GET", False),
        ("POST", True),
    ]
    journal = _journal_text(tmp_path)
    assert "sk-live-123" not in journal and "k-123" not in journal


def test_agent_loop_snippet(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _run(_snippet(doc, "loop"), doc, tmp_path, monkeypatch)
    steps = backup_steps(tmp_path, ns["tracker"].task_id)
    assert [s["step_type"] for s in steps] == ["thinking", "action", "action", "validation", "action"]
    assert steps[2]["screenshot_path"] and all(s["success"] for s in steps)
    assert "secret-key" not in _journal_text(tmp_path)


def test_memory_sink_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _run(_snippet(ROOT / "README.md", "memory"), ROOT / "README.md", tmp_path, monkeypatch)
    assert ns["sink"].steps(ns["tracker"].task_id)[0]["step_data"] == {"tap": [540, 720]}

"""Short step labels: what the integrations pass as ``record_step(name=...)`` and what the viewer
shows for a step recorded without one (``GET /v1/forecast → 404``, ``Tap``, ``Launch Settings``).

Pure functions of already-recorded data (the URL is the redacted one, the query string is left
out), cheap enough to run on the agent's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from stepsdk.schema import MAX_STEP_NAME

MAX_NAME = MAX_STEP_NAME  # the schema's limit on task_steps.name
_PATH_CHARS = 80


def _cut(text: str, limit: int = MAX_NAME) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def http_step_name(method: str, url: str, status: int | None = None, error: str | None = None) -> str:
    """``GET /v1/forecast → 404``; ``→ ConnectError`` when no response came; no query string."""
    try:
        path = urlsplit(url).path or "/"
    except ValueError:
        path = "?"
    outcome = str(status) if status is not None else (error or "")
    label = f"{method.upper()} {_cut(path, _PATH_CHARS)}"
    return _cut(f"{label} → {outcome}" if outcome else label)


def phone_action_name(action: Mapping[str, Any] | None) -> str:
    """A PhoneAgent action as a label: ``Tap``, ``Launch Settings``, ``Type``, ``Finish``."""
    if not isinstance(action, Mapping):
        return ""
    kind = action.get("action")
    if not isinstance(kind, str) or not kind:
        meta = action.get("_metadata", action.get("type"))
        return "Finish" if meta == "finish" else ""
    app = action.get("app")
    if kind.casefold() == "launch" and isinstance(app, str) and app:
        return _cut(f"{kind} {app}")
    return _cut(kind)


def step_label(step: Mapping[str, Any]) -> str:
    """The step's ``name``, or a label derived from its ``step_data`` (steps recorded before
    names existed, or by code that passes none); ``""`` when nothing fits."""
    name = step.get("name")
    if isinstance(name, str) and name.strip():
        return _cut(" ".join(name.split()))
    data = step.get("step_data")
    if not isinstance(data, Mapping):
        return ""
    kind = data.get("kind")
    if kind == "http" and isinstance(data.get("method"), str) and isinstance(data.get("url"), str):
        response = data.get("response")
        status = response.get("status_code") if isinstance(response, Mapping) else None
        error = None if isinstance(status, int) else step.get("error_type")
        return http_step_name(
            data["method"],
            data["url"],
            status if isinstance(status, int) else None,
            error if isinstance(error, str) else None,
        )
    if kind in ("function", "block") and isinstance(data.get("function"), str):
        return _cut(data["function"])
    action = data.get("action")
    if isinstance(action, Mapping):
        return phone_action_name(action)
    if isinstance(action, str) and action:
        return _cut(action, 60)
    if kind in ("confirmation", "takeover"):
        return str(kind).capitalize()
    return ""

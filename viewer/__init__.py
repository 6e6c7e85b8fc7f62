"""stepsdk viewer: browse tasks, replay a task step by step, statistics, and a JSON API.

    from viewer import create_app, run
    from viewer.data.backup_source import BackupSource
    run(BackupSource("backup"), port=8080)

Names are imported lazily: ``stepsdk view --help`` (and every other ``stepsdk`` command, whose
parser lists ``view``) must not pay for importing NiceGUI.
"""

from __future__ import annotations

from typing import Any

DEFAULT_HOST = "127.0.0.1"  # local only: the viewer holds a service key on the server side
__all__ = ["DataSource", "Sort", "SourceUnavailable", "TaskFilters", "create_app", "run", "source_from_args"]
_FROM = {"create_app": "app", "run": "app", "source_from_args": "app", "DataSource": "data.base",
         "Sort": "data.base", "SourceUnavailable": "data.base", "TaskFilters": "data.base"}


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module 'viewer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"viewer.{_FROM[name]}"), name)

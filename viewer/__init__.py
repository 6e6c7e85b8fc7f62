"""stepsdk viewer: browse tasks, replay a task step by step, statistics, and a JSON API.

    from stepsdk.viewer import create_app, run
    from stepsdk.viewer.data.backup_source import BackupSource
    run(BackupSource("backup"), port=8080)

The repository's ``viewer/`` folder is installed as ``stepsdk.viewer`` (``package_dir`` in setup.py),
also by the editable install. Names are imported lazily: ``stepsdk view --help`` (and every other
``stepsdk`` command, whose parser lists ``view``) must not pay for importing NiceGUI.
"""

from __future__ import annotations

from typing import Any

if __name__ != "stepsdk.viewer":  # e.g. `import viewer` with the repository root on sys.path
    # a second copy of every module (its own caches, its own NiceGUI registrations): refuse
    raise ImportError(
        f"the viewer is the package stepsdk.viewer, not {__name__!r}: "
        "use `from stepsdk.viewer import ...` or `python -m stepsdk.viewer`"
    )

DEFAULT_HOST = "127.0.0.1"  # local only: the viewer holds a service key on the server side
__all__ = ["DataSource", "Sort", "SourceUnavailable", "TaskFilters", "create_app", "run", "source_from_args"]
_FROM = {
    "create_app": "app",
    "run": "app",
    "source_from_args": "app",
    "DataSource": "data.base",
    "Sort": "data.base",
    "SourceUnavailable": "data.base",
    "TaskFilters": "data.base",
}


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_FROM[name]}", __name__), name)

"""stepsdk viewer: browse tasks, replay a task step by step, statistics, and a JSON API.

    from viewer import create_app, run
    from viewer.data.backup_source import BackupSource
    run(BackupSource("backup"), port=8080)
"""

from .app import create_app, run, source_from_args
from .data.base import DataSource, Sort, SourceUnavailable, TaskFilters

__all__ = ["DataSource", "Sort", "SourceUnavailable", "TaskFilters", "create_app", "run", "source_from_args"]

"""The viewer's sharing downloads (the task page's "HTML report" and "Animation" buttons): the
same files as ``stepsdk export TASK --format html|gif``, read through the viewer's data source."""

from __future__ import annotations

import io

from stepsdk.share import animation, html_report
from stepsdk.share.run import SharedRun, shared_run
from stepsdk.store.export_format import TaskBundle

from .data.base import DataSource, Row


def _shared(source: DataSource, task: Row) -> SharedRun:
    task_id = task["task_id"]
    bundle = TaskBundle(
        dict(task), source.iter_all_steps(task_id), source.get_screenshots(task_id)
    ).normalized()
    return shared_run(bundle, source.screenshot_bytes)


def html_report_bytes(source: DataSource, task: Row) -> bytes:
    return html_report.render(_shared(source, task)).encode("utf-8")


def animation_bytes(source: DataSource, task: Row, fmt: str = "gif", seconds: float = 1.0) -> bytes:
    """Raises :class:`stepsdk.share.animation.AnimationError` when the task has no screenshots."""
    buf = io.BytesIO()
    animation.write_pillow(_shared(source, task), buf, fmt, seconds)
    return buf.getvalue()
